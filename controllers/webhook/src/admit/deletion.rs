//! `/netdeletion` (behaviour §8.5): a network still used by a DanmEp cannot be deleted (an empty `apiType`
//! counts as DanmNet, §10 B11); an allowed delete of a TenantNetwork of a dynamic type frees its VNI in the
//! TenantConfig. The same guard covers what Multus users' pods use (behaviour §2.1): a NetworkAttachmentDefinition an
//! NPWG attachment's DanmEp names, and an IPAMClaim whose addresses a DanmEp holds.

use danm_api::nad::NAD_KIND;
use danm_api::{DanmEp, Network, NetworkKind};

use super::inuse::{connected_endpoints, describe_pods};
use super::vni::Released;
use super::{Webhook, deny_violations, raw_json};
use crate::review::{AdmissionRequest, Operation, Verdict};
use crate::validator::RulesReview;

impl Webhook {
    pub(super) async fn deletion(&self, req: &AdmissionRequest) -> Verdict {
        if req.operation() != Operation::Delete && req.operation() != Operation::Other {
            return Verdict::allow();
        }
        let Some(raw) = req.old_object.as_ref().filter(|o| !o.is_null()) else {
            tracing::warn!(uid = %req.uid, name = %req.name, "DELETE without oldObject: nothing to check");
            return Verdict::allow()
                .with_warning("danm: the DELETE request carried no oldObject; nothing was checked");
        };
        let kind = req.object_kind();
        if kind == NAD_KIND || kind == IPAMCLAIM_KIND {
            return self.npwg_deletion(req, raw, &kind).await;
        }
        // Strict decoding of the old object (unknown fields, malformed JSON) is the rules plugin's.
        let review = RulesReview {
            kind: kind.clone(),
            operation: Operation::Delete,
            object_json: None,
            old_object_json: raw_json(&req.old_object),
            tenant_config_json: None,
        };
        match self.run_rules(&review) {
            Ok(v) if !v.is_empty() => return deny_violations(&v),
            Ok(_) => {}
            Err(e) => return Verdict::deny_internal(e.to_string()),
        }
        let net: Network = match serde_json::from_value(raw.clone()) {
            Ok(n) => n,
            Err(e) => return Verdict::deny(format!("ERROR: cannot decode the object: {e}")),
        };
        let namespace = net
            .namespace()
            .filter(|n| !n.is_empty())
            .unwrap_or(&req.namespace)
            .to_owned();
        let name = if net.name().is_empty() {
            req.name.clone()
        } else {
            net.name().to_owned()
        };
        // Every namespace: a pod of any namespace may use the network's pool through a NAD (behaviour §2.1).
        let eps = match self.cluster.list_danmeps(None).await {
            Ok(eps) => eps,
            Err(e) => {
                return Verdict::deny_internal(format!(
                    "Network cannot be deleted because there is no way to tell if Pods are still using it due to:{e}"
                ));
            }
        };
        let connected = connected_endpoints(&eps, &kind, &namespace, &name);
        if !connected.is_empty() {
            return Verdict::deny(format!(
                "Network cannot be deleted because there are Pods still connected to it e.g. {}",
                describe_pods(&connected)
            ));
        }

        let o = &net.spec.options;
        let dynamic = self.validator.dynamic_types();
        let is_dynamic = dynamic
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&net.spec.backend()));
        if kind != NetworkKind::TenantNetwork.as_str() || !is_dynamic {
            return Verdict::allow();
        }
        // behaviour §8.5: a dynamic TenantNetwork's TenantConfig is read (and must exist) before its VNI is
        // freed.
        let tc = match self.cluster.first_tenant_config().await {
            Ok(Some(tc)) => tc,
            Ok(None) => {
                return Verdict::deny(
                    "The network's VNI could not be freed, because:no TenantConfigs exist int the cluster",
                );
            }
            Err(e) => {
                return Verdict::deny_internal(format!("The network's VNI could not be freed, because:{e}"));
            }
        };
        if (o.vlan == 0 && o.vxlan == 0) || req.is_dry_run() {
            return Verdict::allow();
        }
        match self.release_vni(tc, &net.spec).await {
            Ok(Released::NoProfile { profile, vni_type }) => {
                tracing::warn!(network = %name, namespace = %namespace, %profile, vni_type,
                    "no interface profile matches the deleted TenantNetwork: its VNI is not freed");
                Verdict::allow()
            }
            Ok(_) => Verdict::allow(),
            Err(e) => Verdict::deny_internal(format!("The network's VNI could not be freed, because:{e}")),
        }
    }
}

/// The kind of an NPWG IPAMClaim (`k8s.cni.cncf.io/v1alpha1`).
const IPAMCLAIM_KIND: &str = "IPAMClaim";

impl Webhook {
    /// DELETE of a NAD or an IPAMClaim: refused while a DanmEp uses it. A NAD may serve pods of any namespace (an
    /// NPWG element names `<namespace>/<nad>`); a claim serves pods of its own namespace.
    async fn npwg_deletion(&self, req: &AdmissionRequest, raw: &serde_json::Value, kind: &str) -> Verdict {
        let meta = |k: &str| {
            raw.pointer(&format!("/metadata/{k}"))
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let namespace = meta("namespace").unwrap_or_else(|| req.namespace.clone());
        let name = meta("name").unwrap_or_else(|| req.name.clone());
        let nad = kind == NAD_KIND;
        let eps = match self
            .cluster
            .list_danmeps((!nad).then_some(namespace.as_str()))
            .await
        {
            Ok(eps) => eps,
            Err(e) => {
                return Verdict::deny_internal(format!(
                    "{kind} {namespace}/{name} cannot be deleted because there is no way to tell if Pods are still using it due to:{e}"
                ));
            }
        };
        let using: Vec<&DanmEp> = if nad {
            let qualified = format!("{namespace}/{name}");
            eps.iter()
                .filter(|ep| ep.spec.api_type == NAD_KIND && ep.spec.network_name == qualified)
                .collect()
        } else {
            eps.iter()
                .filter(|ep| {
                    ep.metadata.namespace.as_deref() == Some(namespace.as_str())
                        && ep
                            .metadata
                            .annotations
                            .as_ref()
                            .and_then(|a| a.get(danm_api::annotations::IPAM_CLAIM))
                            .is_some_and(|c| *c == name)
                })
                .collect()
        };
        if using.is_empty() {
            return Verdict::allow();
        }
        Verdict::deny(format!(
            "{kind} {namespace}/{name} cannot be deleted because there are Pods still using it e.g. {}",
            describe_pods(&using)
        ))
    }
}
