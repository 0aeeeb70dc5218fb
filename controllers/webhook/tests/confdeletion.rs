//! `/confvalidation` and `/netdeletion` through the router: behaviour §11 items 94, 95 and 97–100.

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn deleting_a_network_used_by_a_danmep_is_denied_naming_the_pod() {
    // behaviour §11 94, B11 (empty apiType = DanmNet), ClusterNetworks across namespaces
    let rig = rig(vec![
        danmep("default", "p1", "dn", "DanmNet"),
        danmep("default", "p2", "legacy", ""),
        danmep("other", "p3", "cn", "ClusterNetwork"),
        danmep("other", "p4", "tn", "TenantNetwork"),
        tenantconfig("tc", json!([{"name": "ens4"}]), json!({})),
    ]);
    delete(&rig, danmnet("dn", json!({"NetworkID": "x"})))
        .await
        .assert_denied("e.g. Pod:p1 in namespace:default");
    delete(&rig, danmnet("legacy", json!({"NetworkID": "x"})))
        .await
        .assert_denied("Pod:p2 in namespace:default");
    delete(&rig, net("ClusterNetwork", "cn", json!({"NetworkID": "x"})))
        .await
        .assert_denied("Pod:p3 in namespace:other");
    // Same name, other namespace: not in use.
    delete(&rig, net("TenantNetwork", "tn", json!({"NetworkID": "x"})))
        .await
        .assert_allowed();
    // Same name, other kind: not in use.
    delete(&rig, net("TenantNetwork", "dn", json!({"NetworkID": "x"})))
        .await
        .assert_allowed();
}

#[tokio::test]
async fn deleting_a_vlan_tenantnetwork_frees_its_vni_for_the_next_one() {
    // behaviour §11 95
    let tc = tenantconfig("tc", json!([profile("ens4", "vlan", "1000-2000")]), json!({}));
    let rig = rig(vec![tc]);
    let spec = json!({"NetworkID": "nid", "Options": {"host_device": "ens4"}});
    let a = create(&rig, net("TenantNetwork", "a", spec.clone())).await;
    let b = create(&rig, net("TenantNetwork", "b", spec.clone())).await;
    assert_eq!(a.patched["spec"]["Options"]["vlan"], 1000);
    assert_eq!(b.patched["spec"]["Options"]["vlan"], 1001);
    delete(&rig, a.patched.clone()).await.assert_allowed();
    assert_eq!(
        set_bits(stored_tc(&rig, "tc")["hostDevices"][0]["alloc"].as_str().unwrap()),
        [0, 1001]
    );
    let c = create(&rig, net("TenantNetwork", "c", spec)).await;
    assert_eq!(c.patched["spec"]["Options"]["vlan"], 1000);
}

#[tokio::test]
async fn a_delete_without_a_matching_profile_is_allowed_and_a_failing_write_denies() {
    let tc = tenantconfig("tc", json!([profile("ens4", "vxlan", "400-500")]), json!({}));
    let rig = rig(vec![tc.clone()]);
    let tn = net(
        "TenantNetwork",
        "t",
        json!({"NetworkID": "x", "NetworkType": "ipvlan", "Options": {"host_device": "ens9", "vlan": 450}}),
    );
    delete(&rig, tn).await.assert_allowed();
    assert_eq!(stored_tc(&rig, "tc")["hostDevices"], tc["hostDevices"]);

    let mut used = tc.clone();
    let (alloc, _) = danm_core::vni::reserve_vni(&danm_core::vni::fresh_vni_alloc(), "450", "ens4").unwrap();
    used["hostDevices"][0]["alloc"] = json!(alloc);
    let rig2 = common::rig(vec![used]);
    rig2.cluster.inject(danm_webhook::cluster::ApiFault {
        verb: "update".into(),
        group: "danm.k8s.io".into(),
        resource: "tenantconfigs".into(),
        code: 500,
        message: "error happened".into(),
        remaining: None,
    });
    let tn = net(
        "TenantNetwork",
        "t",
        json!({"NetworkID": "x", "Options": {"host_device": "ens4", "vxlan": 450}}),
    );
    delete(&rig2, tn)
        .await
        .assert_denied("The network's VNI could not be freed, because:");
}

#[tokio::test]
async fn deleting_a_dynamic_tenantnetwork_needs_a_tenantconfig() {
    // behaviour §8.5: the TenantConfig is read for every dynamic TenantNetwork; static ones do not need it.
    let rig = rig(vec![]);
    let tn = net(
        "TenantNetwork",
        "t",
        json!({"NetworkID": "x", "Options": {"host_device": "ens4", "vlan": 450}}),
    );
    delete(&rig, tn).await.assert_denied("no TenantConfigs exist");
    let flannel = net(
        "TenantNetwork",
        "f",
        json!({"NetworkID": "x", "NetworkType": "flannel"}),
    );
    delete(&rig, flannel).await.assert_allowed();
}

#[tokio::test]
async fn a_danmep_list_error_denies_the_delete() {
    let rig = rig(vec![]);
    rig.cluster.inject(danm_webhook::cluster::ApiFault {
        verb: "list".into(),
        group: "danm.k8s.io".into(),
        resource: "danmeps".into(),
        code: 500,
        message: "error happened".into(),
        remaining: None,
    });
    delete(&rig, danmnet("n", json!({"NetworkID": "x"})))
        .await
        .assert_denied("no way to tell if Pods are still using it");
}

