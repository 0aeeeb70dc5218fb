//! What the webhook reads and writes in the cluster: the TenantConfig (first of the list), conditional replaces of it
//! by resourceVersion (409 → [`ClusterError::Conflict`]), DanmEps and DanmIpBlocks. Two implementations: [`KubeCluster`] (a kube
//! client) and [`MemoryCluster`] (the offline `review` command and tests; honours `ApiFault` pseudo-objects).

#[cfg(feature = "server")]
mod kube;
mod memory;

use async_trait::async_trait;
use danm_api::{DanmEp, DanmIpBlock, TenantConfig};

#[cfg(feature = "server")]
pub use self::kube::KubeCluster;
pub use memory::{ApiFault, MemoryCluster, ObjectsError};

/// Errors from the cluster.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The object changed since it was read (HTTP 409).
    #[error("conflict writing {resource} {name}: the object has been modified")]
    Conflict { resource: &'static str, name: String },
    /// The object does not exist (HTTP 404).
    #[error("{resource} {name} not found")]
    NotFound { resource: &'static str, name: String },
    /// Any other API error.
    #[error("{verb} {resource} failed: {message} (code {code})")]
    Api {
        verb: &'static str,
        resource: &'static str,
        code: u16,
        message: String,
    },
}

/// The cluster operations the webhook needs.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// Lists TenantConfigs and returns the first (DANM only ever uses item 0), or `None` when there is none.
    async fn first_tenant_config(&self) -> Result<Option<TenantConfig>, ClusterError>;
    /// Reads one TenantConfig by name (the re-read after a conflict).
    async fn get_tenant_config(&self, name: &str) -> Result<TenantConfig, ClusterError>;
    /// Replaces a TenantConfig if its `metadata.resourceVersion` is still current; returns the stored object.
    async fn replace_tenant_config(&self, tc: &TenantConfig) -> Result<TenantConfig, ClusterError>;
    /// DanmEps of one namespace, or of every namespace when `namespace` is `None`.
    async fn list_danmeps(&self, namespace: Option<&str>) -> Result<Vec<DanmEp>, ClusterError>;
    /// DanmIpBlocks matching a label selector (the blocks of a network in `blocks` IPAM mode).
    async fn list_ipblocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ClusterError>;
}
