//! One accepting and one rejecting case per rule, run natively.

use danm_guest_sdk::{Operation, Review, Violation};
use serde_json::{Value, json};

use crate::validate;

const DYNAMIC: [&str; 4] = ["ipvlan", "macvlan", "sriov", "bridge"];

fn object(kind: &str, spec: Value) -> String {
    let ns = if kind == "ClusterNetwork" {
        Value::Null
    } else {
        json!("ns")
    };
    json!({"apiVersion":"danm.k8s.io/v1","kind":kind,"metadata":{"name":"n","namespace":ns},"spec":spec})
        .to_string()
}

fn review(kind: &str, op: Operation, spec: Value, old: Option<Value>, tc: Option<Value>) -> Vec<Violation> {
    validate(&Review {
        kind: kind.into(),
        operation: op,
        object_json: Some(object(kind, spec)),
        old_object_json: old.map(|o| object(kind, o)),
        tenant_config_json: tc.map(|t| t.to_string()),
        dynamic_types: DYNAMIC.iter().map(|s| s.to_string()).collect(),
    })
}

fn opts(options: Value) -> Value {
    json!({"NetworkID":"nid","NetworkType":"ipvlan","Options":options})
}

/// Accepting case: no violation at all.
fn ok(kind: &str, op: Operation, spec: Value) {
    let v = review(kind, op, spec.clone(), None, None);
    assert!(v.is_empty(), "{spec} should be valid, got {v:?}");
}

/// Rejecting case: the rule is reported; returns its violation.
fn bad(rule: &str, kind: &str, op: Operation, spec: Value) -> Violation {
    let v = review(kind, op, spec.clone(), None, None);
    v.iter()
        .find(|x| x.rule == rule)
        .cloned()
        .unwrap_or_else(|| panic!("{spec}: expected {rule}, got {v:?}"))
}

use Operation::{Create, Delete, Update};

#[test]
fn v1_routes_need_a_cidr() {
    ok(
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","routes":{"10.1.0.0/16":"10.0.0.1"}})),
    );
    let v = bad("V1", "DanmNet", Create, opts(json!({"routes":{}})));
    assert_eq!(
        (v.field.as_str(), v.message.as_str()),
        (
            "spec.Options.routes",
            "IP routes cannot be defined for a L2 network"
        )
    );
}

#[test]
fn v2_cidr_must_parse() {
    ok("DanmNet", Create, opts(json!({"cidr":"10.0.0.0/30"})));
    assert_eq!(
        bad("V2", "DanmNet", Create, opts(json!({"cidr":"10.0.0.0/33"}))).message,
        "Invalid CIDR: 10.0.0.0/33"
    );
}

