//! The host's domain types for plugin calls, independent of any WIT version's generated bindings.

use serde::{Deserialize, Serialize};

pub use danm_api::validation::{Operation, Violation};

/// What a backend needs from danm (`describe()`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    pub description: String,
    pub needs_ipam: bool,
    pub needs_device_pool: bool,
    pub needs_host_device: bool,
    pub max_network_id_length: Option<u32>,
}

/// One pod interface to translate into a CNI config (`translate(attachment)`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranslateRequest {
    /// The network object (DanmNet/TenantNetwork/ClusterNetwork) as JSON.
    pub network_json: String,
    pub interface_name: String,
    /// IPv4 in CIDR form, if allocated.
    pub ip4: Option<String>,
    /// IPv6 in CIDR form, if allocated.
    pub ip6: Option<String>,
    /// A parent link the host resolved (e.g. the SR-IOV PF); `None` lets the plugin apply netwatcher's naming.
    pub parent: Option<String>,
    /// The device taken from the network's device pool.
    pub device_id: Option<String>,
    pub cni_version: String,
    pub pod_namespace: String,
    pub pod_name: String,
}

/// One admission request for the rules plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Review {
    pub kind: String,
    pub operation: Operation,
    pub object_json: Option<String>,
    pub old_object_json: Option<String>,
    pub tenant_config_json: Option<String>,
    /// NetworkTypes served by backend plugins; [`crate::PluginSet::review`] fills it when left empty.
    pub dynamic_types: Vec<String>,
}
