//! CNI DEL (behaviour §4.12 with B6/B7 fixed) and the per-DanmEp teardown shared with ADD's stale cleanup and GC.
//!
//! DEL lists the container's DanmEps by label in the pod's namespace, and for each, concurrently: removes the
//! interface (native link, SR-IOV VF back to the host, or the delegate's DEL), removes policy rules, releases the
//! addresses and deletes the DanmEp. A netns, network or DanmEp that is already gone is not an error; every error
//! is collected and logged, and DEL still succeeds.

use std::collections::BTreeMap;
use std::sync::Arc;

use danm_api::{DanmEp, NetworkKind, labels};
use danm_core::annotation::valid_routes;
use danm_netlink::{Netlink, Netns};

use crate::add::container_label;
use crate::context::{ConfigInput, Ctx, backend_type, build_config, in_network};
use crate::delegate::Chain;
use crate::error::Error;
use crate::ipam::is_real;
use crate::native::{self, NATIVE_LINK_GROUP, NATIVE_TYPES};
use crate::post::{PostInput, policy};
use crate::{delegate, ipam};

/// The DanmEps of the invocation's container: by label in the pod's namespace (all namespaces when CNI_ARGS does
/// not name it), then by the full `spec.CID`.
pub async fn container_eps(ctx: &Ctx) -> Result<Vec<DanmEp>, Error> {
    let cid = ctx
        .args
        .infra_container_id
        .clone()
        .unwrap_or_else(|| ctx.env.container_id().to_owned());
    let selector = format!("{}={}", labels::CONTAINER_ID, container_label(&cid));
    let eps = ctx
        .api
        .list_eps(ctx.args.pod_namespace.as_deref(), &selector)
        .await?;
    Ok(eps.into_iter().filter(|ep| ep.spec.cid == cid).collect())
}

/// The deletion of a pod's native links (link group [`NATIVE_LINK_GROUP`] in the invocation's netns), started
/// before anything else of a DEL; see [`del`].
pub struct EarlyLinkDelete(Option<(String, tokio::task::JoinHandle<Result<bool, Error>>)>);

/// What an [`EarlyLinkDelete`] did.
#[derive(Default)]
pub struct LinksGone {
    /// The netns path whose native links it deleted (`None`: it found none there, or did not run).
    pub netns: Option<String>,
    pub errors: Vec<Error>,
}

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
/// read: the kernel's wait for an RCU grace period (15-20 ms) runs during the API round trips instead of after
/// them. Addresses are released only once that request has completed, so an address is never handed out again
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

/// Tears down DanmEps (their interfaces concurrently), then releases their addresses with one conditional write
/// per network and deletes them. A DanmEp is kept only when its network could not be read (an API error) or its
/// addresses could not be released, so that they are not leaked; a network that is gone no longer holds them (B6).
pub async fn cleanup_eps(ctx: &Ctx, eps: &[DanmEp]) -> Vec<Error> {
    cleanup_eps_after(ctx, eps, std::future::ready(LinksGone::default())).await
}

