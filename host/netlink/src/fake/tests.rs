//! Unit tests of the fake's kernel model and its recording and failure injection.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::libc_errno;
use crate::*;

fn net(text: &str) -> IpNetwork {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn pod() -> Netns {
    Netns::named("pod1")
}

/// A host with `ens1` (MTU 9000) and an empty pod namespace.
fn setup() -> FakeNetlink {
    let fake = FakeNetlink::new();
    fake.add_device(&Netns::Host, "ens1", 9000);
    fake.add_netns(pod());
    fake
}

#[tokio::test]
async fn macvlan_created_in_the_pod_netns_lives_there_with_the_parent_mtu() {
    let fake = setup();
    let parent = fake.link(&Netns::Host, "ens1").await.unwrap();
    let link = fake
        .create_link(
            &Netns::Host,
            &NewLink::macvlan("eth1", "ens1", MacvlanMode::Private).in_netns(pod()),
        )
        .await
        .unwrap();
    assert_eq!(
        link.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Private
        }
    );
    assert_eq!(link.mtu, 9000);
    assert_eq!(link.parent_index, Some(parent.index));
    assert!(link.link_netnsid.is_some());
    assert!(!link.up);
    assert_eq!(fake.link(&pod(), "eth1").await.unwrap(), link);
    assert!(fake.find_link(&Netns::Host, "eth1").await.unwrap().is_none());
}

#[tokio::test]
async fn an_mtu_above_the_parent_mtu_is_refused() {
    let fake = setup();
    let err = fake
        .create_link(
            &Netns::Host,
            &NewLink::macvlan("eth1", "ens1", MacvlanMode::Bridge).mtu(9100),
        )
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::EINVAL), "{err}");
}

#[tokio::test]
async fn creating_a_link_whose_name_is_taken_fails_with_exists() {
    let fake = setup();
    let new = NewLink::macvlan("eth1", "ens1", MacvlanMode::Bridge).in_netns(pod());
    fake.create_link(&Netns::Host, &new).await.unwrap();
    let err = fake.create_link(&Netns::Host, &new).await.unwrap_err();
    assert!(err.is_exists(), "{err}");
    let err = fake
        .create_link(&Netns::Host, &NewLink::bridge("a-name-that-is-too-long"))
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::EINVAL));
}

#[tokio::test]
async fn a_missing_parent_is_not_found_and_names_the_parent() {
    let fake = setup();
    let err = fake
        .create_link(
            &Netns::Host,
            &NewLink::ipvlan("eth1", "ens9", IpvlanMode::L2).in_netns(pod()),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("parent link ens9"), "{err}");
}

#[tokio::test]
async fn ipvlan_vlan_and_dummy_links_are_modelled() {
    let fake = setup();
    let vlan = fake
        .create_link(&Netns::Host, &NewLink::vlan("net1.200", "ens1", 200).up())
        .await
        .unwrap();
    assert_eq!(vlan.kind, LinkKind::Vlan { id: 200 });
    assert_eq!(vlan.mtu, 9000);
    let ipvlan = fake
        .create_link(
            &Netns::Host,
            &NewLink::ipvlan("eth1", "net1.200", IpvlanMode::L3s).in_netns(pod()),
        )
        .await
        .unwrap();
    assert_eq!(
        ipvlan.kind,
        LinkKind::Ipvlan {
            mode: IpvlanMode::L3s
        }
    );
    assert_eq!(ipvlan.parent_index, Some(vlan.index));
    let dummy = fake
        .create_link(&pod(), &NewLink::dummy("dpdk0").alias("0000:03:00.1"))
        .await
        .unwrap();
    assert_eq!(dummy.kind, LinkKind::Dummy);
    assert_eq!(dummy.alias.as_deref(), Some("0000:03:00.1"));
    let err = fake
        .create_link(&Netns::Host, &NewLink::vlan("net1.0", "ens1", 0))
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::ERANGE));
}

