//! Real-kernel tests of `RtNetlink`, each in fresh network namespaces made and removed by the test.
//!
//! The "host side" of every test is a namespace of its own, so nothing touches the machine's real host
//! namespace. Without the right to create namespaces (not root) each test prints why it skips.

#[macro_use]
mod common;

use std::net::IpAddr;

use common::{TestNs, net};
use danm_netlink::*;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The names of the links of `ns` other than `lo`, sorted.
async fn link_names(nl: &RtNetlink, ns: &Netns) -> Vec<String> {
    let mut names: Vec<String> = nl
        .links(ns)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names
}

/// A veth pair `a`/`b` inside `ns`, both up, as a parent for macvlans.
async fn veth_parent(nl: &RtNetlink, ns: &Netns, a: &str, b: &str) -> Link {
    nl.create_link(ns, &NewLink::veth(a, b).mtu(1500).up())
        .await
        .unwrap();
    nl.set_link(ns, b, &LinkChange::new().up(true)).await.unwrap();
    nl.link(ns, a).await.unwrap()
}

#[tokio::test]
async fn veth_pair_is_created_with_its_peer_in_another_namespace() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let link = nl
        .create_link(host, &NewLink::veth("vh0", "vp0").peer_in(pod.clone()).mtu(1400))
        .await
        .unwrap();
    assert_eq!(link.kind, LinkKind::Veth);
    assert_eq!(link.mtu, 1400);
    assert!(link.link_netnsid.is_some(), "the peer lives in another namespace");
    let peer = nl.link(pod, "vp0").await.unwrap();
    assert_eq!(peer.kind, LinkKind::Veth);
    assert_eq!(peer.parent_index, Some(link.index));
    assert!(nl.find_link(host, "vp0").await.unwrap().is_none());
}

#[tokio::test]
async fn macvlan_is_created_directly_in_the_target_namespace() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let parent = veth_parent(&nl, host, "par0", "par1").await;
    let mac: MacAddr = "02:aa:bb:cc:dd:01".parse().unwrap();
    let created = nl
        .create_link(
            host,
            &NewLink::macvlan("eth1", "par0", MacvlanMode::Bridge)
                .mtu(1400)
                .mac(mac)
                .in_netns(pod.clone()),
        )
        .await
        .unwrap();
    let link = nl.link(pod, "eth1").await.unwrap();
    assert_eq!(created, link);
    assert_eq!(
        link.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Bridge
        }
    );
    assert_eq!(link.mtu, 1400);
    assert_eq!(link.mac, Some(mac));
    assert_eq!(link.parent_index, Some(parent.index));
    assert!(
        link.link_netnsid.is_some(),
        "the parent is in the host-side namespace"
    );
    assert!(
        nl.find_link(host, "eth1").await.unwrap().is_none(),
        "never in the request's namespace"
    );

    nl.add_address(pod, "eth1", &NewAddress::new(net("10.20.0.5/24")))
        .await
        .unwrap();
    nl.add_address(pod, "eth1", &NewAddress::new(net("2001:db8:20::5/64")))
        .await
        .unwrap();
    nl.set_link(pod, "eth1", &LinkChange::new().up(true))
        .await
        .unwrap();
    let addrs = nl.addresses(pod, "eth1").await.unwrap();
    let v4 = addrs
        .iter()
        .find(|a| a.addr == net("10.20.0.5/24"))
        .expect("v4 read back");
    assert!(!v4.nodad);
    let v6 = addrs
        .iter()
        .find(|a| a.addr == net("2001:db8:20::5/64"))
        .expect("v6 read back");
    assert!(v6.nodad, "IPv6 addresses carry IFA_F_NODAD");
    assert!(nl.link(pod, "eth1").await.unwrap().up);
}

