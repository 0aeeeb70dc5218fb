//! The API calls IPAM makes ([`IpamStore`]), their errors ([`ApiError`]), and the store over a kube client.
//!
//! Networks are only ever written with a conditional PUT (resourceVersion), blocks with a create (a name that exists
//! is [`ApiError::AlreadyExists`]), a conditional PUT, or a delete with a resourceVersion precondition; a lost race is
//! [`ApiError::Conflict`] and the caller re-reads.

use async_trait::async_trait;
use danm_api::{DanmIpBlock, Network, NetworkKind};
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};

/// Errors of the API layer; each names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("could not build a Kubernetes client from kubeconfig {path:?}: {reason}")]
    Client { path: String, reason: String },
    #[error("{object} was modified concurrently (HTTP 409 conflict)")]
    Conflict { object: String },
    #[error("{object} already exists")]
    AlreadyExists { object: String },
    #[error("{object} does not exist")]
    NotFound { object: String },
    #[error("API request for {object} failed: {reason}")]
    Request { object: String, reason: String },
}

impl ApiError {
    /// Maps a kube error for `object`: 404 → NotFound, 409 → AlreadyExists or Conflict (by the Status reason).
    pub fn from_kube(object: String, err: kube::Error) -> Self {
        match &err {
            kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists" => {
                ApiError::AlreadyExists { object }
            }
            kube::Error::Api(status) if status.code == 409 => ApiError::Conflict { object },
            kube::Error::Api(status) if status.code == 404 => ApiError::NotFound { object },
            _ => ApiError::Request {
                object,
                reason: err.to_string(),
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }
}

/// Human-readable name of a network object for errors: `DanmNet ns/name`, `ClusterNetwork name`.
pub fn network_object(kind: NetworkKind, namespace: &str, name: &str) -> String {
    danm_core::ipam::blocks::NetworkId::new(kind, namespace, name).to_string()
}

/// Human-readable name of a block object for errors.
pub fn block_object(name: &str) -> String {
    format!("DanmIpBlock {name}")
}

/// The API operations IPAM needs.
#[async_trait]
pub trait IpamStore: Send + Sync {
    /// The network, or `None` if it does not exist. `namespace` is ignored for ClusterNetworks.
    async fn get_network(
        &self,
        kind: NetworkKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Network>, ApiError>;
    /// Conditional PUT of the whole network (its metadata carries the resourceVersion that was read).
    async fn replace_network(&self, network: &Network) -> Result<Network, ApiError>;
    /// The blocks matching a label selector.
    async fn list_blocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ApiError>;
    /// A block, or `None` if it does not exist.
    async fn get_block(&self, name: &str) -> Result<Option<DanmIpBlock>, ApiError>;
    /// Creates a block; [`ApiError::AlreadyExists`] when its name is taken.
    async fn create_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError>;
    /// Conditional PUT of a block.
    async fn replace_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError>;
    /// Deletes a block if it still has `resource_version`; `Ok(false)` if it was gone.
    async fn delete_block(&self, name: &str, resource_version: &str) -> Result<bool, ApiError>;
}

fn networks(client: &kube::Client, kind: NetworkKind, namespace: &str) -> kube::Api<Network> {
    if kind.namespaced() {
        kube::Api::namespaced_with(client.clone(), namespace, &kind)
    } else {
        kube::Api::all_with(client.clone(), &kind)
    }
}

#[async_trait]
impl IpamStore for kube::Client {
    async fn get_network(
        &self,
        kind: NetworkKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Network>, ApiError> {
        networks(self, kind, namespace)
            .get_opt(name)
            .await
            .map_err(|e| ApiError::from_kube(network_object(kind, namespace, name), e))
    }

    async fn replace_network(&self, network: &Network) -> Result<Network, ApiError> {
        let kind = network.network_kind().map_err(|e| ApiError::Request {
            object: format!("network {}", network.name()),
            reason: e.to_string(),
        })?;
        let ns = network.namespace().unwrap_or_default().to_owned();
        networks(self, kind, &ns)
            .replace(network.name(), &PostParams::default(), network)
            .await
            .map_err(|e| ApiError::from_kube(network_object(kind, &ns, network.name()), e))
    }

    async fn list_blocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ApiError> {
        let api: kube::Api<DanmIpBlock> = kube::Api::all(self.clone());
        api.list(&ListParams::default().labels(selector))
            .await
            .map(|l| l.items)
            .map_err(|e| ApiError::from_kube(format!("DanmIpBlocks with {selector}"), e))
    }

    async fn get_block(&self, name: &str) -> Result<Option<DanmIpBlock>, ApiError> {
        let api: kube::Api<DanmIpBlock> = kube::Api::all(self.clone());
        api.get_opt(name)
            .await
            .map_err(|e| ApiError::from_kube(block_object(name), e))
    }

    async fn create_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        let api: kube::Api<DanmIpBlock> = kube::Api::all(self.clone());
        api.create(&PostParams::default(), block)
            .await
            .map_err(|e| ApiError::from_kube(block_object(block.name()), e))
    }

    async fn replace_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        let api: kube::Api<DanmIpBlock> = kube::Api::all(self.clone());
        api.replace(block.name(), &PostParams::default(), block)
            .await
            .map_err(|e| ApiError::from_kube(block_object(block.name()), e))
    }

    async fn delete_block(&self, name: &str, resource_version: &str) -> Result<bool, ApiError> {
        let api: kube::Api<DanmIpBlock> = kube::Api::all(self.clone());
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: Some(resource_version.to_owned()),
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => Ok(true),
            Err(e) => match ApiError::from_kube(block_object(name), e) {
                ApiError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
}