#[tokio::test]
async fn kinds_declared_missing_fail_like_this_kernel() {
    let fake = setup();
    fake.without_kind("ipvlan")
        .without_kind("vlan")
        .without_kind("dummy");
    for new in [
        NewLink::ipvlan("eth1", "ens1", IpvlanMode::L2).in_netns(pod()),
        NewLink::vlan("ens1.5", "ens1", 5),
        NewLink::dummy("d0"),
    ] {
        let err = fake.create_link(&Netns::Host, &new).await.unwrap_err();
        assert!(err.is_not_supported(), "{err}");
        assert_eq!(err.errno(), Some(libc_errno::EOPNOTSUPP));
        assert!(
            err.to_string()
                .contains(&format!("link kind {}", new.kind.name()))
        );
    }
    assert!(
        fake.create_link(&Netns::Host, &NewLink::bridge("br0"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn vxlan_reads_back_its_parameters_and_underlay_index() {
    let fake = setup();
    let ens1 = fake.link(&Netns::Host, "ens1").await.unwrap();
    let mut spec = VxlanSpec::new(300);
    spec.group = Some(ip("239.0.1.44"));
    spec.local = Some(ip("192.168.1.10"));
    spec.underlay = Some("ens1".to_string());
    let link = fake
        .create_link(&Netns::Host, &NewLink::vxlan("vx_net", spec).alias("danm"))
        .await
        .unwrap();
    let LinkKind::Vxlan(info) = &link.kind else {
        panic!("{link:?}")
    };
    assert_eq!(
        (info.vni, info.port, info.group, info.local, info.underlay_index),
        (
            300,
            4789,
            Some(ip("239.0.1.44")),
            Some(ip("192.168.1.10")),
            Some(ens1.index)
        )
    );
    assert!(info.learning && info.l2miss && info.l3miss);
    assert_eq!(link.mtu, 8950);
    assert_eq!(link.alias.as_deref(), Some("danm"));
}

#[tokio::test]
async fn deleting_a_parent_deletes_its_children_in_every_namespace() {
    let fake = setup();
    fake.create_link(&Netns::Host, &NewLink::vlan("ens1.7", "ens1", 7))
        .await
        .unwrap();
    fake.create_link(
        &Netns::Host,
        &NewLink::macvlan("eth1", "ens1.7", MacvlanMode::Bridge).in_netns(pod()),
    )
    .await
    .unwrap();
    fake.delete_link(&Netns::Host, "ens1.7").await.unwrap();
    assert!(fake.find_link(&pod(), "eth1").await.unwrap().is_none());
    assert!(fake.find_link(&Netns::Host, "ens1").await.unwrap().is_some());
    let err = fake.delete_link(&Netns::Host, "ens1").await.unwrap_err();
    assert_eq!(
        err.errno(),
        Some(libc_errno::EOPNOTSUPP),
        "physical devices cannot be deleted: {err}"
    );
}

#[tokio::test]
async fn a_veth_pair_lives_and_dies_together() {
    let fake = setup();
    let host_end = fake
        .create_link(&Netns::Host, &NewLink::veth("veth1", "eth0").peer_in(pod()))
        .await
        .unwrap();
    let pod_end = fake.link(&pod(), "eth0").await.unwrap();
    assert_eq!(pod_end.parent_index, Some(host_end.index));
    assert_eq!(host_end.parent_index, Some(pod_end.index));
    fake.delete_link(&pod(), "eth0").await.unwrap();
    assert!(fake.find_link(&Netns::Host, "veth1").await.unwrap().is_none());
}

#[tokio::test]
async fn removing_a_namespace_destroys_its_links_and_returns_devices_to_the_host() {
    let fake = setup();
    fake.add_device(&pod(), "vf3", 1500);
    fake.create_link(
        &Netns::Host,
        &NewLink::macvlan("eth1", "ens1", MacvlanMode::Bridge).in_netns(pod()),
    )
    .await
    .unwrap();
    fake.create_link(&Netns::Host, &NewLink::veth("veth9", "eth9").peer_in(pod()))
        .await
        .unwrap();
    fake.remove_netns(&pod());
    assert!(!fake.netns_exists(&pod()).await.unwrap());
    assert!(
        fake.find_link(&Netns::Host, "veth9").await.unwrap().is_none(),
        "peer died with the namespace"
    );
    assert!(
        fake.find_link(&Netns::Host, "vf3").await.unwrap().is_some(),
        "physical device returned"
    );
    let err = fake.links(&pod()).await.unwrap_err();
    assert!(matches!(err, NetlinkError::NetnsNotFound { .. }));
    assert!(!fake.delete_link_if_exists(&pod(), "eth1").await.unwrap());
}

#[tokio::test]
async fn moving_a_link_drops_its_addresses_and_takes_it_down() {
    let fake = setup();
    fake.create_link(
        &Netns::Host,
        &NewLink::macvlan("tmp1", "ens1", MacvlanMode::Bridge).up(),
    )
    .await
    .unwrap();
    fake.add_address(&Netns::Host, "tmp1", &NewAddress::new(net("10.0.0.9/24")))
        .await
        .unwrap();
    fake.move_link(&Netns::Host, "tmp1", &pod()).await.unwrap();
    let moved = fake.link(&pod(), "tmp1").await.unwrap();
    assert!(!moved.up);
    assert!(fake.addresses(&pod(), "tmp1").await.unwrap().is_empty());
    fake.create_link(
        &Netns::Host,
        &NewLink::macvlan("tmp1", "ens1", MacvlanMode::Bridge),
    )
    .await
    .unwrap();
    let err = fake.move_link(&Netns::Host, "tmp1", &pod()).await.unwrap_err();
    assert!(err.is_exists(), "{err}");
}

#[tokio::test]
async fn set_link_applies_every_change_and_a_rename_carries_routes_and_sysctls() {
    let fake = setup();
    fake.create_link(&pod(), &NewLink::bridge("tmpx")).await.unwrap();
    fake.set_sysctl(&pod(), "net/ipv6/conf/tmpx/accept_ra", "0")
        .await
        .unwrap();
    let mac: MacAddr = "02:00:00:00:00:42".parse().unwrap();
    let change = LinkChange::new()
        .name("net3")
        .mtu(1400)
        .mac(mac)
        .alias("danm")
        .up(true);
    fake.set_link(&pod(), "tmpx", &change).await.unwrap();
    let link = fake.link(&pod(), "net3").await.unwrap();
    assert_eq!(
        (link.mtu, link.mac, link.alias.as_deref(), link.up),
        (1400, Some(mac), Some("danm"), true)
    );
    fake.add_route(&pod(), &Route::new(net("10.7.0.0/16")).dev("net3"))
        .await
        .unwrap();
    fake.set_link(&pod(), "net3", &LinkChange::new().up(false).name("net4"))
        .await
        .unwrap();
    assert_eq!(
        fake.sysctl_value(&pod(), "net/ipv6/conf/net4/accept_ra")
            .as_deref(),
        Some("0")
    );
    assert_eq!(fake.sysctl_value(&pod(), "net/ipv6/conf/tmpx/accept_ra"), None);
    let routes = fake.routes(&pod(), TABLE_MAIN).await.unwrap();
    assert_eq!(routes[0].dev.as_deref(), Some("net4"));
    let err = fake
        .set_link(&pod(), "nope", &LinkChange::new().up(true))
        .await
        .unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn addresses_support_nodad_replace_exists_and_delete() {
    let fake = setup();
    fake.create_link(&pod(), &NewLink::bridge("eth1")).await.unwrap();
    let v6 = net("2001:db8::5/64");
    fake.add_address(&pod(), "eth1", &NewAddress::new(net("10.0.0.5/24")))
        .await
        .unwrap();
    fake.add_address(&pod(), "eth1", &NewAddress::new(v6).nodad(false))
        .await
        .unwrap();
    let err = fake
        .add_address(&pod(), "eth1", &NewAddress::new(v6))
        .await
        .unwrap_err();
    assert!(err.is_exists());
    fake.add_address(&pod(), "eth1", &NewAddress::new(v6).replace())
        .await
        .unwrap();
    let addrs = fake.addresses(&pod(), "eth1").await.unwrap();
    assert_eq!(addrs.len(), 2);
    assert!(addrs.iter().find(|a| a.addr == v6).unwrap().nodad);
    fake.delete_address(&pod(), "eth1", v6).await.unwrap();
    let err = fake.delete_address(&pod(), "eth1", v6).await.unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn an_ipv6_address_needs_ipv6_enabled_on_the_link() {
    let fake = setup();
    fake.create_link(&pod(), &NewLink::bridge("eth1")).await.unwrap();
    fake.set_sysctl(&pod(), "net/ipv6/conf/eth1/disable_ipv6", "1")
        .await
        .unwrap();
    let err = fake
        .add_address(&pod(), "eth1", &NewAddress::new(net("2001:db8::5/64")))
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::EACCES));
    fake.set_sysctl(&pod(), "net/ipv6/conf/eth1/disable_ipv6", "0")
        .await
        .unwrap();
    fake.add_address(&pod(), "eth1", &NewAddress::new(net("2001:db8::5/64")))
        .await
        .unwrap();
}

#[tokio::test]
async fn routes_follow_the_kernel_rules_for_devices_and_gateways() {
    let fake = setup();
    fake.create_link(&pod(), &NewLink::bridge("eth1")).await.unwrap();
    fake.add_address(&pod(), "eth1", &NewAddress::new(net("10.1.0.2/24")))
        .await
        .unwrap();
    let via = Route::new(net("10.9.1.1/16"))
        .via(ip("10.1.0.1"))
        .dev("eth1")
        .table(100);
    let err = fake.add_route(&pod(), &via).await.unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::ENETUNREACH), "down device: {err}");
    let err = fake
        .add_route(&pod(), &Route::new(net("10.8.0.0/16")).dev("eth1"))
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::ENETDOWN));
    fake.set_link(&pod(), "eth1", &LinkChange::new().up(true))
        .await
        .unwrap();
    fake.add_route(&pod(), &via).await.unwrap();
    let far = Route::new(net("10.10.0.0/16")).via(ip("10.99.0.1")).dev("eth1");
    assert_eq!(
        fake.add_route(&pod(), &far).await.unwrap_err().errno(),
        Some(libc_errno::ENETUNREACH)
    );
    let table = fake.routes(&pod(), 100).await.unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(table[0].dst, net("10.9.0.0/16"), "host bits cleared");
    assert!(fake.routes(&pod(), TABLE_MAIN).await.unwrap().is_empty());
    assert!(fake.add_route(&pod(), &via).await.unwrap_err().is_exists());
    // Deleted by destination and table, and by gateway and device when given.
    let other_gw = Route::new(net("10.9.0.0/16")).via(ip("10.1.0.2")).table(100);
    assert!(
        fake.delete_route(&pod(), &other_gw)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        fake.delete_route(&pod(), &Route::new(net("10.9.0.0/16")))
            .await
            .unwrap_err()
            .is_not_found(),
        "not in the main table"
    );
    fake.delete_route(&pod(), &Route::new(net("10.9.0.0/16")).dev("eth1").table(100))
        .await
        .unwrap();
    assert!(fake.routes(&pod(), 100).await.unwrap().is_empty());
    fake.add_route(&pod(), &via).await.unwrap();
    fake.delete_link(&pod(), "eth1").await.unwrap();
    assert!(
        fake.routes(&pod(), 100).await.unwrap().is_empty(),
        "routes die with their device"
    );
}

