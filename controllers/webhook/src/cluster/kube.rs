//! [`Cluster`] over a kube client.

use async_trait::async_trait;
use danm_api::{DanmEp, DanmIpBlock, TenantConfig};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

use super::{Cluster, ClusterError};

/// The cluster as seen through the API server.
#[derive(Clone)]
pub struct KubeCluster {
    client: Client,
}

impl KubeCluster {
    pub fn new(client: Client) -> Self {
        KubeCluster { client }
    }
}

fn map_err(verb: &'static str, resource: &'static str, name: &str, e: kube::Error) -> ClusterError {
    match e {
        kube::Error::Api(s) if s.code == 409 => ClusterError::Conflict {
            resource,
            name: name.to_owned(),
        },
        kube::Error::Api(s) if s.code == 404 => ClusterError::NotFound {
            resource,
            name: name.to_owned(),
        },
        kube::Error::Api(s) => ClusterError::Api {
            verb,
            resource,
            code: s.code,
            message: s.message,
        },
        other => ClusterError::Api {
            verb,
            resource,
            code: 0,
            message: other.to_string(),
        },
    }
}

#[async_trait]
impl Cluster for KubeCluster {
    async fn first_tenant_config(&self) -> Result<Option<TenantConfig>, ClusterError> {
        let api: Api<TenantConfig> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| map_err("list", "tenantconfigs", "", e))?;
        Ok(list.items.into_iter().next())
    }

    async fn get_tenant_config(&self, name: &str) -> Result<TenantConfig, ClusterError> {
        let api: Api<TenantConfig> = Api::all(self.client.clone());
        api.get(name)
            .await
            .map_err(|e| map_err("get", "tenantconfigs", name, e))
    }

    async fn replace_tenant_config(&self, tc: &TenantConfig) -> Result<TenantConfig, ClusterError> {
        let name = tc.metadata.name.clone().unwrap_or_default();
        let api: Api<TenantConfig> = Api::all(self.client.clone());
        api.replace(&name, &PostParams::default(), tc)
            .await
            .map_err(|e| map_err("update", "tenantconfigs", &name, e))
    }

    async fn list_danmeps(&self, namespace: Option<&str>) -> Result<Vec<DanmEp>, ClusterError> {
        let api: Api<DanmEp> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| map_err("list", "danmeps", "", e))?;
        Ok(list.items)
    }

    async fn list_ipblocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ClusterError> {
        let api: Api<DanmIpBlock> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| map_err("list", "danmipblocks", "", e))?;
        Ok(list.items)
    }
}
