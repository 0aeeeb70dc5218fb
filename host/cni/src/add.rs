//! CNI ADD (spec §4.1–§4.2, with §10 B1/B4/B7/B16 fixed): read the pod, resolve its networks, clean stale DanmEps,
//! then set up every interface in parallel under one deadline; on any failure roll back everything.

use std::collections::BTreeMap;
use std::sync::Arc;

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec, Network, NetworkKind, labels};
use danm_core::annotation::{InterfaceRequest, NetworkRef, parse_pod_annotations};
use danm_core::cni::{AttachmentResult, CniResult, merge_results, network_status_json, npwg_name};
use danm_core::naming::{NamingInput, assign_names};
use danm_core::resolve::{ResolveError, check_allowed_tenants, resolve_default};
use danm_netlink::{Netns, Sysctl};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::context::{ConfigInput, Ctx, backend_type, build_config, needs_danm_ipam};
use crate::delegate;
use crate::devices::DevicePools;
use crate::error::{Error, InterfaceFailure};
use crate::ipam::{self, Reserved};
use crate::journal::{Journal, Undo};
use crate::native;
use crate::post::{self, PostInput};
use crate::rollback;

/// Who the pod is, as ADD learned it.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub netns_path: String,
    pub container_id: String,
}

/// The label value of a container id: label values are limited to 63 characters, container ids are often 64, so
/// the id is cut; DEL and GC compare the full `spec.CID` after listing.
pub fn container_label(container_id: &str) -> String {
    container_id.chars().take(63).collect()
}

/// One interface to set up.
#[derive(Clone, Debug)]
struct Plan {
    req: InterfaceRequest,
    network: Network,
    ty: String,
    ifname: String,
    device_id: Option<String>,
}

/// The ADD flow. Returns the merged result in annotation order (eth0 first).
pub async fn add(ctx: Arc<Ctx>) -> Result<CniResult, Error> {
    let deadline = Instant::now() + ctx.config.timeout();
    let journals: Arc<std::sync::Mutex<Vec<Journal>>> = Arc::default();
    let outcome = tokio::time::timeout_at(deadline, add_inner(ctx.clone(), journals.clone())).await;
    let err = match outcome {
        Ok(Ok(result)) => return Ok(result),
        Ok(Err(e)) => e,
        Err(_) => Error::Deadline {
            seconds: ctx.config.timeout_seconds,
        },
    };
    tracing::warn!(error = %err, "ADD failed; rolling back");
    let journals = std::mem::take(&mut *journals.lock().unwrap_or_else(|e| e.into_inner()));
    rollback::run(&ctx, journals).await;
    Err(err)
}

