//! A kube client from an explicit kubeconfig file, or inferred (`KUBECONFIG`, `~/.kube/config`, in-cluster).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::KitError;

/// Builds a client: from `kubeconfig` when given, else `Config::infer()` (env, default file, then in-cluster).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KitError> {
    let mut config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| KitError::Kube(format!("cannot read kubeconfig {}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| KitError::Kube(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => Config::infer().await.map_err(|e| KitError::Kube(e.to_string()))?,
    };
    config
        .headers
        .push((axum::http::header::USER_AGENT, user_agent()));
    Client::try_from(config).map_err(|e| KitError::Kube(e.to_string()))
}

/// `<binary>/<version>` (`svcwatcher/0.1.0`): the API server's audit log, and the lab's RBAC check, tell the
/// components apart by it.
fn user_agent() -> axum::http::HeaderValue {
    let binary = std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "danm-controller".to_owned());
    axum::http::HeaderValue::from_str(&format!("{binary}/{}", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static("danm-controller"))
}