#[tokio::test]
async fn macvlan_modes_are_read_back_and_the_mtu_defaults_to_the_parent() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "pa0", "pa1").await;
    nl.set_link(host, "pa0", &LinkChange::new().mtu(1480))
        .await
        .unwrap();
    for (name, mode) in [("m-priv", MacvlanMode::Private), ("m-vepa", MacvlanMode::Vepa)] {
        let link = nl
            .create_link(host, &NewLink::macvlan(name, "pa0", mode).in_netns(pod.clone()))
            .await
            .unwrap();
        assert_eq!(link.kind, LinkKind::Macvlan { mode });
        assert_eq!(link.mtu, 1480, "MTU inherited from the parent");
    }
    veth_parent(&nl, host, "pb0", "pb1").await;
    let link = nl
        .create_link(
            host,
            &NewLink::macvlan("m-pass", "pb0", MacvlanMode::Passthru).in_netns(pod.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        link.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Passthru
        }
    );
}

#[tokio::test]
async fn macvlan_with_a_missing_parent_is_not_found_naming_the_parent() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let err = nl
        .create_link(
            host,
            &NewLink::macvlan("eth1", "nope0", MacvlanMode::Bridge).in_netns(pod.clone()),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("parent link nope0"), "{err}");
}

#[tokio::test]
async fn macvlan_created_on_the_host_side_can_be_moved_into_the_pod() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "mv0", "mv1").await;
    nl.create_link(host, &NewLink::macvlan("tmp0", "mv0", MacvlanMode::Bridge))
        .await
        .unwrap();
    nl.move_link(host, "tmp0", pod).await.unwrap();
    assert!(nl.find_link(host, "tmp0").await.unwrap().is_none());
    let moved = nl.link(pod, "tmp0").await.unwrap();
    assert_eq!(
        moved.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Bridge
        }
    );
}

#[tokio::test]
async fn vxlan_reads_back_vni_group_local_port_and_underlay() {
    let spaces = namespaces!("danm-nl", 1);
    let host = &spaces[0].ns;
    let nl = RtNetlink::new();
    let underlay = veth_parent(&nl, host, "ul0", "ul1").await;
    nl.add_address(host, "ul0", &NewAddress::new(net("192.168.77.1/24")))
        .await
        .unwrap();
    let mut spec = VxlanSpec::new(50);
    spec.group = Some(ip("239.0.0.50"));
    spec.local = Some(ip("192.168.77.1"));
    spec.underlay = Some("ul0".to_string());
    let link = nl
        .create_link(host, &NewLink::vxlan("vx_net1", spec).alias("danm:vx_net1").up())
        .await
        .unwrap();
    let LinkKind::Vxlan(info) = &link.kind else {
        panic!("not a vxlan: {link:?}");
    };
    assert_eq!(info.vni, 50);
    assert_eq!(info.port, 4789);
    assert_eq!(info.group, Some(ip("239.0.0.50")));
    assert_eq!(info.local, Some(ip("192.168.77.1")));
    assert_eq!(info.underlay_index, Some(underlay.index));
    assert!(info.learning && info.l2miss && info.l3miss);
    assert_eq!(link.alias.as_deref(), Some("danm:vx_net1"));
    assert!(link.up);

    let mut spec6 = VxlanSpec::new(300);
    spec6.group = Some(ip("ff02::12c"));
    spec6.underlay = Some("ul0".to_string());
    spec6.learning = false;
    let link6 = nl
        .create_link(host, &NewLink::vxlan("vx_net6", spec6))
        .await
        .unwrap();
    let LinkKind::Vxlan(info6) = &link6.kind else {
        panic!("not a vxlan: {link6:?}");
    };
    assert_eq!(info6.vni, 300);
    assert_eq!(info6.group, Some(ip("ff02::12c")));
    assert!(!info6.learning);
}

#[tokio::test]
async fn bridge_is_created_and_brought_up() {
    let spaces = namespaces!("danm-nl", 1);
    let host = &spaces[0].ns;
    let nl = RtNetlink::new();
    let link = nl
        .create_link(host, &NewLink::bridge("br-test").up())
        .await
        .unwrap();
    assert_eq!(link.kind, LinkKind::Bridge);
    assert!(link.up);
    let err = nl
        .create_link(host, &NewLink::bridge("br-test"))
        .await
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
}