#[test]
fn v3_gateways_must_be_inside_the_cidr() {
    ok(
        "ClusterNetwork",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","routes":{"0.0.0.0/0":"10.0.0.254"}})),
    );
    let v = bad(
        "V3",
        "ClusterNetwork",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","routes":{"10.0.0.0/24":"10.0.1.1"}})),
    );
    assert_eq!(v.field, r#"spec.Options.routes["10.0.0.0/24"]"#);
    assert_eq!(
        v.message,
        "Specified GW address:10.0.1.1 is not part of CIDR:10.0.0.0/24"
    );
}

#[test]
fn v4_v5_v6_apply_the_same_rules_to_net6() {
    ok(
        "DanmNet",
        Create,
        opts(json!({"net6":"2001:db8::/64","routes6":{"::/0":"2001:db8::1"}})),
    );
    assert_eq!(
        bad(
            "V4",
            "DanmNet",
            Create,
            opts(json!({"routes6":{"::/0":"2001:db8::1"}}))
        )
        .field,
        "spec.Options.routes6"
    );
    bad("V5", "DanmNet", Create, opts(json!({"net6":"2001:db8::/129"})));
    let v = bad(
        "V6",
        "DanmNet",
        Create,
        opts(json!({"net6":"2001:db8::/64","routes6":{"::/0":"2001:db9::1"}})),
    );
    assert_eq!(v.field, r#"spec.Options.routes6["::/0"]"#);
}

#[test]
fn v7_bitmaps_are_rejected_on_create_only() {
    ok(
        "DanmNet",
        Update,
        opts(json!({"cidr":"10.0.0.0/30","alloc":"kA=="})),
    );
    let v = bad(
        "V7",
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/30","alloc":"kA=="})),
    );
    assert_eq!(
        v.message,
        "Allocation bitmasks shall not be manually defined upon creation!"
    );
    assert_eq!(
        bad("V7", "DanmNet", Create, opts(json!({"alloc6":"gA=="}))).field,
        "spec.Options.alloc6"
    );
}

#[test]
fn v8_a_v4_pool_needs_a_cidr() {
    ok(
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","allocation_pool":{"start":"10.0.0.10","end":"10.0.0.20"}})),
    );
    ok(
        "DanmNet",
        Create,
        opts(json!({"allocation_pool":{"start":"","end":"","lastIp":""}})),
    );
    bad(
        "V8",
        "DanmNet",
        Create,
        opts(json!({"allocation_pool":{"start":"10.0.0.10"}})),
    );
}

#[test]
fn v9_cidr_must_be_ipv4() {
    let v = bad("V9", "DanmNet", Create, opts(json!({"cidr":"2001:db8::/64"})));
    assert_eq!(v.message, "Options.CIDR is not a valid V4 subnet!");
}

#[test]
fn v10_the_prefix_is_at_least_9() {
    ok("DanmNet", Create, opts(json!({"cidr":"10.0.0.0/9"})));
    bad("V10", "DanmNet", Create, opts(json!({"cidr":"10.0.0.0/8"})));
}

#[test]
fn v11_the_pool_is_inside_the_cidr() {
    ok(
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","allocation_pool":{"start":"10.0.0.1","end":"10.0.0.254"}})),
    );
    let v = bad(
        "V11",
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","allocation_pool":{"start":"10.0.1.10"}})),
    );
    assert_eq!(
        (v.field.as_str(), v.message.as_str()),
        (
            "spec.Options.allocation_pool.start",
            "Allocation pool is outside of defined CIDR!"
        )
    );
}

#[test]
fn v12_the_pool_end_is_after_its_start() {
    ok(
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","allocation_pool":{"start":"10.0.0.19","end":"10.0.0.20"}})),
    );
    let v = bad(
        "V12",
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","allocation_pool":{"start":"10.0.0.20","end":"10.0.0.10"}})),
    );
    assert_eq!(
        v.message,
        "Allocation pool start:10.0.0.20 is bigger than or equal to allocation pool end:10.0.0.10"
    );
    bad("V12", "DanmNet", Create, opts(json!({"cidr":"10.0.0.0/31"})));
}

#[test]
fn v13_a_v6_pool_needs_net6() {
    ok(
        "DanmNet",
        Create,
        opts(json!({"allocation_pool_v6":{"start":"","end":"","lastIp":"","cidr":""}})),
    );
    bad(
        "V13",
        "DanmNet",
        Create,
        opts(json!({"allocation_pool_v6":{"cidr":"2001:db8::/110"}})),
    );
}

#[test]
fn v14_net6_must_be_ipv6() {
    assert_eq!(
        bad("V14", "DanmNet", Create, opts(json!({"net6":"10.0.0.0/24"}))).message,
        "spec.Options.Net6 is not a valid V6 subnet!"
    );
}

#[test]
fn v15_the_v6_pool_cidr_must_parse_as_ipv6() {
    ok(
        "DanmNet",
        Create,
        opts(json!({"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db8::/110"}})),
    );
    assert_eq!(
        bad(
            "V15",
            "DanmNet",
            Create,
            opts(json!({"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"nope"}}))
        )
        .message,
        "spec.Options.Pool6.CIDR is invalid!"
    );
    assert_eq!(
        bad(
            "V15",
            "DanmNet",
            Create,
            opts(json!({"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"10.0.0.0/24"}}))
        )
        .message,
        "spec.Options.Allocation_Pool_V6.Cidr is not a valid V6 subnet!"
    );
}

#[test]
fn v16_the_v6_pool_fits_the_8m_budget_left_by_ipv4() {
    ok(
        "DanmNet",
        Create,
        opts(
            json!({"cidr":"10.0.0.0/24","net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db8::/106"}}),
        ),
    );
    bad(
        "V16",
        "DanmNet",
        Create,
        opts(
            json!({"cidr":"10.0.0.0/24","net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db8::/105"}}),
        ),
    );
    bad("V16", "DanmNet", Create, opts(json!({"net6":"2001:db8::1/128"})));
}

#[test]
fn v17_the_v6_pool_is_inside_its_cidr_and_net6() {
    ok(
        "DanmNet",
        Create,
        opts(
            json!({"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db8::/120","start":"2001:db8::10","end":"2001:db8::20"}}),
        ),
    );
    assert_eq!(
        bad("V17", "DanmNet", Create, opts(json!({"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db8::/120","start":"2001:db8::1:10"}}))).field,
        "spec.Options.allocation_pool_v6.start"
    );
    assert_eq!(
        bad(
            "V17",
            "DanmNet",
            Create,
            opts(json!({"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db9::/120"}}))
        )
        .field,
        "spec.Options.allocation_pool_v6.cidr"
    );
}

#[test]
fn v18_the_v6_pool_end_is_after_its_start() {
    let v = bad(
        "V18",
        "DanmNet",
        Create,
        opts(
            json!({"net6":"2001:db8::/64","allocation_pool_v6":{"cidr":"2001:db8::/120","start":"2001:db8::20","end":"2001:db8::10"}}),
        ),
    );
    assert_eq!(
        v.message,
        "Allocation pool start:2001:db8::20 is bigger than or equal to allocation pool end:2001:db8::10"
    );
}

#[test]
fn v19_vlan_and_vxlan_exclude_each_other() {
    ok("DanmNet", Create, opts(json!({"host_device":"ens3","vlan":10})));
    bad(
        "V19",
        "ClusterNetwork",
        Create,
        opts(json!({"host_device":"ens3","vlan":10,"vxlan":20})),
    );
}

#[test]
fn v20_the_network_id_is_mandatory_after_the_tenant_mapping() {
    let spec = json!({"NetworkType":"ipvlan","Options":{}});
    assert_eq!(
        bad("V20", "DanmNet", Create, spec.clone()).message,
        "Spec.NetworkID mandatory parameter is missing!"
    );
    let tc = json!({"networkIds":{"IPVLAN":"tid"}});
    assert!(review("TenantNetwork", Create, spec.clone(), None, Some(tc)).is_empty());
    let tc = json!({"networkIds":{"macvlan":"tid"}});
    assert!(
        review("TenantNetwork", Create, spec, None, Some(tc))
            .iter()
            .any(|v| v.rule == "V20")
    );
}

#[test]
fn v22_allowed_tenants_only_on_cluster_networks() {
    let spec = json!({"NetworkID":"nid","AllowedTenants":["a"],"Options":{}});
    ok("ClusterNetwork", Create, spec.clone());
    bad("V22", "DanmNet", Create, spec.clone());
    bad("V22", "TenantNetwork", Update, spec);
}

#[test]
fn v23_tenant_networks_get_their_vni_from_the_webhook() {
    let v = bad("V23", "TenantNetwork", Create, opts(json!({"vlan":10})));
    assert_eq!(v.field, "spec.Options.vlan");
    let same = opts(json!({"host_device":"ens3","vlan":10}));
    assert!(review("TenantNetwork", Update, same.clone(), Some(same), None).is_empty());
}

#[test]
fn v24_tenant_network_updates_keep_host_device_pool_and_vni() {
    let old = opts(json!({"host_device":"ens3","vlan":10}));
    let new = opts(json!({"host_device":"ens4","vlan":10}));
    let v = review("TenantNetwork", Update, new.clone(), Some(old.clone()), None);
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].rule.as_str(), v[0].field.as_str()),
        ("V24", "spec.Options.host_device")
    );
    assert!(review("DanmNet", Update, new, Some(old), None).is_empty());
}

