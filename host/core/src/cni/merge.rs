//! Merging the per-interface results of one pod into the one result ADD prints (behaviour §4.11, fixing
//! §10 B4/B5).
//!
//! Rules:
//! - Order: the `eth0` attachment first (the CRI takes the first IP as the PodIP), then the others in the order
//!   given, which is annotation order. Deterministic, unlike DANM's completion order.
//! - Each attachment is [`normalise`]d first: its pod-side interface (named as the attachment's `ifname`) is made
//!   to exist, with the netns path as `sandbox`, and IPs without a valid interface index are attached to it.
//! - Interfaces are concatenated and every IP's `interface` index is shifted to the merged list.
//! - IPs of `eth0` come first; routes are concatenated with exact duplicates dropped; DNS is merged: nameservers,
//!   search domains and options deduplicated in order, the first non-empty domain.

use super::result::{CniResult, Dns, Interface};

/// The result of one interface of the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentResult {
    /// The network's NPWG name (see [`super::npwg_name`]), for network-status.
    pub network: String,
    /// The interface's name in the pod.
    pub ifname: String,
    /// The pod's netns path (`CNI_NETNS`).
    pub sandbox: String,
    /// What the backend or delegate returned (any version, already parsed).
    pub result: CniResult,
}

/// The pod-side interface of an attachment: the first interface named `ifname` that has a sandbox, else the first
/// named `ifname`.
fn pod_interface(result: &CniResult, ifname: &str) -> Option<usize> {
    let named = |i: &&Interface| i.name == ifname;
    let with_sandbox = result
        .interfaces
        .iter()
        .position(|i| named(&i) && !i.sandbox.is_empty());
    with_sandbox.or_else(|| result.interfaces.iter().position(|i| named(&i)))
}

/// The attachment's result with its pod-side interface present (appended if the backend did not report it, with
/// an empty MAC; its sandbox filled in if empty) and every IP pointing at a valid interface (IPs without an index,
/// or with one out of range, point at the pod-side interface).
pub fn normalise(attachment: &AttachmentResult) -> CniResult {
    let mut result = attachment.result.clone();
    let index = match pod_interface(&result, &attachment.ifname) {
        Some(index) => index,
        None => {
            result.interfaces.push(Interface {
                name: attachment.ifname.clone(),
                ..Interface::default()
            });
            result.interfaces.len() - 1
        }
    };
    if result.interfaces[index].sandbox.is_empty() {
        result.interfaces[index].sandbox = attachment.sandbox.clone();
    }
    let count = result.interfaces.len();
    for ip in &mut result.ips {
        if ip.interface.is_none_or(|i| i >= count) {
            ip.interface = Some(index);
        }
    }
    result
}

/// The attachments in output order: `eth0` first, then the rest in the given order.
pub(crate) fn output_order(attachments: &[AttachmentResult]) -> Vec<&AttachmentResult> {
    let first = crate::naming::FIRST_INTERFACE;
    attachments
        .iter()
        .filter(|a| a.ifname == first)
        .chain(attachments.iter().filter(|a| a.ifname != first))
        .collect()
}

/// Merges the pod's per-interface results (given in annotation order) into one.
pub fn merge_results(attachments: &[AttachmentResult]) -> CniResult {
    let mut merged = CniResult::default();
    let mut first_ips = Vec::new();
    let mut other_ips = Vec::new();
    for attachment in output_order(attachments) {
        let result = normalise(attachment);
        let offset = merged.interfaces.len();
        let is_first = attachment.ifname == crate::naming::FIRST_INTERFACE;
        for mut ip in result.ips {
            ip.interface = ip.interface.map(|i| i + offset);
            if is_first {
                first_ips.push(ip)
            } else {
                other_ips.push(ip)
            }
        }
        merged.interfaces.extend(result.interfaces);
        for route in result.routes {
            if !merged.routes.contains(&route) {
                merged.routes.push(route);
            }
        }
        merge_dns(&mut merged.dns, &result.dns);
    }
    merged.ips = first_ips.into_iter().chain(other_ips).collect();
    merged
}

fn merge_dns(into: &mut Dns, from: &Dns) {
    fn extend_unique(into: &mut Vec<String>, from: &[String]) {
        for item in from {
            if !into.contains(item) {
                into.push(item.clone());
            }
        }
    }
    extend_unique(&mut into.nameservers, &from.nameservers);
    extend_unique(&mut into.search, &from.search);
    extend_unique(&mut into.options, &from.options);
    if into.domain.is_empty() {
        into.domain = from.domain.clone();
    }
}

#[cfg(test)]
mod tests;
