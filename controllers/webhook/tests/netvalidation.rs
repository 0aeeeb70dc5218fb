//! `/netvalidation` through the router with the wasm plugins: behaviour §11 items 73–93 and 96, plus UPDATE
//! handling, listing every violation, and the VNI bookkeeping around denials (§10 B12).

mod common;

use common::*;
use serde_json::{Value, json};

fn pools() -> Value {
    json!({"start": "", "end": "", "lastIp": ""})
}

#[tokio::test]
async fn a_danmnet_without_network_type_is_patched_to_ipvlan() {
    // behaviour §11 73
    let rig = rig(vec![]);
    let out = create(&rig, danmnet("n", json!({"NetworkID": "nid", "Options": {}}))).await;
    out.assert_allowed();
    assert_eq!(out.patched["spec"]["NetworkType"], "ipvlan");
    assert!(out.paths().contains(&"/spec/NetworkType".to_owned()));
}

#[tokio::test]
async fn a_cidr_gets_its_alloc_bitmap_and_default_pool() {
    // behaviour §11 74, 72
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "nid", "NetworkType": "ipvlan",
        "Options": {"cidr": "192.168.1.64/26", "allocation_pool": pools()}});
    let out = create(&rig, danmnet("n", spec)).await;
    out.assert_allowed();
    let o = &out.patched["spec"]["Options"];
    assert_eq!(o["alloc"], "gAAAAAAAAAE=");
    assert_eq!(o["allocation_pool"]["start"], "192.168.1.65");
    assert_eq!(o["allocation_pool"]["end"], "192.168.1.126");
    let mut paths = out.paths();
    paths.sort();
    assert_eq!(paths, ["/spec/Options/alloc", "/spec/Options/allocation_pool"]);

    let fresh24 = json!({"NetworkID": "nid", "NetworkType": "ipvlan", "Options": {"cidr": "10.0.0.0/24"}});
    let out = create(&rig, danmnet("m", fresh24)).await;
    assert_eq!(
        out.patched["spec"]["Options"]["alloc"],
        "gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="
    );
}

#[tokio::test]
async fn prefixes_shorter_than_slash_nine_are_rejected_and_slash_nine_is_accepted() {
    // behaviour §11 75
    let rig = rig(vec![]);
    for cidr in ["10.0.0.0/7", "10.0.0.0/8"] {
        let spec = json!({"NetworkID": "nid", "Options": {"cidr": cidr}});
        create(&rig, danmnet("n", spec))
            .await
            .assert_denied("maximum allowed /9");
    }
    let spec = json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/9"}});
    let out = create(&rig, danmnet("n", spec)).await;
    out.assert_allowed();
    let alloc = out.patched["spec"]["Options"]["alloc"].as_str().unwrap();
    assert_eq!(alloc.len(), (1usize << 20).div_ceil(3) * 4, "2^23 bits in base64");
}

#[tokio::test]
async fn a_route_gateway_outside_the_cidr_is_rejected() {
    // behaviour §11 76
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24", "routes": {"10.1.0.0/24": "10.9.9.9"}}});
    create(&rig, danmnet("n", spec)).await.assert_denied("10.9.9.9");
}

#[tokio::test]
async fn routes_without_a_cidr_are_rejected_even_when_empty() {
    // behaviour §11 77
    let rig = rig(vec![]);
    for routes in [json!({"10.1.0.0/24": "10.0.0.1"}), json!({})] {
        let spec = json!({"NetworkID": "nid", "Options": {"routes": routes}});
        create(&rig, danmnet("n", spec))
            .await
            .assert_denied("IP routes cannot be defined for a L2 network");
    }
}

#[tokio::test]
async fn an_alloc_supplied_on_create_is_rejected() {
    // behaviour §11 78
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/30", "alloc": "kA=="}});
    create(&rig, danmnet("n", spec))
        .await
        .assert_denied("Allocation bitmasks shall not be manually defined");
}

