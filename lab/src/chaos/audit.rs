//! The chaos run's verdict, computed from real state only: the API objects (Pods, DanmEps, networks, DanmIpBlocks)
//! and the kernel (named network namespaces, the links and addresses inside each live pod's namespace, danm's
//! links in the host namespace), compared with the pods the run left alive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use danm_api::{DanmEp, DanmIpBlock, Network, NetworkKind};
use danm_core::ipam::blocks::{IpamMode, NetworkId};

use super::kernel::{self, DANM_LINK_GROUP};

/// A pod the run left alive (its last ADD succeeded and no DEL followed).
#[derive(Debug, Clone)]
pub struct LivePod {
    pub name: String,
    pub uid: String,
    pub container_id: String,
    pub netns: String,
    /// The addresses danm's CNI result gave it.
    pub ips: Vec<String>,
}

/// The counts the audit found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Addresses held by more than one live pod (in the kernel or in the DanmEps).
    pub duplicates: BTreeSet<String>,
    pub leaked_addresses: usize,
    pub orphan_danmeps: usize,
    pub leftover_links: usize,
    pub leftover_netns: usize,
    pub bitmap_or_blocks_mismatch: usize,
    /// DanmEps or interfaces a live pod should have and has not.
    pub missing_interfaces: usize,
    /// One line per finding, for the log.
    pub details: Vec<String>,
}

/// What the API held at the end.
pub struct ApiView {
    /// Pod UIDs that exist.
    pub pods: BTreeSet<String>,
    pub eps: Vec<DanmEp>,
    /// The run's networks.
    pub networks: Vec<Network>,
    pub blocks: Vec<DanmIpBlock>,
}

fn addr_of(a: &str) -> Option<IpAddr> {
    a.split('/').next()?.parse().ok()
}

fn ep_network(ep: &DanmEp) -> NetworkId {
    let kind = NetworkKind::from_api_type(&ep.spec.api_type).unwrap_or(NetworkKind::DanmNet);
    NetworkId::new(
        kind,
        ep.metadata.namespace.as_deref().unwrap_or_default(),
        &ep.spec.network_name,
    )
}

fn ep_addrs(ep: &DanmEp) -> impl Iterator<Item = IpAddr> + '_ {
    [&ep.spec.interface.address, &ep.spec.interface.address_ipv6]
        .into_iter()
        .filter_map(|a| addr_of(a))
}

/// Addresses held by more than one pod, given each pod's addresses.
pub fn duplicates<'a>(holders: impl Iterator<Item = (&'a str, String)>) -> BTreeSet<String> {
    let mut by_addr: HashMap<String, BTreeSet<&str>> = HashMap::new();
    for (pod, addr) in holders {
        by_addr.entry(addr).or_default().insert(pod);
    }
    by_addr
        .into_iter()
        .filter(|(_, pods)| pods.len() > 1)
        .map(|(a, _)| a)
        .collect()
}