#[test]
fn v26_applies_here_to_types_no_backend_serves() {
    let both = json!({"host_device":"ens3","device_pool":"a/b"});
    let mut spec = opts(both.clone());
    spec["NetworkType"] = json!("flannel");
    bad("V26", "DanmNet", Create, spec);
    let mut spec = opts(both);
    spec["NetworkType"] = json!("macvlan");
    ok("DanmNet", Create, spec); // the macvlan backend reports it
}

#[test]
fn update_is_validated_too() {
    bad("V2", "DanmNet", Update, opts(json!({"cidr":"bogus"})));
}

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let v = review(
        "DanmNet",
        Create,
        json!({"Options":{"routes":{},"net6":"x","vlan":1,"vxlan":2,"alloc":"a"}}),
        None,
        None,
    );
    let rules: Vec<_> = v.iter().map(|v| v.rule.as_str()).collect();
    assert_eq!(rules, ["V1", "V5", "V7", "V19", "V20"]);
}

#[test]
fn unknown_fields_are_reported_with_their_path() {
    let v = bad(
        "U1",
        "DanmNet",
        Create,
        opts(json!({"cidr":"10.0.0.0/24","colour":"red"})),
    );
    assert_eq!(
        (v.field.as_str(), v.message.as_str()),
        (
            "spec.Options.colour",
            "ERROR: unknown fields are not allowed:spec.Options.colour"
        )
    );
}

#[test]
fn other_kinds_are_not_handled() {
    let v = review("Pod", Create, json!({}), None, None);
    assert_eq!(v[0].rule, "K1");
    assert_eq!(v[0].message, "K8s API type:Pod is not handled by DANM webhook");
}

#[test]
fn delete_decodes_the_old_object_strictly() {
    let r = |old: Value| {
        validate(&Review {
            kind: "DanmNet".into(),
            operation: Delete,
            old_object_json: Some(object("DanmNet", old)),
            ..Review::default()
        })
    };
    assert!(r(opts(json!({}))).is_empty());
    assert_eq!(r(opts(json!({"x":1})))[0].rule, "U1");
}

