//! Rolling back a failed ADD from its journals: every interface concurrently, each in reverse order of what was
//! done (rules, links or delegate DELs, DanmEps, IPs). Errors are logged; rollback never stops half-way.

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
    for undo in journal.take_reversed() {
        if let Err(e) = undo_one(ctx, &undo).await {
            tracing::warn!(?undo, error = %e, "rollback step failed");
        }
    }
}

async fn undo_one(ctx: &Ctx, undo: &Undo) -> Result<(), crate::error::Error> {
    match undo {
        Undo::Rule { netns, rule } => match ctx.netlink.delete_rule(netns, rule).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(crate::error::Error::kernel("deleting a policy rule", e)),
        },
        Undo::Link { netns, name } => native::remove(ctx.netlink.as_ref(), netns, name, false, None).await,
        Undo::Vf {
            netns,
            name,
            host_name,
        } => native::remove(ctx.netlink.as_ref(), netns, name, true, Some(host_name)).await,
        Undo::Delegate { chain, ifname } => {
            let netns = ctx.env.netns.clone().unwrap_or_default();
            let (results, cid) = (ctx.results(), ctx.env.container_id());
            let added = results.load(cid, ifname);
            let res = delegate::del(chain, ifname, &ctx.delegate_env(&netns), added.as_ref()).await;
            results.remove(cid, ifname);
            res
        }
        Undo::Ep { namespace, name } => ctx
            .api
            .delete_ep(namespace, name)
            .await
            .map(|_| ())
            .map_err(Into::into),
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
            .map(|_| ())
            .map_err(Into::into),
    }
}
