//! NetworkAttachmentDefinition (`k8s.cni.cncf.io/v1`), read by netwatcher (behaviour §1.5, §6).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::nullable::or_default;

pub const NAD_GROUP: &str = "k8s.cni.cncf.io";
/// The kind of NADs; also the `apiType` of the DanmEp of an NPWG attachment (behaviour §2.1).
pub const NAD_KIND: &str = "NetworkAttachmentDefinition";
/// The NAD annotation naming the device-plugin resource (an SR-IOV device pool) its attachments take a device of
/// (behaviour §2.1), as Multus reads it.
pub const RESOURCE_NAME_ANNOTATION: &str = "k8s.v1.cni.cncf.io/resourceName";

/// A Network Plumbing WG NetworkAttachmentDefinition.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachmentDefinition {
    #[serde(rename = "apiVersion", default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "or_default")]
    pub spec: NadSpec,
}

impl NetworkAttachmentDefinition {
    /// The resource its attachments take a device of ([`RESOURCE_NAME_ANNOTATION`]), when it names one.
    pub fn resource_name(&self) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RESOURCE_NAME_ANNOTATION))
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
    }
}

fn api_version() -> String {
    "k8s.cni.cncf.io/v1".to_owned()
}
fn kind() -> String {
    NAD_KIND.to_owned()
}

/// `spec` of a NAD: a CNI config as a JSON string.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct NadSpec {
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub config: String,
}

#[cfg(feature = "kube")]
crate::static_resource!(
    NetworkAttachmentDefinition,
    "NetworkAttachmentDefinition",
    NAD_GROUP,
    "v1",
    "network-attachment-definitions",
    NamespaceResourceScope
);