#[tokio::test]
async fn rules_get_kernel_chosen_priorities_and_are_deleted_by_match() {
    let fake = setup();
    let first = Rule::new(net("10.1.0.5/24"), 100);
    let second = Rule::new(net("10.2.0.5/24"), 200);
    fake.add_rule(&pod(), &first).await.unwrap();
    fake.add_rule(&pod(), &second).await.unwrap();
    let rules = fake.rules(&pod()).await.unwrap();
    assert_eq!(rules.iter().find(|r| r.matches(&first)).unwrap().priority, 32765);
    assert_eq!(rules.iter().find(|r| r.matches(&second)).unwrap().priority, 32764);
    assert!(
        rules
            .iter()
            .any(|r| r.from.is_none() && r.table == TABLE_MAIN && r.family == IpFamily::V6)
    );
    fake.add_rule(&pod(), &Rule::new(net("2001:db8::5/64"), 100))
        .await
        .unwrap();
    let rules = fake.rules(&pod()).await.unwrap();
    let v6 = rules
        .iter()
        .find(|r| r.family == IpFamily::V6 && r.from.is_some())
        .unwrap();
    assert_eq!(v6.priority, 32765, "each family has its own list");
    fake.delete_rule(&pod(), &first).await.unwrap();
    assert!(fake.delete_rule(&pod(), &first).await.unwrap_err().is_not_found());
    let err = fake
        .add_rule(&pod(), &second.clone().priority(32764))
        .await
        .unwrap_err();
    assert!(err.is_exists());
}

