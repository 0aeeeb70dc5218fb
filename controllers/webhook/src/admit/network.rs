//! `/netvalidation`: CREATE and UPDATE of DanmNet, TenantNetwork and ClusterNetwork (behaviour §8.2, §8.3).
//!
//! Order: the rules plugin (every API-level rule, strict decoding), V27 (needs DanmEps), then the mutation computed
//! in memory (NetworkType default, TenantNetwork profile and a *planned* VNI, networkIds, IPAM defaults), then the
//! backend plugin on the mutated object (so NetworkID length rules see the planned VNI). Only when nothing is violated
//! is the VNI reserved in the TenantConfig, as the last fallible step: a denied request never holds a VNI
//! (behaviour §10 B12).

use std::net::IpAddr;

use danm_api::{InterfaceProfile, Network, NetworkKind, NetworkOptions, NetworkSpec, TenantConfig};
use danm_core::ipam::Family;
use danm_core::ipam::apply_network_defaults;
use danm_core::ipam::blocks::{BlockLayout, IpamMode, NetworkId};
use danm_core::vni;

use super::inuse::{connected_endpoints, describe_pods};
use super::patch::network_patch;
use super::{Webhook, deny_violations, plugin_operation, raw_json};
use crate::review::{AdmissionRequest, Operation, Verdict};
use crate::validator::{RulesReview, Violation};

/// A VNI to reserve once validation passed.
struct VniPlan {
    profile: String,
    vni_type: &'static str,
    tenant_config: TenantConfig,
}

impl Webhook {
    pub(super) async fn network(&self, req: &AdmissionRequest) -> Verdict {
        let op = req.operation();
        if !matches!(op, Operation::Create | Operation::Update) {
            return Verdict::allow();
        }
        let kind_name = req.object_kind();
        let Ok(kind) = kind_name.parse::<NetworkKind>() else {
            return Verdict::deny(format!("K8s API type:{kind_name} is not handled by DANM webhook"));
        };

        // TenantNetworks need the TenantConfig already for the rules (networkIds mapping before V20).
        let mut tenant_config = None;
        let mut violations = Vec::new();
        if kind == NetworkKind::TenantNetwork {
            match self.cluster.first_tenant_config().await {
                Ok(Some(tc)) => tenant_config = Some(tc),
                Ok(None) => {
                    violations.push(Violation::new("TC", "", "no TenantConfigs exist int the cluster"))
                }
                Err(e) => return Verdict::deny_internal(format!("cannot read the TenantConfig: {e}")),
            }
        }

        let object_json = raw_json(&req.object);
        let old_json = raw_json(&req.old_object);
        let review = RulesReview {
            kind: kind_name.clone(),
            operation: plugin_operation(op),
            object_json: object_json.clone(),
            old_object_json: old_json.clone(),
            tenant_config_json: tenant_config
                .as_ref()
                .map(|tc| serde_json::to_string(tc).expect("serialises")),
        };
        match self.run_rules(&review) {
            Ok(v) => violations.extend(v),
            Err(e) => return Verdict::deny_internal(e.to_string()),
        }
        // Undecodable objects and kind errors leave nothing to mutate.
        if violations.iter().any(|v| v.rule == "D1" || v.rule == "K1") {
            return deny_violations(&violations);
        }
        let Some(raw) = req.object.as_ref().filter(|o| !o.is_null()) else {
            violations.push(Violation::new("D1", "", crate::review::EMPTY_REVIEW));
            return deny_violations(&violations);
        };
        let net: Network = match serde_json::from_value(raw.clone()) {
            Ok(n) => n,
            Err(e) => {
                violations.push(Violation::new(
                    "D1",
                    "",
                    format!("ERROR: cannot decode the object: {e}"),
                ));
                return deny_violations(&violations);
            }
        };
        let old: Option<Network> = req
            .old_object
            .as_ref()
            .and_then(|o| serde_json::from_value(o.clone()).ok());

        if op == Operation::Update
            && let Some(old) = &old
            && let Err(v) = self.check_v27(kind, req, old, &net).await
        {
            violations.push(v);
        }

        // The mutation, in memory.
        let mut spec = net.spec.clone();
        if spec.network_type.is_empty() {
            spec.network_type = "ipvlan".to_owned();
        }
        let dynamic = self.validator.dynamic_types();
        let is_dynamic = dynamic.iter().any(|t| t.eq_ignore_ascii_case(&spec.network_type));
        let mut plan = None;
        if kind == NetworkKind::TenantNetwork
            && let Some(tc) = &tenant_config
        {
            if op == Operation::Create && is_dynamic {
                match self.select_profile(tc, &spec.options) {
                    Ok(profile) => {
                        let o = &mut spec.options;
                        if o.host_device.is_empty() && o.device_pool.is_empty() {
                            o.host_device = profile.name.clone();
                        }
                        let vni_type = match profile.vni_type.as_str() {
                            "vlan" if o.vlan == 0 => Some("vlan"),
                            "vxlan" if o.vxlan == 0 => Some("vxlan"),
                            _ => None,
                        };
                        if let Some(vni_type) = vni_type {
                            // Dry run on the TenantConfig as read: the planned VNI lets the backend rules see it.
                            match vni::reserve_for_profile(tc, &profile.name, vni_type) {
                                Ok((_, planned)) => {
                                    if vni_type == "vlan" {
                                        o.vlan = planned;
                                    } else {
                                        o.vxlan = planned;
                                    }
                                    plan = Some(VniPlan {
                                        profile: profile.name.clone(),
                                        vni_type,
                                        tenant_config: tc.clone(),
                                    });
                                }
                                Err(e) => violations.push(Violation::new(
                                    "VNI",
                                    format!("spec.Options.{vni_type}"),
                                    format!(
                                        "cannot reserve VNI for interface:{} , because:{e}",
                                        profile.name
                                    ),
                                )),
                            }
                        }
                    }
                    Err(v) => violations.push(v),
                }
            }
            if let Some((_, id)) = tc
                .network_ids
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(&spec.network_type))
            {
                spec.network_id = id.clone();
            }
        }

