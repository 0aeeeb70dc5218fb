//! Kubernetes API access of the CNI: the [`Api`] trait the flows are written against and its kube implementation.
//!
//! The kube client is built fresh per invocation from the config's kubeconfig, so a rotated token file is picked
//! up by the next CNI call. Networks are only ever written with a conditional PUT (resourceVersion); a 409 is
//! reported as [`ApiError::Conflict`] and the IPAM layer retries (behaviour §5.4, §10 B8).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use danm_api::{DanmEp, DanmIpBlock, IpamClaim, Network, NetworkAttachmentDefinition, NetworkKind};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use danm_ipam::store::{ApiError, IpamStore, network_object};

/// The API operations the CNI flows need: IPAM's ([`IpamStore`]: networks and blocks) and these.
#[async_trait]
pub trait Api: IpamStore {
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, ApiError>;
    async fn create_ep(&self, ep: &DanmEp) -> Result<DanmEp, ApiError>;
    async fn replace_ep(&self, ep: &DanmEp) -> Result<DanmEp, ApiError>;
    /// Deletes a DanmEp; `Ok(false)` if it was already gone.
    async fn delete_ep(&self, namespace: &str, name: &str) -> Result<bool, ApiError>;
    /// DanmEps matching `selector` in `namespace`, or in all namespaces when `None`.
    async fn list_eps(&self, namespace: Option<&str>, selector: &str) -> Result<Vec<DanmEp>, ApiError>;
    /// Merge-patches one annotation of a pod.
    async fn annotate_pod(&self, namespace: &str, name: &str, key: &str, value: &str)
    -> Result<(), ApiError>;
    /// A cheap request that proves the API server answers (STATUS).
    async fn ping(&self) -> Result<(), ApiError>;
    /// A NetworkAttachmentDefinition (NPWG attachments); `None` when it does not exist.
    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>, ApiError>;
    /// An IPAMClaim; `None` when it does not exist.
    async fn get_claim(&self, namespace: &str, name: &str) -> Result<Option<IpamClaim>, ApiError>;
    /// Replaces an IPAMClaim's status, conditionally on the resourceVersion it was read with (409: Conflict).
    async fn replace_claim_status(&self, claim: &IpamClaim) -> Result<IpamClaim, ApiError>;
    /// Creates a core/v1 Event (in its `metadata.namespace`).
    async fn create_event(&self, event: &Event) -> Result<(), ApiError>;
}

/// [`Api`] over a kube client.
pub struct KubeApi {
    client: kube::Client,
}

impl KubeApi {
    /// A client from `kubeconfig` (empty: the in-cluster/default config), with `timeout` as connect and read
    /// timeout so no request outlives the CNI deadline.
    pub async fn from_kubeconfig(kubeconfig: &str, timeout: Duration) -> Result<Self, ApiError> {
        let client_err = |reason: String| ApiError::Client {
            path: kubeconfig.to_owned(),
            reason,
        };
        let mut config = if kubeconfig.is_empty() {
            kube::Config::infer()
                .await
                .map_err(|e| client_err(e.to_string()))?
        } else {
            let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| client_err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| client_err(e.to_string()))?
        };
        // Without a CA in the kubeconfig kube falls back to the OS trust store, whose loading costs ~18 ms per
        // process; a plain-HTTP server never uses TLS, so give it an empty store instead.
        if config.cluster_url.scheme_str() == Some("http") && config.root_cert.is_none() {
            config.root_cert = Some(Vec::new());
        }
        // Named in the API server's audit log (and the lab's RBAC check) as the CNI, apart from the controllers.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("danm/", env!("CARGO_PKG_VERSION"))),
        ));
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let client = kube::Client::try_from(config).map_err(|e| client_err(e.to_string()))?;
        Ok(KubeApi { client })
    }

    pub fn new(client: kube::Client) -> Self {
        KubeApi { client }
    }

    fn eps(&self, namespace: &str) -> kube::Api<DanmEp> {
        kube::Api::namespaced(self.client.clone(), namespace)
    }
}

fn ep_object(namespace: &str, name: &str) -> String {
    format!("DanmEp {namespace}/{name}")
}

