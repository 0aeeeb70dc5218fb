//! The pure diff between the desired links and the kernel's: which links to delete, create, bring up or relabel.
//!
//! Ownership: every link netwatcher creates carries an alias starting with [`ALIAS_PREFIX`]; only such links are
//! ever deleted or replaced. A link of the right name without the alias is left alone (reported if its
//! configuration differs).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use danm_netlink::{Address, Link, LinkKind, NewLink, Scope, VxlanSpec};

use crate::desired::{Desired, DesiredLink, LinkSpec, VXLAN_PORT};
use crate::source::SourceRef;

/// Alias prefix marking the links netwatcher created.
pub const ALIAS_PREFIX: &str = "danm-netwatcher";
/// Longest alias the kernel keeps (IFALIASZ − 1).
const MAX_ALIAS: usize = 255;

/// The alias of a managed link: the prefix and the objects that want it, for operators (`ip -d link`).
pub fn alias_for(owners: &BTreeSet<SourceRef>) -> String {
    let list: Vec<String> = owners.iter().map(ToString::to_string).collect();
    let mut alias = format!("{ALIAS_PREFIX}: {}", list.join(","));
    if alias.len() > MAX_ALIAS {
        let mut cut = MAX_ALIAS - 3;
        while !alias.is_char_boundary(cut) {
            cut -= 1;
        }
        alias.truncate(cut);
        alias.push_str("...");
    }
    alias
}

/// Whether netwatcher created `link`.
pub fn is_managed(link: &Link) -> bool {
    link.alias.as_deref().is_some_and(|a| a.starts_with(ALIAS_PREFIX))
        && matches!(link.kind, LinkKind::Vlan { .. } | LinkKind::Vxlan(_))
}

/// The multicast group of VNI `vni` on an IPv4 underlay: `239.0.0.0 + vni`.
pub fn vxlan_group_v4(vni: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 0, 0, 0)).wrapping_add(vni))
}

/// The multicast group of VNI `vni` on an IPv6 underlay: `ff02:: + vni`.
pub fn vxlan_group_v6(vni: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0)) + u128::from(vni))
}

/// Local address and group of a VxLAN over a device with `addresses` (behaviour §6): the first universe-scope
/// IPv4 with group `239.0.0.0+VNI`, else the first global IPv6 with `ff02::+VNI`; `None` without either.
pub fn vxlan_addressing(vni: u32, addresses: &[Address]) -> Option<(IpAddr, IpAddr)> {
    if let Some(v4) = addresses
        .iter()
        .find(|a| a.addr.is_ipv4() && a.scope == Scope::Universe)
    {
        return Some((v4.addr.ip(), IpAddr::V4(vxlan_group_v4(vni))));
    }
    addresses
        .iter()
        .find(|a| match a.addr.ip() {
            IpAddr::V6(ip) => a.scope == Scope::Universe && (ip.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => false,
        })
        .map(|v6| (v6.addr.ip(), IpAddr::V6(vxlan_group_v6(vni))))
}

/// Why a managed link is deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// No network wants it any more.
    Unwanted,
    /// It has the wanted name but not the wanted configuration (what differs); it is recreated.
    Mismatch(String),
}

/// One step of a plan, in execution order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Delete {
        name: String,
        reason: DeleteReason,
    },
    /// Create `link` (up, aliased). `replaces` says a mismatching link of that name was deleted first.
    Create {
        link: NewLink,
        owners: BTreeSet<SourceRef>,
        replaces: bool,
    },
    SetUp {
        name: String,
    },
    SetAlias {
        name: String,
        alias: String,
    },
}

/// A desired link that cannot be made right now (the rest of the plan still runs).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkProblem {
    #[error("link {link} (for {owners}): host device:{parent} is not present in the system")]
    MissingParent {
        link: String,
        parent: String,
        owners: String,
    },
    #[error(
        "link {link} (for {owners}): VxLAN interface cannot be set-up on top of a host interface:{parent}, which does not have an IP"
    )]
    NoAddress {
        link: String,
        parent: String,
        owners: String,
    },
    #[error(
        "link {link} (for {owners}) exists but was not created by netwatcher and differs ({why}); leaving it alone"
    )]
    Foreign {
        link: String,
        owners: String,
        why: String,
    },
}

/// The actions that bring the kernel to the desired links, and what could not be done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub problems: Vec<LinkProblem>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// The wanted link fully resolved against the host (parent index, VxLAN addressing).
struct Resolved {
    new_link: NewLink,
    parent_index: u32,
    vxlan: Option<(IpAddr, IpAddr)>,
}

