//! The real plugins through wasm: loading, translation outputs, and DANM's rules (a representative subset; every rule
//! has an accepting and a rejecting case in the guests' native tests).

mod common;

use danm_wasm::{Operation, PluginKind, Review, TranslateRequest, Violation};
use serde_json::{Value, json};

use common::set_with;

fn network(kind: &str, ty: &str, options: Value) -> String {
    json!({"apiVersion":"danm.k8s.io/v1","kind":kind,"metadata":{"name":"net1","namespace":"default"},
           "spec":{"NetworkID":"nid1","NetworkType":ty,"Options":options}})
    .to_string()
}

fn request(network_json: String) -> TranslateRequest {
    TranslateRequest {
        network_json,
        interface_name: "ext1".into(),
        ip4: Some("10.0.0.5/24".into()),
        ip6: None,
        cni_version: "0.3.1".into(),
        pod_namespace: "default".into(),
        pod_name: "pod1".into(),
        ..Default::default()
    }
}

fn translate(req: &TranslateRequest) -> Value {
    let (_dir, set) = set_with(&[]);
    serde_json::from_str(&set.translate(req).unwrap()).unwrap()
}

fn rules(v: &[Violation]) -> Vec<&str> {
    v.iter().map(|v| v.rule.as_str()).collect()
}

#[test]
fn the_real_plugins_load_and_serve_their_types() {
    let (_dir, set) = set_with(&[]);
    assert!(set.errors().is_empty(), "{:?}", set.errors());
    assert_eq!(set.network_types(), ["bridge", "ipvlan", "macvlan", "sriov"]);
    let infos: Vec<_> = set.plugins().collect();
    assert_eq!(infos.len(), 5);
    assert!(infos.iter().all(|p| p.version == "0.1.0" && p.sha256.len() == 64));
    assert_eq!(infos.iter().filter(|p| p.kind == PluginKind::Rules).count(), 1);
    let sriov = set.backend_info("SRIOV").unwrap();
    assert!(sriov.needs_device_pool && !sriov.needs_host_device);
    assert_eq!(
        set.backend_info("bridge").unwrap().max_network_id_length,
        Some(10)
    );
}

