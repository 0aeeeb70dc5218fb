//! SR-IOV and DPDK interfaces from device pools.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sriov_takes_the_last_device_of_the_pool_sets_the_vf_vlan_and_moves_it_into_the_pod() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    // No pod-resources socket under the kubelet root: the checkpoint is read.
    assert!(!danm_cni::podresources::socket_path(&w.svc.kubelet_root).exists());
    w.danmnet(
        "sriov",
        json!({"NetworkID":"sriov","NetworkType":"sriov",
        "Options":{"device_pool":"nokia.k8s.io/sriov_ens2f0","vlan":300,"cidr":"10.24.0.0/24"}}),
    )
    .await;
    let pod = w.pod("p18", json!([{"network":"sriov","ip":"dynamic"}])).await;
    let uid = pod.metadata.uid.unwrap();
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":uid,"ResourceName":"nokia.k8s.io/sriov_ens2f0",
        "DeviceIDs":["0000:03:00.1","0000:03:00.2"]}]}})
        .to_string(),
    )
    .unwrap();
    w.run(&w.call("ADD", "p18", "c18")).await.unwrap();
    let vf = w.fake.vf(&Netns::Host, "ens2f0", 1).expect("VF 1 configured");
    assert_eq!(vf.vlan, Some(300));
    assert!(w.fake.find_link(&w.pod_ns, "eth0").await.unwrap().is_some());
    assert!(
        w.fake
            .find_link(&Netns::Host, "ens2f0v1")
            .await
            .unwrap()
            .is_none()
    );
    let ep = &w.lab.eps(NS).await[0];
    assert_eq!(ep.spec.interface.device_id, "0000:03:00.2");
    // The DanmEp records the VF's MAC address, as the pod sees it.
    let link = w.fake.find_link(&w.pod_ns, "eth0").await.unwrap().unwrap();
    assert!(!ep.spec.interface.mac_address.is_empty());
    assert_eq!(
        ep.spec.interface.mac_address,
        link.mac.map(|m| m.to_string()).unwrap_or_default()
    );
    w.run(&w.call("DEL", "p18", "c18")).await.unwrap();
    assert!(
        w.fake
            .find_link(&Netns::Host, "ens2f0v1")
            .await
            .unwrap()
            .is_some(),
        "the VF is back on the host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sriov_takes_its_device_from_kubelets_pod_resources_api_when_the_socket_exists() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    sriov_network(&w).await;
    let pod = w.pod("p19", json!([{"network":"sriov","ip":"dynamic"}])).await;
    // A checkpoint that would give another device: the socket wins.
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":pod.metadata.uid.unwrap(),
            "ResourceName":"nokia.k8s.io/sriov_ens2f0","DeviceIDs":["0000:03:00.2","0000:03:00.1"]}]}})
        .to_string(),
    )
    .unwrap();
    // Two containers of the pod hold one device each; a same-named pod elsewhere holds others.
    let pool = "nokia.k8s.io/sriov_ens2f0";
    let answer = pod_resources(&[
        (NS, "p19", &[(pool, &["0000:03:00.1"]), (pool, &["0000:03:00.2"])]),
        ("elsewhere", "p19", &[(pool, &["0000:03:00.9"])]),
    ]);
    let socket = danm_cni::podresources::socket_path(&w.svc.kubelet_root);
    let server = kubelet::serve(&socket, move || Ok(answer.clone()));
    w.run(&w.call("ADD", "p19", "c19")).await.unwrap();
    assert_eq!(w.lab.eps(NS).await[0].spec.interface.device_id, "0000:03:00.2");
    let vf = w.fake.vf(&Netns::Host, "ens2f0", 1).expect("VF 1 configured");
    assert_eq!(vf.vlan, Some(300));
    assert!(w.fake.find_link(&w.pod_ns, "eth0").await.unwrap().is_some());
    w.run(&w.call("DEL", "p19", "c19")).await.unwrap();
    assert!(w.lab.eps(NS).await.is_empty());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pod_resources_socket_fails_the_add_naming_the_socket_and_leaves_nothing() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    sriov_network(&w).await;
    let a = w.macvlan("a", json!({})).await;
    w.pod(
        "p20",
        json!([{"network":"a","ip":"dynamic"},{"network":"sriov","ip":"dynamic"}]),
    )
    .await;
    let socket = danm_cni::podresources::socket_path(&w.svc.kubelet_root);
    let server = kubelet::serve(&socket, || {
        Err(tonic::Status::unavailable("kubelet is restarting"))
    });
    let (code, msg) = code_of(w.run(&w.call("ADD", "p20", "c20")).await);
    assert_eq!(code, codes::KERNEL, "{msg}");
    assert!(
        msg.contains(&format!("unix://{}", socket.display())) && msg.contains("kubelet is restarting"),
        "{msg}"
    );
    assert!(
        msg.contains("failed to retrieve resources of DevicePool"),
        "{msg}"
    );
    server.abort();
    // A stale socket nobody listens on.
    let _ = server.await;
    let (_, msg) = code_of(w.run(&w.call("ADD", "p20", "c21")).await);
    assert!(
        msg.contains(&format!("unix://{}", socket.display())) && msg.contains("could not connect"),
        "{msg}"
    );
    w.assert_nothing_left(&[&a]).await;
}

