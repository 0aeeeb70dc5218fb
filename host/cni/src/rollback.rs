//! Rolling back a failed ADD from its journals: every interface concurrently, each in reverse order of what was
//! done (rules, links or delegate DELs, DanmEps, IPs). Errors are logged; rollback never stops half-way, with one
//! exception: the addresses of a DanmEp that could not be deleted, or that was created and someone else deleted first,
//! stay reserved.
//! Whoever removes that DanmEp (DEL, GC, the stale cleanup of the next ADD, the reconciler) releases them; releasing
//! them here as well would free them twice, and in bitmap mode (no owner per address) the second release frees an
//! address another pod got since.

use std::time::Duration;

use crate::context::Ctx;
use crate::journal::{Journal, Undo};
use crate::{delegate, ipam, native};

/// Undoes everything recorded in `journals`, bounded by the config's timeout (again) so a hung API or delegate
/// cannot keep the CNI alive forever.
pub async fn run(ctx: &Ctx, journals: Vec<Journal>) {
    let budget = ctx.config.timeout().max(Duration::from_secs(5));
    let all = futures::future::join_all(journals.into_iter().map(|j| undo_all(ctx, j)));
    if tokio::time::timeout(budget, all).await.is_err() {
        tracing::error!("rollback did not finish within {budget:?}; some objects may be left for GC");
    }
}

async fn undo_all(ctx: &Ctx, journal: Journal) {
    let mut kept_eps: Vec<String> = Vec::new();
    for undo in journal.take_reversed() {
        if let Undo::Ips {
            network,
            owner,
            ip4,
            ip6,
            ..
        } = &undo
            && kept_eps.contains(owner)
        {
            tracing::warn!(
                network,
                danmep = owner,
                ip4,
                ip6,
                "rollback keeps the addresses of a DanmEp it did not delete; whoever removes the DanmEp releases them"
            );
            continue;
        }
        match undo_one(ctx, &undo).await {
            Ok(true) => {}
            // A DanmEp whose creation was confirmed is gone: someone else (a DEL of the same container, GC) deleted
            // it, and releases its addresses. One never confirmed was most likely never created: its addresses are
            // released here.
            Ok(false) => {
                if let Undo::Ep {
                    name, created: true, ..
                } = &undo
                {
                    tracing::info!(danmep = name, "rollback found its DanmEp already deleted");
                    kept_eps.push(name.clone());
                }
            }
            Err(e) => {
                tracing::warn!(?undo, error = %e, "rollback step failed");
                if let Undo::Ep { name, .. } = &undo {
                    kept_eps.push(name.clone());
                }
            }
        }
    }
}

/// Undoes one step; `Ok(false)`: the DanmEp to delete was already gone.
async fn undo_one(ctx: &Ctx, undo: &Undo) -> Result<bool, crate::error::Error> {
    match undo {
        Undo::Rule { netns, rule } => match ctx.netlink.delete_rule(netns, rule).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(true),
            Err(e) => Err(crate::error::Error::kernel("deleting a policy rule", e)),
        },
        Undo::Link { netns, name } => native::remove(ctx.netlink.as_ref(), netns, name, false, None)
            .await
            .map(|()| true),
        Undo::Vf {
            netns,
            name,
            host_name,
        } => native::remove(ctx.netlink.as_ref(), netns, name, true, Some(host_name))
            .await
            .map(|()| true),
        Undo::Delegate { chain, ifname } => {
            let netns = ctx.env.netns.clone().unwrap_or_default();
            let (results, cid) = (ctx.results(), ctx.env.container_id());
            let added = results.load(cid, ifname);
            let res = delegate::del(chain, ifname, &ctx.delegate_env(&netns), added.as_ref()).await;
            results.remove(cid, ifname);
            res.map(|()| true)
        }
        Undo::Ep { namespace, name, .. } => ctx.api.delete_ep(namespace, name).await.map_err(Into::into),
        Undo::Ips {
            kind,
            namespace,
            network,
            ip4,
            ip6,
            owner,
        } => ctx
            .ipam()
            .release_on(*kind, namespace, network, &[ipam::Release { ip4, ip6, owner }])
            .await
            .map(|_| true)
            .map_err(Into::into),
    }
}