#[tokio::test]
async fn pools_outside_the_cidr_or_with_start_equal_to_end_are_rejected() {
    // behaviour §11 79
    let rig = rig(vec![]);
    let outside = json!({"start": "10.0.1.1", "end": "10.0.0.9", "lastIp": ""});
    let spec = json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24", "allocation_pool": outside}});
    create(&rig, danmnet("n", spec))
        .await
        .assert_denied("outside of defined CIDR");
    let equal = json!({"start": "10.0.0.9", "end": "10.0.0.9", "lastIp": ""});
    let spec = json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24", "allocation_pool": equal}});
    create(&rig, danmnet("n", spec))
        .await
        .assert_denied("bigger than or equal to");
}

#[tokio::test]
async fn vlan_and_vxlan_together_are_rejected_on_danmnets_and_clusternetworks() {
    // behaviour §11 80
    let rig = rig(vec![]);
    for kind in ["DanmNet", "ClusterNetwork"] {
        let spec = json!({"NetworkID": "nid", "Options": {"host_device": "eth1", "vlan": 5, "vxlan": 6}});
        create(&rig, net(kind, "n", spec))
            .await
            .assert_denied("mutually exclusive");
    }
}

#[tokio::test]
async fn a_missing_network_id_is_rejected() {
    // behaviour §11 81
    let rig = rig(vec![]);
    create(
        &rig,
        danmnet("n", json!({"NetworkType": "ipvlan", "Options": {}})),
    )
    .await
    .assert_denied("Spec.NetworkID mandatory parameter is missing!");
}

#[tokio::test]
async fn an_eleven_character_network_id_is_rejected_for_ipvlan_with_vlan_but_accepted_for_flannel() {
    // behaviour §11 82
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "abcdefghijk", "NetworkType": "ipvlan", "Options": {"host_device": "eth1", "vlan": 50}});
    create(&rig, danmnet("n", spec))
        .await
        .assert_denied("cannot be longer than 10 characters");
    let spec = json!({"NetworkID": "abcdefghijk", "NetworkType": "flannel", "Options": {"vlan": 50}});
    create(&rig, danmnet("n", spec)).await.assert_allowed();
}

#[tokio::test]
async fn allowed_tenants_is_rejected_on_danmnets_and_tenantnetworks_but_accepted_on_clusternetworks() {
    // behaviour §11 83
    let tc = tenantconfig("tc", json!([{"name": "ens4"}]), json!({}));
    let rig = rig(vec![tc]);
    for kind in ["DanmNet", "TenantNetwork"] {
        let spec = json!({"NetworkID": "nid", "AllowedTenants": ["a"], "Options": {}});
        create(&rig, net(kind, "n", spec))
            .await
            .assert_denied("AllowedTenants attribute is only valid");
    }
    let spec = json!({"NetworkID": "nid", "AllowedTenants": ["a"], "Options": {}});
    create(&rig, net("ClusterNetwork", "n", spec))
        .await
        .assert_allowed();
}

#[tokio::test]
async fn sriov_needs_a_device_pool_and_no_host_device() {
    // behaviour §11 84
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "nid", "NetworkType": "sriov", "Options": {}});
    create(&rig, danmnet("n", spec))
        .await
        .assert_denied("device_pool must");
    let spec = json!({"NetworkID": "nid", "NetworkType": "sriov",
        "Options": {"device_pool": "nokia.k8s.io/sriov_ens1f0", "host_device": "ens1f0"}});
    create(&rig, danmnet("n", spec))
        .await
        .assert_denied("host_device cannot be provided");
    let spec = json!({"NetworkID": "nid", "NetworkType": "sriov", "Options": {"device_pool": "nokia.k8s.io/sriov_ens1f0"}});
    create(&rig, danmnet("n", spec)).await.assert_allowed();
}

#[tokio::test]
async fn ipvlan_with_host_device_and_device_pool_is_rejected() {
    // behaviour §11 85
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "nid", "NetworkType": "ipvlan", "Options": {"host_device": "eth1", "device_pool": "x/y"}});
    create(&rig, danmnet("n", spec))
        .await
        .assert_denied("cannot be provided together");
}

#[tokio::test]
async fn unknown_fields_are_rejected_naming_their_path() {
    // behaviour §11 86
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24", "colour": "red"}});
    let out = create(&rig, danmnet("n", spec)).await;
    out.assert_denied("unknown fields are not allowed");
    assert!(out.message().contains("spec.Options.colour"), "{}", out.message());
    let out = create(
        &rig,
        json!({"kind": "DanmNet", "metadata": {"name": "x", "namespace": "default"}, "extraField": "blupp"}),
    )
    .await;
    out.assert_denied("unknown fields are not allowed:extraField");
}