async fn add_inner(ctx: Arc<Ctx>, journals: Arc<std::sync::Mutex<Vec<Journal>>>) -> Result<CniResult, Error> {
    let pod_ref = ctx.args.pod()?;
    let netns_path = ctx.env.netns.clone().unwrap_or_default();
    let pod_obj = ctx.api.get_pod(&pod_ref.namespace, &pod_ref.name).await?;
    let pod = PodInfo {
        namespace: pod_ref.namespace.clone(),
        name: pod_ref.name.clone(),
        uid: pod_obj
            .metadata
            .uid
            .clone()
            .or(pod_ref.uid.clone())
            .unwrap_or_default(),
        labels: pod_obj.metadata.labels.clone().unwrap_or_default(),
        netns_path: netns_path.clone(),
        container_id: pod_ref.infra_container_id.clone(),
    };
    let annotations = pod_obj.metadata.annotations.clone().unwrap_or_default();
    let mut requests = parse_pod_annotations(&annotations).map_err(danm_core::cni::CniError::from)?;
    if requests.is_empty() {
        requests = vec![default_request(&ctx, &pod.namespace).await?];
    }

    // Networks, concurrently; every missing or refused one is reported.
    let fetched = futures::future::join_all(requests.iter().map(|r| {
        ctx.api
            .get_network(r.network.kind, &pod.namespace, &r.network.name)
    }))
    .await;
    let mut failures = Vec::new();
    let mut networks = Vec::new();
    for (req, got) in requests.iter().zip(fetched) {
        let fail = |error: Error| InterfaceFailure {
            network: req.network.to_string(),
            interface: String::new(),
            error,
        };
        match got {
            Err(e) => failures.push(fail(e.into())),
            Ok(None) => failures.push(fail(
                danm_core::cni::CniError::from(ResolveError::not_found(&req.network, &pod.namespace)).into(),
            )),
            Ok(Some(net)) => {
                match check_allowed_tenants(&req.network, &net.spec, &pod.name, &pod.namespace) {
                    Err(e) => failures.push(fail(danm_core::cni::CniError::from(e).into())),
                    Ok(()) => networks.push(net),
                }
            }
        }
    }
    if !failures.is_empty() {
        return Err(Error::Interfaces(failures));
    }

    let scheme = ctx.config.naming_scheme()?;
    let inputs: Vec<NamingInput<'_>> = requests
        .iter()
        .zip(&networks)
        .map(|(r, n)| NamingInput {
            seq: r.index,
            network: &r.network,
            container_prefix: &n.spec.options.container_prefix,
        })
        .collect();
    let names = assign_names(&inputs, scheme).map_err(danm_core::cni::CniError::from)?;

    let mut plans = Vec::new();
    let mut pools: Option<DevicePools> = None;
    for ((req, network), ifname) in requests.into_iter().zip(networks).zip(names) {
        let ty = backend_type(&network.spec);
        let device_id = if ctx.translator.needs_device_pool(&ty) {
            if pools.is_none() {
                pools = Some(
                    DevicePools::for_pod(&ctx.kubelet_root, &pod.uid, &pod.namespace, &pod.name).await?,
                );
            }
            let pool = network.spec.options.device_pool.clone();
            Some(
                pools
                    .as_mut()
                    .map(|p| p.take(&pool))
                    .transpose()?
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        plans.push(Plan {
            req,
            network,
            ty,
            ifname,
            device_id,
        });
    }

    let pod_ns = Netns::path(&netns_path);
    ctx.netlink
        .set_sysctls(&pod_ns, &[Sysctl::new("net/ipv6/conf/all/disable_ipv6", "0")])
        .await
        .map_err(|e| Error::kernel("cannot enable IPv6 in the pod netns", e))?;

    clean_stale(&ctx, &pod).await;

    let pod = Arc::new(pod);
    let mut tasks = JoinSet::new();
    for (i, plan) in plans.iter().enumerate() {
        let journal = Journal::default();
        journals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(journal.clone());
        let (ctx, pod, plan) = (ctx.clone(), pod.clone(), plan.clone());
        tasks.spawn(async move { (i, add_interface(&ctx, &pod, &plan, &journal).await) });
    }
    let mut results: Vec<Option<Result<AttachmentResult, Error>>> = (0..plans.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, r)) => results[i] = Some(r),
            Err(e) => return Err(Error::Other(format!("an interface task failed: {e}"))),
        }
    }
    let mut attachments = Vec::new();
    let mut failures = Vec::new();
    for (plan, r) in plans.iter().zip(results) {
        match r {
            Some(Ok(a)) => attachments.push(a),
            Some(Err(error)) => failures.push(InterfaceFailure {
                network: plan.req.network.to_string(),
                interface: plan.ifname.clone(),
                error,
            }),
            None => failures.push(InterfaceFailure {
                network: plan.req.network.to_string(),
                interface: plan.ifname.clone(),
                error: Error::Other("the interface task did not report".into()),
            }),
        }
    }
    if !failures.is_empty() {
        return Err(Error::Interfaces(failures));
    }
    let merged = merge_results(&attachments);
    let status = network_status_json(&attachments);
    if let Err(e) = ctx
        .api
        .annotate_pod(
            &pod.namespace,
            &pod.name,
            danm_api::NETWORK_STATUS_ANNOTATION,
            &status,
        )
        .await
    {
        tracing::warn!(error = %e, "could not write the network-status annotation");
    }
    Ok(merged)
}

/// The default network of the namespace (DanmNet, TenantNetwork, ClusterNetwork `default`, first found).
async fn default_request(ctx: &Ctx, namespace: &str) -> Result<InterfaceRequest, Error> {
    let name = danm_core::resolve::DEFAULT_NETWORK_NAME;
    let found = futures::future::join_all(
        danm_core::resolve::DEFAULT_ORDER.map(|k| ctx.api.get_network(k, namespace, name)),
    )
    .await;
    let mut exists = BTreeMap::new();
    for (kind, got) in danm_core::resolve::DEFAULT_ORDER.into_iter().zip(found) {
        exists.insert(kind.as_str(), got?.is_some());
    }
    resolve_default(|k: NetworkKind| exists.get(k.as_str()).copied().unwrap_or(false))
        .map_err(|e| Error::Cni(e.into()))
}

/// Deletes the DanmEps left by an earlier ADD of the same pod UID (kubelet repeats ADD after a node restart),
/// releasing their addresses. Errors are logged only.
async fn clean_stale(ctx: &Arc<Ctx>, pod: &PodInfo) {
    if pod.uid.is_empty() {
        return;
    }
    let selector = format!("{}={}", labels::POD_UID, pod.uid);
    match ctx.api.list_eps(Some(&pod.namespace), &selector).await {
        Ok(eps) => {
            let jobs = eps.into_iter().filter(|ep| ep.spec.pod_uid == pod.uid).map(|ep| {
                let ctx = ctx.clone();
                async move {
                    for e in crate::del::cleanup_ep(&ctx, &ep).await {
                        tracing::warn!(ep = ?ep.metadata.name, error = %e, "stale DanmEp cleanup");
                    }
                }
            });
            futures::future::join_all(jobs).await;
        }
        Err(e) => tracing::warn!(error = %e, "cannot list stale DanmEps"),
    }
}

