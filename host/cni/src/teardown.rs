//! The teardown of DanmEps, shared by DEL, GC and ADD's cleanup of a pod UID's stale DanmEps: each interface is
//! removed (native link, SR-IOV VF back to the host, or the delegate's DEL) with its policy rules, then the addresses
//! are released and the DanmEps deleted, in the order the network's IPAM mode makes safe.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use danm_api::{DanmEp, NetworkKind};
use danm_core::annotation::valid_routes;
use danm_core::ipam::blocks::IpamMode;
use danm_netlink::Netns;

use crate::context::{ConfigInput, Ctx, build_config, in_network};
use crate::delegate::Chain;
use crate::error::Error;
use crate::ipam::is_real;
use crate::native::{self, NATIVE_TYPES, recorded_native};
use crate::post::{PostInput, policy};
use crate::{delegate, ipam};

/// What an [`EarlyLinkDelete`] did.
#[derive(Default)]
pub struct LinksGone {
    /// The netns path whose native links it deleted (`None`: it found none there, or did not run).
    pub netns: Option<String>,
    pub errors: Vec<Error>,
}

/// Tears down DanmEps (their interfaces concurrently), then releases their addresses with one conditional write
/// per network and deletes them (bitmap networks: the DanmEps first). A DanmEp is kept only when its network could not be read (an API error) or its
/// addresses could not be released, so that they are not leaked; a network that is gone no longer holds them (B6).
pub async fn cleanup_eps(ctx: &Ctx, eps: &[DanmEp]) -> Vec<Error> {
    cleanup_eps_after(ctx, eps, std::future::ready(LinksGone::default())).await
}

/// [`cleanup_eps`], with `links_gone` (a deletion of links already under way) completed alongside the teardowns and
/// before any address is released; its errors are part of the result. When it deleted a netns's native link group,
/// the links queued for that netns are not deleted again by name: one ADD made all of a container's links, so
/// either all of them carried the group or none did.
pub(crate) async fn cleanup_eps_after(
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
    let mut by_netns = std::mem::take(&mut *doomed.0.lock().unwrap_or_else(PoisonError::into_inner));
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
    // Bitmap networks record no owner, so their DanmEps go first and only the addresses of deleted DanmEps are
    // released: a crash in between leaks an address (the reconciler recovers it) instead of releasing it twice.
    // Block networks free an address only for its owner, so the release comes first and the DanmEp after it.
    let releases = groups.into_iter().map(|(_, (members, read))| async move {
        let bitmap = ctx.ipam().mode(&read).is_ok_and(|m| m == IpamMode::Bitmap);
        let mut errors = Vec::new();
        let mut releasing = Vec::new();
        if bitmap {
            for (&i, deleted) in members.iter().zip(
                futures::future::join_all(members.iter().map(|&i| {
                    let ep = &eps[i];
                    let ns = ep.metadata.namespace.as_deref().unwrap_or_default();
                    delete_ep_retrying(ctx, ns, ep.metadata.name.as_deref().unwrap_or_default())
                }))
                .await,
            ) {
                match deleted {
                    Ok(true) => releasing.push(i),
                    // Someone else (a concurrent DEL, GC, the reconciler) deleted it first, and releases its
                    // addresses; releasing them here as well could free an address another pod holds by now.
                    Ok(false) => tracing::info!(
                        danmep = eps[i].metadata.name.as_deref().unwrap_or_default(),
                        "the DanmEp was already gone; its addresses are left to whoever deleted it"
                    ),
                    Err(e) => errors.push(Error::from(e)),
                }
            }
        } else {
            releasing = members;
        }
        let addresses: Vec<ipam::Release<'_>> = releasing
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
        if let Ok(freed) = &released {
            for a in &addresses {
                tracing::info!(
                    network = read.name(),
                    danmep = a.owner,
                    ip4 = a.ip4,
                    ip6 = a.ip6,
                    freed,
                    "released the addresses of a DanmEp"
                );
            }
        }
        match released {
            Ok(_) if !bitmap => (releasing, errors),
            Ok(_) => (Vec::new(), errors),
            Err(e) => {
                errors.push(e.into());
                (Vec::new(), errors)
            }
        }
    });
    for (then_delete, errs) in futures::future::join_all(releases).await {
        deletable.extend(then_delete);
        errors.extend(errs);
    }
    tracing::debug!("step: addresses released");
    let deletions = deletable.into_iter().map(|i| {
        let ep = &eps[i];
        let ns = ep.metadata.namespace.clone().unwrap_or_default();
        let name = ep.metadata.name.clone().unwrap_or_default();
        async move { delete_ep_retrying(ctx, &ns, &name).await }
    });
    for deleted in futures::future::join_all(deletions).await {
        if let Err(e) = deleted {
            errors.push(e.into());
        }
    }
    errors
}

/// Deletes a DanmEp, retrying a failed request (three more tries, 20-80 ms apart): in blocks mode a DanmEp that
/// outlived its release is harmless (a later release frees nothing that is not its own), in bitmap mode its
/// addresses stay allocated until it is gone; either way it should go now.
async fn delete_ep_retrying(ctx: &Ctx, ns: &str, name: &str) -> Result<bool, crate::api::ApiError> {
    let mut wait = std::time::Duration::from_millis(20);
    for _ in 0..3 {
        match ctx.api.delete_ep(ns, name).await {
            Err(e) if !e.is_not_found() => {
                tracing::warn!(ep = name, namespace = ns, error = %e, "deleting a DanmEp failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            done => return done,
        }
    }
    ctx.api.delete_ep(ns, name).await.inspect_err(|e| {
        tracing::error!(ep = name, namespace = ns, error = %e,
            "the DanmEp could not be deleted; a later DEL, GC or the reconciler will");
    })
}

/// The plain native links (macvlan, ipvlan) to delete after the teardowns, per pod netns path.
#[derive(Default)]
struct Doomed(std::sync::Mutex<BTreeMap<String, Vec<String>>>);

impl Doomed {
    fn add(&self, netns: &str, link: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(netns.to_owned())
            .or_default()
            .push(link.to_owned());
    }
}

/// What the teardown of a DanmEp's interface learned about its network.
pub(crate) enum Teardown {
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

/// CHECK of a delegated interface (a danm network's, or an NPWG attachment's) by its own plugins, given the config
/// `chain` and the result its ADD kept; what they find goes to `problems`. An interface made by a danm that kept no
/// result (or by DANM) has its plugins' CHECK skipped with a warning; danm's own checks of it still run.
pub(crate) async fn check_delegated(
    ctx: &Ctx,
    ep: &DanmEp,
    chain: &Chain,
    netns_path: &str,
    problems: &mut Vec<String>,
) {
    let name = &ep.spec.interface.name;
    match ctx.results().load(ep_container_id(ctx, ep), name) {
        Some(added) => {
            let env = ctx.delegate_env(netns_path);
            if let Err(e) = delegate::check(chain, name, &env, &added).await {
                problems.push(format!("{name}: {e}"));
            }
        }
        None => tracing::warn!(
            ifname = %name,
            dir = %ctx.config.result_dir,
            "no kept ADD result for the delegated interface; its plugins' CHECK is skipped"
        ),
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
                validate: false,
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
    if crate::npwg::is_npwg(ep) {
        return crate::npwg::teardown(ctx, ep).await;
    }
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
        .map(|n| n.spec.backend())
        .unwrap_or_else(|| danm_api::backend_of(&ep.spec.network_type));

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