#[tokio::test]
async fn addresses_are_added_replaced_listed_and_deleted() {
    let spaces = namespaces!("danm-nl", 1);
    let host = &spaces[0].ns;
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "ad0", "ad1").await;
    let v6 = net("2001:db8:1::7/64");
    nl.add_address(host, "ad0", &NewAddress::new(net("10.3.0.7/24")))
        .await
        .unwrap();
    nl.add_address(host, "ad0", &NewAddress::new(v6).nodad(false))
        .await
        .unwrap();
    let err = nl
        .add_address(host, "ad0", &NewAddress::new(net("10.3.0.7/24")))
        .await
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    let before = nl.addresses(host, "ad0").await.unwrap();
    assert!(!before.iter().find(|a| a.addr == v6).unwrap().nodad);
    // Post-processing re-adds delegated IPv6 addresses with NODAD (behaviour §4.10 step 4).
    nl.add_address(host, "ad0", &NewAddress::new(v6).replace())
        .await
        .unwrap();
    let after = nl.addresses(host, "ad0").await.unwrap();
    assert!(after.iter().find(|a| a.addr == v6).unwrap().nodad);
    nl.delete_address(host, "ad0", net("10.3.0.7/24")).await.unwrap();
    let left = nl.addresses(host, "ad0").await.unwrap();
    assert!(!left.iter().any(|a| a.addr == net("10.3.0.7/24")));
    let err = nl
        .delete_address(host, "ad0", net("10.3.0.7/24"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn ipv6_address_on_a_link_with_ipv6_disabled_is_refused_with_eacces() {
    let spaces = namespaces!("danm-nl", 1);
    let host = &spaces[0].ns;
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "d60", "d61").await;
    nl.set_sysctl(host, "net/ipv6/conf/d60/disable_ipv6", "1")
        .await
        .unwrap();
    let err = nl
        .add_address(host, "d60", &NewAddress::new(net("2001:db8:6::1/64")))
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(nix::errno::Errno::EACCES as i32), "{err}");
}

#[tokio::test]
async fn routes_go_into_a_custom_table_and_are_listed_by_table() {
    let spaces = namespaces!("danm-nl", 1);
    let ns = &spaces[0].ns;
    let nl = RtNetlink::new();
    veth_parent(&nl, ns, "rt0", "rt1").await;
    nl.add_address(ns, "rt0", &NewAddress::new(net("10.1.0.2/24")))
        .await
        .unwrap();
    nl.add_address(ns, "rt0", &NewAddress::new(net("2001:db8:1::2/64")))
        .await
        .unwrap();
    let r4 = Route::new(net("10.9.0.0/16"))
        .via(ip("10.1.0.1"))
        .dev("rt0")
        .table(100);
    let r6 = Route::new(net("2001:db8:9::/48"))
        .via(ip("2001:db8:1::1"))
        .dev("rt0")
        .table(100);
    nl.add_route(ns, &r4).await.unwrap();
    nl.add_route(ns, &r6).await.unwrap();
    let table = nl.routes(ns, 100).await.unwrap();
    assert!(table.contains(&r4), "{table:?}");
    assert!(table.contains(&r6), "{table:?}");
    let main = nl.routes(ns, TABLE_MAIN).await.unwrap();
    assert!(!main.iter().any(|r| r.dst == r4.dst), "not in the main table");
    // Host bits of the destination are cleared, as DANM's routes may carry them.
    let main_route = Route::new(net("10.8.1.1/16")).via(ip("10.1.0.1")).dev("rt0");
    nl.add_route(ns, &main_route).await.unwrap();
    let main = nl.routes(ns, TABLE_MAIN).await.unwrap();
    assert!(
        main.iter()
            .any(|r| r.dst == net("10.8.0.0/16") && r.gateway == Some(ip("10.1.0.1")))
    );
    let err = nl.add_route(ns, &r4).await.unwrap_err();
    assert!(err.is_exists(), "{err}");
}