        let mode = match ipam_mode(op, &net, old.as_ref(), self.ipam_mode) {
            Ok(mode) => mode,
            Err(v) => {
                violations.push(v);
                IpamMode::Bitmap
            }
        };
        let old_options = old.as_ref().map(|o| &o.spec.options);
        if let Err(e) = ipam_defaults(op, mode, &mut spec.options, old_options)
            && violations.is_empty()
        {
            violations.push(Violation::new("IPAM", "spec.Options", e.to_string()));
        }
        if mode == IpamMode::Blocks
            && op == Operation::Update
            && let Some(old) = &old
            && ranges_changed(&old.spec.options, &spec.options)
            && let Err(v) = self.check_blocks_fit(kind, req, old, &spec).await
        {
            violations.push(v);
        }

        let mut mutated = net.clone();
        mutated.spec = spec;
        let mutated_json = serde_json::to_string(&mutated).expect("serialises");
        match self.run_backend(
            &mutated.spec.backend(),
            plugin_operation(op),
            &mutated_json,
            old_json.as_deref(),
        ) {
            Ok(Some(v)) => violations.extend(v),
            Ok(None) => {}
            Err(e) => return Verdict::deny_internal(e.to_string()),
        }
        if !violations.is_empty() {
            return deny_violations(&violations);
        }

