//! Real-kernel tests of the link kinds the build machines lack (ipvlan, 802.1q vlan, dummy), run by the kernel lane.
//!
//! Each test works in fresh network namespaces of its own. On a kernel without the kind, the first request for it
//! fails with NotSupported and the test prints why it skips; inside the kernel lane's VM (`make kernel-lane`,
//! `DANM_KERNEL_LANE=1`) the same thing is a failure, so the lane cannot pass by skipping. The facts are read
//! back through netlink, and for VLANs also from the kernel's own `/proc/net/vlan/config`; traffic between
//! ipvlan namespaces is checked with `ping`.

#[macro_use]
mod common;

use std::net::IpAddr;
use std::process::Command;

use common::net;
use danm_netlink::*;
use nix::errno::Errno;
use nix::sched::CloneFlags;

/// `IFA_F_TENTATIVE`: the address still waits for duplicate address detection.
const IFA_F_TENTATIVE: u32 = 0x40;

/// The value of a create that needs a kernel feature; when the kernel lacks it, a printed skip outside the
/// kernel lane and a failure inside it. Any other error fails the test.
macro_rules! needs_kind {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(err) if err.is_not_supported() => {
                danm_testkit::fixtures::skip_kernel_feature(&format!(
                    "this kernel lacks a link kind ({err}); `make kernel-lane` runs this test"
                ));
                return;
            }
            Err(err) => panic!("{err}"),
        }
    };
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// Runs `f` on a fresh thread that joined `ns` (processes it spawns start in `ns` too).
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(ns.file().expect("a namespace file")).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// `/proc/net/vlan/config` of `ns` as (device, VLAN id, parent) triples: the 8021q module's own view.
fn proc_vlans(ns: &Netns) -> Vec<(String, u16, String)> {
    let text = in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/vlan/config")
    })
    .unwrap();
    text.lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split('|').map(str::trim).collect();
            match parts.as_slice() {
                [dev, id, parent] => Some((dev.to_string(), id.parse().ok()?, parent.to_string())),
                _ => None,
            }
        })
        .collect()
}

