//! CNI DEL (behaviour §4.12 with B6/B7 fixed): lists the container's DanmEps by label in the pod's namespace and
//! tears them down (see [`crate::teardown`]), with the deletion of the pod's native links sent first. A netns,
//! network or DanmEp that is already gone is not an error; every error is collected and logged, and DEL still
//! succeeds.

use std::sync::Arc;

use danm_api::{DanmEp, labels};
use danm_netlink::{Netlink, Netns};

use crate::context::Ctx;
use crate::error::Error;
use crate::native::{NATIVE_LINK_GROUP, recorded_native};
use crate::teardown::{LinksGone, cleanup_eps_after};

/// The DanmEps of the invocation's container: by label in the pod's namespace (all namespaces when CNI_ARGS does
/// not name it), then by the full `spec.CID`.
pub async fn container_eps(ctx: &Ctx) -> Result<Vec<DanmEp>, Error> {
    let cid = ctx
        .args
        .infra_container_id
        .clone()
        .unwrap_or_else(|| ctx.env.container_id().to_owned());
    let selector = format!("{}={}", labels::CONTAINER_ID, labels::container_label(&cid));
    let eps = ctx
        .api
        .list_eps(ctx.args.pod_namespace.as_deref(), &selector)
        .await?;
    Ok(eps.into_iter().filter(|ep| ep.spec.cid == cid).collect())
}

/// The deletion of a pod's native links (link group [`NATIVE_LINK_GROUP`] in the invocation's netns), started
/// before anything else of a DEL; see [`del`].
pub struct EarlyLinkDelete(Option<(String, tokio::task::JoinHandle<Result<bool, Error>>)>);

impl EarlyLinkDelete {
    /// Sends the deletion (on a task of the current runtime); nothing when the invocation names no netns.
    pub fn start(netlink: Arc<dyn Netlink>, netns: Option<&str>) -> Self {
        let task = netns.filter(|p| !p.is_empty()).map(|path| {
            let ns = Netns::path(path);
            let task = tokio::spawn(async move {
                netlink
                    .delete_link_group(&ns, NATIVE_LINK_GROUP)
                    .await
                    .map_err(|e| Error::kernel(format!("cannot delete the native links of {ns}"), e))
            });
            (path.to_owned(), task)
        });
        EarlyLinkDelete(task)
    }

    /// Waits for the deletion.
    pub async fn finish(self) -> LinksGone {
        let Some((path, task)) = self.0 else {
            return LinksGone::default();
        };
        let (netns, errors) = match task.await {
            Ok(Ok(deleted)) => {
                tracing::debug!(deleted, "step: native link group deleted");
                (deleted.then_some(path), Vec::new())
            }
            Ok(Err(e)) => (None, vec![e]),
            Err(e) => (
                None,
                vec![Error::Other(format!(
                    "the native link deletion did not finish: {e}"
                ))],
            ),
        };
        LinksGone { netns, errors }
    }
}

/// DEL: best effort; returns the errors it logged.
pub async fn del(ctx: Arc<Ctx>) -> Vec<Error> {
    let early = EarlyLinkDelete::start(ctx.netlink.clone(), ctx.env.netns.as_deref());
    del_after(ctx, early).await
}

/// DEL with the native links' deletion already under way.
///
/// The plain native links danm made in the pod's namespace carry link group [`NATIVE_LINK_GROUP`]; they are deleted
/// with one request, sent before the API client is even built, while the DanmEps are listed and their networks
/// read: the kernel's wait for an RCU grace period runs during the API round trips instead of after them
/// (docs/performance.md §3). Addresses are released only once that request has completed, so an address is never handed out again
/// while its old interface still exists. Links without the group (made by an older danm, or by DANM) are deleted
/// by name after the teardowns, as before.
pub async fn del_after(ctx: Arc<Ctx>, early: EarlyLinkDelete) -> Vec<Error> {
    let links_gone = early.finish();
    let eps = match container_eps(&ctx).await {
        Ok(eps) => eps,
        Err(e) => {
            tracing::error!(error = %e, "DEL: cannot list the container's DanmEps");
            let mut errors = links_gone.await.errors;
            errors.insert(0, e);
            return errors;
        }
    };
    tracing::debug!(eps = eps.len(), "step: DanmEps listed");
    if eps.iter().any(|ep| !recorded_native(ep))
        && let Err(e) = ctx.translator.ready()
    {
        tracing::warn!(error = %e, "backend plugins not loaded; native interfaces are still removed");
    }
    let errors = cleanup_eps_after(&ctx, &eps, links_gone).await;
    for e in &errors {
        tracing::error!(error = %e, "DEL");
    }
    errors
}
