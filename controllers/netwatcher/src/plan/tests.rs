use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use danm_api::NetworkKind;
use danm_netlink::{Address, Link, LinkKind, NewLinkKind, OperState, Scope, VxlanInfo};

use super::*;
use crate::desired::desired_links;
use crate::source::{LinkSource, SourceKind};

fn src(name: &str, nid: &str, dev: &str, vlan: u32, vxlan: u32) -> LinkSource {
    LinkSource {
        owner: SourceRef::new(SourceKind::Network(NetworkKind::DanmNet), Some("ns"), name),
        network_id: nid.to_owned(),
        host_device: dev.to_owned(),
        vlan,
        vxlan,
    }
}

fn link(index: u32, name: &str, kind: LinkKind, parent: Option<u32>, alias: Option<&str>) -> Link {
    Link {
        index,
        name: name.to_owned(),
        mtu: 1500,
        mac: None,
        kind,
        parent_index: parent,
        link_netnsid: None,
        alias: alias.map(str::to_owned),
        oper_state: OperState::Up,
        up: true,
        flags: 1,
        group: 0,
    }
}

fn addr(cidr: &str, scope: Scope) -> Address {
    Address {
        addr: cidr.parse().unwrap(),
        scope,
        nodad: false,
        flags: 0,
    }
}

fn host() -> Vec<Link> {
    vec![
        link(1, "lo", LinkKind::Device, None, None),
        link(2, "ens3", LinkKind::Device, None, None),
        link(3, "ens4", LinkKind::Device, None, None),
    ]
}

fn ens3_v4() -> BTreeMap<String, Vec<Address>> {
    BTreeMap::from([("ens3".to_owned(), vec![addr("192.168.1.10/24", Scope::Universe)])])
}

fn vxlan_info(vni: u32, underlay: u32) -> VxlanInfo {
    VxlanInfo {
        vni,
        port: 4789,
        group: Some(IpAddr::V4(vxlan_group_v4(vni))),
        local: Some("192.168.1.10".parse().unwrap()),
        underlay_index: Some(underlay),
        learning: true,
        l2miss: true,
        l3miss: true,
    }
}

fn managed_alias(d: &Desired, name: &str) -> String {
    alias_for(&d.links[name].owners)
}

#[test]
fn vxlan_groups_are_239_0_0_0_plus_the_vni() {
    assert_eq!(vxlan_group_v4(50), Ipv4Addr::new(239, 0, 0, 50));
    assert_eq!(vxlan_group_v4(300), Ipv4Addr::new(239, 0, 1, 44));
    assert_eq!(vxlan_group_v6(0x1234), "ff02::1234".parse::<Ipv6Addr>().unwrap());
}

#[test]
fn vxlan_addressing_prefers_the_first_universe_ipv4_then_a_global_ipv6() {
    let addrs = vec![
        addr("fe80::1/64", Scope::Link),
        addr("127.0.0.2/8", Scope::Host),
        addr("2001:db8::5/64", Scope::Universe),
        addr("10.0.0.5/24", Scope::Universe),
        addr("10.0.0.6/24", Scope::Universe),
    ];
    assert_eq!(
        vxlan_addressing(50, &addrs),
        Some(("10.0.0.5".parse().unwrap(), "239.0.0.50".parse().unwrap()))
    );
    let v6only = vec![
        addr("fe80::1/64", Scope::Universe),
        addr("2001:db8::5/64", Scope::Universe),
    ];
    assert_eq!(
        vxlan_addressing(50, &v6only),
        Some(("2001:db8::5".parse().unwrap(), "ff02::32".parse().unwrap()))
    );
    assert_eq!(vxlan_addressing(50, &[addr("fe80::1/64", Scope::Link)]), None);
}