#[tokio::test]
async fn every_violated_rule_is_listed_with_its_field() {
    let rig = rig(vec![]);
    let spec = json!({"NetworkType": "ipvlan", "Options": {"cidr": "10.0.0.0/8", "vlan": 5, "vxlan": 6, "host_device": "e"}});
    let out = create(&rig, danmnet("n", spec)).await;
    assert!(!out.allowed());
    for needle in ["[V10] spec.Options.cidr", "[V19]", "[V20] spec.NetworkID"] {
        assert!(
            out.message().contains(needle),
            "{needle} missing from {}",
            out.message()
        );
    }
}

#[tokio::test]
async fn a_tenantnetwork_with_a_vlan_on_create_is_rejected() {
    // behaviour §11 87
    let tc = tenantconfig("tc", json!([profile("ens4", "vlan", "1000-2000")]), json!({}));
    let rig = rig(vec![tc]);
    let spec = json!({"NetworkID": "nid", "Options": {"host_device": "ens4", "vlan": 1500}});
    create(&rig, net("TenantNetwork", "t", spec))
        .await
        .assert_denied("not allowed for TenantNetworks");
    assert_eq!(rig.cluster.tenant_config_writes(), 0);
}

#[tokio::test]
async fn a_tenantnetwork_without_host_device_gets_a_random_nic_profile_and_its_vni() {
    // behaviour §11 88: candidates are the profiles without '/', chosen uniformly.
    let devices = json!([profile("ens4", "vlan", "100-200"), {"name": "ens5"}, profile("nokia.k8s.io/pool", "vlan", "5-6")]);
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..16 {
        let rig = rig_seeded(vec![tenantconfig("tc", devices.clone(), json!({}))], seed);
        let out = create(
            &rig,
            net("TenantNetwork", "t", json!({"NetworkID": "nid", "Options": {}})),
        )
        .await;
        out.assert_allowed();
        let dev = out.patched["spec"]["Options"]["host_device"]
            .as_str()
            .unwrap()
            .to_owned();
        match dev.as_str() {
            "ens4" => {
                assert_eq!(out.patched["spec"]["Options"]["vlan"], 100);
                assert_eq!(
                    set_bits(stored_tc(&rig, "tc")["hostDevices"][0]["alloc"].as_str().unwrap()),
                    [0, 100]
                );
            }
            "ens5" => assert!(out.patched["spec"]["Options"].get("vlan").is_none()),
            other => panic!("picked {other}, which is not a NIC profile"),
        }
        seen.insert(dev);
    }
    assert_eq!(
        seen.len(),
        2,
        "both NIC profiles get picked over 16 seeds: {seen:?}"
    );
}

