//! The network spec shared by DanmNet, TenantNetwork and ClusterNetwork, and one object type serving all three kinds.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::nullable::{is_zero, or_default};

/// The three network kinds. They share one spec type (behaviour §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetworkKind {
    DanmNet,
    TenantNetwork,
    ClusterNetwork,
}

impl NetworkKind {
    pub const ALL: [NetworkKind; 3] = [Self::DanmNet, Self::TenantNetwork, Self::ClusterNetwork];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DanmNet => "DanmNet",
            Self::TenantNetwork => "TenantNetwork",
            Self::ClusterNetwork => "ClusterNetwork",
        }
    }
    pub fn plural(self) -> &'static str {
        match self {
            Self::DanmNet => "danmnets",
            Self::TenantNetwork => "tenantnetworks",
            Self::ClusterNetwork => "clusternetworks",
        }
    }
    pub fn singular(self) -> &'static str {
        match self {
            Self::DanmNet => "danmnet",
            Self::TenantNetwork => "tenantnetwork",
            Self::ClusterNetwork => "clusternetwork",
        }
    }
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Self::DanmNet => &["dn", "dnet"],
            Self::TenantNetwork => &["tn", "tnet"],
            Self::ClusterNetwork => &["cn", "cnet"],
        }
    }
    /// ClusterNetworks are cluster-scoped; the other two live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Self::ClusterNetwork)
    }
    /// The DanmEp `apiType` value that refers to this kind. DANM wrote `""` for the namespace default DanmNet;
    /// [`NetworkKind::from_api_type`] reads that back as DanmNet (behaviour §10 B11).
    pub fn from_api_type(api_type: &str) -> Result<Self, UnknownKind> {
        if api_type.is_empty() {
            Ok(Self::DanmNet)
        } else {
            api_type.parse()
        }
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind name that is not one of the three network kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "K8s API type:{} is not handled by DANM", self.0)
    }
}
impl std::error::Error for UnknownKind {}

impl FromStr for NetworkKind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// `spec` of DanmNet / TenantNetwork / ClusterNetwork, with DANM's JSON keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct NetworkSpec {
    /// Second identifier: static delegate config name, VLAN link prefix, VxLAN link suffix.
    #[serde(rename = "NetworkID", deserialize_with = "or_default")]
    pub network_id: String,
    /// Backend: ipvlan (default), macvlan, sriov, or any CNI plugin name (static delegation).
    #[serde(
        rename = "NetworkType",
        deserialize_with = "or_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub network_type: String,
    /// ClusterNetwork only: namespaces whose pods may connect; absent = every namespace.
    #[serde(rename = "AllowedTenants", skip_serializing_if = "Option::is_none")]
    pub allowed_tenants: Option<Vec<String>>,
    #[serde(rename = "Options", deserialize_with = "or_default")]
    pub options: NetworkOptions,
}

/// `spec.Options`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct NetworkOptions {
    /// Parent NIC for ipvlan/macvlan and for the VLAN/VxLAN host links.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub host_device: String,
    /// Device-plugin resource name (SR-IOV); excludes `host_device`.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub device_pool: String,
    /// VxLAN VNI; netwatcher keeps `vx_<NetworkID>` for it.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "is_zero")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 16777214)))]
    pub vxlan: u32,
    /// Interface-name prefix inside the pod.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub container_prefix: String,
    /// IPv4 subnet (prefix ≥ /9).
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    #[cfg_attr(
        feature = "kube",
        schemars(regex(pattern = r"^$|^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$"))
    )]
    pub cidr: String,
    /// IPv4 routes (destination CIDR → gateway) for the pod's main table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<BTreeMap<String, String>>,
    /// IPv4 allocation bitmap (base64), written by the webhook and the CNI.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub alloc: String,
    /// IPv4 dynamic range. DANM always serialises it, empty strings included.
    #[serde(deserialize_with = "or_default")]
    pub allocation_pool: IpPool,
    /// IPv6 subnet.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    #[cfg_attr(feature = "kube", schemars(regex(pattern = r"^$|:")))]
    pub net6: String,
    /// IPv6 routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes6: Option<BTreeMap<String, String>>,
    /// IPv6 allocation bitmap over `allocation_pool_v6.cidr`.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub alloc6: String,
    /// IPv6 dynamic range and the sub-CIDR its bitmap covers.
    #[serde(deserialize_with = "or_default")]
    pub allocation_pool_v6: Ip6Pool,
    /// Routing table for policy routes (`proutes`); 0 = off. DANM always serialises it.
    #[serde(deserialize_with = "or_default")]
    #[cfg_attr(feature = "kube", schemars(range(max = 255)))]
    pub rt_tables: u32,
    /// VLAN id; netwatcher keeps `<NetworkID>.<vlan>` for it.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "is_zero")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1, max = 4094)))]
    pub vlan: u32,
    /// danm extension (B17): backend mode, e.g. macvlan `bridge`/`vepa`/`private`/`passthru`, ipvlan `l2`/`l3`/`l3s`.
    /// Empty = the backend's DANM default.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// danm extension (B17): interface MTU; 0 = the backend's default.
    #[serde(deserialize_with = "or_default", skip_serializing_if = "is_zero")]
    #[cfg_attr(feature = "kube", schemars(range(max = 65535)))]
    pub mtu: u32,
}

