//! The network JSONPatch: `add` operations for the fields the webhook mutates (behaviour §8.1 order),
//! preceded by `add`s of `/spec` and `/spec/Options` when the incoming object lacks them, so the patch always
//! applies.

use danm_api::NetworkSpec;
use serde_json::{Value, json};

use crate::review::PatchOp;

fn is_object(v: Option<&Value>) -> bool {
    v.is_some_and(Value::is_object)
}

/// The operations turning `before` into `after`, for the incoming raw object `raw`.
pub(crate) fn network_patch(raw: &Value, before: &NetworkSpec, after: &NetworkSpec) -> Vec<PatchOp> {
    let (b, a) = (&before.options, &after.options);
    let mut options_ops = Vec::new();
    let mut spec_ops = Vec::new();
    if b.alloc != a.alloc {
        options_ops.push(PatchOp::add("/spec/Options/alloc", json!(a.alloc)));
    }
    if b.alloc6 != a.alloc6 {
        options_ops.push(PatchOp::add("/spec/Options/alloc6", json!(a.alloc6)));
    }
    if before.network_type != after.network_type {
        spec_ops.push(PatchOp::add("/spec/NetworkType", json!(after.network_type)));
    }
    if before.network_id != after.network_id {
        spec_ops.push(PatchOp::add("/spec/NetworkID", json!(after.network_id)));
    }
    if b.allocation_pool != a.allocation_pool {
        let p = &a.allocation_pool;
        options_ops.push(PatchOp::add(
            "/spec/Options/allocation_pool",
            json!({"start": p.start, "end": p.end, "lastIp": p.last_ip}),
        ));
    }
    if b.allocation_pool_v6 != a.allocation_pool_v6 {
        let p = &a.allocation_pool_v6;
        options_ops.push(PatchOp::add(
            "/spec/Options/allocation_pool_v6",
            json!({"start": p.start, "end": p.end, "lastIp": p.last_ip, "cidr": p.cidr}),
        ));
    }
    if b.host_device != a.host_device {
        options_ops.push(PatchOp::add("/spec/Options/host_device", json!(a.host_device)));
    }
    if b.vlan != a.vlan {
        options_ops.push(PatchOp::add("/spec/Options/vlan", json!(a.vlan)));
    }
    if b.vxlan != a.vxlan {
        options_ops.push(PatchOp::add("/spec/Options/vxlan", json!(a.vxlan)));
    }
    let mut ops = Vec::new();
    let spec = raw.get("spec");
    if (!spec_ops.is_empty() || !options_ops.is_empty()) && !is_object(spec) {
        ops.push(PatchOp::add("/spec", json!({})));
    }
    if !options_ops.is_empty() && !is_object(spec.and_then(|s| s.get("Options"))) {
        ops.push(PatchOp::add("/spec/Options", json!({})));
    }
    // DANM's order: alloc, alloc6, NetworkType, NetworkID, pools, host_device, vlan, vxlan.
    let (allocs, rest): (Vec<_>, Vec<_>) = options_ops
        .into_iter()
        .partition(|o| o.path == "/spec/Options/alloc" || o.path == "/spec/Options/alloc6");
    ops.extend(allocs);
    ops.extend(spec_ops);
    ops.extend(rest);
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_spec_and_options_are_added_before_their_members() {
        let raw = json!({"kind":"DanmNet","metadata":{"name":"x"}});
        let before = NetworkSpec::default();
        let mut after = before.clone();
        after.network_type = "ipvlan".into();
        after.options.vlan = 5;
        let paths: Vec<_> = network_patch(&raw, &before, &after)
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(
            paths,
            [
                "/spec",
                "/spec/Options",
                "/spec/NetworkType",
                "/spec/Options/vlan"
            ]
        );
    }

    #[test]
    fn unchanged_specs_give_no_operations() {
        let raw = json!({"spec":{"Options":{}}});
        let s = NetworkSpec::default();
        assert!(network_patch(&raw, &s, &s).is_empty());
    }
}
