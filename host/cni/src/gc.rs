//! CNI STATUS and GC.
//!
//! STATUS: the API server answers and the plugin directory loads; otherwise error 50 (the plugin cannot serve ADD).
//! GC: every DanmEp of this node whose container is not among `cni.dev/valid-attachments` is torn down like DEL
//! does (addresses released, DanmEp deleted, links removed if the netns still exists), and the delegate results kept
//! for containers that are not valid are swept. The runtime's attachments name a container's primary interface
//! only; a valid container keeps all of its interfaces. With `disableGC` set, GC removes nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use danm_core::cni::{CniError, codes};

use crate::context::Ctx;
use crate::error::Error;

/// STATUS given the outcome of loading the plugins.
pub async fn status(
    ctx: Arc<Ctx>,
    plugins: Result<(), crate::translate::TranslateError>,
) -> Result<(), Error> {
    if let Err(e) = ctx.api.ping().await {
        return Err(Error::Cni(CniError::new(
            codes::STATUS_NOT_AVAILABLE,
            format!("the Kubernetes API server is not reachable: {e}"),
        )));
    }
    if let Err(e) = plugins {
        return Err(Error::Cni(CniError::new(
            codes::STATUS_NOT_AVAILABLE,
            format!("the backend plugins cannot be loaded: {e}"),
        )));
    }
    Ok(())
}

/// GC; returns the number of DanmEps removed, or every error met (it goes on after each).
pub async fn gc(ctx: Arc<Ctx>) -> Result<usize, Error> {
    if ctx.config.disable_gc {
        tracing::info!("GC: disableGC is set for this network; nothing is removed");
        return Ok(0);
    }
    // Without the list every attachment of the node would look stale: refuse rather than tear down every pod.
    let Some(attachments) = &ctx.config.valid_attachments else {
        return Err(Error::Cni(CniError::new(
            codes::INVALID_NETWORK_CONFIG,
            "GC needs cni.dev/valid-attachments (an empty list when no attachment is valid)",
        )));
    };
    let valid: BTreeSet<String> = attachments.iter().map(|a| a.container_id.clone()).collect();
    let eps = ctx.api.list_eps(None, crate::gc::MANAGED_SELECTOR).await?;
    let stale: Vec<_> = eps
        .into_iter()
        .filter(|ep| ep.spec.host == ctx.hostname && !ep.spec.cid.is_empty() && !valid.contains(&ep.spec.cid))
        .collect();
    let errors = crate::teardown::cleanup_eps(&ctx, &stale).await;
    // Delegate results of containers that are not valid, including those a failed DEL left behind.
    let swept = ctx.results().sweep(&valid);
    if swept > 0 {
        tracing::info!(containers = swept, "GC: swept kept delegate results");
    }
    match errors.len() {
        0 => Ok(stale.len()),
        1 => Err(errors.into_iter().next().expect("one error")),
        _ => Err(Error::Several(errors)),
    }
}

/// The DanmEps danm's CNI created (they carry the container-id label).
pub const MANAGED_SELECTOR: &str = danm_api::labels::CONTAINER_ID;