/// Compares the API and the kernel with the live pods. `netns_prefix` names the run's namespaces, `parents` the
/// networks' host links, `interfaces_per_pod` how many interfaces each pod asks for.
pub async fn audit(
    live: &[LivePod],
    api: &ApiView,
    mode: IpamMode,
    netns_prefix: &str,
    parents: &[String],
    interfaces_per_pod: usize,
) -> Result<Findings, String> {
    let mut f = Findings::default();
    let live_by_uid: BTreeMap<&str, &LivePod> = live.iter().map(|p| (p.uid.as_str(), p)).collect();

    // DanmEps: each must belong to the live container of an existing pod.
    let mut live_eps: Vec<&DanmEp> = Vec::new();
    for ep in &api.eps {
        let name = ep.metadata.name.as_deref().unwrap_or_default();
        match live_by_uid.get(ep.spec.pod_uid.as_str()) {
            Some(p) if ep.spec.cid == p.container_id && api.pods.contains(&p.uid) => live_eps.push(ep),
            _ => {
                f.orphan_danmeps += 1;
                f.details.push(format!(
                    "orphan DanmEp {}/{name} (pod {}, uid {}, container {})",
                    ep.metadata.namespace.as_deref().unwrap_or_default(),
                    ep.spec.pod,
                    ep.spec.pod_uid,
                    ep.spec.cid
                ));
            }
        }
    }

    // Live pods: the pod exists, has one DanmEp per interface, and its namespace holds exactly those interfaces
    // with their addresses.
    let mut kernel_holders: Vec<(&str, String)> = Vec::new();
    for p in live {
        if !api.pods.contains(&p.uid) {
            f.missing_interfaces += interfaces_per_pod;
            f.details
                .push(format!("live pod {} (uid {}) is not in the API", p.name, p.uid));
        }
        let eps: Vec<&&DanmEp> = live_eps.iter().filter(|e| e.spec.pod_uid == p.uid).collect();
        if eps.len() < interfaces_per_pod {
            f.missing_interfaces += interfaces_per_pod - eps.len();
            f.details.push(format!(
                "live pod {} has {} DanmEps, wants {interfaces_per_pod}",
                p.name,
                eps.len()
            ));
        }
        let links = kernel::netns_interfaces(&p.netns).await?;
        for (link, addrs) in &links {
            kernel_holders.extend(addrs.iter().map(|a| (p.name.as_str(), a.clone())));
            if !eps.iter().any(|e| &e.spec.interface.name == link) {
                f.leftover_links += 1;
                f.details
                    .push(format!("pod {}: link {link} has no DanmEp", p.name));
            }
        }
        for ep in &eps {
            // Every interface asks for a dynamic IPv4 address (and the dual-stack network for IPv6 too).
            let dual = api
                .networks
                .iter()
                .any(|n| n.name() == ep.spec.network_name && !n.spec.options.net6.is_empty());
            if ep.spec.interface.address.is_empty() || (dual && ep.spec.interface.address_ipv6.is_empty()) {
                f.missing_interfaces += 1;
                f.details.push(format!(
                    "pod {}: DanmEp {} on {} lacks an address ({:?}, {:?})",
                    p.name,
                    ep.metadata.name.as_deref().unwrap_or_default(),
                    ep.spec.network_name,
                    ep.spec.interface.address,
                    ep.spec.interface.address_ipv6
                ));
            }
            let want: BTreeSet<String> = ep_addrs(ep).map(|a| a.to_string()).collect();
            let have: BTreeSet<String> = links
                .get(&ep.spec.interface.name)
                .map(|a| a.iter().cloned().collect())
                .unwrap_or_default();
            if !want.is_subset(&have) {
                f.missing_interfaces += 1;
                f.details.push(format!(
                    "pod {}: interface {} holds {have:?}, its DanmEp says {want:?}",
                    p.name, ep.spec.interface.name
                ));
            }
        }
    }
    f.duplicates.extend(duplicates(kernel_holders.into_iter()));
    f.duplicates.extend(duplicates(live_eps.iter().flat_map(|e| {
        ep_addrs(e).map(move |a| (e.spec.pod_uid.as_str(), format!("{}:{a}", ep_network(e))))
    })));

    // Addresses: what the IPAM holds must be exactly what the live DanmEps hold.
    for network in &api.networks {
        let id = danm_ipam::network_id(network);
        let held: BTreeMap<IpAddr, &str> = live_eps
            .iter()
            .filter(|e| ep_network(e) == id)
            .flat_map(|e| ep_addrs(e).map(move |a| (a, e.metadata.name.as_deref().unwrap_or_default())))
            .collect();
        match mode {
            IpamMode::Bitmap => {
                let usage =
                    danm_core::ipam::usage(&network.spec).map_err(|e| format!("network {id}: {e}"))?;
                let allocated: BTreeSet<IpAddr> = [usage.v4, usage.v6]
                    .into_iter()
                    .flatten()
                    .flat_map(|u| u.allocated_addrs().collect::<Vec<_>>())
                    .collect();
                for a in allocated.iter().filter(|a| !held.contains_key(a)) {
                    f.leaked_addresses += 1;
                    f.details
                        .push(format!("network {id}: bit {a} set, no live DanmEp holds it"));
                }
                for (a, ep) in held.iter().filter(|(a, _)| !allocated.contains(a)) {
                    f.bitmap_or_blocks_mismatch += 1;
                    f.details
                        .push(format!("network {id}: DanmEp {ep} holds {a}, its bit is clear"));
                }
            }
            IpamMode::Blocks => {
                let mut owned: BTreeMap<IpAddr, &str> = BTreeMap::new();
                for b in api.blocks.iter().filter(|b| b.spec.network == id.to_string()) {
                    let Some(base) = addr_of(&b.spec.cidr) else {
                        f.bitmap_or_blocks_mismatch += 1;
                        f.details
                            .push(format!("block {}: bad cidr {}", b.name(), b.spec.cidr));
                        continue;
                    };
                    for (rel, owner) in &b.spec.owners {
                        owned.insert(danm_core::ipam::addr_plus(base, *rel), owner);
                    }
                }
                for (a, owner) in &owned {
                    if held.get(a) != Some(owner) {
                        f.leaked_addresses += 1;
                        f.details.push(format!(
                            "network {id}: {a} owned by {owner}, no live DanmEp of that name holds it"
                        ));
                    }
                }
                for (a, ep) in held.iter().filter(|(a, ep)| owned.get(a) != Some(*ep)) {
                    f.bitmap_or_blocks_mismatch += 1;
                    f.details.push(format!(
                        "network {id}: DanmEp {ep} holds {a}, its block records {:?}",
                        owned.get(a)
                    ));
                }
            }
        }
    }

    // Kernel: no namespace of the run but the live pods', no danm link in the host namespace.
    let live_ns: BTreeSet<&str> = live.iter().map(|p| p.netns.as_str()).collect();
    for ns in kernel::netns_with_prefix(netns_prefix).await? {
        if !live_ns.contains(ns.as_str()) {
            f.leftover_netns += 1;
            f.details.push(format!("network namespace {ns} has no live pod"));
        }
    }
    for l in kernel::host_links().await? {
        let child_of_parent =
            l.kind.as_deref() == Some("macvlan") && l.parent.as_ref().is_some_and(|p| parents.contains(p));
        if l.group == DANM_LINK_GROUP || child_of_parent {
            f.leftover_links += 1;
            f.details.push(format!(
                "host namespace: link {} ({:?}) left behind",
                l.name, l.parent
            ));
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_held_by_two_pods_is_a_duplicate_and_one_pod_twice_is_not() {
        let d = duplicates(
            [
                ("a", "10.0.0.1".to_string()),
                ("b", "10.0.0.1".to_string()),
                ("a", "10.0.0.2".to_string()),
                ("a", "10.0.0.2".to_string()),
            ]
            .into_iter(),
        );
        assert_eq!(d.into_iter().collect::<Vec<_>>(), vec!["10.0.0.1".to_string()]);
    }
}
