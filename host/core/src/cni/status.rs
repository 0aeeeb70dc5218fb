//! The Network Plumbing WG `k8s.v1.cni.cncf.io/network-status` annotation value, built from the pod's results.

use serde::{Deserialize, Serialize};

use super::merge::{AttachmentResult, normalise, output_order};
use super::result::Dns;
use crate::annotation::NetworkRef;

/// One element of the network-status list (NPWG multi-net spec; keys as Multus writes them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// Addresses without prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// True for the pod's primary interface (`eth0`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway: Vec<String>,
}

/// The NPWG name of a network: `<namespace>/<name>` for DanmNets and TenantNetworks (which live in the pod's
/// namespace), the bare name for ClusterNetworks.
pub fn npwg_name(network: &NetworkRef, pod_namespace: &str) -> String {
    if network.kind.namespaced() {
        format!("{pod_namespace}/{}", network.name)
    } else {
        network.name.clone()
    }
}

/// One status element per attachment, in the merged result's order (`eth0` first, then annotation order), each with
/// the pod-side interface's name, MAC and MTU, its addresses and gateways, and the attachment's DNS.
pub fn network_status(attachments: &[AttachmentResult]) -> Vec<NetworkStatus> {
    output_order(attachments)
        .into_iter()
        .map(|attachment| {
            let result = normalise(attachment);
            let index = result
                .interfaces
                .iter()
                .position(|i| i.name == attachment.ifname && i.sandbox == attachment.sandbox)
                .or_else(|| result.interfaces.iter().position(|i| i.name == attachment.ifname));
            let interface = index.map(|i| &result.interfaces[i]);
            let ips: Vec<_> = result.ips.iter().filter(|ip| ip.interface == index).collect();
            NetworkStatus {
                name: attachment.network.clone(),
                interface: attachment.ifname.clone(),
                ips: ips.iter().map(|ip| ip.address.ip().to_string()).collect(),
                mac: interface.map(|i| i.mac.clone()).unwrap_or_default(),
                mtu: interface.and_then(|i| i.mtu),
                default: attachment.ifname == crate::naming::FIRST_INTERFACE,
                dns: result.dns.clone(),
                gateway: ips
                    .iter()
                    .filter_map(|ip| ip.gateway)
                    .map(|g| g.to_string())
                    .collect(),
            }
        })
        .collect()
}

/// The annotation value: the JSON list of [`network_status`].
pub fn network_status_json(attachments: &[AttachmentResult]) -> String {
    serde_json::to_string(&network_status(attachments)).expect("network status always serialises")
}