#[tokio::test]
async fn routes_need_the_device_up_and_an_ipv4_gateway_on_a_connected_subnet() {
    // The fake mirrors these two kernel refusals; this test pins them down on the real kernel.
    let spaces = namespaces!("danm-nl", 1);
    let ns = &spaces[0].ns;
    let nl = RtNetlink::new();
    nl.create_link(ns, &NewLink::veth("dn0", "dn1")).await.unwrap();
    nl.add_address(ns, "dn0", &NewAddress::new(net("10.4.0.2/24")))
        .await
        .unwrap();
    let route = Route::new(net("10.44.0.0/16")).via(ip("10.4.0.1")).dev("dn0");
    // Down: no connected route, so the gateway is unreachable; a device-only route finds the device down.
    let err = nl.add_route(ns, &route).await.unwrap_err();
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENETUNREACH as i32), "{err}");
    let direct = Route::new(net("10.46.0.0/16")).dev("dn0");
    let err = nl.add_route(ns, &direct).await.unwrap_err();
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENETDOWN as i32), "{err}");
    nl.set_link(ns, "dn0", &LinkChange::new().up(true)).await.unwrap();
    let far = Route::new(net("10.45.0.0/16")).via(ip("10.99.0.1")).dev("dn0");
    let err = nl.add_route(ns, &far).await.unwrap_err();
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENETUNREACH as i32), "{err}");
}