// ---- TenantConfig (C1–C9) ----

fn tc(op: Operation, body: Value) -> Vec<Violation> {
    let mut obj = json!({"apiVersion":"danm.k8s.io/v1","kind":"TenantConfig","metadata":{"name":"tc"}});
    for (k, v) in body.as_object().unwrap() {
        obj[k] = v.clone();
    }
    validate(&Review {
        kind: "TenantConfig".into(),
        operation: op,
        object_json: Some(obj.to_string()),
        dynamic_types: DYNAMIC.iter().map(|s| s.to_string()).collect(),
        ..Review::default()
    })
}

fn tc_ok(op: Operation, body: Value) {
    let v = tc(op, body.clone());
    assert!(v.is_empty(), "{body}: {v:?}");
}

fn tc_bad(rule: &str, op: Operation, body: Value) -> Violation {
    let v = tc(op, body.clone());
    v.iter()
        .find(|x| x.rule == rule)
        .cloned()
        .unwrap_or_else(|| panic!("{body}: expected {rule}, got {v:?}"))
}

#[test]
fn c1_a_tenant_config_needs_devices_or_ids() {
    tc_ok(Create, json!({"networkIds":{"flannel":"flannel"}}));
    assert_eq!(
        tc_bad("C1", Create, json!({})).message,
        "Either hostDevices, or networkIds must be provided!"
    );
}

#[test]
fn c2_profiles_have_names() {
    tc_ok(Create, json!({"hostDevices":[{"name":"ens3"}]}));
    assert_eq!(
        tc_bad("C2", Create, json!({"hostDevices":[{"name":"ens3"},{"name":""}]})).field,
        "hostDevices[1].name"
    );
}

#[test]
fn c3_vni_type_and_range_come_together() {
    tc_ok(
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"vlan","vniRange":"200-300"}]}),
    );
    let v = tc_bad(
        "C3",
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"vlan"}]}),
    );
    assert_eq!(
        v.message,
        "vniRange and vniType attributes must be provided together for interface:ens3"
    );
}

#[test]
fn c4_vni_type_is_vlan_or_vxlan() {
    tc_ok(
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"vxlan","vniRange":"1"}]}),
    );
    let v = tc_bad(
        "C4",
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"geneve","vniRange":"1"}]}),
    );
    assert_eq!(
        v.message,
        "geneve is not in allowed vniType values: {vlan,vxlan} for interface:ens3"
    );
}

#[test]
fn c5_alloc_is_not_set_by_hand_on_create() {
    tc_ok(
        Update,
        json!({"hostDevices":[{"name":"ens3","vniType":"vlan","vniRange":"1","alloc":"gA=="}]}),
    );
    tc_bad(
        "C5",
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"vlan","vniRange":"1","alloc":"gA=="}]}),
    );
}

#[test]
fn c6_vni_ranges_use_cpuset_syntax() {
    tc_ok(
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"vlan","vniRange":"2000-2500,2601,2650-2700"}]}),
    );
    for r in ["2000 - 2500", "1,,2", "5-3", "a"] {
        let v = tc_bad(
            "C6",
            Create,
            json!({"hostDevices":[{"name":"ens3","vniType":"vlan","vniRange":r}]}),
        );
        assert_eq!(v.field, "hostDevices[0].vniRange");
    }
}

#[test]
fn c7_vnis_stay_within_5000() {
    tc_ok(
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"vxlan","vniRange":"4990-5000"}]}),
    );
    tc_bad(
        "C7",
        Create,
        json!({"hostDevices":[{"name":"ens3","vniType":"vxlan","vniRange":"4990-5001"}]}),
    );
}

#[test]
fn c8_network_id_mappings_have_no_empty_side() {
    tc_ok(Create, json!({"networkIds":{"calico":"c"}}));
    assert_eq!(
        tc_bad("C8", Create, json!({"networkIds":{"calico":""}})).field,
        r#"networkIds["calico"]"#
    );
    tc_bad("C8", Create, json!({"networkIds":{"":"x"}}));
}

#[test]
fn c9_dynamic_types_map_to_short_network_ids() {
    tc_ok(
        Create,
        json!({"networkIds":{"flannel":"a-long-static-id","macvlan":"abcdefghij"}}),
    );
    tc_bad("C9", Create, json!({"networkIds":{"MACVLAN":"abcdefghijk"}}));
    tc_bad("C9", Create, json!({"networkIds":{"bridge":"abcdefghijk"}}));
}

#[test]
fn tenant_config_unknown_fields_are_reported() {
    assert_eq!(
        tc_bad("U1", Create, json!({"networkIds":{"a":"b"},"spec":{}})).field,
        "spec"
    );
}
