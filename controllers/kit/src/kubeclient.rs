//! A kube client from an explicit kubeconfig file, or inferred (`KUBECONFIG`, `~/.kube/config`, in-cluster).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::KitError;

/// Builds a client: from `kubeconfig` when given, else `Config::infer()` (env, default file, then in-cluster).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KitError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| KitError::Kube(format!("cannot read kubeconfig {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| KitError::Kube(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => Config::infer().await.map_err(|e| KitError::Kube(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| KitError::Kube(e.to_string()))
}