#[tokio::test]
async fn policy_rules_are_added_listed_and_deleted() {
    let spaces = namespaces!("danm-nl", 1);
    let ns = &spaces[0].ns;
    let nl = RtNetlink::new();
    let rule = Rule::new(net("10.1.0.5/24"), 100);
    nl.add_rule(ns, &rule).await.unwrap();
    let rule6 = Rule::new(net("2001:db8:1::5/64"), 100).priority(1000);
    nl.add_rule(ns, &rule6).await.unwrap();
    let rules = nl.rules(ns).await.unwrap();
    let found = rules.iter().find(|r| r.matches(&rule)).expect("v4 rule listed");
    assert_eq!(found.family, IpFamily::V4);
    assert_eq!(found.priority, 32765, "kernel-chosen priority below main's 32766");
    assert!(
        rules
            .iter()
            .any(|r| r.matches(&rule6) && r.priority == 1000 && r.family == IpFamily::V6)
    );
    assert!(
        rules.iter().any(|r| r.from.is_none() && r.table == TABLE_MAIN),
        "default rules listed"
    );
    nl.delete_rule(ns, &rule).await.unwrap();
    nl.delete_rule(ns, &rule6).await.unwrap();
    let rules = nl.rules(ns).await.unwrap();
    assert!(!rules.iter().any(|r| r.matches(&rule) || r.matches(&rule6)));
    let err = nl.delete_rule(ns, &rule).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn sysctls_are_written_inside_the_target_namespace_only() {
    let spaces = namespaces!("danm-nl", 2);
    let (a, b) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    veth_parent(&nl, b, "sy0", "sy1").await;
    // New namespaces inherit the host's IPv4 settings, so flip whatever `a` has.
    let in_a = nl.sysctl(a, "net/ipv4/ip_forward").await.unwrap();
    let flipped = if in_a == "1" { "0" } else { "1" };
    nl.set_sysctls(
        b,
        &[
            Sysctl::new("net/ipv4/ip_forward", flipped),
            Sysctl::ipv6_conf("sy0", "disable_ipv6", "0"),
            Sysctl::ipv6_conf("sy0", "autoconf", "0"),
            Sysctl::ipv6_conf("sy0", "accept_ra", "0"),
            Sysctl::ipv6_conf("sy0", "ndisc_notify", "1"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(nl.sysctl(b, "net/ipv4/ip_forward").await.unwrap(), flipped);
    assert_eq!(
        nl.sysctl(a, "net/ipv4/ip_forward").await.unwrap(),
        in_a,
        "other namespace untouched"
    );
    assert_eq!(nl.sysctl(b, "net/ipv6/conf/sy0/ndisc_notify").await.unwrap(), "1");
    assert_eq!(nl.sysctl(b, "net/ipv6/conf/sy0/accept_ra").await.unwrap(), "0");
    let err = nl
        .set_sysctl(a, "net/ipv6/conf/sy0/accept_ra", "0")
        .await
        .unwrap_err();
    assert!(
        err.is_not_found(),
        "sy0 exists only in the other namespace: {err}"
    );
    let err = nl.set_sysctl(b, "../etc/passwd", "x").await.unwrap_err();
    assert!(matches!(err, NetlinkError::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn rename_mtu_mac_alias_and_up_are_applied_in_one_change() {
    let spaces = namespaces!("danm-nl", 1);
    let ns = &spaces[0].ns;
    let nl = RtNetlink::new();
    nl.create_link(ns, &NewLink::veth("ch0", "ch1")).await.unwrap();
    let mac: MacAddr = "02:11:22:33:44:55".parse().unwrap();
    let change = LinkChange::new()
        .name("net7")
        .mtu(1300)
        .mac(mac)
        .alias("danm")
        .up(true);
    nl.set_link(ns, "ch0", &change).await.unwrap();
    assert!(nl.find_link(ns, "ch0").await.unwrap().is_none());
    let link = nl.link(ns, "net7").await.unwrap();
    assert_eq!(
        (link.mtu, link.mac, link.alias.as_deref(), link.up),
        (1300, Some(mac), Some("danm"), true)
    );
    nl.set_link(ns, "net7", &LinkChange::new().up(false).name("net8"))
        .await
        .unwrap();
    let link = nl.link(ns, "net8").await.unwrap();
    assert!(!link.up);
    let err = nl
        .set_link(ns, "net8", &LinkChange::new().name("ch1"))
        .await
        .unwrap_err();
    assert!(err.is_exists(), "the peer holds that name: {err}");
}

#[tokio::test]
async fn deleting_links_and_missing_objects_are_told_apart() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "dl0", "dl1").await;
    nl.create_link(
        host,
        &NewLink::macvlan("eth1", "dl0", MacvlanMode::Bridge).in_netns(pod.clone()),
    )
    .await
    .unwrap();
    nl.delete_link(pod, "eth1").await.unwrap();
    let err = nl.link(pod, "eth1").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.errno(), Some(nix::errno::Errno::ENODEV as i32));
    let err = nl.delete_link(pod, "eth1").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!nl.delete_link_if_exists(pod, "eth1").await.unwrap());
    // Deleting the veth deletes its peer with it.
    assert!(nl.delete_link_if_exists(host, "dl0").await.unwrap());
    assert!(nl.find_link(host, "dl1").await.unwrap().is_none());
}

#[tokio::test]
async fn operations_in_a_namespace_that_is_gone_report_netns_not_found() {
    let spaces = namespaces!("danm-nl", 1);
    let nl = RtNetlink::new();
    let gone = Netns::named("danm-nl-never-created");
    assert!(!nl.netns_exists(&gone).await.unwrap());
    let err = nl.links(&gone).await.unwrap_err();
    assert!(matches!(err, NetlinkError::NetnsNotFound { .. }), "{err}");
    assert!(err.is_not_found());
    assert!(!nl.delete_link_if_exists(&gone, "eth0").await.unwrap());
    let err = nl
        .set_sysctl(&gone, "net/ipv4/ip_forward", "1")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(nl.netns_exists(&spaces[0].ns).await.unwrap());
}

#[tokio::test]
async fn a_namespace_recreated_under_the_same_name_gets_a_fresh_socket() {
    let spaces = namespaces!("danm-nl", 1);
    let name = spaces[0].name.clone();
    let ns = spaces[0].ns.clone();
    let nl = RtNetlink::new();
    nl.create_link(&ns, &NewLink::bridge("br-old")).await.unwrap();
    drop(spaces);
    let _again = TestNs::named(&name).unwrap();
    let links = nl.links(&ns).await.unwrap();
    assert!(
        !links.iter().any(|l| l.name == "br-old"),
        "saw the old namespace: {links:?}"
    );
}

#[tokio::test]
async fn kinds_missing_from_the_kernel_fail_with_not_supported() {
    // The build machines' kernel has no ipvlan, 802.1q or dummy driver. On a kernel that has them, the link
    // must come back with the right kind instead.
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "np0", "np1").await;
    let cases = [
        NewLink::ipvlan("ipv0", "np0", IpvlanMode::L2).in_netns(pod.clone()),
        NewLink::vlan("np0.100", "np0", 100),
        NewLink::dummy("dum0"),
    ];
    for new in cases {
        match nl.create_link(host, &new).await {
            Ok(link) => {
                eprintln!("kernel has {}: checking the link", new.kind.name());
                let expected = match new.kind {
                    NewLinkKind::Ipvlan { mode, .. } => LinkKind::Ipvlan { mode },
                    NewLinkKind::Vlan { id, .. } => LinkKind::Vlan { id },
                    _ => LinkKind::Dummy,
                };
                assert_eq!(link.kind, expected);
            }
            Err(err) => {
                assert!(err.is_not_supported(), "{err}");
                assert_eq!(err.errno(), Some(nix::errno::Errno::EOPNOTSUPP as i32));
                let text = err.to_string();
                assert!(text.contains(&format!("link kind {}", new.kind.name())), "{text}");
                assert!(text.contains(&new.name), "{text}");
                eprintln!("as expected on this kernel: {text}");
            }
        }
    }
}

#[tokio::test]
async fn vf_settings_reach_the_kernel_and_a_device_without_vfs_refuses_them() {
    let spaces = namespaces!("danm-nl", 1);
    let ns = &spaces[0].ns;
    let nl = RtNetlink::new();
    veth_parent(&nl, ns, "pf0", "pf1").await;
    let vf = VfConfig {
        vf: 0,
        mac: Some("02:00:00:00:00:09".parse().unwrap()),
        vlan: Some(100),
        qos: 0,
    };
    let err = nl.set_vf(ns, "pf0", &vf).await.unwrap_err();
    eprintln!("veth refuses VF settings: {err}");
    assert!(
        err.errno().is_some(),
        "a kernel refusal, not a protocol error: {err}"
    );
    assert!(err.to_string().contains("VF 0 of pf0"), "{err}");
    let err = nl.set_vf(ns, "nope0", &vf).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn forgetting_a_namespace_releases_it_so_the_kernel_can_destroy_it() {
    let mut spaces = namespaces!("danm-nl", 2);
    let pod = spaces.pop().unwrap();
    let host = &spaces[0].ns;
    let nl = RtNetlink::new();
    nl.create_link(host, &NewLink::veth("fg0", "fg1").peer_in(pod.ns.clone()))
        .await
        .unwrap();
    // Opens (and caches) a socket inside the pod namespace.
    assert!(nl.link(&pod.ns, "fg1").await.is_ok());
    nl.forget_netns(&pod.ns);
    drop(pod);
    // The namespace dies once nothing holds it, and its veth end takes the host end with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while nl.find_link(host, "fg0").await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pod namespace was kept alive"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_interfaces_are_set_up_concurrently_in_one_pod_namespace() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (spaces[0].ns.clone(), spaces[1].ns.clone());
    let nl = std::sync::Arc::new(RtNetlink::new());
    veth_parent(&nl, &host, "cc0", "cc1").await;
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (nl, host, pod) = (nl.clone(), host.clone(), pod.clone());
        tasks.push(tokio::spawn(async move {
            let name = format!("net{i}");
            nl.create_link(
                &host,
                &NewLink::macvlan(&name, "cc0", MacvlanMode::Bridge).in_netns(pod.clone()),
            )
            .await?;
            nl.set_sysctls(&pod, &[Sysctl::ipv4_conf(&name, "arp_notify", "1")])
                .await?;
            nl.add_address(&pod, &name, &NewAddress::new(net(&format!("10.60.{i}.2/24"))))
                .await?;
            nl.set_link(&pod, &name, &LinkChange::new().up(true)).await?;
            nl.add_route(
                &pod,
                &Route::new(net(&format!("10.70.{i}.0/24")))
                    .via(ip(&format!("10.60.{i}.1")))
                    .dev(&name),
            )
            .await?;
            Ok::<_, NetlinkError>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let links = nl.links(&pod).await.unwrap();
    assert_eq!(
        links.iter().filter(|l| l.name.starts_with("net") && l.up).count(),
        8
    );
    assert_eq!(
        nl.routes(&pod, TABLE_MAIN)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.gateway.is_some())
            .count(),
        8
    );
    assert_eq!(
        nl.sysctl(&pod, "net/ipv4/conf/net5/arp_notify").await.unwrap(),
        "1"
    );
}

#[tokio::test]
async fn a_link_without_sriov_reports_no_vfs_and_a_missing_pf_is_not_found() {
    let spaces = namespaces!("danm-nl", 1);
    let ns = &spaces[0].ns;
    let nl = RtNetlink::new();
    veth_parent(&nl, ns, "vf0", "vf1").await;
    // The request carries RTEXT_FILTER_VF; a veth has no IFLA_VFINFO_LIST.
    assert_eq!(nl.vfs(ns, "vf0").await.unwrap(), []);
    let err = nl.vfs(ns, "nope0").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("VFs of nope0"), "{err}");
}

#[tokio::test]
async fn links_deleted_together_are_all_gone_missing_ones_are_skipped_and_others_stay() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "gpar0", "gpar1").await;
    for name in ["m1", "m2", "m3", "keep"] {
        nl.create_link(
            host,
            &NewLink::macvlan(name, "gpar0", MacvlanMode::Bridge).in_netns(pod.clone()),
        )
        .await
        .unwrap();
    }
    let doomed: Vec<String> = ["m1", "m2", "gone", "m3"].map(String::from).to_vec();
    nl.delete_links(pod, &doomed).await.unwrap();
    assert_eq!(link_names(&nl, pod).await, ["keep"]);
    let keep = nl.link(pod, "keep").await.unwrap();
    assert_eq!(
        keep.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Bridge
        },
        "untouched"
    );
    // Nothing to delete, or a namespace that is gone, is not an error.
    nl.delete_links(pod, &["m1".into(), "m2".into()]).await.unwrap();
}

#[tokio::test]
async fn a_link_group_set_at_creation_is_deleted_with_one_request_and_other_links_stay() {
    let spaces = namespaces!("danm-nl", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    veth_parent(&nl, host, "lgpar0", "lgpar1").await;
    for (name, group) in [
        ("g1", Some(77)),
        ("g2", Some(77)),
        ("other", Some(78)),
        ("plain", None),
    ] {
        let mut link = NewLink::macvlan(name, "lgpar0", MacvlanMode::Bridge).in_netns(pod.clone());
        if let Some(g) = group {
            link = link.group(g);
        }
        let made = nl.create_link(host, &link).await.unwrap();
        assert_eq!(made.group, group.unwrap_or(0), "{name}: group read back");
    }
    assert!(nl.delete_link_group(pod, 77).await.unwrap());
    assert_eq!(link_names(&nl, pod).await, ["other", "plain"]);
    // An empty group, group 0 (every link's default) and a missing namespace delete nothing and are not errors.
    assert!(!nl.delete_link_group(pod, 77).await.unwrap());
    assert!(!nl.delete_link_group(pod, 0).await.unwrap());
    assert!(nl.link(pod, "plain").await.is_ok());
    assert!(
        !nl.delete_link_group(&Netns::named("danm-nl-never-created"), 78)
            .await
            .unwrap()
    );
}
