//! Conversion of rtnetlink messages into the layer's plain types.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVlan, InfoVxlan, IpVlanMode, LinkAttribute, LinkFlags,
    LinkInfo, LinkMessage, LinkVfInfo, MacVlanMode, State, VfInfo,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::rule::{RuleAttribute, RuleMessage};

use crate::types::*;

/// The VFs of a PF's link message (`IFLA_VFINFO_LIST`): per VF its MAC (an all-zero MAC is reported as is) and
/// VLAN (with its QoS).
pub(super) fn vfs(msg: &LinkMessage) -> Vec<VfConfig> {
    let mut out = Vec::new();
    for attr in &msg.attributes {
        let LinkAttribute::VfInfoList(list) = attr else {
            continue;
        };
        for LinkVfInfo(infos) in list {
            let mut vf = VfConfig::default();
            for info in infos {
                match info {
                    VfInfo::Mac(m) => {
                        vf.vf = m.vf_id;
                        vf.mac = MacAddr::from_slice(&m.mac[..6]);
                    }
                    VfInfo::Vlan(v) => {
                        vf.vf = v.vf_id;
                        vf.vlan = u16::try_from(v.vlan_id).ok();
                        vf.qos = v.qos;
                    }
                    _ => {}
                }
            }
            out.push(vf);
        }
    }
    out
}

pub(super) fn link(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mtu: 0,
        mac: None,
        kind: LinkKind::Device,
        parent_index: None,
        link_netnsid: None,
        alias: None,
        oper_state: OperState::Unknown,
        up: msg.header.flags.contains(LinkFlags::Up),
        flags: msg.header.flags.bits(),
        group: 0,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name.clone(),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Address(bytes) => link.mac = MacAddr::from_slice(bytes),
            LinkAttribute::Link(index) => link.parent_index = Some(*index),
            LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
            LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
            LinkAttribute::Group(group) => link.group = *group,
            LinkAttribute::OperState(state) => link.oper_state = oper_state(state),
            LinkAttribute::LinkInfo(infos) => link.kind = kind(infos),
            _ => {}
        }
    }
    link
}

fn oper_state(state: &State) -> OperState {
    match state {
        State::NotPresent => OperState::NotPresent,
        State::Down => OperState::Down,
        State::LowerLayerDown => OperState::LowerLayerDown,
        State::Testing => OperState::Testing,
        State::Dormant => OperState::Dormant,
        State::Up => OperState::Up,
        _ => OperState::Unknown,
    }
}

fn kind(infos: &[LinkInfo]) -> LinkKind {
    let kind = infos.iter().find_map(|info| match info {
        LinkInfo::Kind(kind) => Some(kind),
        _ => None,
    });
    let data = infos.iter().find_map(|info| match info {
        LinkInfo::Data(data) => Some(data),
        _ => None,
    });
    match kind {
        None => LinkKind::Device,
        Some(InfoKind::Veth) => LinkKind::Veth,
        Some(InfoKind::Bridge) => LinkKind::Bridge,
        Some(InfoKind::Dummy) => LinkKind::Dummy,
        Some(InfoKind::MacVlan) => {
            let mode = match data {
                Some(InfoData::MacVlan(items)) => items.iter().find_map(|item| match item {
                    InfoMacVlan::Mode(mode) => Some(match mode {
                        MacVlanMode::Private => MacvlanMode::Private,
                        MacVlanMode::Vepa => MacvlanMode::Vepa,
                        MacVlanMode::Passthrough => MacvlanMode::Passthru,
                        MacVlanMode::Source => MacvlanMode::Source,
                        _ => MacvlanMode::Bridge,
                    }),
                    _ => None,
                }),
                _ => None,
            };
            LinkKind::Macvlan {
                mode: mode.unwrap_or_default(),
            }
        }
        Some(InfoKind::IpVlan) => {
            let mode = match data {
                Some(InfoData::IpVlan(items)) => items.iter().find_map(|item| match item {
                    InfoIpVlan::Mode(mode) => Some(match mode {
                        IpVlanMode::L3 => IpvlanMode::L3,
                        IpVlanMode::L3S => IpvlanMode::L3s,
                        _ => IpvlanMode::L2,
                    }),
                    _ => None,
                }),
                _ => None,
            };
            LinkKind::Ipvlan {
                mode: mode.unwrap_or_default(),
            }
        }
        Some(InfoKind::Vlan) => {
            let id = match data {
                Some(InfoData::Vlan(items)) => items.iter().find_map(|item| match item {
                    InfoVlan::Id(id) => Some(*id),
                    _ => None,
                }),
                _ => None,
            };
            LinkKind::Vlan { id: id.unwrap_or(0) }
        }
        Some(InfoKind::Vxlan) => {
            let mut info = VxlanInfo::default();
            if let Some(InfoData::Vxlan(items)) = data {
                for item in items {
                    match item {
                        InfoVxlan::Id(vni) => info.vni = *vni,
                        InfoVxlan::Port(port) => info.port = *port,
                        InfoVxlan::Group(ip) if !ip.is_unspecified() => info.group = Some(IpAddr::V4(*ip)),
                        InfoVxlan::Group6(ip) if !ip.is_unspecified() => info.group = Some(IpAddr::V6(*ip)),
                        InfoVxlan::Local(ip) if !ip.is_unspecified() => info.local = Some(IpAddr::V4(*ip)),
                        InfoVxlan::Local6(ip) if !ip.is_unspecified() => info.local = Some(IpAddr::V6(*ip)),
                        InfoVxlan::Link(index) if *index != 0 => info.underlay_index = Some(*index),
                        InfoVxlan::Learning(on) => info.learning = *on,
                        InfoVxlan::L2Miss(on) => info.l2miss = *on,
                        InfoVxlan::L3Miss(on) => info.l3miss = *on,
                        _ => {}
                    }
                }
            }
            LinkKind::Vxlan(info)
        }
        Some(other) => LinkKind::Other(other.to_string()),
    }
}

