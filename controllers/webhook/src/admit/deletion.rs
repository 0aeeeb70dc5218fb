//! `/netdeletion` (behaviour §8.5): a network still used by a DanmEp cannot be deleted (an empty `apiType`
//! counts as DanmNet, §10 B11); an allowed delete of a TenantNetwork of a dynamic type frees its VNI in the
//! TenantConfig.

use danm_api::{Network, NetworkKind};

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
        let cluster_scoped = kind == NetworkKind::ClusterNetwork.as_str();
        let list_ns = (!cluster_scoped).then_some(namespace.as_str());
        let eps = match self.cluster.list_danmeps(list_ns).await {
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