        // Everything is valid: reserve the VNI (the last step that can fail).
        if let Some(plan) = plan
            && !req.is_dry_run()
        {
            match self
                .reserve_vni(plan.tenant_config, &plan.profile, plan.vni_type)
                .await
            {
                Ok(vni) => {
                    if plan.vni_type == "vlan" {
                        mutated.spec.options.vlan = vni;
                    } else {
                        mutated.spec.options.vxlan = vni;
                    }
                }
                Err(e) => {
                    return Verdict::deny(format!(
                        "cannot reserve VNI for interface:{} , because:{e}",
                        plan.profile
                    ));
                }
            }
        }
        let mut ops = network_patch(raw, &net.spec, &mutated.spec);
        let annotated = net
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(danm_api::annotations::IPAM_MODE));
        if mode == IpamMode::Blocks && !annotated {
            ops.extend(annotation_patch(
                raw,
                danm_api::annotations::IPAM_MODE,
                mode.as_str(),
            ));
        }
        Verdict::patched(ops)
    }

    /// In `blocks` mode an UPDATE may change `cidr`, `net6` or the pools only while every allocated address stays
    /// inside the new ranges.
    async fn check_blocks_fit(
        &self,
        kind: NetworkKind,
        req: &AdmissionRequest,
        old: &Network,
        new: &NetworkSpec,
    ) -> Result<(), Violation> {
        let namespace = old
            .namespace()
            .filter(|n| !n.is_empty())
            .unwrap_or(&req.namespace);
        let id = NetworkId::new(kind, namespace, old.name());
        let selector = format!("{}={}", danm_api::labels::NETWORK_ID, id.label());
        let blocks = self.cluster.list_ipblocks(&selector).await.map_err(|e| {
            Violation::new(
                "IPAM",
                "spec.Options",
                format!("no way to tell which addresses of {id} are allocated due to:{e}"),
            )
        })?;
        let mut outside = Vec::new();
        for block in blocks.iter().filter(|b| b.spec.network == id.to_string()) {
            let Some((base, _)) = block.spec.cidr.split_once('/') else {
                continue;
            };
            let Ok(base) = base.parse::<IpAddr>() else {
                continue;
            };
            let family = if base.is_ipv4() { Family::V4 } else { Family::V6 };
            let layout = BlockLayout::new(new, family, 0).ok();
            for rel in block.spec.owners.keys() {
                let addr = danm_core::ipam::addr_plus(base, *rel);
                if layout.as_ref().and_then(|l| l.offset_of(addr)).is_none() {
                    outside.push(addr.to_string());
                }
            }
        }
        if outside.is_empty() {
            return Ok(());
        }
        outside.sort();
        let shown: Vec<&str> = outside.iter().take(5).map(String::as_str).collect();
        Err(Violation::new(
            "IPAM",
            "spec.Options",
            format!(
                "cannot change the address ranges of {id}: {} allocated address(es) would lie outside them, e.g. {}",
                outside.len(),
                shown.join(", ")
            ),
        ))
    }

    /// V27: an UPDATE may not change the VNI or host_device of a network pods are connected to.
    async fn check_v27(
        &self,
        kind: NetworkKind,
        req: &AdmissionRequest,
        old: &Network,
        new: &Network,
    ) -> Result<(), Violation> {
        let (o, n) = (&old.spec.options, &new.spec.options);
        let device_changed = o.host_device != n.host_device;
        let vlan_change = o.vlan != 0 && (o.vlan != n.vlan || device_changed);
        let vxlan_change = o.vxlan != 0 && (o.vxlan != n.vxlan || device_changed);
        if !vlan_change && !vxlan_change {
            return Ok(());
        }
        let namespace = old
            .namespace()
            .filter(|n| !n.is_empty())
            .unwrap_or(&req.namespace)
            .to_owned();
        let list_ns = kind.namespaced().then_some(namespace.as_str());
        let field = if vlan_change {
            "spec.Options.vlan"
        } else {
            "spec.Options.vxlan"
        };
        let eps = self.cluster.list_danmeps(list_ns).await.map_err(|e| {
            Violation::new(
                "V27",
                field,
                format!("no way to tell if Pods are still using the network due to:{e}"),
            )
        })?;
        let connected = connected_endpoints(&eps, kind.as_str(), &namespace, old.name());
        if connected.is_empty() {
            return Ok(());
        }
        Err(Violation::new(
            "V27",
            field,
            format!(
                "cannot change VNI/host_device of a network which having any Pods connected to it e.g. {}",
                describe_pods(&connected)
            ),
        ))
    }

    /// behaviour §8.3: the profile for a TenantNetwork of a dynamic type: the one named by device_pool, else
    /// by host_device (NIC profiles only), else a uniformly random NIC profile.
    fn select_profile<'a>(
        &self,
        tc: &'a TenantConfig,
        o: &NetworkOptions,
    ) -> Result<&'a InterfaceProfile, Violation> {
        let mut candidates = Vec::new();
        for p in &tc.host_devices {
            if !o.device_pool.is_empty() && p.name == o.device_pool {
                return Ok(p);
            }
            if !o.host_device.is_empty() && p.name == o.host_device && !p.name.contains('/') {
                return Ok(p);
            }
            if !p.name.contains('/') {
                candidates.push(p);
            }
        }
        if !o.device_pool.is_empty() || !o.host_device.is_empty() {
            let field = if o.device_pool.is_empty() {
                "spec.Options.host_device"
            } else {
                "spec.Options.device_pool"
            };
            return Err(Violation::new(
                "TC",
                field,
                "The provided physical interface is not allowed to be used by tenants!",
            ));
        }
        if candidates.is_empty() {
            return Err(Violation::new(
                "TC",
                "spec.Options.host_device",
                "There are no suitable interface profiles configured for TenantNetworks!",
            ));
        }
        Ok(candidates[self.pick(candidates.len())])
    }
}