#[tokio::test]
async fn consecutive_tenantnetworks_on_a_vlan_profile_get_consecutive_vlans() {
    // behaviour §11 89
    let tc = tenantconfig("tc", json!([profile("ens4", "vlan", "1000-2000")]), json!({}));
    let rig = rig(vec![tc]);
    let spec = json!({"NetworkID": "nid", "NetworkType": "ipvlan", "Options": {"host_device": "ens4"}});
    let first = create(&rig, net("TenantNetwork", "a", spec.clone())).await;
    first.assert_allowed();
    assert_eq!(first.patched["spec"]["Options"]["vlan"], 1000);
    let second = create(&rig, net("TenantNetwork", "b", spec)).await;
    assert_eq!(second.patched["spec"]["Options"]["vlan"], 1001);
    let alloc = stored_tc(&rig, "tc")["hostDevices"][0]["alloc"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(alloc.len(), 836);
    assert_eq!(set_bits(&alloc), [0, 1000, 1001]);
}

#[tokio::test]
async fn a_host_device_missing_from_the_tenantconfig_is_not_allowed() {
    // behaviour §11 90
    let tc = tenantconfig("tc", json!([profile("ens4", "vlan", "1000-2000")]), json!({}));
    let rig = rig(vec![tc]);
    let spec = json!({"NetworkID": "nid", "Options": {"host_device": "ens9"}});
    create(&rig, net("TenantNetwork", "t", spec))
        .await
        .assert_denied("not allowed to be used by tenants");
}

#[tokio::test]
async fn a_tenantnetwork_is_rejected_when_no_tenantconfig_exists() {
    // behaviour §11 91
    let rig = rig(vec![]);
    let spec = json!({"NetworkID": "nid", "Options": {}});
    create(&rig, net("TenantNetwork", "t", spec))
        .await
        .assert_denied("no TenantConfigs exist");
}

#[tokio::test]
async fn network_ids_overwrite_the_network_id_by_case_insensitive_type() {
    // behaviour §11 92
    let tc = tenantconfig("tc", json!([{"name": "ens4"}]), json!({"Flannel": "flannel-net"}));
    let rig = rig(vec![tc]);
    let spec = json!({"NetworkID": "hupak", "NetworkType": "flannel", "Options": {}});
    let out = create(&rig, net("TenantNetwork", "t", spec)).await;
    out.assert_allowed();
    assert_eq!(out.patched["spec"]["NetworkID"], "flannel-net");
    assert_eq!(out.paths(), ["/spec/NetworkID"]);
}

#[tokio::test]
async fn a_calico_tenantnetwork_without_network_id_or_mapping_is_rejected() {
    // behaviour §11 93
    let tc = tenantconfig("tc", json!([{"name": "ens4"}]), json!({"flannel": "f"}));
    let rig = rig(vec![tc]);
    let spec = json!({"NetworkType": "calico", "Options": {}});
    create(&rig, net("TenantNetwork", "t", spec))
        .await
        .assert_denied("NetworkID mandatory parameter is missing");
}

#[tokio::test]
async fn changing_the_vlan_of_a_network_with_pods_is_denied_but_changing_the_network_id_is_allowed() {
    // behaviour §11 96, including a DanmEp of a default DanmNet (empty apiType, B11)
    for api_type in ["DanmNet", ""] {
        let rig = rig(vec![danmep("default", "blurp", "n", api_type)]);
        let old = danmnet(
            "n",
            json!({"NetworkID": "nid", "NetworkType": "ipvlan", "Options": {"host_device": "ens4", "vlan": 50}}),
        );
        let new = danmnet(
            "n",
            json!({"NetworkID": "nid", "NetworkType": "ipvlan", "Options": {"host_device": "ens4", "vlan": 51}}),
        );
        update(&rig, old.clone(), new)
            .await
            .assert_denied("Pod:blurp in namespace:default");
        let renamed = danmnet(
            "n",
            json!({"NetworkID": "nid2", "NetworkType": "ipvlan", "Options": {"host_device": "ens4", "vlan": 50}}),
        );
        update(&rig, old.clone(), renamed).await.assert_allowed();
        let moved = danmnet(
            "n",
            json!({"NetworkID": "nid", "NetworkType": "ipvlan", "Options": {"host_device": "ens5", "vlan": 50}}),
        );
        update(&rig, old, moved)
            .await
            .assert_denied("cannot change VNI/host_device");
    }
}

#[tokio::test]
async fn changing_the_vlan_without_pods_is_allowed_and_a_danmep_list_error_denies() {
    let rig = rig(vec![danmep("other", "p", "n", "DanmNet")]);
    let old = danmnet(
        "n",
        json!({"NetworkID": "nid", "Options": {"host_device": "ens4", "vlan": 50}}),
    );
    let new = danmnet(
        "n",
        json!({"NetworkID": "nid", "Options": {"host_device": "ens4", "vlan": 51}}),
    );
    update(&rig, old.clone(), new.clone()).await.assert_allowed();
    rig.cluster.inject(danm_webhook::cluster::ApiFault {
        verb: "list".into(),
        group: "danm.k8s.io".into(),
        resource: "danmeps".into(),
        code: 500,
        message: "etcd is down".into(),
        remaining: None,
    });
    update(&rig, old, new)
        .await
        .assert_denied("no way to tell if Pods are still using the network due to:");
}

#[tokio::test]
async fn an_update_that_changes_the_cidr_rebuilds_the_bitmap_and_the_emptied_pool() {
    // behaviour §10 B12: UPDATE is validated and mutated too.
    let rig = rig(vec![]);
    let old_spec = json!({"NetworkID": "nid", "NetworkType": "ipvlan", "Options": {"cidr": "10.0.0.0/24",
        "alloc": "wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=", "allocation_pool": {"start": "10.0.0.1", "end": "10.0.0.254", "lastIp": ""}}});
    let mut stale_pool = old_spec.clone();
    stale_pool["Options"]["cidr"] = json!("10.0.1.0/26");
    update(
        &rig,
        danmnet("n", old_spec.clone()),
        danmnet("n", stale_pool.clone()),
    )
    .await
    .assert_denied("Allocation pool is outside of defined CIDR!");
    let mut new_spec = stale_pool;
    new_spec["Options"]["allocation_pool"] = json!({"start": "", "end": "", "lastIp": ""});
    let out = update(&rig, danmnet("n", old_spec.clone()), danmnet("n", new_spec)).await;
    out.assert_allowed();
    let o = &out.patched["spec"]["Options"];
    assert_eq!(o["alloc"], "gAAAAAAAAAE=");
    assert_eq!(o["allocation_pool"]["start"], "10.0.1.1");
    assert_eq!(o["allocation_pool"]["end"], "10.0.1.62");

    // Same CIDR, alloc omitted (re-applied manifest): the stored bitmap is kept, not reset.
    let mut reapplied = old_spec.clone();
    reapplied["Options"].as_object_mut().unwrap().remove("alloc");
    let out = update(&rig, danmnet("n", old_spec.clone()), danmnet("n", reapplied)).await;
    out.assert_allowed();
    assert_eq!(
        out.patched["spec"]["Options"]["alloc"],
        old_spec["Options"]["alloc"]
    );

    // alloc on UPDATE is not V7.
    update(&rig, danmnet("n", old_spec.clone()), danmnet("n", old_spec))
        .await
        .assert_allowed();
}

#[tokio::test]
async fn a_tenantnetwork_update_may_not_change_its_vlan() {
    // V24
    let tc = tenantconfig("tc", json!([profile("ens4", "vlan", "1000-2000")]), json!({}));
    let rig = rig(vec![tc]);
    let old = net(
        "TenantNetwork",
        "t",
        json!({"NetworkID": "nid", "Options": {"host_device": "ens4", "vlan": 1000}}),
    );
    let new = net(
        "TenantNetwork",
        "t",
        json!({"NetworkID": "nid", "Options": {"host_device": "ens4", "vlan": 1001}}),
    );
    update(&rig, old, new).await.assert_denied("Manually changing");
}

#[tokio::test]
async fn a_tenantnetwork_denied_by_a_backend_rule_reserves_no_vni() {
    // behaviour §10 B12: validation (here V21 on the planned vlan) runs before the reservation.
    let tc = tenantconfig("tc", json!([profile("ens4", "vlan", "1000-2000")]), json!({}));
    let rig = rig(vec![tc.clone()]);
    let spec =
        json!({"NetworkID": "abcdefghijklm", "NetworkType": "ipvlan", "Options": {"host_device": "ens4"}});
    create(&rig, net("TenantNetwork", "t", spec))
        .await
        .assert_denied("cannot be longer than 10 characters");
    assert_eq!(rig.cluster.tenant_config_writes(), 0);
    assert_eq!(stored_tc(&rig, "tc")["hostDevices"], tc["hostDevices"]);
}

#[tokio::test]
async fn a_conflicting_tenantconfig_write_is_retried_on_a_fresh_copy() {
    // behaviour §8.4 with §10 B8: 409 → re-read → retry (bounded).
    let tc = tenantconfig("tc", json!([profile("ens4", "vxlan", "10-20")]), json!({}));
    let rig = rig(vec![tc]);
    rig.cluster.inject(danm_webhook::cluster::ApiFault {
        verb: "update".into(),
        group: String::new(),
        resource: "tenantconfigs".into(),
        code: 409,
        message: "conflict".into(),
        remaining: Some(2),
    });
    let spec = json!({"NetworkID": "nid", "Options": {"host_device": "ens4"}});
    let out = create(&rig, net("TenantNetwork", "t", spec.clone())).await;
    out.assert_allowed();
    assert_eq!(out.patched["spec"]["Options"]["vxlan"], 10);
    assert_eq!(rig.cluster.tenant_config_writes(), 3);

    // A conflict that never ends gives up with a denial naming the TenantConfig.
    rig.cluster.inject(danm_webhook::cluster::ApiFault {
        verb: "update".into(),
        group: String::new(),
        resource: "tenantconfigs".into(),
        code: 409,
        message: "conflict".into(),
        remaining: None,
    });
    create(&rig, net("TenantNetwork", "u", spec))
        .await
        .assert_denied("TenantConfig tc kept changing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tenantnetwork_creates_on_one_tenantconfig_all_get_distinct_vnis() {
    // The load benchmark's finding: ~100 TenantNetwork reviews a second on one TenantConfig all computed from the
    // same copy, and reviews lost all their attempts to 409s. Writes to one TenantConfig now queue in the process:
    // every review succeeds, with at most one conflict each (its copy predates the writes queued before it).
    let tc = tenantconfig("tc", json!([profile("ens4", "vxlan", "10-400")]), json!({}));
    // A millisecond per TenantConfig round trip, so the reviews overlap as they do against an API server.
    let cluster = danm_webhook::cluster::MemoryCluster::new(vec![tc])
        .unwrap()
        .with_latency(std::time::Duration::from_millis(1));
    let rig = std::sync::Arc::new(rig_on(cluster, 7, danm_core::ipam::blocks::IpamMode::Bitmap));
    let reviews = 48;
    let mut tasks = Vec::new();
    for i in 0..reviews {
        let rig = rig.clone();
        tasks.push(tokio::spawn(async move {
            let spec = json!({"NetworkID": format!("n{i}"), "Options": {"host_device": "ens4"}});
            let out = create(&rig, net("TenantNetwork", &format!("t{i}"), spec)).await;
            out.assert_allowed();
            out.patched["spec"]["Options"]["vxlan"].as_u64().unwrap()
        }));
    }
    let mut vnis = std::collections::BTreeSet::new();
    for t in tasks {
        assert!(vnis.insert(t.await.unwrap()), "a VNI was given twice");
    }
    assert_eq!(vnis.len(), reviews);
    assert_eq!(
        set_bits(stored_tc(&rig, "tc")["hostDevices"][0]["alloc"].as_str().unwrap()).len(),
        reviews + 1,
        "bit 0 and one bit per network"
    );
    let writes = rig.cluster.tenant_config_writes() as usize;
    assert!(
        writes <= 2 * reviews,
        "{writes} TenantConfig writes for {reviews} reviews: more than one conflict per review"
    );
}

#[tokio::test]
async fn a_dry_run_plans_the_vni_without_writing_the_tenantconfig() {
    let tc = tenantconfig("tc", json!([profile("ens4", "vlan", "7-9")]), json!({}));
    let rig = rig(vec![tc]);
    let object = net(
        "TenantNetwork",
        "t",
        json!({"NetworkID": "nid", "Options": {"host_device": "ens4"}}),
    );
    let mut r = review("CREATE", &object, &Value::Null);
    r["request"]["dryRun"] = json!(true);
    let out = call(&rig, "/netvalidation", r).await;
    out.assert_allowed();
    assert_eq!(out.patched["spec"]["Options"]["vlan"], 7);
    assert_eq!(rig.cluster.tenant_config_writes(), 0);
}

#[tokio::test]
async fn an_ipv6_network_gets_its_pool_cidr_range_and_bitmap() {
    // behaviour §5.6 / §11 65-66
    let rig = rig(vec![]);
    let spec =
        json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24", "net6": "2a00:8a00:a000:1193::/64"}});
    let out = create(&rig, danmnet("n", spec)).await;
    out.assert_allowed();
    let p6 = &out.patched["spec"]["Options"]["allocation_pool_v6"];
    assert_eq!(p6["cidr"], "2a00:8a00:a000:1193::/106");
    assert_eq!(p6["start"], "2a00:8a00:a000:1193::1");
    assert!(out.patched["spec"]["Options"]["alloc6"].as_str().unwrap().len() > 1000);
}