async fn add_interface(
    ctx: &Ctx,
    pod: &PodInfo,
    plan: &Plan,
    journal: &Journal,
) -> Result<AttachmentResult, Error> {
    let req = &plan.req;
    let kind = req.network.kind;
    let net_ns = plan.network.namespace().unwrap_or_default().to_owned();
    let danm_ipam = needs_danm_ipam(
        ctx.translator.as_ref(),
        &plan.ty,
        &plan.network.spec,
        &req.ip,
        &req.ip6,
    );
    let (reserved, network) = if danm_ipam {
        let (reserved, network) =
            ipam::reserve(ctx.api.as_ref(), &plan.network, &req.ip, &req.ip6, ctx.retry).await?;
        if reserved.holds_addresses() {
            journal.push(Undo::Ips {
                kind,
                namespace: net_ns.clone(),
                network: req.network.name.clone(),
                ip4: reserved.ip4.clone(),
                ip6: reserved.ip6.clone(),
            });
        }
        (reserved, network)
    } else {
        (Reserved::default(), plan.network.clone())
    };

    let ep_name = uuid::Uuid::new_v4().to_string();
    let mut ep_labels = pod.labels.clone();
    ep_labels.insert(
        labels::CONTAINER_ID.to_owned(),
        container_label(&pod.container_id),
    );
    ep_labels.insert(labels::POD_UID.to_owned(), pod.uid.clone());
    let mut ep = DanmEp::new(
        &pod.namespace,
        &ep_name,
        DanmEpSpec {
            network_name: req.network.name.clone(),
            network_type: network.spec.network_type.clone(),
            endpoint_id: ep_name.clone(),
            interface: DanmEpInterface {
                name: plan.ifname.clone(),
                address: reserved.ip4.clone(),
                address_ipv6: reserved.ip6.clone(),
                mac_address: String::new(),
                proutes: req.proutes.clone(),
                proutes6: req.proutes6.clone(),
                device_id: plan.device_id.clone().unwrap_or_default(),
            },
            host: ctx.hostname.clone(),
            pod: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            cid: pod.container_id.clone(),
            netns: pod.netns_path.clone(),
            api_type: kind.as_str().to_owned(),
        },
    );
    ep.metadata.labels = Some(ep_labels);
    journal.push(Undo::Ep {
        namespace: pod.namespace.clone(),
        name: ep_name.clone(),
    });
    let mut ep = ctx.api.create_ep(&ep).await?;

    let parent = match &plan.device_id {
        Some(dev) => Some(ctx_pf(ctx, dev)?),
        None => None,
    };
    let chain = build_config(
        ctx,
        &ConfigInput {
            network: &network,
            ty: &plan.ty,
            ifname: &plan.ifname,
            ip4: &reserved.ip4,
            ip6: &reserved.ip6,
            danm_ipam,
            device_id: plan.device_id.as_deref(),
            parent,
            pod_namespace: &pod.namespace,
            pod_name: &pod.name,
        },
    )
    .await?;
    let pod_ns = Netns::path(&pod.netns_path);
    let native = if chain.plugins.len() == 1 {
        native::parse(&chain.plugins[0])
    } else {
        None
    };
    let (result, delegated) = match native {
        Some(cfg) => {
            let cfg = cfg?;
            (
                native::add(
                    ctx.netlink.as_ref(),
                    &ctx.sysfs,
                    &pod_ns,
                    &plan.ifname,
                    &cfg,
                    journal,
                    &ep_name,
                )
                .await?,
                false,
            )
        }
        None => {
            journal.push(Undo::Delegate {
                chain: chain.clone(),
                ifname: plan.ifname.clone(),
            });
            let env = ctx.delegate_env(&pod.netns_path);
            (delegate::add(&chain, &plan.ifname, &env).await?, true)
        }
    };

    let (mut ip4, mut ip6) = (reserved.ip4.clone(), reserved.ip6.clone());
    if delegated {
        let last = |v6: bool| {
            result
                .ips
                .iter()
                .rev()
                .find(|i| i.address.is_ipv6() == v6)
                .map(|i| i.address.to_string())
        };
        let mut changed = false;
        if let Some(a) = last(false).filter(|a| *a != ip4 && ip4 != "none") {
            ip4 = a;
            changed = true;
        }
        if let Some(a) = last(true).filter(|a| *a != ip6 && ip6 != "none") {
            ip6 = a;
            changed = true;
        }
        if changed {
            ep.spec.interface.address = ip4.clone();
            ep.spec.interface.address_ipv6 = ip6.clone();
            ctx.api.replace_ep(&ep).await?;
        }
    }

    post::run(
        ctx.netlink.as_ref(),
        &pod_ns,
        &PostInput {
            ifname: &plan.ifname,
            spec: &network.spec,
            ip4: &ip4,
            ip6: &ip6,
            proutes: req.policy_routes(false),
            proutes6: req.policy_routes(true),
            delegated,
        },
        journal,
    )
    .await?;

    Ok(AttachmentResult {
        network: npwg_name(&NetworkRef::new(kind, req.network.name.clone()), &pod.namespace),
        ifname: plan.ifname.clone(),
        sandbox: pod.netns_path.clone(),
        result,
    })
}

fn ctx_pf(ctx: &Ctx, device_id: &str) -> Result<String, Error> {
    ctx.sysfs.pf_name(device_id)
}
