//! The checked-in CRDs under deploy/crds are exactly what the Rust types generate (CI fails on drift).

use serde_json::Value;

#[test]
fn checked_in_crds_match_the_rust_types() {
    let dir = danm_testkit::fixtures::workspace_dir().join("deploy/crds");
    for (file, crd) in danm_api::crd::all() {
        let path = dir.join(file);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e}); run `make crds`", path.display()));
        assert_eq!(
            on_disk,
            danm_api::crd::to_yaml(&crd),
            "{} drifted from the types; run `make crds`",
            path.display()
        );
    }
}

#[test]
fn network_crds_carry_danms_names_scopes_and_bounds() {
    let expect = [
        ("danmnet.yaml", "DanmNet", "Namespaced", vec!["dn", "dnet"]),
        (
            "tenantnetwork.yaml",
            "TenantNetwork",
            "Namespaced",
            vec!["tn", "tnet"],
        ),
        (
            "clusternetwork.yaml",
            "ClusterNetwork",
            "Cluster",
            vec!["cn", "cnet"],
        ),
        ("danmep.yaml", "DanmEp", "Namespaced", vec!["de", "dep"]),
        ("danmipblock.yaml", "DanmIpBlock", "Cluster", vec!["dib"]),
        (
            "tenantconfig.yaml",
            "TenantConfig",
            "Cluster",
            vec!["tc", "tconf"],
        ),
    ];
    let all = danm_api::crd::all();
    for (file, kind, scope, short) in expect {
        let crd = &all.iter().find(|(f, _)| *f == file).unwrap().1;
        assert_eq!(crd["spec"]["group"], "danm.k8s.io");
        assert_eq!(crd["spec"]["names"]["kind"], kind);
        assert_eq!(crd["spec"]["scope"], scope);
        assert_eq!(crd["spec"]["names"]["shortNames"], serde_json::json!(short));
        assert_eq!(crd["spec"]["versions"][0]["name"], "v1");
    }
    let dn = &all[0].1;
    let options = &dn["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["Options"]["properties"];
    let bounds = |k: &str| (options[k]["minimum"].clone(), options[k]["maximum"].clone());
    assert_eq!(bounds("vlan"), (Value::from(1), Value::from(4094)));
    assert_eq!(bounds("vxlan"), (Value::from(1), Value::from(16777214)));
    assert_eq!(bounds("rt_tables"), (Value::from(0), Value::from(255)));
    let columns: Vec<&str> = dn["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(columns.contains(&"NetworkType") && columns.contains(&"CIDR") && columns.contains(&"VLAN"));
}

#[test]
fn schemas_are_structural_every_node_has_a_type() {
    fn walk(v: &Value, path: &str) {
        if let Some(props) = v.get("properties").and_then(Value::as_object) {
            assert!(v.get("type").is_some(), "{path} has properties but no type");
            for (k, child) in props {
                assert!(child.get("type").is_some(), "{path}.{k} has no type");
                walk(child, &format!("{path}.{k}"));
            }
        }
        if let Some(items) = v.get("items") {
            walk(items, &format!("{path}[]"));
        }
        if let Some(ap) = v.get("additionalProperties").filter(|a| a.is_object()) {
            walk(ap, &format!("{path}{{}}"));
        }
    }
    for (file, crd) in danm_api::crd::all() {
        walk(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], file);
    }
}
