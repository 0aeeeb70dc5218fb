//! `/confvalidation`: CREATE and UPDATE of TenantConfigs (behaviour §8.6). The rules plugin checks C1–C9; the
//! mutation gives every profile with a vniType and no alloc a fresh 5001-bit VNI map, as one
//! `add /hostDevices` carrying the whole list. On UPDATE a profile that lost its alloc (e.g. re-applied from
//! a manifest) keeps the stored one, so reserved VNIs are not forgotten.

use danm_api::TenantConfig;
use danm_core::vni::init_profile_allocs;
use serde_json::{Value, json};

use super::{Webhook, deny_violations, plugin_operation, raw_json};
use crate::review::{AdmissionRequest, Operation, PatchOp, Verdict};
use crate::validator::RulesReview;

impl Webhook {
    pub(super) async fn tenant_config(&self, req: &AdmissionRequest) -> Verdict {
        let op = req.operation();
        if !matches!(op, Operation::Create | Operation::Update) {
            return Verdict::allow();
        }
        let kind = req.object_kind();
        if kind != "TenantConfig" {
            return Verdict::deny(format!("K8s API type:{kind} is not handled by DANM webhook"));
        }
        let review = RulesReview {
            kind,
            operation: plugin_operation(op),
            object_json: raw_json(&req.object),
            old_object_json: raw_json(&req.old_object),
            tenant_config_json: None,
        };
        match self.run_rules(&review) {
            Ok(v) if !v.is_empty() => return deny_violations(&v),
            Ok(_) => {}
            Err(e) => return Verdict::deny_internal(e.to_string()),
        }
        let Some(raw) = req.object.as_ref().filter(|o| !o.is_null()) else {
            return Verdict::deny(crate::review::EMPTY_REVIEW);
        };
        let mut tc: TenantConfig = match serde_json::from_value(raw.clone()) {
            Ok(tc) => tc,
            Err(e) => return Verdict::deny(format!("ERROR: cannot decode the object: {e}")),
        };
        let mut changed = false;
        if op == Operation::Update
            && let Some(old) = req
                .old_object
                .as_ref()
                .and_then(|o| serde_json::from_value::<TenantConfig>(o.clone()).ok())
        {
            for p in tc
                .host_devices
                .iter_mut()
                .filter(|p| !p.vni_type.is_empty() && p.alloc.is_empty())
            {
                if let Some(prev) = old
                    .host_devices
                    .iter()
                    .find(|o| o.name == p.name && o.vni_type == p.vni_type && !o.alloc.is_empty())
                {
                    p.alloc = prev.alloc.clone();
                    changed = true;
                }
            }
        }
        changed |= init_profile_allocs(&mut tc);
        if !changed || tc.host_devices.is_empty() {
            return Verdict::allow();
        }
        let list: Vec<Value> = tc
            .host_devices
            .iter()
            .map(
                |p| json!({"name": p.name, "vniType": p.vni_type, "vniRange": p.vni_range, "alloc": p.alloc}),
            )
            .collect();
        Verdict::patched(vec![PatchOp::add("/hostDevices", Value::Array(list))])
    }
}
