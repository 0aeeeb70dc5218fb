//! `/netvalidation`: CREATE and UPDATE of DanmNet, TenantNetwork and ClusterNetwork (behaviour §8.2, §8.3).
//!
//! Order: the rules plugin (every API-level rule, strict decoding), V27 (needs DanmEps), then the mutation computed
//! in memory (NetworkType default, TenantNetwork profile and a *planned* VNI, networkIds, IPAM defaults), then the
//! backend plugin on the mutated object (so NetworkID length rules see the planned VNI). Only when nothing is violated
//! is the VNI reserved in the TenantConfig, as the last fallible step: a denied request never holds a VNI
//! (behaviour §10 B12).

use danm_api::{InterfaceProfile, Network, NetworkKind, NetworkOptions, TenantConfig};
use danm_core::ipam::apply_network_defaults;
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

        let old_options = old.as_ref().map(|o| &o.spec.options);
        if let Err(e) = ipam_defaults(op, &mut spec.options, old_options)
            && violations.is_empty()
        {
            violations.push(Violation::new("IPAM", "spec.Options", e.to_string()));
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
        Verdict::patched(network_patch(raw, &net.spec, &mutated.spec))
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
fn ipam_defaults(
    op: Operation,
    o: &mut NetworkOptions,
    old: Option<&NetworkOptions>,
) -> Result<(), danm_core::ipam::IpamError> {
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