/// [`cleanup_eps`], with `links_gone` (a deletion of links already under way) completed alongside the teardowns and
/// before any address is released; its errors are part of the result. When it deleted a netns's native link group,
/// the links queued for that netns are not deleted again by name: one ADD made all of a container's links, so
/// either all of them carried the group or none did.
async fn cleanup_eps_after(
    ctx: &Ctx,
    eps: &[DanmEp],
    links_gone: impl std::future::Future<Output = LinksGone>,
) -> Vec<Error> {
    let doomed = Doomed::default();
    let (torn, gone) = futures::join!(
        futures::future::join_all(eps.iter().map(|ep| teardown(ctx, ep, &doomed))),
        links_gone
    );
    let mut errors = gone.errors;
    // The plain native links go together, one request per namespace (one RCU wait instead of one per link).
    let mut by_netns = std::mem::take(&mut *doomed.0.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(done) = &gone.netns {
        by_netns.remove(done);
    }
    for (netns, names) in by_netns {
        if let Err(e) = ctx.netlink.delete_links(&Netns::path(&netns), &names).await {
            errors.push(Error::kernel(format!("cannot delete {}", names.join(", ")), e));
        }
    }
    tracing::debug!("step: links deleted");
    // Per network: the members, and the copy of the network their teardown read (the first write uses it).
    let mut groups: BTreeMap<(NetworkKind, String, String), (Vec<usize>, danm_api::Network)> =
        BTreeMap::new();
    let mut deletable = Vec::new();
    for (i, (ep, (network, errs))) in eps.iter().zip(torn).enumerate() {
        errors.extend(errs);
        match network {
            Teardown::Keep => {}
            Teardown::Gone => deletable.push(i),
            Teardown::Read(net) => {
                let iface = &ep.spec.interface;
                if is_real(&iface.address) || is_real(&iface.address_ipv6) {
                    let kind = NetworkKind::from_api_type(&ep.spec.api_type).unwrap_or(NetworkKind::DanmNet);
                    let ns = net.namespace().unwrap_or_default().to_owned();
                    groups
                        .entry((kind, ns, ep.spec.network_name.clone()))
                        .or_insert_with(|| (Vec::new(), (*net).clone()))
                        .0
                        .push(i);
                } else {
                    deletable.push(i);
                }
            }
        }
    }
    let releases = groups.into_iter().map(|(_, (members, read))| async move {
        let addresses: Vec<ipam::Release<'_>> = members
            .iter()
            .map(|&i| {
                let iface = &eps[i].spec.interface;
                ipam::Release {
                    ip4: &iface.address,
                    ip6: &iface.address_ipv6,
                    owner: eps[i].metadata.name.as_deref().unwrap_or_default(),
                }
            })
            .collect();
        let released = ctx.ipam().release(&read, &addresses).await;
        (members, released)
    });
    for (members, released) in futures::future::join_all(releases).await {
        match released {
            Ok(_) => deletable.extend(members),
            Err(e) => errors.push(e.into()),
        }
    }
    tracing::debug!("step: addresses released");
    let deletions = deletable.into_iter().map(|i| {
        let ep = &eps[i];
        let ns = ep.metadata.namespace.clone().unwrap_or_default();
        let name = ep.metadata.name.clone().unwrap_or_default();
        async move { delete_released_ep(ctx, &ns, &name).await }
    });
    for deleted in futures::future::join_all(deletions).await {
        if let Err(e) = deleted {
            errors.push(e.into());
        }
    }
    errors
}

/// Deletes a DanmEp whose addresses were just released, retrying a failed request (three more tries, 20-80 ms
/// apart): a DanmEp that outlived its release would have its addresses released once more by a later DEL or GC,
/// when they may already belong to another pod.
async fn delete_released_ep(ctx: &Ctx, ns: &str, name: &str) -> Result<bool, crate::api::ApiError> {
    let mut wait = std::time::Duration::from_millis(20);
    for _ in 0..3 {
        match ctx.api.delete_ep(ns, name).await {
            Err(e) if !e.is_not_found() => {
                tracing::warn!(ep = name, namespace = ns, error = %e, "deleting a released DanmEp failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            done => return done,
        }
    }
    ctx.api.delete_ep(ns, name).await.inspect_err(|e| {
        tracing::error!(ep = name, namespace = ns, error = %e,
            "the DanmEp outlives its released addresses: delete it by hand before a DEL or GC releases them again");
    })
}

/// Whether ADD recorded that the host created the DanmEp's interface itself.
fn recorded_native(ep: &DanmEp) -> bool {
    ep.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(native::NATIVE_EP_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// The plain native links (macvlan, ipvlan) to delete after the teardowns, per pod netns path.
#[derive(Default)]
struct Doomed(std::sync::Mutex<BTreeMap<String, Vec<String>>>);

impl Doomed {
    fn add(&self, netns: &str, link: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(netns.to_owned())
            .or_default()
            .push(link.to_owned());
    }
}

/// What the teardown of a DanmEp's interface learned about its network.
enum Teardown {
    /// The network could not be read: keep the DanmEp (it still records held addresses).
    Keep,
    /// The network no longer exists: nothing to release.
    Gone,
    Read(Box<danm_api::Network>),
}

/// The container a DanmEp belongs to (GC tears down other containers' DanmEps).
pub(crate) fn ep_container_id<'a>(ctx: &'a Ctx, ep: &'a DanmEp) -> &'a str {
    if ep.spec.cid.is_empty() {
        ctx.env.container_id()
    } else {
        &ep.spec.cid
    }
}

/// The CNI config a DanmEp's interface was made from, rebuilt from its network (`None`: the network is gone, or
/// the interface was recorded as host-made), and whether the host makes such interfaces itself (no delegate).
pub(crate) async fn interface_config(
    ctx: &Ctx,
    ep: &DanmEp,
    network: Option<&danm_api::Network>,
    ty: &str,
) -> (Option<Result<Chain, Error>>, bool) {
    let iface = &ep.spec.interface;
    let ns = ep.metadata.namespace.clone().unwrap_or_default();
    let recorded_native = recorded_native(ep);
    let chain = match network {
        None => None,
        // Recorded at ADD: the host made the interface, no plugin call needed.
        Some(_) if recorded_native => None,
        Some(net) => {
            let danm_ipam =
                in_network(&net.spec, &iface.address) || in_network(&net.spec, &iface.address_ipv6);
            let keep = |a: &str| {
                if in_network(&net.spec, a) {
                    a.to_owned()
                } else {
                    String::new()
                }
            };
            let (ip4, ip6) = (keep(&iface.address), keep(&iface.address_ipv6));
            let parent = (!iface.device_id.is_empty())
                .then(|| ctx.sysfs.pf_name(&iface.device_id).ok())
                .flatten();
            let input = ConfigInput {
                network: net,
                ty,
                ifname: &iface.name,
                ip4: &ip4,
                ip6: &ip6,
                danm_ipam,
                device_id: (!iface.device_id.is_empty()).then_some(iface.device_id.as_str()),
                parent,
                pod_namespace: &ns,
                pod_name: &ep.spec.pod,
            };
            Some(build_config(ctx, &input).await)
        }
    };
    let native_type = match &chain {
        _ if recorded_native => true,
        Some(Ok(c)) if c.plugins.len() == 1 => native::parse(&c.plugins[0]).is_some(),
        Some(Ok(_)) => false,
        _ => NATIVE_TYPES.contains(&ty),
    };
    (chain, native_type)
}

/// Removes one DanmEp's policy rules and interface: an SR-IOV VF or a delegate's DEL here, a plain native link
/// (macvlan, ipvlan) by queueing it in `doomed` for one batched delete.
async fn teardown(ctx: &Ctx, ep: &DanmEp, doomed: &Doomed) -> (Teardown, Vec<Error>) {
    let mut errors = Vec::new();
    let ns = ep.metadata.namespace.clone().unwrap_or_default();
    let ep_name = ep.metadata.name.clone().unwrap_or_default();
    let kind = NetworkKind::from_api_type(&ep.spec.api_type).unwrap_or(NetworkKind::DanmNet);
    let network = match ctx.api.get_network(kind, &ns, &ep.spec.network_name).await {
        Ok(n) => n,
        Err(e) => {
            errors.push(e.into());
            return (Teardown::Keep, errors);
        }
    };
    let iface = &ep.spec.interface;
    tracing::debug!(ep = ep_name, "step: network read");
    let netns_path = if ep.spec.netns.is_empty() {
        ctx.env.netns.clone().unwrap_or_default()
    } else {
        ep.spec.netns.clone()
    };
    let pod_ns = Netns::path(&netns_path);
    let netns_alive = !netns_path.is_empty() && ctx.netlink.netns_exists(&pod_ns).await.unwrap_or(false);
    let ty = network
        .as_ref()
        .map(|n| backend_type(&n.spec))
        .unwrap_or_else(|| {
            let t = ep.spec.network_type.to_ascii_lowercase();
            if t.is_empty() { "ipvlan".into() } else { t }
        });

    // Policy rules live in the pod netns independent of the link.
    if netns_alive && let Some(net) = &network {
        let input = PostInput {
            ifname: &iface.name,
            spec: &net.spec,
            ip4: &iface.address,
            ip6: &iface.address_ipv6,
            proutes: valid_routes(iface.proutes.iter().flatten(), false),
            proutes6: valid_routes(iface.proutes6.iter().flatten(), true),
            delegated: false,
        };
        for (rule, _) in policy(&input) {
            if let Err(e) = ctx.netlink.delete_rule(&pod_ns, &rule).await
                && !e.is_not_found()
            {
                errors.push(Error::kernel(format!("deleting rule from {}", rule.from), e));
            }
        }
    }

    // The interface.
    let (chain, native_type) = interface_config(ctx, ep, network.as_ref(), &ty).await;
    tracing::debug!(ep = ep_name, "step: config rebuilt");
    if native_type {
        let vf = ty == "sriov";
        if netns_alive && !vf {
            doomed.add(&netns_path, &iface.name);
        } else if netns_alive
            && let Err(e) = native::remove(ctx.netlink.as_ref(), &pod_ns, &iface.name, vf, None).await
        {
            errors.push(e);
        }
    } else {
        match chain {
            Some(Ok(chain)) => {
                let (results, cid) = (ctx.results(), ep_container_id(ctx, ep));
                let added = results.load(cid, &iface.name);
                let env = ctx.delegate_env(&netns_path);
                match delegate::del(&chain, &iface.name, &env, added.as_ref()).await {
                    Ok(()) => results.remove(cid, &iface.name),
                    Err(e) => errors.push(e),
                }
            }
            Some(Err(e)) => errors.push(e),
            None => tracing::warn!(
                ep = ep_name,
                "network is gone; cannot rebuild the delegate config for DEL"
            ),
        }
        if netns_alive && let Err(e) = ctx.netlink.delete_link_if_exists(&pod_ns, &iface.name).await {
            errors.push(Error::kernel(format!("deleting {}", iface.name), e));
        }
    }

    // Addresses, then the DanmEp.
    tracing::debug!(ep = ep_name, "step: interface removed");
    match network {
        None => (Teardown::Gone, errors),
        Some(net) => (Teardown::Read(Box::new(net)), errors),
    }
}