/// `ping` from `ns` to `to` (optionally from source `from`), one echo, waiting up to `wait` seconds for the
/// reply. Ok(()) on a reply; Err with ping's output otherwise.
fn ping(ns: &Netns, to: IpAddr, from: Option<IpAddr>, wait: u32) -> Result<(), String> {
    in_netns(ns, move || {
        let mut cmd = Command::new("ping");
        cmd.arg(if to.is_ipv6() { "-6" } else { "-4" });
        cmd.args(["-c", "1", "-W", &wait.to_string()]);
        if let Some(from) = from {
            cmd.arg("-I").arg(from.to_string());
        }
        cmd.arg(to.to_string());
        let out = cmd.output().map_err(|err| format!("cannot run ping: {err}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ping {to} ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
}

/// A dummy link `name` in `ns`, up, as the host device (a NIC stand-in) for ipvlan and VLAN links.
async fn dummy_nic(nl: &RtNetlink, ns: &Netns, name: &str, mtu: u32) -> Result<Link, NetlinkError> {
    nl.create_link(ns, &NewLink::dummy(name).mtu(mtu).up()).await
}

#[tokio::test]
async fn ipvlan_l2_is_created_directly_in_the_pod_namespace_with_the_parent_mtu_on_a_dummy_parent() {
    let spaces = namespaces!("danm-vm", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let parent = needs_kind!(dummy_nic(&nl, host, "ext0", 1450).await);
    assert_eq!(parent.kind, LinkKind::Dummy);
    assert_eq!(parent.mtu, 1450);

    // The CNI names the link after the first 15 characters of the endpoint id, creates it in the pod with the
    // parent's MTU, then renames it and brings it up.
    let created = needs_kind!(
        nl.create_link(
            host,
            &NewLink::ipvlan("a1b2c3d4e5f6a7b", "ext0", IpvlanMode::L2)
                .mtu(parent.mtu)
                .in_netns(pod.clone()),
        )
        .await
    );
    assert_eq!(created.kind, LinkKind::Ipvlan { mode: IpvlanMode::L2 });
    assert_eq!(created.mtu, 1450);
    assert_eq!(created.parent_index, Some(parent.index));
    assert!(
        created.link_netnsid.is_some(),
        "the parent is in another namespace"
    );
    assert_eq!(created.mac, parent.mac, "ipvlan links share the parent's MAC");
    assert!(
        nl.find_link(host, "a1b2c3d4e5f6a7b").await.unwrap().is_none(),
        "never in the request's namespace"
    );
    nl.set_link(pod, "a1b2c3d4e5f6a7b", &LinkChange::new().name("eth1").up(true))
        .await
        .unwrap();
    let link = nl.link(pod, "eth1").await.unwrap();
    assert_eq!((link.index, link.up), (created.index, true));

    // Without an explicit MTU the kernel takes the parent's; the other modes are read back as created.
    for (name, mode) in [
        ("l3-0", IpvlanMode::L3),
        ("l3s-0", IpvlanMode::L3s),
        ("l2-0", IpvlanMode::L2),
    ] {
        let link = nl
            .create_link(host, &NewLink::ipvlan(name, "ext0", mode).in_netns(pod.clone()))
            .await
            .unwrap();
        assert_eq!(link.kind, LinkKind::Ipvlan { mode }, "{name}");
        assert_eq!(link.mtu, 1450, "{name}: MTU inherited from the parent");
    }

    nl.delete_link(pod, "eth1").await.unwrap();
    assert!(nl.find_link(pod, "eth1").await.unwrap().is_none());
    assert!(
        nl.find_link(host, "ext0").await.unwrap().is_some(),
        "the parent stays"
    );
}

#[tokio::test]
async fn ipvlan_on_a_vlan_parent_named_network_id_dot_vlan_lands_in_the_pod() {
    let spaces = namespaces!("danm-vm", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let nic = needs_kind!(dummy_nic(&nl, host, "ens1", 1500).await);
    // Network `ext` with vlan 500: netwatcher makes `ext.500` on host_device, the CNI uses it as the parent.
    let vlan = needs_kind!(
        nl.create_link(host, &NewLink::vlan("ext.500", "ens1", 500).up())
            .await
    );
    assert_eq!(vlan.kind, LinkKind::Vlan { id: 500 });
    assert_eq!(vlan.parent_index, Some(nic.index));
    assert_eq!(vlan.mtu, 1500);
    let link = needs_kind!(
        nl.create_link(
            host,
            &NewLink::ipvlan("net1", "ext.500", IpvlanMode::L2)
                .mtu(vlan.mtu)
                .in_netns(pod.clone()),
        )
        .await
    );
    assert_eq!(link.kind, LinkKind::Ipvlan { mode: IpvlanMode::L2 });
    assert_eq!(
        link.parent_index,
        Some(vlan.index),
        "the VLAN link is the parent, not the NIC"
    );
    assert_eq!(nl.link(pod, "net1").await.unwrap(), link);
    assert_eq!(
        proc_vlans(host),
        vec![("ext.500".to_string(), 500, "ens1".to_string())]
    );
}

#[tokio::test]
async fn ipvlan_on_a_vxlan_parent_named_vx_network_id_takes_the_vxlan_mtu() {
    let spaces = namespaces!("danm-vm", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    nl.create_link(host, &NewLink::veth("ul0", "ul1").up())
        .await
        .unwrap();
    nl.set_link(host, "ul1", &LinkChange::new().up(true))
        .await
        .unwrap();
    nl.add_address(host, "ul0", &NewAddress::new(net("192.168.50.1/24")))
        .await
        .unwrap();
    let mut spec = VxlanSpec::new(50);
    spec.local = Some(ip("192.168.50.1"));
    spec.group = Some(ip("239.1.1.50"));
    spec.underlay = Some("ul0".to_string());
    let vxlan = nl
        .create_link(host, &NewLink::vxlan("vx_ext", spec).up())
        .await
        .unwrap();
    assert_eq!(vxlan.mtu, 1450, "1500 minus the VxLAN overhead");
    let link = needs_kind!(
        nl.create_link(
            host,
            &NewLink::ipvlan("net2", "vx_ext", IpvlanMode::L2)
                .mtu(vxlan.mtu)
                .in_netns(pod.clone()),
        )
        .await
    );
    assert_eq!(link.kind, LinkKind::Ipvlan { mode: IpvlanMode::L2 });
    assert_eq!(link.parent_index, Some(vxlan.index));
    assert_eq!(link.mtu, 1450);
    nl.add_address(pod, "net2", &NewAddress::new(net("10.77.0.5/24")))
        .await
        .unwrap();
    nl.set_link(pod, "net2", &LinkChange::new().up(true))
        .await
        .unwrap();
    assert!(nl.link(pod, "net2").await.unwrap().up);
}

#[tokio::test]
async fn vlan_links_named_network_id_dot_vlan_are_created_read_back_refused_twice_and_die_with_their_parent()
{
    let spaces = namespaces!("danm-vm", 1);
    let host = &spaces[0].ns;
    let nl = RtNetlink::new();
    let nic = needs_kind!(dummy_nic(&nl, host, "ens2", 9000).await);
    for (name, id) in [("ext.100", 100u16), ("int.4094", 4094), ("low.1", 1)] {
        let link = needs_kind!(
            nl.create_link(
                host,
                &NewLink::vlan(name, "ens2", id).alias(format!("danm:{name}")).up()
            )
            .await
        );
        assert_eq!(link.kind, LinkKind::Vlan { id }, "{name}");
        assert_eq!(link.parent_index, Some(nic.index), "{name}");
        assert_eq!(link.mtu, 9000, "{name}: MTU inherited from host_device");
        assert_eq!(link.alias.as_deref(), Some(format!("danm:{name}").as_str()));
        assert!(link.up, "{name}");
    }
    let mut seen = proc_vlans(host);
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("ext.100".to_string(), 100, "ens2".to_string()),
            ("int.4094".to_string(), 4094, "ens2".to_string()),
            ("low.1".to_string(), 1, "ens2".to_string()),
        ]
    );

    // The same VLAN id twice on one parent, or the same name, is refused as existing.
    let err = nl
        .create_link(host, &NewLink::vlan("other.100", "ens2", 100))
        .await
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    let err = nl
        .create_link(host, &NewLink::vlan("ext.100", "ens2", 200))
        .await
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    // 4095 is reserved.
    let err = nl
        .create_link(host, &NewLink::vlan("bad.4095", "ens2", 4095))
        .await
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ERANGE as i32), "{err}");
    assert!(!err.is_not_supported(), "a refusal, not a missing kind: {err}");

    nl.delete_link(host, "low.1").await.unwrap();
    assert!(nl.find_link(host, "low.1").await.unwrap().is_none());
    // Drift netwatcher must repair: deleting host_device takes its VLAN links with it.
    nl.delete_link(host, "ens2").await.unwrap();
    assert!(nl.find_link(host, "ext.100").await.unwrap().is_none());
    assert!(nl.find_link(host, "int.4094").await.unwrap().is_none());
    assert!(proc_vlans(host).is_empty());
}

#[tokio::test]
async fn dummy_links_carry_mtu_mac_and_alias_and_a_vlan_on_a_dummy_works_inside_the_pod() {
    let spaces = namespaces!("danm-vm", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let mac: MacAddr = "02:aa:00:00:00:01".parse().unwrap();
    let link = needs_kind!(
        nl.create_link(
            host,
            &NewLink::dummy("dum0")
                .mtu(9000)
                .mac(mac)
                .alias("0000:3b:02.1")
                .up(),
        )
        .await
    );
    assert_eq!(link.kind, LinkKind::Dummy);
    assert_eq!(
        (link.mtu, link.mac, link.alias.as_deref(), link.up),
        (9000, Some(mac), Some("0000:3b:02.1"), true)
    );

    // The vfio SR-IOV path with a VLAN: a dummy named after the endpoint (14 characters) in the pod, and a VLAN
    // link on it named as the pod interface, with the VF's MAC.
    let dummy = nl
        .create_link(host, &NewLink::dummy("ep-0123456789a").in_netns(pod.clone()).up())
        .await
        .unwrap();
    let vf_mac: MacAddr = "02:bb:00:00:00:02".parse().unwrap();
    let vlan = needs_kind!(
        nl.create_link(
            pod,
            &NewLink::vlan("net1", "ep-0123456789a", 300).mac(vf_mac).up()
        )
        .await
    );
    assert_eq!(vlan.kind, LinkKind::Vlan { id: 300 });
    assert_eq!(vlan.parent_index, Some(dummy.index));
    assert_eq!(vlan.mac, Some(vf_mac));
    assert!(nl.find_link(host, "ep-0123456789a").await.unwrap().is_none());
    assert_eq!(
        proc_vlans(pod),
        vec![("net1".to_string(), 300, "ep-0123456789a".to_string())]
    );

    nl.delete_link(host, "dum0").await.unwrap();
    assert!(nl.find_link(host, "dum0").await.unwrap().is_none());
}

#[tokio::test]
async fn ipv6_nodad_addresses_routes_and_policy_rules_are_set_on_an_ipvlan_interface() {
    let spaces = namespaces!("danm-vm", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    needs_kind!(dummy_nic(&nl, host, "ext0", 1500).await);
    needs_kind!(
        nl.create_link(
            host,
            &NewLink::ipvlan("eth1", "ext0", IpvlanMode::L2).in_netns(pod.clone())
        )
        .await
    );
    nl.set_link(pod, "eth1", &LinkChange::new().up(true))
        .await
        .unwrap();
    nl.add_address(pod, "eth1", &NewAddress::new(net("10.50.0.5/24")))
        .await
        .unwrap();
    nl.add_address(pod, "eth1", &NewAddress::new(net("2001:db8:50::5/64")))
        .await
        .unwrap();
    // A second IPv6 address without NODAD shows what NODAD avoids: duplicate address detection.
    nl.add_address(
        pod,
        "eth1",
        &NewAddress::new(net("2001:db8:50::6/64")).nodad(false),
    )
    .await
    .unwrap();
    let addrs = nl.addresses(pod, "eth1").await.unwrap();
    let nodad = addrs.iter().find(|a| a.addr == net("2001:db8:50::5/64")).unwrap();
    assert!(nodad.nodad);
    assert_eq!(nodad.flags & IFA_F_TENTATIVE, 0, "usable at once: {nodad:?}");
    let dad = addrs.iter().find(|a| a.addr == net("2001:db8:50::6/64")).unwrap();
    assert!(!dad.nodad);
    assert_ne!(dad.flags & IFA_F_TENTATIVE, 0, "still in DAD: {dad:?}");

    // The network's routes go into its own table, with a rule from the pod's address into it (DANM rt_tables).
    let r4 = Route::new(net("10.60.0.0/16"))
        .via(ip("10.50.0.1"))
        .dev("eth1")
        .table(100);
    let r6 = Route::new(net("2001:db8:60::/48"))
        .via(ip("2001:db8:50::1"))
        .dev("eth1")
        .table(100);
    nl.add_route(pod, &r4).await.unwrap();
    nl.add_route(pod, &r6).await.unwrap();
    let table = nl.routes(pod, 100).await.unwrap();
    assert!(table.contains(&r4) && table.contains(&r6), "{table:?}");
    let rule4 = Rule::new(net("10.50.0.5/32"), 100);
    let rule6 = Rule::new(net("2001:db8:50::5/128"), 100);
    nl.add_rule(pod, &rule4).await.unwrap();
    nl.add_rule(pod, &rule6).await.unwrap();
    let rules = nl.rules(pod).await.unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r.matches(&rule4) && r.family == IpFamily::V4)
    );
    assert!(
        rules
            .iter()
            .any(|r| r.matches(&rule6) && r.family == IpFamily::V6)
    );
    assert!(
        nl.routes(host, 100).await.unwrap().is_empty(),
        "the host side's table 100 is untouched"
    );
}

#[tokio::test]
async fn two_ipvlan_pods_on_one_parent_ping_each_other_over_ipv4_and_ipv6() {
    let spaces = namespaces!("danm-vm", 3);
    let (host, pod_a, pod_b) = (&spaces[0].ns, &spaces[1].ns, &spaces[2].ns);
    let nl = RtNetlink::new();
    needs_kind!(dummy_nic(&nl, host, "ext0", 1500).await);
    for (pod, v4, v6) in [
        (pod_a, "10.90.0.1/24", "2001:db8:90::1/64"),
        (pod_b, "10.90.0.2/24", "2001:db8:90::2/64"),
    ] {
        needs_kind!(
            nl.create_link(
                host,
                &NewLink::ipvlan("eth1", "ext0", IpvlanMode::L2).in_netns(pod.clone())
            )
            .await
        );
        nl.add_address(pod, "eth1", &NewAddress::new(net(v4)))
            .await
            .unwrap();
        nl.add_address(pod, "eth1", &NewAddress::new(net(v6)))
            .await
            .unwrap();
        nl.set_link(pod, "eth1", &LinkChange::new().up(true))
            .await
            .unwrap();
    }
    ping(pod_a, ip("10.90.0.2"), None, 5).unwrap();
    ping(pod_b, ip("10.90.0.1"), None, 5).unwrap();
    ping(pod_a, ip("2001:db8:90::2"), None, 5).unwrap();
    ping(pod_b, ip("2001:db8:90::1"), None, 5).unwrap();
    // An address nobody has gets no answer: the replies above came from the other pod.
    assert!(ping(pod_a, ip("10.90.0.3"), None, 1).is_err());
}

#[tokio::test]
async fn a_pod_reaches_another_subnet_only_through_its_policy_route_on_ipvlan() {
    let spaces = namespaces!("danm-vm", 3);
    let (host, pod_a, pod_b) = (&spaces[0].ns, &spaces[1].ns, &spaces[2].ns);
    let nl = RtNetlink::new();
    needs_kind!(dummy_nic(&nl, host, "ext0", 1500).await);
    for pod in [pod_a, pod_b] {
        needs_kind!(
            nl.create_link(
                host,
                &NewLink::ipvlan("eth1", "ext0", IpvlanMode::L2).in_netns(pod.clone())
            )
            .await
        );
        nl.set_link(pod, "eth1", &LinkChange::new().up(true))
            .await
            .unwrap();
    }
    nl.add_address(pod_a, "eth1", &NewAddress::new(net("10.91.0.5/24")))
        .await
        .unwrap();
    nl.add_address(pod_b, "eth1", &NewAddress::new(net("10.92.0.6/24")))
        .await
        .unwrap();
    nl.add_route(
        pod_b,
        &Route::new(net("10.91.0.0/24")).dev("eth1").scope(Scope::Link),
    )
    .await
    .unwrap();
    // Pod A has no route to 10.92.0.0/24 in its main table...
    let b = ip("10.92.0.6");
    let a_src = Some(ip("10.91.0.5"));
    assert!(ping(pod_a, b, a_src, 1).is_err(), "no route yet");
    // ...only in table 200, selected by a rule on its source address.
    nl.add_route(
        pod_a,
        &Route::new(net("10.92.0.0/24"))
            .dev("eth1")
            .scope(Scope::Link)
            .table(200),
    )
    .await
    .unwrap();
    nl.add_rule(pod_a, &Rule::new(net("10.91.0.5/32"), 200))
        .await
        .unwrap();
    ping(pod_a, b, a_src, 5).unwrap();
}

#[tokio::test]
async fn ipvlan_with_a_missing_parent_fails_with_not_found_naming_the_parent() {
    // The broken case: the network's VLAN link was never made. This fails the same way on every kernel.
    let spaces = namespaces!("danm-vm", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let err = nl
        .create_link(
            host,
            &NewLink::ipvlan("net1", "ext.500", IpvlanMode::L2).in_netns(pod.clone()),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!err.is_not_supported(), "{err}");
    let text = err.to_string();
    assert!(text.contains("parent link ext.500"), "{text}");
    let err = nl
        .create_link(host, &NewLink::vlan("ext.500", "ens9", 500))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("parent link ens9"), "{err}");
    assert!(nl.links(pod).await.unwrap().iter().all(|l| l.name == "lo"));
}

#[tokio::test]
async fn ipvlan_on_loopback_is_a_kernel_refusal_not_a_missing_kind() {
    // A refusal must never look like "kernel lacks ipvlan", or the lane would skip instead of failing.
    let spaces = namespaces!("danm-vm", 2);
    let (host, pod) = (&spaces[0].ns, &spaces[1].ns);
    let nl = RtNetlink::new();
    let result = nl
        .create_link(
            host,
            &NewLink::ipvlan("net1", "lo", IpvlanMode::L2).in_netns(pod.clone()),
        )
        .await;
    let err = match result {
        Ok(link) => panic!("ipvlan on loopback was accepted: {link:?}"),
        Err(err) => err,
    };
    if err.is_not_supported() {
        danm_testkit::fixtures::skip_kernel_feature(&format!(
            "this kernel lacks a link kind ({err}); `make kernel-lane` runs this test"
        ));
        return;
    }
    assert_eq!(err.errno(), Some(Errno::EINVAL as i32), "{err}");
    assert!(matches!(err, NetlinkError::Kernel { .. }), "{err}");
}

#[tokio::test]
async fn every_kind_the_kernel_lane_needs_is_created_with_its_kind_read_back() {
    // One place that names every missing kind at once; inside the lane a missing one fails here by name.
    let spaces = namespaces!("danm-vm", 1);
    let host = &spaces[0].ns;
    let nl = RtNetlink::new();
    let mut missing = Vec::new();
    let mut created = Vec::new();
    for (new, expected) in [
        (NewLink::dummy("k-dum").up(), LinkKind::Dummy),
        (
            NewLink::ipvlan("k-ipv", "k-dum", IpvlanMode::L3),
            LinkKind::Ipvlan { mode: IpvlanMode::L3 },
        ),
        (NewLink::vlan("k-dum.7", "k-dum", 7), LinkKind::Vlan { id: 7 }),
    ] {
        match nl.create_link(host, &new).await {
            Ok(link) => {
                assert_eq!(link.kind, expected, "{}", new.name);
                created.push(link.name);
            }
            Err(err) if err.is_not_supported() || err.is_not_found() => missing.push(err.to_string()),
            Err(err) => panic!("{err}"),
        }
    }
    if !missing.is_empty() {
        danm_testkit::fixtures::skip_kernel_feature(&format!(
            "this kernel lacks {missing:?}; `make kernel-lane` runs these tests"
        ));
        return;
    }
    assert_eq!(created, ["k-dum", "k-ipv", "k-dum.7"]);
}