#[tokio::test]
async fn a_dpdk_vf_without_vlan_is_replaced_by_a_dummy_named_as_the_interface_with_the_vf_mac_and_pci_alias()
{
    use danm_netlink::{LinkChange, NewAddress, NewLink, VfConfig};
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeNetlink::new();
    let pod = Netns::path("/var/run/netns/dpdk0");
    fake.add_netns(pod.clone());
    fake_sriov_on(&fake, tmp.path()).await;
    bind_to(tmp.path(), "0000:03:00.1", "vfio-pci");
    let sysfs = Sysfs {
        root: tmp.path().to_owned(),
    };
    assert_eq!(sysfs.dpdk_driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
    assert_eq!(sysfs.dpdk_driver("0000:03:00.2"), None, "a kernel-bound VF");
    let cfg = sriov_config(
        "0000:03:00.1",
        0,
        Some("02:00:00:00:03:01"),
        &["10.24.0.5/24", "fd24::5/64"],
    );
    let mac = "02:00:00:00:03:01".parse().unwrap();
    let journal = danm_cni::journal::Journal::default();
    fake.clear_calls();
    let result = danm_cni::native::add(&fake, &sysfs, &pod, "eth1", &cfg, &journal, "3f2c1d9e-aaaa-bbbb")
        .await
        .unwrap();
    assert_eq!(
        fake.mutations(),
        [
            NlCall::SetVf {
                ns: Netns::Host,
                pf: "ens2f0".into(),
                vf: VfConfig {
                    vf: 0,
                    mac: Some(mac),
                    vlan: Some(0),
                    qos: 0
                }
            },
            NlCall::CreateLink {
                ns: pod.clone(),
                link: NewLink::dummy("eth1").alias("0000:03:00.1").mac(mac)
            },
            NlCall::AddAddress {
                ns: pod.clone(),
                link: "eth1".into(),
                addr: NewAddress::new("10.24.0.5/24".parse().unwrap())
            },
            NlCall::AddAddress {
                ns: pod.clone(),
                link: "eth1".into(),
                addr: NewAddress::new("fd24::5/64".parse().unwrap()).nodad(true)
            },
            NlCall::SetLink {
                ns: pod.clone(),
                name: "eth1".into(),
                change: LinkChange::new().up(true)
            },
        ]
    );
    let link = fake.link(&pod, "eth1").await.unwrap();
    assert_eq!(link.kind, LinkKind::Dummy);
    assert_eq!(link.alias.as_deref(), Some("0000:03:00.1"));
    assert_eq!(link.mac, Some(mac));
    assert!(link.up);
    assert_eq!(result.interfaces[0].mac, "02:00:00:00:03:01");
    // DEL (a VF removal) deletes the dummy instead of moving anything to the host.
    fake.clear_calls();
    danm_cni::native::remove(&fake, &pod, "eth1", true, None)
        .await
        .unwrap();
    assert!(
        fake.mutations()
            == [NlCall::DeleteLink {
                ns: pod.clone(),
                name: "eth1".into()
            }],
        "{:?}",
        fake.mutations()
    );
    assert!(fake.find_link(&pod, "eth1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_dpdk_vf_with_a_vlan_gets_a_vlan_link_on_a_dummy_named_after_the_danmep_and_both_are_undone() {
    use danm_netlink::{LinkChange, NewAddress, NewLink, VfConfig};
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeNetlink::new();
    let pod = Netns::path("/var/run/netns/dpdk1");
    fake.add_netns(pod.clone());
    fake_sriov_on(&fake, tmp.path()).await;
    bind_to(tmp.path(), "0000:03:00.2", "igb_uio");
    let sysfs = Sysfs {
        root: tmp.path().to_owned(),
    };
    // An all-zero MAC is not given to the link.
    let cfg = sriov_config("0000:03:00.2", 300, Some("00:00:00:00:00:00"), &["10.24.0.6/24"]);
    let journal = danm_cni::journal::Journal::default();
    fake.clear_calls();
    danm_cni::native::add(
        &fake,
        &sysfs,
        &pod,
        "eth2",
        &cfg,
        &journal,
        "3f2c1d9e-aaaa-bbbb-cccc-0123456789ab",
    )
    .await
    .unwrap();
    let dummy = "3f2c1d9e-aaaa-";
    assert_eq!(
        danm_cni::native::dpdk_dummy_name("3f2c1d9e-aaaa-bbbb-cccc-0123456789ab"),
        dummy
    );
    assert_eq!(
        fake.mutations(),
        [
            NlCall::SetVf {
                ns: Netns::Host,
                pf: "ens2f0".into(),
                vf: VfConfig {
                    vf: 1,
                    mac: Some(danm_netlink::MacAddr([0; 6])),
                    vlan: Some(300),
                    qos: 0
                }
            },
            NlCall::CreateLink {
                ns: pod.clone(),
                link: NewLink::dummy(dummy).up()
            },
            NlCall::SetSysctls {
                ns: pod.clone(),
                values: danm_cni::post::ipv6_sysctls(dummy, "")
            },
            NlCall::CreateLink {
                ns: pod.clone(),
                link: NewLink::vlan("eth2", dummy, 300).alias("0000:03:00.2")
            },
            NlCall::AddAddress {
                ns: pod.clone(),
                link: "eth2".into(),
                addr: NewAddress::new("10.24.0.6/24".parse().unwrap())
            },
            NlCall::SetLink {
                ns: pod.clone(),
                name: "eth2".into(),
                change: LinkChange::new().up(true)
            },
        ]
    );
    let vlan = fake.link(&pod, "eth2").await.unwrap();
    assert_eq!(vlan.kind, LinkKind::Vlan { id: 300 });
    assert_eq!(
        vlan.parent_index,
        Some(fake.link(&pod, dummy).await.unwrap().index)
    );
    assert_eq!(
        fake.sysctl_value(&pod, &format!("net/ipv6/conf/{dummy}/disable_ipv6"))
            .as_deref(),
        Some("1")
    );
    // The journal undoes the VLAN link, then the dummy.
    let undo: Vec<String> = journal
        .take_reversed()
        .into_iter()
        .map(|u| match u {
            danm_cni::journal::Undo::Link { name, .. } => name,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(undo, ["eth2", dummy]);
    // DEL of the VF removes the VLAN link and its dummy.
    danm_cni::native::remove(&fake, &pod, "eth2", true, None)
        .await
        .unwrap();
    assert!(fake.links(&pod).await.unwrap().iter().all(|l| l.name == "lo"));
    assert!(!fake.calls().iter().any(|c| matches!(c, NlCall::MoveLink { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpdk_sriov_interface_is_set_up_through_add_and_rolled_back_when_the_vlan_cannot_be_made() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    bind_to(&w.svc.sysfs.root, "0000:03:00.2", "uio_pci_generic");
    sriov_network(&w).await;
    let pod = w.pod("p21", json!([{"network":"sriov","ip":"dynamic"}])).await;
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":pod.metadata.uid.unwrap(),"ResourceName":"nokia.k8s.io/sriov_ens2f0",
        "DeviceIDs":["0000:03:00.1","0000:03:00.2"]}]}})
        .to_string(),
    )
    .unwrap();
    let net = w.lab.get_network(NetworkKind::DanmNet, NS, "sriov").await;
    // This kernel has no 802.1q: the VLAN link fails, the dummy is rolled back, nothing is left.
    w.fake.without_kind("vlan");
    let (code, msg) = code_of(w.run(&w.call("ADD", "p21", "c21")).await);
    assert_eq!(code, codes::KERNEL, "{msg}");
    assert!(
        msg.contains("cannot create the vlan eth0 for DPDK device 0000:03:00.2"),
        "{msg}"
    );
    w.assert_nothing_left(&[&net]).await;

    // With VLAN support: eth0 is a VLAN 300 link on a dummy named after the DanmEp, with the address.
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    bind_to(&w.svc.sysfs.root, "0000:03:00.2", "uio_pci_generic");
    sriov_network(&w).await;
    let net = w.lab.get_network(NetworkKind::DanmNet, NS, "sriov").await;
    let pod = w.pod("p21", json!([{"network":"sriov","ip":"dynamic"}])).await;
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":pod.metadata.uid.unwrap(),"ResourceName":"nokia.k8s.io/sriov_ens2f0",
        "DeviceIDs":["0000:03:00.2"]}]}})
        .to_string(),
    )
    .unwrap();
    // The translated config has no MAC: the stand-in gets the one the PF reports for the VF.
    let vf_mac: danm_netlink::MacAddr = "02:00:00:00:03:02".parse().unwrap();
    w.fake
        .set_vf(
            &Netns::Host,
            "ens2f0",
            &danm_netlink::VfConfig {
                vf: 1,
                mac: Some(vf_mac),
                vlan: None,
                qos: 0,
            },
        )
        .await
        .unwrap();
    let out: Value =
        serde_json::from_str(&w.run(&w.call("ADD", "p21", "c22")).await.unwrap().unwrap()).unwrap();
    let ep = &w.lab.eps(NS).await[0];
    let dummy: String = ep.metadata.name.clone().unwrap().chars().take(14).collect();
    let eth0 = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert_eq!(eth0.kind, LinkKind::Vlan { id: 300 });
    assert_eq!(eth0.alias.as_deref(), Some("0000:03:00.2"));
    assert_eq!(eth0.mac, Some(vf_mac));
    assert!(eth0.up);
    assert_eq!(
        eth0.parent_index,
        Some(w.fake.link(&w.pod_ns, &dummy).await.unwrap().index)
    );
    assert_eq!(out["ips"][0]["address"], "10.24.0.1/24", "{out}");
    assert_eq!(w.fake.vf(&Netns::Host, "ens2f0", 1).unwrap().vlan, Some(300));
    w.run(&w.call("CHECK", "p21", "c22")).await.unwrap();
    w.run(&w.call("DEL", "p21", "c22")).await.unwrap();
    w.assert_nothing_left(&[&net]).await;
}