/// `allocation_pool`: an inclusive IPv4 range. `lastIp` is written by IPAM.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct IpPool {
    #[serde(deserialize_with = "or_default")]
    pub start: String,
    #[serde(deserialize_with = "or_default")]
    pub end: String,
    #[serde(rename = "lastIp", deserialize_with = "or_default")]
    pub last_ip: String,
}

impl IpPool {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.end.is_empty() && self.last_ip.is_empty()
    }
}

/// `allocation_pool_v6`: the IPv6 range plus the sub-CIDR its bitmap covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(default)]
pub struct Ip6Pool {
    #[serde(deserialize_with = "or_default")]
    pub start: String,
    #[serde(deserialize_with = "or_default")]
    pub end: String,
    #[serde(rename = "lastIp", deserialize_with = "or_default")]
    pub last_ip: String,
    #[serde(deserialize_with = "or_default")]
    pub cidr: String,
}

impl Ip6Pool {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.end.is_empty() && self.last_ip.is_empty() && self.cidr.is_empty()
    }
}

/// A DanmNet, TenantNetwork or ClusterNetwork object. `kind` says which; on the host it is a kube resource whose
/// dynamic type is the [`NetworkKind`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "or_default")]
    pub spec: NetworkSpec,
}

impl Network {
    pub fn new(kind: NetworkKind, namespace: Option<&str>, name: &str, spec: NetworkSpec) -> Self {
        Network {
            api_version: crate::API_VERSION.to_owned(),
            kind: kind.as_str().to_owned(),
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: if kind.namespaced() {
                    namespace.map(str::to_owned)
                } else {
                    None
                },
                ..ObjectMeta::default()
            },
            spec,
        }
    }

    /// The kind, if it is one of the three network kinds.
    pub fn network_kind(&self) -> Result<NetworkKind, UnknownKind> {
        self.kind.parse()
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }
}

impl NetworkSpec {
    /// NetworkType lower-cased, with DANM's empty type meaning ipvlan (behaviour §10 B3).
    pub fn backend(&self) -> String {
        backend_of(&self.network_type)
    }

    /// Types whose CNI config danm generates from the network object ("dynamic" integration, behaviour §4.3).
    pub fn is_dynamic(&self) -> bool {
        matches!(self.backend().as_str(), "ipvlan" | "macvlan" | "sriov")
    }
}

#[cfg(feature = "kube")]
mod resource {
    use std::borrow::Cow;

    use kube::core::{DynamicResourceScope, Resource};

    use super::{Network, NetworkKind};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    impl Resource for Network {
        type DynamicType = NetworkKind;
        type Scope = DynamicResourceScope;

        fn kind(dt: &NetworkKind) -> Cow<'_, str> {
            dt.as_str().into()
        }
        fn group(_: &NetworkKind) -> Cow<'_, str> {
            crate::GROUP.into()
        }
        fn version(_: &NetworkKind) -> Cow<'_, str> {
            crate::VERSION.into()
        }
        fn plural(dt: &NetworkKind) -> Cow<'_, str> {
            dt.plural().into()
        }
        fn meta(&self) -> &ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut ObjectMeta {
            &mut self.metadata
        }
    }
}

/// The backend a NetworkType names: lower-cased, empty meaning `ipvlan` (DANM's default, behaviour §10 B3). The one
/// definition of that rule; a DanmEp's recorded `NetworkType` is read with it too.
pub fn backend_of(network_type: &str) -> String {
    let t = network_type.to_ascii_lowercase();
    if t.is_empty() { "ipvlan".to_owned() } else { t }
}