#[tokio::test]
async fn sysctls_of_an_interface_need_the_interface() {
    let fake = setup();
    let err = fake
        .set_sysctl(&pod(), "net/ipv6/conf/eth1/accept_ra", "0")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    fake.set_sysctls(
        &pod(),
        &[
            Sysctl::new("net/ipv6/conf/all/disable_ipv6", "0"),
            Sysctl::new("net/ipv4/ip_forward", "1"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(fake.sysctl(&pod(), "net/ipv4/ip_forward").await.unwrap(), "1");
    assert!(
        fake.sysctl(&Netns::Host, "net/ipv4/ip_forward")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = fake.set_sysctl(&pod(), "net/../../etc", "1").await.unwrap_err();
    assert!(matches!(err, NetlinkError::Invalid { .. }));
}

#[tokio::test]
async fn vf_settings_go_through_the_pf() {
    let fake = setup();
    fake.add_sriov_pf(&Netns::Host, "ens2f0", 1500, 4);
    let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
    let vf = VfConfig {
        vf: 2,
        mac: Some(mac),
        vlan: Some(300),
        qos: 0,
    };
    fake.set_vf(&Netns::Host, "ens2f0", &vf).await.unwrap();
    assert_eq!(fake.vf(&Netns::Host, "ens2f0", 2), Some(vf.clone()));
    let err = fake
        .set_vf(&Netns::Host, "ens2f0", &VfConfig { vf: 4, ..vf.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::EINVAL));
    let err = fake.set_vf(&Netns::Host, "ens1", &vf).await.unwrap_err();
    assert_eq!(err.errno(), Some(libc_errno::EOPNOTSUPP));
}

#[tokio::test]
async fn injected_failures_hit_matching_calls_the_given_number_of_times_and_are_recorded() {
    let fake = setup();
    fake.create_link(&pod(), &NewLink::bridge("eth1")).await.unwrap();
    fake.fail_when(
        |call| matches!(call, Call::AddAddress { addr, .. } if addr.addr.is_ipv6()),
        libc_errno::EEXIST,
        Some(1),
    );
    fake.add_address(&pod(), "eth1", &NewAddress::new(net("10.0.0.5/24")))
        .await
        .unwrap();
    let v6 = NewAddress::new(net("2001:db8::5/64"));
    let err = fake.add_address(&pod(), "eth1", &v6).await.unwrap_err();
    assert!(err.is_exists());
    assert!(err.to_string().contains("2001:db8::5/64 on eth1"), "{err}");
    assert_eq!(
        fake.addresses(&pod(), "eth1").await.unwrap().len(),
        1,
        "the failed call changed nothing"
    );
    fake.add_address(&pod(), "eth1", &v6).await.unwrap();
    let adds = fake
        .calls()
        .into_iter()
        .filter(|c| c.op() == Op::AddAddress)
        .count();
    assert_eq!(adds, 3);
}

#[tokio::test]
async fn calls_are_recorded_in_order_and_mutations_can_be_filtered() {
    let fake = setup();
    fake.clear_calls();
    fake.create_link(
        &Netns::Host,
        &NewLink::macvlan("eth1", "ens1", MacvlanMode::Bridge).in_netns(pod()),
    )
    .await
    .unwrap();
    fake.link(&pod(), "eth1").await.unwrap();
    fake.set_link(&pod(), "eth1", &LinkChange::new().up(true))
        .await
        .unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 3);
    assert!(matches!(&calls[0], Call::CreateLink { ns: Netns::Host, link } if link.netns == Some(pod())));
    assert_eq!(
        calls[1],
        Call::GetLink {
            ns: pod(),
            name: "eth1".to_string()
        }
    );
    let mutations = fake.mutations();
    assert_eq!(mutations.len(), 2);
    assert_eq!(mutations[1].op(), Op::SetLink);
    assert_eq!(mutations[1].netns(), &pod());
}

#[tokio::test]
async fn a_cni_style_add_and_rollback_leaves_the_pod_namespace_clean() {
    let inspect = setup();
    // Code under test holds the fake as a trait object, as the CNI will.
    let fake: std::sync::Arc<dyn Netlink> = std::sync::Arc::new(inspect.clone());
    let ns = pod();
    fake.create_link(
        &Netns::Host,
        &NewLink::macvlan("eth1", "ens1", MacvlanMode::Bridge).in_netns(ns.clone()),
    )
    .await
    .unwrap();
    fake.set_sysctls(
        &ns,
        &[
            Sysctl::ipv6_conf("eth1", "disable_ipv6", "0"),
            Sysctl::ipv6_conf("eth1", "accept_ra", "0"),
        ],
    )
    .await
    .unwrap();
    fake.add_address(&ns, "eth1", &NewAddress::new(net("10.5.0.5/24")))
        .await
        .unwrap();
    fake.add_address(&ns, "eth1", &NewAddress::new(net("2001:db8:5::5/64")))
        .await
        .unwrap();
    fake.set_link(&ns, "eth1", &LinkChange::new().up(true))
        .await
        .unwrap();
    fake.add_route(
        &ns,
        &Route::new(net("10.6.0.0/16")).via(ip("10.5.0.1")).dev("eth1"),
    )
    .await
    .unwrap();
    let rule = Rule::new(net("10.5.0.5/24"), 150);
    fake.add_rule(&ns, &rule).await.unwrap();

    assert!(fake.delete_link_if_exists(&ns, "eth1").await.unwrap());
    fake.delete_rule(&ns, &rule).await.unwrap();
    let names: Vec<String> = fake
        .links(&ns)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, vec!["lo".to_string()]);
    assert!(fake.routes(&ns, TABLE_MAIN).await.unwrap().is_empty());
    assert!(!fake.rules(&ns).await.unwrap().iter().any(|r| r.from.is_some()));
    assert_eq!(inspect.sysctl_value(&ns, "net/ipv6/conf/eth1/accept_ra"), None);
    let ops: Vec<Op> = inspect.mutations().iter().map(Call::op).collect();
    assert_eq!(
        ops,
        vec![
            Op::CreateLink,
            Op::WriteSysctl,
            Op::AddAddress,
            Op::AddAddress,
            Op::SetLink,
            Op::AddRoute,
            Op::AddRule,
            Op::DeleteLink,
            Op::DeleteRule,
        ]
    );
    assert!(
        !fake.delete_link_if_exists(&ns, "eth1").await.unwrap(),
        "a second DEL finds nothing"
    );
}

#[tokio::test]
async fn a_link_group_is_deleted_together_in_its_namespace_only_and_is_recorded() {
    let fake = setup();
    fake.add_netns(Netns::named("pod2"));
    for (name, ns, group) in [
        ("eth1", pod(), Some(9)),
        ("eth2", pod(), Some(9)),
        ("eth3", pod(), None),
        ("eth1", Netns::named("pod2"), Some(9)),
    ] {
        let mut link = NewLink::macvlan(name, "ens1", MacvlanMode::Bridge).in_netns(ns);
        if let Some(g) = group {
            link = link.group(g);
        }
        assert_eq!(
            fake.create_link(&Netns::Host, &link).await.unwrap().group,
            group.unwrap_or(0)
        );
    }
    fake.clear_calls();
    assert!(fake.delete_link_group(&pod(), 9).await.unwrap());
    assert_eq!(fake.mutations(), [Call::DeleteLinkGroup { ns: pod(), group: 9 }]);
    let left: Vec<String> = fake
        .links(&pod())
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(left, ["lo", "eth3"]);
    assert!(
        fake.find_link(&Netns::named("pod2"), "eth1")
            .await
            .unwrap()
            .is_some(),
        "another namespace"
    );
    assert!(
        !fake.delete_link_group(&pod(), 9).await.unwrap(),
        "nothing left in the group"
    );
    assert!(
        !fake.delete_link_group(&pod(), 0).await.unwrap(),
        "group 0 deletes nothing"
    );
    assert!(
        !fake.delete_link_group(&Netns::named("gone"), 9).await.unwrap(),
        "no namespace"
    );
    assert!(fake.find_link(&pod(), "eth3").await.unwrap().is_some());
}
