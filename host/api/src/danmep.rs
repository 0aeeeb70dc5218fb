//! DanmEp: one object per pod interface, written by the CNI (behaviour §1.3).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::nullable::or_default;

/// A DanmEp object (`danm.k8s.io/v1`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DanmEp {
    #[serde(rename = "apiVersion", default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "or_default")]
    pub spec: DanmEpSpec,
}

fn api_version() -> String {
    crate::API_VERSION.to_owned()
}
fn kind() -> String {
    "DanmEp".to_owned()
}

impl DanmEp {
    pub fn new(namespace: &str, name: &str, spec: DanmEpSpec) -> Self {
        DanmEp {
            api_version: api_version(),
            kind: kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            spec,
        }
    }

    /// The pool network danm's IPAM allocated an NPWG attachment's addresses from, as its
    /// [`IPAM_NETWORK`](crate::annotations::IPAM_NETWORK) annotation names it: `(kind, namespace, name)`, the parts
    /// the value lacks empty. `None` when the DanmEp has no such annotation (danm's own interfaces never do).
    pub fn ipam_pool(&self) -> Option<(&str, &str, &str)> {
        let value = self
            .metadata
            .annotations
            .as_ref()?
            .get(crate::annotations::IPAM_NETWORK)?;
        let mut parts = value.splitn(3, '/');
        Some((
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        ))
    }
}

/// `spec` of a DanmEp.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct DanmEpSpec {
    #[serde(rename = "NetworkName", deserialize_with = "or_default")]
    pub network_name: String,
    #[serde(rename = "NetworkType", deserialize_with = "or_default")]
    pub network_type: String,
    #[serde(rename = "EndpointID", deserialize_with = "or_default")]
    pub endpoint_id: String,
    #[serde(rename = "Interface", deserialize_with = "or_default")]
    pub interface: DanmEpInterface,
    #[serde(
        rename = "Host",
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub host: String,
    #[serde(rename = "Pod", deserialize_with = "or_default")]
    pub pod: String,
    #[serde(rename = "PodUID", deserialize_with = "or_default")]
    pub pod_uid: String,
    /// `K8S_POD_INFRA_CONTAINER_ID` of the pod sandbox.
    #[serde(
        rename = "CID",
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub cid: String,
    #[serde(
        rename = "netns",
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub netns: String,
    /// Kind of the network (`DanmNet`, `TenantNetwork`, `ClusterNetwork`); DANM left it empty for default DanmNets.
    #[serde(rename = "apiType", deserialize_with = "or_default")]
    pub api_type: String,
}

/// `spec.Interface` of a DanmEp.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct DanmEpInterface {
    #[serde(rename = "Name", deserialize_with = "or_default")]
    pub name: String,
    /// `a.b.c.d/len`, `none` or empty.
    #[serde(rename = "Address", deserialize_with = "or_default")]
    pub address: String,
    #[serde(rename = "AddressIPv6", deserialize_with = "or_default")]
    pub address_ipv6: String,
    #[serde(rename = "MacAddress", deserialize_with = "or_default")]
    pub mac_address: String,
    /// Always serialised, `null` when absent (as DANM did).
    pub proutes: Option<BTreeMap<String, String>>,
    pub proutes6: Option<BTreeMap<String, String>>,
    #[serde(
        rename = "DeviceID",
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub device_id: String,
}

#[cfg(feature = "kube")]
crate::static_resource!(
    DanmEp,
    "DanmEp",
    crate::GROUP,
    crate::VERSION,
    "danmeps",
    NamespaceResourceScope
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipam_pool_annotation_splits_into_kind_namespace_and_name() {
        let mut ep = DanmEp::new("other", "ep", DanmEpSpec::default());
        assert_eq!(ep.ipam_pool(), None);
        ep.metadata.annotations = Some(BTreeMap::from([(
            crate::annotations::IPAM_NETWORK.to_owned(),
            "ClusterNetwork//wide".to_owned(),
        )]));
        assert_eq!(ep.ipam_pool(), Some(("ClusterNetwork", "", "wide")));
        ep.metadata.annotations = Some(BTreeMap::from([(
            crate::annotations::IPAM_NETWORK.to_owned(),
            "DanmNet".to_owned(),
        )]));
        assert_eq!(ep.ipam_pool(), Some(("DanmNet", "", "")));
    }
}