/// IPAM defaults (behaviour §5.2, §5.6). On UPDATE: a changed `cidr`/`net6` rebuilds the bitmap for the new
/// subnet (§10 B12; the pools must then fit the new subnet, V11/V17, or be left empty to get the defaults);
/// an unchanged subnet keeps the stored bitmap and pool when the new object omits them (e.g. `kubectl apply`
/// of the original manifest), so no allocation is forgotten.
///
/// In `blocks` mode the same defaults and checks apply, but no bitmap is kept: allocations live in DanmIpBlocks.
fn ipam_defaults(
    op: Operation,
    mode: IpamMode,
    o: &mut NetworkOptions,
    old: Option<&NetworkOptions>,
) -> Result<(), danm_core::ipam::IpamError> {
    if mode == IpamMode::Blocks {
        if op == Operation::Update
            && let Some(old) = old
        {
            if o.cidr == old.cidr && !o.cidr.is_empty() && o.allocation_pool.is_empty() {
                o.allocation_pool = old.allocation_pool.clone();
            }
            if o.net6 == old.net6 && !o.net6.is_empty() && o.allocation_pool_v6.is_empty() {
                o.allocation_pool_v6 = old.allocation_pool_v6.clone();
            }
        }
        o.alloc.clear();
        o.alloc6.clear();
        apply_network_defaults(o)?;
        o.alloc.clear();
        o.alloc6.clear();
        return Ok(());
    }
    if op == Operation::Update
        && let Some(old) = old
    {
        if o.cidr != old.cidr {
            o.alloc.clear();
        } else if !o.cidr.is_empty() {
            if o.alloc.is_empty() {
                o.alloc = old.alloc.clone();
            }
            if o.allocation_pool.is_empty() {
                o.allocation_pool = old.allocation_pool.clone();
            }
        }
        if o.net6 != old.net6 {
            o.alloc6.clear();
        } else if !o.net6.is_empty() {
            if o.alloc6.is_empty() {
                o.alloc6 = old.alloc6.clone();
            }
            if o.allocation_pool_v6.is_empty() {
                o.allocation_pool_v6 = old.allocation_pool_v6.clone();
            }
        }
    }
    apply_network_defaults(o).map(|_| ())
}

/// The IPAM mode of the network under admission: the object's `danm.k8s.io/ipam-mode` annotation; on UPDATE the
/// stored object's mode (a network never goes back from `blocks` to `bitmap`); on CREATE the cluster default.
fn ipam_mode(
    op: Operation,
    net: &Network,
    old: Option<&Network>,
    default: IpamMode,
) -> Result<IpamMode, Violation> {
    let bad = |e: danm_core::ipam::IpamError| {
        Violation::new(
            "IPAM",
            format!("metadata.annotations.{}", danm_api::annotations::IPAM_MODE),
            e.to_string(),
        )
    };
    let explicit = |n: &Network| {
        n.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(danm_api::annotations::IPAM_MODE))
            .map(|t| t.parse::<IpamMode>())
            .transpose()
    };
    let new_mode = explicit(net).map_err(bad)?;
    let Some(old) = old.filter(|_| op == Operation::Update) else {
        return Ok(new_mode.unwrap_or(default));
    };
    let old_mode =
        IpamMode::of_network(old.metadata.annotations.as_ref(), &old.spec, default).map_err(bad)?;
    match new_mode {
        Some(IpamMode::Bitmap) if old_mode == IpamMode::Blocks => Err(Violation::new(
            "IPAM",
            format!("metadata.annotations.{}", danm_api::annotations::IPAM_MODE),
            "a network in blocks IPAM mode cannot go back to bitmap",
        )),
        Some(mode) => Ok(mode),
        None => Ok(old_mode),
    }
}

/// Whether an UPDATE changes the address ranges of a network.
fn ranges_changed(old: &NetworkOptions, new: &NetworkOptions) -> bool {
    old.cidr != new.cidr
        || old.net6 != new.net6
        || old.allocation_pool != new.allocation_pool
        || old.allocation_pool_v6 != new.allocation_pool_v6
}

/// An `add` of one annotation, creating `metadata.annotations` when the object has none.
fn annotation_patch(raw: &serde_json::Value, key: &str, value: &str) -> Vec<crate::review::PatchOp> {
    let has = raw
        .pointer("/metadata/annotations")
        .is_some_and(serde_json::Value::is_object);
    if has {
        let escaped = key.replace('~', "~0").replace('/', "~1");
        vec![crate::review::PatchOp::add(
            format!("/metadata/annotations/{escaped}"),
            serde_json::json!(value),
        )]
    } else {
        vec![crate::review::PatchOp::add(
            "/metadata/annotations",
            serde_json::json!({ key: value }),
        )]
    }
}