#[tokio::test]
async fn a_deleted_network_with_unknown_fields_is_denied() {
    let rig = rig(vec![]);
    let old = json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet", "metadata": {"name": "n", "namespace": "default"}, "extraField": "blupp"});
    delete(&rig, old)
        .await
        .assert_denied("unknown fields are not allowed");
}

#[tokio::test]
async fn a_tenantconfig_with_neither_host_devices_nor_network_ids_is_rejected() {
    // behaviour §11 97
    let rig = rig(vec![]);
    let tc = json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig", "metadata": {"name": "tc"}});
    conf(&rig, "CREATE", tc, Value::Null)
        .await
        .assert_denied("Either hostDevices, or networkIds must be provided!");
}

#[tokio::test]
async fn bad_vni_settings_in_a_tenantconfig_are_rejected() {
    // behaviour §11 98
    let rig = rig(vec![]);
    for (dev, needle) in [
        (
            json!({"name": "ens4", "vniType": "vlan"}),
            "must be provided together",
        ),
        (
            json!({"name": "ens4", "vniType": "gre", "vniRange": "700-710"}),
            "gre",
        ),
        (
            json!({"name": "ens4", "vniType": "vxlan", "vniRange": "700-71a0"}),
            "71a0",
        ),
        (
            json!({"name": "ens4", "vniType": "vxlan", "vniRange": "4999-5001"}),
            "maximum supported number",
        ),
    ] {
        conf(
            &rig,
            "CREATE",
            tenantconfig("tc", json!([dev]), json!({})),
            Value::Null,
        )
        .await
        .assert_denied(needle);
    }
}

#[tokio::test]
async fn a_valid_tenantconfig_gets_one_host_devices_patch_with_fresh_vni_maps() {
    // behaviour §11 99 (add instead of DANM's replace, so it applies to the incoming object)
    let rig = rig(vec![]);
    let devices = json!([{"name": "ens4", "vniType": "vxlan", "vniRange": "900-4999,5000"}, {"name": "ens5"},
        {"name": "nokia.k8s.io/sriov_ens1f0", "vniType": "vlan", "vniRange": "500-600"}]);
    let out = conf(
        &rig,
        "CREATE",
        tenantconfig("tc", devices, json!({})),
        Value::Null,
    )
    .await;
    out.assert_allowed();
    assert_eq!(out.patch.len(), 1);
    assert_eq!(out.patch[0]["op"], "add");
    assert_eq!(out.patch[0]["path"], "/hostDevices");
    let hd = &out.patched["hostDevices"];
    for i in [0, 2] {
        let alloc = hd[i]["alloc"].as_str().unwrap();
        assert_eq!(alloc.len(), 836);
        assert_eq!(set_bits(alloc), [0]);
    }
    assert_eq!(
        hd[1],
        json!({"name": "ens5", "vniType": "", "vniRange": "", "alloc": ""})
    );

    // Without VNI profiles nothing changes: no patch.
    let out = conf(
        &rig,
        "CREATE",
        tenantconfig("tc", json!([{"name": "ens5"}]), json!({})),
        Value::Null,
    )
    .await;
    out.assert_allowed();
    assert!(out.patch.is_empty());
}

#[tokio::test]
async fn a_tenantconfig_update_keeps_the_stored_vni_maps_of_profiles_that_lost_them() {
    let rig = rig(vec![]);
    let (alloc, _) =
        danm_core::vni::reserve_vni(&danm_core::vni::fresh_vni_alloc(), "900-910", "ens4").unwrap();
    let old = tenantconfig(
        "tc",
        json!([{"name": "ens4", "vniType": "vxlan", "vniRange": "900-910", "alloc": alloc}]),
        json!({}),
    );
    let new = tenantconfig(
        "tc",
        json!([{"name": "ens4", "vniType": "vxlan", "vniRange": "900-910"}, {"name": "ens6", "vniType": "vlan", "vniRange": "5-9"}]),
        json!({}),
    );
    let out = conf(&rig, "UPDATE", new, old).await;
    out.assert_allowed();
    assert_eq!(out.patched["hostDevices"][0]["alloc"], json!(alloc));
    assert_eq!(
        set_bits(out.patched["hostDevices"][1]["alloc"].as_str().unwrap()),
        [0]
    );
}

#[tokio::test]
async fn network_ids_longer_than_ten_characters_are_rejected_only_for_dynamic_types() {
    // behaviour §11 100
    let rig = rig(vec![]);
    conf(
        &rig,
        "CREATE",
        tenantconfig("tc", json!([]), json!({"sriov": "abcdefghijkl"})),
        Value::Null,
    )
    .await
    .assert_denied("abcdefghijkl");
    conf(
        &rig,
        "CREATE",
        tenantconfig("tc", json!([]), json!({"flannel": "abcdefghijkl"})),
        Value::Null,
    )
    .await
    .assert_allowed();
}

#[tokio::test]
async fn a_network_sent_to_confvalidation_is_not_handled() {
    let rig = rig(vec![]);
    conf(
        &rig,
        "CREATE",
        danmnet("n", json!({"NetworkID": "x"})),
        Value::Null,
    )
    .await
    .assert_denied("K8s API type:DanmNet is not handled by DANM webhook");
}