pub(super) fn address(msg: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut flags = u32::from(msg.header.flags.bits());
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    let addr = IpNetwork::new(ip, msg.header.prefix_len).ok()?;
    Some(Address {
        addr,
        scope: Scope::from_u8(u8::from(msg.header.scope)),
        nodad: flags & 0x02 != 0,
        flags,
    })
}

pub(super) fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn route_ip(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

pub(super) fn route(msg: &RouteMessage, names: &HashMap<u32, String>) -> Option<Route> {
    let mut dst = None;
    let mut gateway = None;
    let mut dev = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(addr) => dst = route_ip(addr),
            RouteAttribute::Gateway(addr) => gateway = route_ip(addr),
            RouteAttribute::Oif(index) => {
                dev = Some(names.get(index).cloned().unwrap_or_else(|| format!("if{index}")))
            }
            _ => {}
        }
    }
    let dst = match (dst, msg.header.address_family) {
        (Some(ip), _) => ip,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    Some(Route {
        dst: IpNetwork::new(dst, msg.header.destination_prefix_length).ok()?,
        gateway,
        dev,
        table: route_table(msg),
        scope: Scope::from_u8(u8::from(msg.header.scope)),
    })
}

pub(super) fn rule(msg: &RuleMessage) -> Option<RuleInfo> {
    let family = match msg.header.family {
        AddressFamily::Inet => IpFamily::V4,
        AddressFamily::Inet6 => IpFamily::V6,
        _ => return None,
    };
    let mut from = None;
    let mut table = u32::from(msg.header.table);
    let mut priority = 0;
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Source(ip) => from = IpNetwork::new(*ip, msg.header.src_len).ok(),
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Priority(p) => priority = *p,
            _ => {}
        }
    }
    Some(RuleInfo {
        family,
        from,
        table,
        priority,
    })
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, Parseable};
    use netlink_packet_route::link::{VfInfoMac, VfInfoVlan};

    use super::*;

    #[test]
    fn the_vfs_of_a_pf_are_read_from_its_vfinfo_list_on_the_wire() {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::VfInfoList(vec![
            LinkVfInfo(vec![
                VfInfo::Mac(VfInfoMac::new(0, &[2, 0, 0, 0, 5, 1])),
                VfInfo::Vlan(VfInfoVlan::new(0, 300, 2)),
            ]),
            LinkVfInfo(vec![
                VfInfo::Mac(VfInfoMac::new(1, &[0; 6])),
                VfInfo::Vlan(VfInfoVlan::new(1, 0, 0)),
            ]),
        ]));
        // Through the bytes, as the kernel's answer arrives.
        let mut bytes = vec![0u8; msg.buffer_len()];
        msg.emit(&mut bytes);
        let read = LinkMessage::parse(&bytes[..]).unwrap();
        assert_eq!(
            vfs(&read),
            [
                VfConfig {
                    vf: 0,
                    mac: Some(MacAddr([2, 0, 0, 0, 5, 1])),
                    vlan: Some(300),
                    qos: 2
                },
                VfConfig {
                    vf: 1,
                    mac: Some(MacAddr([0; 6])),
                    vlan: Some(0),
                    qos: 0
                },
            ]
        );
        assert_eq!(vfs(&LinkMessage::default()), []);
    }
}