#[test]
fn a_missing_vxlan_link_is_created_with_port_4789_group_local_learning_and_misses() {
    let d = desired_links(&[src("int", "internal", "ens3", 0, 50)]);
    let p = plan(&d, &host(), &ens3_v4());
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    let [
        Action::Create {
            link,
            replaces: false,
            ..
        },
    ] = p.actions.as_slice()
    else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(link.name, "vx_internal");
    assert!(link.up);
    assert!(link.alias.as_deref().unwrap().starts_with(ALIAS_PREFIX));
    let NewLinkKind::Vxlan(spec) = &link.kind else {
        panic!()
    };
    assert_eq!(spec.vni, 50);
    assert_eq!(spec.port, 4789);
    assert_eq!(spec.group, Some("239.0.0.50".parse().unwrap()));
    assert_eq!(spec.local, Some("192.168.1.10".parse().unwrap()));
    assert_eq!(spec.underlay.as_deref(), Some("ens3"));
    assert!(spec.learning && spec.l2miss && spec.l3miss);
}

#[test]
fn a_missing_vlan_link_is_created_on_its_parent() {
    let d = desired_links(&[src("ext", "ext", "ens4", 700, 0)]);
    let p = plan(&d, &host(), &BTreeMap::new());
    let [Action::Create { link, .. }] = p.actions.as_slice() else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(link.name, "ext.700");
    assert_eq!(
        link.kind,
        NewLinkKind::Vlan {
            parent: "ens4".into(),
            id: 700
        }
    );
}

#[test]
fn a_correct_managed_link_needs_nothing() {
    let d = desired_links(&[
        src("int", "internal", "ens3", 0, 50),
        src("ext", "ext", "ens4", 700, 0),
    ]);
    let mut links = host();
    links.push(link(
        10,
        "vx_internal",
        LinkKind::Vxlan(vxlan_info(50, 2)),
        None,
        Some(&managed_alias(&d, "vx_internal")),
    ));
    links.push(link(
        11,
        "ext.700",
        LinkKind::Vlan { id: 700 },
        Some(3),
        Some(&managed_alias(&d, "ext.700")),
    ));
    let p = plan(&d, &links, &ens3_v4());
    assert!(p.is_empty() && p.problems.is_empty(), "{p:?}");
}

