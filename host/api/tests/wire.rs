//! Wire compatibility: objects exactly as DANM's Go components serialise them read into our types and back.

use danm_api::{DanmEp, Network, NetworkKind, TenantConfig};
use serde_json::{Value, json};

#[test]
fn a_danm_serialised_danmnet_with_empty_pools_reads_like_an_absent_one() {
    let go = json!({
        "apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
        "metadata": {"name": "external", "namespace": "vnf", "creationTimestamp": null},
        "spec": {"NetworkID": "ext", "NetworkType": "ipvlan", "Options": {
            "host_device": "ens4", "cidr": "10.0.0.0/24", "rt_tables": 0,
            "allocation_pool": {"start": "", "end": "", "lastIp": ""},
            "allocation_pool_v6": {"start": "", "end": "", "lastIp": "", "cidr": ""}}}
    });
    let minimal = json!({
        "apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
        "metadata": {"name": "external", "namespace": "vnf"},
        "spec": {"NetworkID": "ext", "NetworkType": "ipvlan", "Options": {"host_device": "ens4", "cidr": "10.0.0.0/24"}}
    });
    let a: Network = serde_json::from_value(go).unwrap();
    let b: Network = serde_json::from_value(minimal).unwrap();
    assert_eq!(a.spec, b.spec);
    assert_eq!(a.network_kind(), Ok(NetworkKind::DanmNet));
    assert_eq!(a.name(), "external");
    assert_eq!(a.namespace(), Some("vnf"));
    assert!(a.spec.options.allocation_pool.is_empty());
}

#[test]
fn null_zero_and_empty_values_mean_absent() {
    let nulls = json!({"spec": {"NetworkID": null, "NetworkType": null, "Options": {
        "host_device": null, "vlan": null, "vxlan": 0, "rt_tables": null, "cidr": "",
        "allocation_pool": null, "allocation_pool_v6": null, "alloc": null}}});
    let n: Network = serde_json::from_value(nulls).unwrap();
    assert_eq!(n.spec, danm_api::NetworkSpec::default());
    let spec_null: Network = serde_json::from_value(json!({"spec": {"Options": null}})).unwrap();
    assert_eq!(spec_null.spec, danm_api::NetworkSpec::default());
}

#[test]
fn routes_distinguish_absent_from_empty_because_the_webhook_rejects_empty_routes_without_cidr() {
    let absent: Network = serde_json::from_value(json!({"spec": {"Options": {}}})).unwrap();
    let null: Network = serde_json::from_value(json!({"spec": {"Options": {"routes": null}}})).unwrap();
    let empty: Network = serde_json::from_value(json!({"spec": {"Options": {"routes": {}}}})).unwrap();
    assert_eq!(absent.spec.options.routes, None);
    assert_eq!(null.spec.options.routes, None);
    assert_eq!(empty.spec.options.routes, Some(Default::default()));
}

#[test]
fn serialising_writes_danm_keys_and_always_writes_pools_and_rt_tables() {
    let mut n = Network::new(
        NetworkKind::ClusterNetwork,
        Some("ignored"),
        "mgmt",
        Default::default(),
    );
    n.spec.network_id = "mgmt".into();
    n.spec.options.vlan = 700;
    n.spec.options.host_device = "ens4".into();
    let v = serde_json::to_value(&n).unwrap();
    assert_eq!(v["apiVersion"], "danm.k8s.io/v1");
    assert_eq!(v["kind"], "ClusterNetwork");
    assert_eq!(
        v["metadata"].get("namespace"),
        None,
        "ClusterNetworks are cluster-scoped"
    );
    let o = &v["spec"]["Options"];
    assert_eq!(o["vlan"], 700);
    assert_eq!(o["host_device"], "ens4");
    assert_eq!(o["rt_tables"], 0);
    assert_eq!(
        o["allocation_pool"],
        json!({"start": "", "end": "", "lastIp": ""})
    );
    assert_eq!(
        o["allocation_pool_v6"],
        json!({"start": "", "end": "", "lastIp": "", "cidr": ""})
    );
    assert_eq!(
        o.get("vxlan"),
        None,
        "zero VNIs are omitted as DANM's omitempty did"
    );
    assert_eq!(v["spec"].get("AllowedTenants"), None);
    let back: Network = serde_json::from_value(v).unwrap();
    assert_eq!(back, n);
}