#[async_trait]
impl IpamStore for KubeApi {
    async fn get_network(
        &self,
        kind: NetworkKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Network>, ApiError> {
        self.client.get_network(kind, namespace, name).await
    }
    async fn replace_network(&self, network: &Network) -> Result<Network, ApiError> {
        self.client.replace_network(network).await
    }
    async fn list_blocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ApiError> {
        self.client.list_blocks(selector).await
    }
    async fn get_block(&self, name: &str) -> Result<Option<DanmIpBlock>, ApiError> {
        self.client.get_block(name).await
    }
    async fn create_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.client.create_block(block).await
    }
    async fn replace_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.client.replace_block(block).await
    }
    async fn delete_block(&self, name: &str, resource_version: &str) -> Result<bool, ApiError> {
        self.client.delete_block(name, resource_version).await
    }
}

#[async_trait]
impl Api for KubeApi {
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, ApiError> {
        let pods: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
        pods.get(name)
            .await
            .map_err(|e| ApiError::from_kube(format!("Pod {namespace}/{name}"), e))
    }

    async fn create_ep(&self, ep: &DanmEp) -> Result<DanmEp, ApiError> {
        let ns = ep.metadata.namespace.clone().unwrap_or_default();
        let name = ep.metadata.name.clone().unwrap_or_default();
        self.eps(&ns)
            .create(&PostParams::default(), ep)
            .await
            .map_err(|e| ApiError::from_kube(ep_object(&ns, &name), e))
    }

    async fn replace_ep(&self, ep: &DanmEp) -> Result<DanmEp, ApiError> {
        let ns = ep.metadata.namespace.clone().unwrap_or_default();
        let name = ep.metadata.name.clone().unwrap_or_default();
        self.eps(&ns)
            .replace(&name, &PostParams::default(), ep)
            .await
            .map_err(|e| ApiError::from_kube(ep_object(&ns, &name), e))
    }

    async fn delete_ep(&self, namespace: &str, name: &str) -> Result<bool, ApiError> {
        match self.eps(namespace).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(e) => match ApiError::from_kube(ep_object(namespace, name), e) {
                ApiError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn list_eps(&self, namespace: Option<&str>, selector: &str) -> Result<Vec<DanmEp>, ApiError> {
        let api: kube::Api<DanmEp> = match namespace {
            Some(ns) => self.eps(ns),
            None => kube::Api::all(self.client.clone()),
        };
        let lp = ListParams::default().labels(selector);
        api.list(&lp).await.map(|l| l.items).map_err(|e| {
            ApiError::from_kube(
                format!(
                    "DanmEps in {} with {selector}",
                    namespace.unwrap_or("all namespaces")
                ),
                e,
            )
        })
    }

    async fn annotate_pod(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        let pods: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
        let mut annotations = BTreeMap::new();
        annotations.insert(key.to_owned(), value.to_owned());
        let patch = serde_json::json!({"metadata": {"annotations": annotations}});
        pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| ApiError::from_kube(format!("Pod {namespace}/{name}"), e))
    }

    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<NetworkAttachmentDefinition>, ApiError> {
        let api: kube::Api<NetworkAttachmentDefinition> =
            kube::Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| ApiError::from_kube(format!("NetworkAttachmentDefinition {namespace}/{name}"), e))
    }

    async fn get_claim(&self, namespace: &str, name: &str) -> Result<Option<IpamClaim>, ApiError> {
        let api: kube::Api<IpamClaim> = kube::Api::namespaced(self.client.clone(), namespace);
        api.get_opt(name)
            .await
            .map_err(|e| ApiError::from_kube(format!("IPAMClaim {namespace}/{name}"), e))
    }

    async fn replace_claim_status(&self, claim: &IpamClaim) -> Result<IpamClaim, ApiError> {
        let namespace = claim.metadata.namespace.clone().unwrap_or_default();
        let name = claim.metadata.name.clone().unwrap_or_default();
        let api: kube::Api<IpamClaim> = kube::Api::namespaced(self.client.clone(), &namespace);
        api.replace_status(&name, &PostParams::default(), claim)
            .await
            .map_err(|e| ApiError::from_kube(format!("IPAMClaim {namespace}/{name}"), e))
    }

    async fn ping(&self) -> Result<(), ApiError> {
        self.client
            .apiserver_version()
            .await
            .map(|_| ())
            .map_err(|e| ApiError::Request {
                object: "API server version".into(),
                reason: e.to_string(),
            })
    }
    async fn create_event(&self, event: &Event) -> Result<(), ApiError> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        let events: kube::Api<Event> = kube::Api::namespaced(self.client.clone(), namespace);
        events
            .create(&PostParams::default(), event)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::from_kube(format!("Event in {namespace}"), e))
    }
}