#[test]
fn macvlan_translation_matches_the_reference_plugin_config() {
    let cfg = translate(&request(network(
        "DanmNet",
        "macvlan",
        json!({"host_device":"ens3","vlan":100,"mtu":9000}),
    )));
    assert_eq!(
        cfg,
        json!({"cniVersion":"0.3.1","name":"nid1","type":"macvlan","master":"nid1.100","mode":"bridge","mtu":9000,
               "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4}]}})
    );
}

#[test]
fn ipvlan_translation_matches_the_reference_plugin_config() {
    // An empty NetworkType is ipvlan, as in DANM.
    let mut req = request(network(
        "ClusterNetwork",
        "",
        json!({"host_device":"ens3","vxlan":600}),
    ));
    req.ip6 = Some("fd00::5/64".into());
    assert_eq!(
        translate(&req),
        json!({"cniVersion":"0.3.1","name":"nid1","type":"ipvlan","master":"vx_nid1","mode":"l2",
               "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4},{"ipcidr":"fd00::5/64","version":6}]}})
    );
}

#[test]
fn sriov_translation_matches_the_sriov_cni_config() {
    let mut req = request(network(
        "DanmNet",
        "sriov",
        json!({"device_pool":"nokia.k8s.io/sriov_ens1f0","vlan":42}),
    ));
    req.device_id = Some("0000:af:06.1".into());
    req.parent = Some("ens1f0".into());
    assert_eq!(
        translate(&req),
        json!({"cniVersion":"0.3.1","name":"nid1","type":"sriov","deviceID":"0000:af:06.1","vlan":42,"master":"ens1f0",
               "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4}]}})
    );
}

#[test]
fn bridge_translation_matches_the_reference_bridge_plugin_config() {
    let req = request(network(
        "DanmNet",
        "bridge",
        json!({"cidr":"10.0.0.0/24","mode":"gateway"}),
    ));
    assert_eq!(
        translate(&req),
        json!({"cniVersion":"0.3.1","name":"nid1","type":"bridge","bridge":"br_nid1","isGateway":true,"ipMasq":false,
               "mtu":1500,"ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4}]}})
    );
}

#[test]
fn a_refused_translation_names_the_plugin_network_and_pod() {
    let (_dir, set) = set_with(&[]);
    let req = request(network("DanmNet", "sriov", json!({"device_pool":"a/b"})));
    let err = set.translate(&req).unwrap_err().to_string();
    assert!(err.contains("sriov.wasm") && err.contains("T-NO-DEVICE"), "{err}");
    assert!(
        err.contains("DanmNet default/net1") && err.contains("default/pod1"),
        "{err}"
    );
}

#[test]
fn a_type_no_plugin_serves_is_reported() {
    let (_dir, set) = set_with(&[]);
    let err = set
        .translate(&request(network("DanmNet", "flannel", json!({}))))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no plugin") && err.contains("flannel"), "{err}");
}

fn review(kind: &str, op: Operation, object: Value, tc: Option<Value>) -> Vec<Violation> {
    let (_dir, set) = set_with(&[]);
    set.review(&Review {
        kind: kind.into(),
        operation: op,
        object_json: Some(object.to_string()),
        tenant_config_json: tc.map(|t| t.to_string()),
        ..Review::default()
    })
    .unwrap()
}

fn net_obj(kind: &str, spec: Value) -> Value {
    json!({"apiVersion":"danm.k8s.io/v1","kind":kind,"metadata":{"name":"n","namespace":"ns"},"spec":spec})
}

#[test]
fn the_rules_plugin_accepts_a_valid_network_through_wasm() {
    let obj = net_obj(
        "DanmNet",
        json!({"NetworkID":"n","Options":{"cidr":"10.0.0.0/24","routes":{"0.0.0.0/0":"10.0.0.1"},
        "net6":"fd00::/64","allocation_pool":{"start":"10.0.0.10","end":"10.0.0.20"}}}),
    );
    assert_eq!(review("DanmNet", Operation::Create, obj, None), []);
}

#[test]
fn the_rules_plugin_reports_every_violation_with_field_paths_through_wasm() {
    let obj = net_obj(
        "DanmNet",
        json!({"NetworkID":"n","AllowedTenants":["x"],"Options":{"cidr":"10.0.0.0/24",
        "routes":{"10.1.0.0/16":"10.9.0.1"},"allocation_pool":{"start":"10.0.0.20","end":"10.0.0.10"},"bogus":1}}),
    );
    let v = review("DanmNet", Operation::Update, obj, None);
    assert_eq!(rules(&v), ["U1", "V3", "V12", "V22"]);
    assert_eq!(v[0].field, "spec.Options.bogus");
    assert_eq!(v[1].field, r#"spec.Options.routes["10.1.0.0/16"]"#);
    assert_eq!(
        v[1].message,
        "Specified GW address:10.9.0.1 is not part of CIDR:10.0.0.0/24"
    );
}

#[test]
fn tenant_network_id_comes_from_the_tenant_config_through_wasm() {
    let obj = net_obj("TenantNetwork", json!({"NetworkType":"macvlan","Options":{}}));
    assert_eq!(
        review(
            "TenantNetwork",
            Operation::Create,
            obj.clone(),
            Some(json!({"networkIds":{"macvlan":"m"}}))
        ),
        []
    );
    assert_eq!(
        rules(&review("TenantNetwork", Operation::Create, obj, None)),
        ["V20"]
    );
}

#[test]
fn tenant_config_rules_run_through_wasm() {
    let tc = json!({"apiVersion":"danm.k8s.io/v1","kind":"TenantConfig","metadata":{"name":"t"},
        "hostDevices":[{"name":"ens3","vniType":"vlan","vniRange":"1-2,x"}],"networkIds":{"bridge":"abcdefghijkl"}});
    let v = review("TenantConfig", Operation::Create, tc, None);
    assert_eq!(
        rules(&v),
        ["C6", "C9"],
        "bridge counts as dynamic because a plugin serves it: {v:?}"
    );
}

#[test]
fn network_validation_combines_the_rules_and_the_backend() {
    let (_dir, set) = set_with(&[]);
    let both = json!({"host_device":"ens3","device_pool":"a/b"});
    let check = |ty: &str| {
        let json = network("DanmNet", ty, both.clone());
        rules(
            &set.validate_network("DanmNet", Operation::Create, Some(&json), None, None)
                .unwrap(),
        )
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    assert_eq!(check("macvlan"), ["V26"]); // from the macvlan plugin
    assert_eq!(check("sriov"), ["V25"]); // from the sriov plugin
    assert_eq!(check("flannel"), ["V26"]); // a static type: from the rules plugin
    let long = json!({"apiVersion":"danm.k8s.io/v1","kind":"DanmNet","metadata":{"name":"n","namespace":"ns"},
        "spec":{"NetworkID":"elevenchars","NetworkType":"ipvlan","Options":{"host_device":"ens3","mode":"vepa","mtu":20}}})
    .to_string();
    let v = set
        .validate_network("DanmNet", Operation::Create, Some(&long), None, None)
        .unwrap();
    assert_eq!(rules(&v), ["V21", "MODE", "MTU"]);
}
