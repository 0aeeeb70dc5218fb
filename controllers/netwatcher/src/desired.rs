//! The desired host links: a pure function of every watched network and NAD, reference-counted by owner.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::source::{LinkSource, SourceRef, vlan_link_name, vxlan_link_name};

/// Longest interface name the kernel accepts (IFNAMSIZ − 1).
pub const MAX_IFNAME: usize = 15;
/// VxLAN UDP port netwatcher uses (behaviour §6).
pub const VXLAN_PORT: u16 = 4789;

/// A host link's configuration, as netwatcher wants it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkSpec {
    /// 802.1q VLAN `id` on `parent`.
    Vlan { parent: String, id: u16 },
    /// VxLAN `vni` over `underlay`; local address and group follow from the underlay's addresses
    /// (behaviour §6).
    Vxlan { underlay: String, vni: u32 },
}

impl LinkSpec {
    /// The device the link sits on.
    pub fn parent(&self) -> &str {
        match self {
            LinkSpec::Vlan { parent, .. } => parent,
            LinkSpec::Vxlan { underlay, .. } => underlay,
        }
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkSpec::Vlan { parent, id } => write!(f, "vlan {id} on {parent}"),
            LinkSpec::Vxlan { underlay, vni } => write!(f, "vxlan {vni} over {underlay}"),
        }
    }
}

/// One wanted link and every object that wants it (the link lives while at least one does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredLink {
    pub name: String,
    pub spec: LinkSpec,
    pub owners: BTreeSet<SourceRef>,
}

/// A network whose links cannot be made as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceProblem {
    #[error("{owner}: host link name {name:?} is longer than {MAX_IFNAME} characters (shorten NetworkID)")]
    NameTooLong { owner: SourceRef, name: String },
    #[error("{owner}: host link name {name:?} is not a valid interface name")]
    BadName { owner: SourceRef, name: String },
    #[error("{owner}: vlan {vlan} is outside 1-4094")]
    BadVlan { owner: SourceRef, vlan: u32 },
    #[error("{owner}: vxlan {vxlan} is outside 1-16777214")]
    BadVxlan { owner: SourceRef, vxlan: u32 },
    #[error("{owner} wants link {name} as {wanted}, but {holder} already wants it as {held}; keeping {held}")]
    Conflict {
        owner: SourceRef,
        name: String,
        wanted: LinkSpec,
        holder: SourceRef,
        held: LinkSpec,
    },
}

/// The desired links plus the problems met while computing them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub links: BTreeMap<String, DesiredLink>,
    pub problems: Vec<SourceProblem>,
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

/// The links one source wants, or why it cannot have them. No `host_device` → nothing (behaviour §6).
pub fn links_of(source: &LinkSource) -> Vec<Result<(String, LinkSpec), SourceProblem>> {
    let mut out = Vec::new();
    if source.host_device.is_empty() {
        return out;
    }
    let owner = || source.owner.clone();
    let checked = |name: String, spec: LinkSpec| {
        if name.len() > MAX_IFNAME {
            Err(SourceProblem::NameTooLong { owner: owner(), name })
        } else if !valid_ifname(&name) {
            Err(SourceProblem::BadName { owner: owner(), name })
        } else {
            Ok((name, spec))
        }
    };
    if source.vlan != 0 {
        out.push(match u16::try_from(source.vlan) {
            Ok(id) if (1..=4094).contains(&id) => checked(
                vlan_link_name(&source.network_id, source.vlan),
                LinkSpec::Vlan {
                    parent: source.host_device.clone(),
                    id,
                },
            ),
            _ => Err(SourceProblem::BadVlan {
                owner: owner(),
                vlan: source.vlan,
            }),
        });
    }
    if source.vxlan != 0 {
        out.push(if source.vxlan <= 16_777_214 {
            checked(
                vxlan_link_name(&source.network_id),
                LinkSpec::Vxlan {
                    underlay: source.host_device.clone(),
                    vni: source.vxlan,
                },
            )
        } else {
            Err(SourceProblem::BadVxlan {
                owner: owner(),
                vxlan: source.vxlan,
            })
        });
    }
    out
}

/// Every link the sources want. Sources that want the same link with the same configuration share it; when two
/// want one name with different configurations, the owner that sorts first keeps it and the other is reported
/// (the result does not depend on the order of `sources`).
pub fn desired_links(sources: &[LinkSource]) -> Desired {
    let mut ordered: Vec<&LinkSource> = sources.iter().collect();
    ordered.sort_by(|a, b| a.owner.cmp(&b.owner));
    let mut desired = Desired::default();
    for source in ordered {
        for wanted in links_of(source) {
            let (name, spec) = match wanted {
                Ok(link) => link,
                Err(problem) => {
                    desired.problems.push(problem);
                    continue;
                }
            };
            match desired.links.get_mut(&name) {
                None => {
                    desired.links.insert(
                        name.clone(),
                        DesiredLink {
                            name,
                            spec,
                            owners: BTreeSet::from([source.owner.clone()]),
                        },
                    );
                }
                Some(link) if link.spec == spec => {
                    link.owners.insert(source.owner.clone());
                }
                Some(link) => {
                    let holder = link
                        .owners
                        .iter()
                        .next()
                        .cloned()
                        .expect("a desired link has an owner");
                    desired.problems.push(SourceProblem::Conflict {
                        owner: source.owner.clone(),
                        name,
                        wanted: spec,
                        holder,
                        held: link.spec.clone(),
                    });
                }
            }
        }
    }
    desired
}

#[cfg(test)]
mod tests;