fn owners_text(link: &DesiredLink) -> String {
    link.owners
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn resolve(
    want: &DesiredLink,
    by_name: &BTreeMap<&str, &Link>,
    addresses: &BTreeMap<String, Vec<Address>>,
) -> Result<Resolved, LinkProblem> {
    let parent_name = want.spec.parent();
    let Some(parent_link) = by_name.get(parent_name) else {
        return Err(LinkProblem::MissingParent {
            link: want.name.clone(),
            parent: parent_name.to_owned(),
            owners: owners_text(want),
        });
    };
    let alias = alias_for(&want.owners);
    match &want.spec {
        LinkSpec::Vlan { parent, id } => Ok(Resolved {
            new_link: NewLink::vlan(&want.name, parent, *id).alias(alias).up(),
            parent_index: parent_link.index,
            vxlan: None,
        }),
        LinkSpec::Vxlan { underlay, vni } => {
            let addrs = addresses.get(underlay).map(Vec::as_slice).unwrap_or_default();
            let Some((local, group)) = vxlan_addressing(*vni, addrs) else {
                return Err(LinkProblem::NoAddress {
                    link: want.name.clone(),
                    parent: underlay.clone(),
                    owners: owners_text(want),
                });
            };
            let mut spec = VxlanSpec::new(*vni);
            spec.port = VXLAN_PORT;
            spec.local = Some(local);
            spec.group = Some(group);
            spec.underlay = Some(underlay.clone());
            Ok(Resolved {
                new_link: NewLink::vxlan(&want.name, spec).alias(alias).up(),
                parent_index: parent_link.index,
                vxlan: Some((local, group)),
            })
        }
    }
}

/// What differs between `link` and the resolved wish, or `None` when it is right.
fn mismatch(want: &DesiredLink, resolved: &Resolved, link: &Link) -> Option<String> {
    match (&want.spec, &link.kind) {
        (LinkSpec::Vlan { id, .. }, LinkKind::Vlan { id: have }) => {
            if have != id {
                Some(format!("vlan id {have}, want {id}"))
            } else if link.link_netnsid.is_some() || link.parent_index != Some(resolved.parent_index) {
                Some(format!(
                    "parent index {:?}, want {} ({})",
                    link.parent_index,
                    resolved.parent_index,
                    want.spec.parent()
                ))
            } else {
                None
            }
        }
        (LinkSpec::Vxlan { vni, .. }, LinkKind::Vxlan(info)) => {
            let (local, group) = resolved.vxlan.expect("vxlan resolution has addressing");
            if info.vni != *vni {
                Some(format!("vni {}, want {vni}", info.vni))
            } else if info.underlay_index != Some(resolved.parent_index) {
                Some(format!(
                    "underlay index {:?}, want {} ({})",
                    info.underlay_index,
                    resolved.parent_index,
                    want.spec.parent()
                ))
            } else if info.port != VXLAN_PORT {
                Some(format!("port {}, want {VXLAN_PORT}", info.port))
            } else if info.local != Some(local) {
                Some(format!("local {:?}, want {local}", info.local))
            } else if info.group != Some(group) {
                Some(format!("group {:?}, want {group}", info.group))
            } else if !(info.learning && info.l2miss && info.l3miss) {
                Some(format!(
                    "learning/l2miss/l3miss {}/{}/{}, want all on",
                    info.learning, info.l2miss, info.l3miss
                ))
            } else {
                None
            }
        }
        (spec, kind) => Some(format!("kind {:?}, want {spec}", kind.name())),
    }
}

/// The plan for `links` (the kernel's, in the namespace netwatcher manages) given `addresses` (device name → its
/// addresses, for at least the VxLAN underlays). Deletes come first (they free names), then creations, then
/// up/alias fixes.
pub fn plan(desired: &Desired, links: &[Link], addresses: &BTreeMap<String, Vec<Address>>) -> Plan {
    let by_name: BTreeMap<&str, &Link> = links.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut deletes = Vec::new();
    let mut creates = Vec::new();
    let mut fixes = Vec::new();
    let mut problems = Vec::new();

    for link in links.iter().filter(|l| is_managed(l)) {
        if !desired.links.contains_key(&link.name) {
            deletes.push(Action::Delete {
                name: link.name.clone(),
                reason: DeleteReason::Unwanted,
            });
        }
    }
    for want in desired.links.values() {
        let resolved = match resolve(want, &by_name, addresses) {
            Ok(r) => r,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let owners = want.owners.clone();
        match by_name.get(want.name.as_str()) {
            None => creates.push(Action::Create {
                link: resolved.new_link,
                owners,
                replaces: false,
            }),
            Some(have) if is_managed(have) => match mismatch(want, &resolved, have) {
                Some(why) => {
                    deletes.push(Action::Delete {
                        name: want.name.clone(),
                        reason: DeleteReason::Mismatch(why),
                    });
                    creates.push(Action::Create {
                        link: resolved.new_link,
                        owners,
                        replaces: true,
                    });
                }
                None => {
                    let alias = alias_for(&want.owners);
                    if have.alias.as_deref() != Some(alias.as_str()) {
                        fixes.push(Action::SetAlias {
                            name: want.name.clone(),
                            alias,
                        });
                    }
                    if !have.up {
                        fixes.push(Action::SetUp {
                            name: want.name.clone(),
                        });
                    }
                }
            },
            Some(have) => {
                if let Some(why) = mismatch(want, &resolved, have) {
                    problems.push(LinkProblem::Foreign {
                        link: want.name.clone(),
                        owners: owners_text(want),
                        why,
                    });
                }
            }
        }
    }
    let mut actions = deletes;
    actions.extend(creates);
    actions.extend(fixes);
    Plan { actions, problems }
}

#[cfg(test)]
mod tests;