#[test]
fn a_managed_link_with_a_wrong_vni_or_parent_is_replaced() {
    let d = desired_links(&[
        src("int", "internal", "ens3", 0, 51),
        src("ext", "ext", "ens3", 700, 0),
    ]);
    let mut links = host();
    links.push(link(
        10,
        "vx_internal",
        LinkKind::Vxlan(vxlan_info(50, 2)),
        None,
        Some(ALIAS_PREFIX),
    ));
    links.push(link(
        11,
        "ext.700",
        LinkKind::Vlan { id: 700 },
        Some(3),
        Some(ALIAS_PREFIX),
    ));
    let p = plan(&d, &links, &ens3_v4());
    let names: Vec<(&str, &str)> = p
        .actions
        .iter()
        .map(|a| match a {
            Action::Delete {
                name,
                reason: DeleteReason::Mismatch(_),
            } => ("delete", name.as_str()),
            Action::Create {
                link, replaces: true, ..
            } => ("create", link.name.as_str()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("delete", "ext.700"),
            ("delete", "vx_internal"),
            ("create", "ext.700"),
            ("create", "vx_internal")
        ]
    );
}

#[test]
fn a_managed_link_whose_underlay_address_changed_is_replaced() {
    let d = desired_links(&[src("int", "internal", "ens3", 0, 50)]);
    let mut links = host();
    links.push(link(
        10,
        "vx_internal",
        LinkKind::Vxlan(vxlan_info(50, 2)),
        None,
        Some(ALIAS_PREFIX),
    ));
    let moved = BTreeMap::from([("ens3".to_owned(), vec![addr("192.168.1.99/24", Scope::Universe)])]);
    let p = plan(&d, &links, &moved);
    assert!(
        matches!(&p.actions[0], Action::Delete { reason: DeleteReason::Mismatch(why), .. } if why.contains("local")),
        "{:?}",
        p.actions
    );
}

#[test]
fn only_managed_links_no_network_wants_are_deleted() {
    let d = desired_links(&[]);
    let mut links = host();
    links.push(link(
        10,
        "vx_old",
        LinkKind::Vxlan(vxlan_info(5, 2)),
        None,
        Some("danm-netwatcher: DanmNet/ns/old"),
    ));
    links.push(link(
        11,
        "vx_admin",
        LinkKind::Vxlan(vxlan_info(6, 2)),
        None,
        None,
    ));
    links.push(link(
        12,
        "mine.5",
        LinkKind::Vlan { id: 5 },
        Some(2),
        Some("something else"),
    ));
    links.push(link(
        13,
        "macv",
        LinkKind::Macvlan {
            mode: Default::default(),
        },
        Some(2),
        Some(ALIAS_PREFIX),
    ));
    let p = plan(&d, &links, &ens3_v4());
    assert_eq!(
        p.actions,
        vec![Action::Delete {
            name: "vx_old".into(),
            reason: DeleteReason::Unwanted
        }]
    );
}

#[test]
fn a_foreign_link_with_the_wanted_name_is_never_touched() {
    let d = desired_links(&[src("int", "internal", "ens3", 0, 51)]);
    let mut links = host();
    links.push(link(
        10,
        "vx_internal",
        LinkKind::Vxlan(vxlan_info(50, 2)),
        None,
        None,
    ));
    let p = plan(&d, &links, &ens3_v4());
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(matches!(&p.problems[..], [LinkProblem::Foreign { link, .. }] if link == "vx_internal"));
    // A foreign link that already matches is accepted silently.
    links[3] = link(10, "vx_internal", LinkKind::Vxlan(vxlan_info(51, 2)), None, None);
    let p = plan(&d, &links, &ens3_v4());
    assert!(p.actions.is_empty() && p.problems.is_empty(), "{p:?}");
}

#[test]
fn a_missing_parent_or_an_underlay_without_ip_is_reported_with_danms_messages() {
    let d = desired_links(&[src("a", "a", "ens9", 10, 0), src("b", "b", "ens4", 0, 20)]);
    let p = plan(&d, &host(), &BTreeMap::new());
    assert!(p.actions.is_empty());
    let msgs: Vec<String> = p.problems.iter().map(ToString::to_string).collect();
    assert!(
        msgs[0].contains("host device:ens9 is not present in the system"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].contains(
            "VxLAN interface cannot be set-up on top of a host interface:ens4, which does not have an IP"
        ),
        "{msgs:?}"
    );
}

#[test]
fn a_down_managed_link_is_brought_up_and_a_stale_alias_is_rewritten() {
    let d = desired_links(&[
        src("ext", "ext", "ens4", 700, 0),
        src("ext2", "ext", "ens4", 700, 0),
    ]);
    let mut links = host();
    let mut l = link(
        11,
        "ext.700",
        LinkKind::Vlan { id: 700 },
        Some(3),
        Some("danm-netwatcher: DanmNet/ns/ext"),
    );
    l.up = false;
    links.push(l);
    let p = plan(&d, &links, &BTreeMap::new());
    assert_eq!(
        p.actions,
        vec![
            Action::SetAlias {
                name: "ext.700".into(),
                alias: "danm-netwatcher: DanmNet/ns/ext,DanmNet/ns/ext2".into()
            },
            Action::SetUp {
                name: "ext.700".into()
            }
        ]
    );
}

#[test]
fn aliases_are_cut_to_the_kernel_limit_on_a_character_boundary() {
    let owners = (0..40)
        .map(|i| {
            SourceRef::new(
                SourceKind::Network(NetworkKind::DanmNet),
                Some("nämespace"),
                &format!("n{i}"),
            )
        })
        .collect();
    let alias = alias_for(&owners);
    assert!(alias.len() <= 255 && alias.ends_with("..."), "{}", alias.len());
}
