//! TenantConfig: the cluster-scoped interface profiles and NetworkID mapping for TenantNetworks
//! (behaviour §1.4).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::nullable::or_default;

/// A TenantConfig. It has no `spec`: `hostDevices` and `networkIds` are top-level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantConfig {
    #[serde(rename = "apiVersion", default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(
        rename = "hostDevices",
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub host_devices: Vec<InterfaceProfile>,
    /// NetworkType → NetworkID forced onto TenantNetworks of that type (type compared case-insensitively).
    #[serde(
        rename = "networkIds",
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub network_ids: BTreeMap<String, String>,
}

fn api_version() -> String {
    crate::API_VERSION.to_owned()
}
fn kind() -> String {
    "TenantConfig".to_owned()
}

impl TenantConfig {
    pub fn new(name: &str) -> Self {
        TenantConfig {
            api_version: api_version(),
            kind: kind(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..TenantConfig::default()
        }
    }
}

/// `hostDevices[]`: a NIC (or, when the name contains `/`, a device pool) tenants may use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct InterfaceProfile {
    #[serde(deserialize_with = "or_default")]
    pub name: String,
    /// `vlan` or `vxlan`; empty = no VNI for networks on this profile.
    #[serde(
        rename = "vniType",
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub vni_type: String,
    /// cpuset syntax, e.g. `2000-2500,2601`; VNIs ≤ 5000.
    #[serde(
        rename = "vniRange",
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub vni_range: String,
    /// 5001-bit VNI bitmap (base64), written by the webhook.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub alloc: String,
}

#[cfg(feature = "kube")]
crate::static_resource!(
    TenantConfig,
    "TenantConfig",
    crate::GROUP,
    crate::VERSION,
    "tenantconfigs",
    ClusterResourceScope
);
