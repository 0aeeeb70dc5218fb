//! DanmIpBlock: the allocation state of one aligned range of a network's pool in the `blocks` IPAM mode (a danm
//! kind; DANM had none). Cluster-scoped, written only by the IPAM, never by users.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::nullable::or_default;

/// A DanmIpBlock object (`danm.k8s.io/v1`, cluster-scoped).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DanmIpBlock {
    #[serde(rename = "apiVersion", default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "or_default")]
    pub spec: DanmIpBlockSpec,
}

fn api_version() -> String {
    crate::API_VERSION.to_owned()
}
fn kind() -> String {
    "DanmIpBlock".to_owned()
}

impl DanmIpBlock {
    pub fn new(name: &str, spec: DanmIpBlockSpec) -> Self {
        DanmIpBlock {
            api_version: api_version(),
            kind: kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
        }
    }

    /// The object's name (empty when unset).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

/// `spec` of a DanmIpBlock.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase")]
pub struct DanmIpBlockSpec {
    /// The network: `DanmNet ns/name`, `TenantNetwork ns/name` or `ClusterNetwork name`.
    #[serde(deserialize_with = "or_default")]
    pub network: String,
    /// The network object's UID when the block was claimed: a block of a deleted and re-created network is stale.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub network_uid: String,
    /// The aligned range this block covers (`10.0.0.64/26`, `2001:db8::40/122`).
    #[serde(deserialize_with = "or_default")]
    pub cidr: String,
    /// The node that holds the block (its allocations come from here first).
    #[serde(deserialize_with = "or_default")]
    pub node: String,
    /// The owner of every allocated address, by offset in the block: a DanmEp's name, or `claim:ns/name`.
    #[serde(deserialize_with = "or_default")]
    #[cfg_attr(feature = "kube", schemars(with = "BTreeMap<String, String>"))]
    pub owners: BTreeMap<u32, String>,
    /// The offset last handed out dynamically; the next dynamic allocation starts after it (round robin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<u32>,
    /// When the block last became empty (RFC 3339); it is handed back after an idle time.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub empty_since: String,
}

#[cfg(feature = "kube")]
crate::static_resource!(
    DanmIpBlock,
    "DanmIpBlock",
    crate::GROUP,
    crate::VERSION,
    "danmipblocks",
    ClusterResourceScope
);