#[test]
fn danmep_always_serialises_proutes_and_reads_back() {
    let go = json!({
        "apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
        "metadata": {"name": "7f0c1b9e-0d1c-4b7e-9a57-1b7f5c1d2e3f", "namespace": "vnf", "labels": {"app": "lb"}},
        "spec": {"NetworkName": "internal", "NetworkType": "ipvlan", "EndpointID": "7f0c1b9e-0d1c-4b7e-9a57-1b7f5c1d2e3f",
            "Interface": {"Name": "int2", "Address": "10.240.1.100/24", "AddressIPv6": "", "MacAddress": "",
                "proutes": null, "proutes6": null},
            "Host": "node-1", "Pod": "lb-0", "PodUID": "u-1", "CID": "abc", "netns": "/var/run/netns/x", "apiType": ""}
    });
    let ep: DanmEp = serde_json::from_value(go.clone()).unwrap();
    assert_eq!(ep.spec.interface.name, "int2");
    assert_eq!(
        NetworkKind::from_api_type(&ep.spec.api_type),
        Ok(NetworkKind::DanmNet)
    );
    let out = serde_json::to_value(&ep).unwrap();
    assert_eq!(out["spec"]["Interface"]["proutes"], Value::Null);
    assert!(
        out["spec"]["Interface"]
            .as_object()
            .unwrap()
            .contains_key("proutes6")
    );
    assert_eq!(out, go);
}

#[test]
fn tenantconfig_has_top_level_fields_and_no_spec() {
    let tc: TenantConfig = serde_json::from_value(json!({
        "apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig", "metadata": {"name": "tconf"},
        "hostDevices": [{"name": "ens3", "vniType": "vlan", "vniRange": "900-999"}, {"name": "nokia.k8s.io/sriov_ens1f0"}],
        "networkIds": {"flannel": "flannel"}
    }))
    .unwrap();
    assert_eq!(tc.host_devices.len(), 2);
    assert_eq!(tc.host_devices[0].vni_range, "900-999");
    assert_eq!(tc.network_ids["flannel"], "flannel");
    let out = serde_json::to_value(&tc).unwrap();
    assert!(out.get("spec").is_none());
    assert_eq!(
        out["hostDevices"][1],
        json!({"name": "nokia.k8s.io/sriov_ens1f0"})
    );
}

#[test]
fn unknown_network_kinds_are_named_in_the_error() {
    let err = "DanmEp".parse::<NetworkKind>().unwrap_err();
    assert_eq!(err.to_string(), "K8s API type:DanmEp is not handled by DANM");
    for k in NetworkKind::ALL {
        assert_eq!(k.as_str().parse::<NetworkKind>(), Ok(k));
        assert_eq!(NetworkKind::from_api_type(k.as_str()), Ok(k));
    }
}

/// Every DANM object in DANM's acceptance corpus (serialised by DANM's Go structs; a test fixture kept outside
/// the repository, skipped when absent) reads into our types.
#[test]
fn every_object_of_the_acceptance_corpus_reads_into_our_types() {
    let Some(dir) = danm_testkit::fixtures::acceptance_dir() else {
        return;
    };
    let dir = dir.join("webhook");
    let mut seen = 0;
    for sub in ["netvalidation", "netdeletion", "confvalidation"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let case: Value = serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
            let mut objects: Vec<Value> = case["cluster"].as_array().cloned().unwrap_or_default();
            for key in ["object", "oldObject"] {
                if let Some(o) = case["request"]["request"].get(key).filter(|o| !o.is_null()) {
                    objects.push(o.clone());
                }
            }
            for o in objects {
                match o["kind"].as_str().unwrap_or_default() {
                    "DanmNet" | "TenantNetwork" | "ClusterNetwork" => {
                        let n: Network = serde_json::from_value(o.clone()).unwrap();
                        assert!(n.network_kind().is_ok());
                    }
                    "TenantConfig" => {
                        let tc: TenantConfig = serde_json::from_value(o.clone()).unwrap();
                        assert_eq!(tc.metadata.name.as_deref(), o["metadata"]["name"].as_str());
                    }
                    "DanmEp" => {
                        let ep: DanmEp = serde_json::from_value(o.clone()).unwrap();
                        assert_eq!(ep.spec.pod, o["spec"]["Pod"].as_str().unwrap_or_default());
                    }
                    _ => continue,
                }
                seen += 1;
            }
        }
    }
    assert!(seen > 0, "the corpus held no DANM objects");
}
