//! DANM's Kubernetes API (`danm.k8s.io/v1`): wire-compatible types for networks, DanmEps, TenantConfigs, NADs and
//! IPAMClaims.
//!
//! Every type reads objects exactly as DANM's Go components wrote them: `""`, `0`, `null` and an absent member mean
//! the same thing, and the always-serialised empty `allocation_pool`/`allocation_pool_v6` objects are accepted.
//! With the `kube` feature (the host side) the types implement `kube::Resource` and can describe their CRDs; guests
//! build without it and get plain serde types.
//!
//! ```
//! use danm_api::{Network, NetworkKind};
//!
//! // An object as DANM's Go components wrote it: zero values present, `""` meaning absent.
//! let net: Network = serde_json::from_str(r#"{"apiVersion":"danm.k8s.io/v1","kind":"DanmNet",
//!     "metadata":{"name":"ext","namespace":"default"},
//!     "spec":{"NetworkID":"ext","NetworkType":"","Options":{"cidr":"10.0.0.0/24","vlan":0,
//!             "allocation_pool":{"start":"","end":"","lastIp":""}}}}"#).unwrap();
//! assert_eq!(net.network_kind().unwrap(), NetworkKind::DanmNet);
//! assert_eq!(net.spec.backend(), "ipvlan"); // an empty NetworkType is DANM's default
//! ```

mod danmep;
pub mod ipamclaim;
mod ipblock;
pub mod nad;
mod network;
mod nullable;
#[cfg(feature = "kube")]
mod resource;
mod tenantconfig;
pub mod validation;

#[cfg(feature = "kube")]
pub mod crd;

pub use danmep::{DanmEp, DanmEpInterface, DanmEpSpec};
pub use ipamclaim::{IpamClaim, IpamClaimSpec, IpamClaimStatus, OwnerPod, claim_owner};
pub use ipblock::{DanmIpBlock, DanmIpBlockSpec};
pub use nad::{NadSpec, NetworkAttachmentDefinition};
pub use network::{
    Ip6Pool, IpPool, Network, NetworkKind, NetworkOptions, NetworkSpec, UnknownKind, backend_of,
};
pub use tenantconfig::{InterfaceProfile, TenantConfig};

pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The API group of every DANM release (v3.x–v4.3).
pub const GROUP: &str = "danm.k8s.io";
/// Where the backend plugins (`*.wasm`) live on a node and in the webhook image, unless configured otherwise.
pub const DEFAULT_PLUGIN_DIR: &str = "/etc/danm/plugins";

/// The only served version.
pub const VERSION: &str = "v1";
/// `apiVersion` of every DANM object.
pub const API_VERSION: &str = "danm.k8s.io/v1";

/// Pod annotation listing the interfaces a pod wants (DANM releases).
pub const INTERFACES_ANNOTATION: &str = "danm.k8s.io/interfaces";
/// The same annotation under the group of DANM's unreleased master; accepted too.
pub const INTERFACES_ANNOTATION_ALT: &str = "danm.io/interfaces";
/// Both accepted annotation prefixes, preferred first.
pub const ANNOTATION_PREFIXES: [&str; 2] = ["danm.k8s.io/", "danm.io/"];
/// The Network Plumbing WG status annotation the CNI writes after ADD.
pub const NETWORK_STATUS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/network-status";

/// Labels danm puts on DanmEps so DEL and GC select them instead of scanning the cluster (behaviour §10 B7).
pub mod labels {
    /// The pod sandbox (infra container) id the DanmEp belongs to.
    pub const CONTAINER_ID: &str = "danm.k8s.io/container-id";
    /// The pod UID the DanmEp belongs to.
    pub const POD_UID: &str = "danm.k8s.io/pod-uid";
    /// On a DanmIpBlock: a short hash of the network it belongs to (see `danm_core::ipam::blocks`).
    pub const NETWORK_ID: &str = "danm.k8s.io/network-id";
    /// On a DanmIpBlock: the node holding it (its name, or a hash when the name is no valid label value).
    pub const NODE: &str = "danm.k8s.io/node";
    /// On a DanmIpBlock: `v4` or `v6`.
    pub const FAMILY: &str = "danm.k8s.io/family";

    /// The label value of a container id: label values are limited to 63 characters, container ids are often 64, so
    /// the id is cut; DEL and GC compare the full `spec.CID` after listing.
    pub fn container_label(container_id: &str) -> String {
        container_id.chars().take(63).collect()
    }
}

/// Network annotations of danm's IPAM (danm's own; DANM objects carry none of them).
pub mod annotations {
    /// `bitmap` or `blocks`: where the network's allocations live. Without it, a network whose `alloc`/`alloc6` is
    /// set is in `bitmap` mode and any other network in the cluster default mode.
    pub const IPAM_MODE: &str = "danm.k8s.io/ipam-mode";
    /// The prefix length of the network's IPv4 blocks (`blocks` mode), e.g. `26`.
    pub const BLOCK_PREFIX_V4: &str = "danm.k8s.io/ipam-block-prefix";
    /// The prefix length of the network's IPv6 blocks (`blocks` mode), e.g. `122`.
    pub const BLOCK_PREFIX_V6: &str = "danm.k8s.io/ipam-block-prefix6";
    /// On the DanmEp of an NPWG attachment: the IPAMClaim (of the DanmEp's namespace) that holds its addresses.
    pub const IPAM_CLAIM: &str = "danm.k8s.io/ipam-claim";
    /// On the DanmEp of an NPWG attachment whose addresses danm's IPAM allocated: the pool network,
    /// `<Kind>/<namespace>/<name>` (the namespace empty for a ClusterNetwork).
    pub const IPAM_NETWORK: &str = "danm.k8s.io/ipam-network";
}
