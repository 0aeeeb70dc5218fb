//! CNI ADD (behaviour §4.1–§4.2, with §10 B1/B4/B7/B16 fixed): read the pod, resolve its networks, clean stale
//! DanmEps, then set up every interface in parallel under one deadline; on any failure roll back everything.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::PoisonError;

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec, Network, NetworkKind, labels};
use danm_core::annotation::{InterfaceRequest, NetworkRef, parse_pod_annotations};
use danm_core::cni::{AttachmentResult, CniResult, merge_results, network_status, npwg_name};
use danm_core::ipam::IpRequest;
use danm_core::naming::{NamingInput, assign_names};
use danm_core::resolve::{ResolveError, check_allowed_tenants, resolve_default};
use danm_netlink::{Netns, Sysctl};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::context::{ConfigInput, Ctx, build_config, needs_danm_ipam};
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

/// One interface to set up.
#[derive(Clone, Debug)]
struct Plan {
    req: InterfaceRequest,
    network: Network,
    ty: String,
    ifname: String,
    device_id: Option<String>,
    /// danm's IPAM allocates the interface's addresses.
    danm_ipam: bool,
    /// The name of the interface's DanmEp: chosen before anything is reserved, it owns the addresses.
    ep_name: String,
}

/// What a running ADD has done so far, kept outside the deadline so a cancelled ADD can still be rolled back: the
/// journal of every interface, and the address reservations in flight (an IPAM write is never cut off half-way,
/// so its outcome is always known before the rollback releases what it reserved).
#[derive(Default)]
struct Progress {
    journals: std::sync::Mutex<Vec<Journal>>,
    inflight: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Progress {
    fn journal(&self) -> Journal {
        let journal = Journal::default();
        self.journals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(journal.clone());
        journal
    }
}

/// The ADD flow with the config's deadline counted from now. Returns the merged result in annotation order.
pub async fn add(ctx: Arc<Ctx>) -> Result<CniResult, Error> {
    let deadline = Instant::now() + ctx.config.timeout();
    add_until(ctx, deadline).await
}

/// The ADD flow under `deadline` (the binary counts it from its start). Returns the merged result in annotation
/// order (eth0 first); on any failure or at the deadline everything done so far is rolled back.
pub async fn add_until(ctx: Arc<Ctx>, deadline: Instant) -> Result<CniResult, Error> {
    let progress = Arc::new(Progress::default());
    let outcome = tokio::time::timeout_at(deadline, add_inner(ctx.clone(), progress.clone())).await;
    let err = match outcome {
        Ok(Ok(result)) => return Ok(result),
        Ok(Err(e)) => e,
        Err(_) => Error::Deadline {
            seconds: ctx.config.timeout_seconds,
        },
    };
    tracing::warn!(error = %err, "ADD failed; rolling back");
    // Reservations still on the wire finish first, so what they reserved is in the journals.
    let inflight = std::mem::take(&mut *progress.inflight.lock().unwrap_or_else(PoisonError::into_inner));
    let budget = ctx.config.timeout().max(std::time::Duration::from_secs(5));
    if tokio::time::timeout(budget, futures::future::join_all(inflight))
        .await
        .is_err()
    {
        tracing::error!("an address reservation did not finish within {budget:?}; GC will release it");
    }
    let journals = std::mem::take(&mut *progress.journals.lock().unwrap_or_else(PoisonError::into_inner));
    rollback::run(&ctx, journals).await;
    crate::events::record_add_failure(&ctx, &err).await;
    Err(err)
}

async fn add_inner(ctx: Arc<Ctx>, progress: Arc<Progress>) -> Result<CniResult, Error> {
    let pod_ref = ctx.args.pod()?;
    let netns_path = ctx.env.netns.clone().unwrap_or_default();
    // With the pod UID in CNI_ARGS (kubelet passes K8S_POD_UID) the stale-DanmEp cleanup starts now, alongside the
    // pod and network reads; it is awaited before anything of the new attachment is made.
    let early_stale = pod_ref.uid.clone().filter(|u| !u.is_empty()).map(|uid| {
        let (ctx, namespace) = (ctx.clone(), pod_ref.namespace.clone());
        tokio::spawn(async move { clean_stale(&ctx, &namespace, &uid).await })
    });
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
    tracing::debug!("step: pod read");
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
    tracing::debug!("step: networks read");
    ctx.translator.ready().map_err(|source| Error::PluginDir {
        dir: ctx.config.plugin_dir.clone(),
        source,
    })?;

    let scheme = ctx.config.naming_scheme();
    if scheme == danm_core::naming::NamingScheme::Default && !ctx.config.naming_scheme.is_empty() {
        tracing::warn!(value = %ctx.config.naming_scheme, "unknown namingScheme; using the default scheme, as DANM did");
    }
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
    // NPWG attachments (behaviour §2.1) come after danm's own, their names checked against danm's.
    let taken: Vec<(String, String)> = names
        .iter()
        .zip(&requests)
        .map(|(n, r)| (n.clone(), r.network.to_string()))
        .collect();
    let mut npwg_plans = crate::npwg::plan(&ctx, &pod, &annotations, &taken).await?;

    let mut plans = Vec::new();
    let mut pools: Option<DevicePools> = None;
    for ((req, network), ifname) in requests.into_iter().zip(networks).zip(names) {
        let ty = network.spec.backend();
        let device_id = if ctx.translator.needs_device_pool(&ty) {
            if pools.is_none() {
                pools =
                    Some(DevicePools::for_pod(&ctx.kubelet_root, &pod.uid, &pod.namespace, &pod.name).await?);
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
        let danm_ipam = needs_danm_ipam(ctx.translator.as_ref(), &ty, &network.spec, &req.ip, &req.ip6);
        plans.push(Plan {
            req,
            network,
            ty,
            ifname,
            device_id,
            danm_ipam,
            ep_name: uuid::Uuid::new_v4().to_string(),
        });
    }
    // NADs naming a device-plugin resource take their devices after danm's own interfaces took theirs.
    if npwg_plans.iter().any(|p| p.resource.is_some()) {
        if pools.is_none() {
            pools = Some(DevicePools::for_pod(&ctx.kubelet_root, &pod.uid, &pod.namespace, &pod.name).await?);
        }
        if let Some(pools) = pools.as_mut() {
            crate::npwg::assign_devices(&pod, &mut npwg_plans, pools)?;
        }
    }

    // The backends to translate with are known now: get them ready (deserialise, pre-link) on a spare thread
    // while the addresses are reserved and the DanmEps written.
    let types: std::collections::BTreeSet<String> = plans
        .iter()
        .filter(|p| ctx.translator.serves(&p.ty))
        .map(|p| p.ty.clone())
        .collect();
    if !types.is_empty() {
        let translator = ctx.translator.clone();
        std::thread::spawn(move || {
            for ty in types {
                translator.prepare(&ty);
            }
        });
    }

    // The pod netns's IPv6 switch and the stale-DanmEp cleanup touch different things: do them together.
    let pod_ns = Netns::path(&netns_path);
    let (ipv6, ()) = futures::future::join(
        ctx.netlink
            .set_sysctls(&pod_ns, &[Sysctl::new("net/ipv6/conf/all/disable_ipv6", "0")]),
        async {
            match early_stale {
                Some(task) => {
                    let _ = task.await;
                }
                None => clean_stale(&ctx, &pod.namespace, &pod.uid).await,
            }
        },
    )
    .await;
    ipv6.map_err(|e| Error::kernel("cannot enable IPv6 in the pod netns", e))?;
    tracing::debug!("step: stale DanmEps cleaned");

    let journals: Vec<Journal> = plans.iter().map(|_| progress.journal()).collect();
    let reservations = reserve_all(&ctx, &plans, &journals, &progress).await?;
    tracing::debug!("step: addresses reserved");

    // NPWG addresses after danm's own: a NAD may allocate from a network the pod also attaches to directly, and
    // two reservations on one blocks-mode network at once would each claim a block for this node.
    let npwg_journals: Vec<Journal> = npwg_plans.iter().map(|_| progress.journal()).collect();
    let npwg_reserved = reserve_npwg(&ctx, &pod, &npwg_plans, &npwg_journals, &progress).await?;
    let default_routes = crate::npwg::default_routes(&npwg_plans);
    // A JoinSet, so a cancelled ADD (the deadline) aborts it before the rollback runs.
    let mut npwg_task = spawn_npwg(&ctx, &pod, npwg_plans, npwg_journals, npwg_reserved);

    let pod = Arc::new(pod);
    let mut tasks = JoinSet::new();
    for (i, ((plan, journal), reservation)) in plans.iter().zip(journals).zip(reservations).enumerate() {
        let (ctx, pod, plan) = (ctx.clone(), pod.clone(), plan.clone());
        tasks.spawn(async move { (i, add_interface(&ctx, &pod, &plan, reservation, &journal).await) });
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
    match npwg_task
        .join_next()
        .await
        .unwrap_or_else(|| Ok(Default::default()))
    {
        Ok((done, failed)) => {
            attachments.extend(done);
            failures.extend(failed);
        }
        Err(e) => return Err(Error::Other(format!("the NPWG interfaces task failed: {e}"))),
    }
    if !failures.is_empty() {
        return Err(Error::Interfaces(failures));
    }
    // An NPWG element's default-route replaces the default routes the interfaces installed.
    crate::npwg::set_default_routes(&ctx, &pod, &default_routes, &attachments).await?;
    let merged = merge_results(&attachments);
    tracing::debug!("step: interfaces done");
    let mut status = network_status(&attachments);
    if !default_routes.is_empty() {
        // The attachment with the default route is the pod's default network (as Multus marks it); no other is.
        for s in &mut status {
            s.default = default_routes.iter().any(|d| d.ifname == s.interface);
        }
    }
    let status = serde_json::to_string(&status).expect("network status always serialises");
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

/// Reserves the NPWG interfaces' addresses on a task of its own, tracked in `progress` like [`reserve_all`]'s, so a
/// cancelled ADD still learns (and journals) what was reserved before it rolls back.
async fn reserve_npwg(
    ctx: &Arc<Ctx>,
    pod: &PodInfo,
    plans: &[crate::npwg::NpwgPlan],
    journals: &[Journal],
    progress: &Progress,
) -> Result<Vec<Reserved>, Error> {
    if plans.iter().all(|p| p.pool.is_none()) {
        return Ok(plans.iter().map(|_| Reserved::default()).collect());
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (ctx, pod, plans, journals) = (ctx.clone(), pod.clone(), plans.to_vec(), journals.to_vec());
    let handle = tokio::spawn(async move {
        let _ = tx.send(crate::npwg::reserve(&ctx, &pod, &plans, &journals).await);
    });
    progress
        .inflight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(handle);
    rx.await
        .unwrap_or_else(|_| Err(Error::Other("the NPWG address reservation task ended".into())))
}

/// Sets up the NPWG interfaces (addresses reserved) on their own task, concurrently with danm's own interfaces;
/// returns the attachments made and the interfaces that failed, in annotation order.
fn spawn_npwg(
    ctx: &Arc<Ctx>,
    pod: &PodInfo,
    plans: Vec<crate::npwg::NpwgPlan>,
    journals: Vec<Journal>,
    reserved: Vec<Reserved>,
) -> JoinSet<(Vec<AttachmentResult>, Vec<InterfaceFailure>)> {
    let (ctx, pod) = (ctx.clone(), pod.clone());
    let mut set = JoinSet::new();
    set.spawn(async move {
        let outcomes = futures::future::join_all(plans.iter().zip(&journals).zip(reserved).map(
            |((plan, journal), reserved)| crate::npwg::add_interface(&ctx, &pod, plan, reserved, journal),
        ))
        .await;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for (plan, outcome) in plans.iter().zip(outcomes) {
            match outcome {
                Ok(a) => done.push(a),
                Err(error) => failed.push(InterfaceFailure {
                    network: plan.label(),
                    interface: plan.ifname.clone(),
                    error,
                }),
            }
        }
        (done, failed)
    });
    set
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
async fn clean_stale(ctx: &Arc<Ctx>, namespace: &str, uid: &str) {
    if uid.is_empty() {
        return;
    }
    let selector = format!("{}={}", labels::POD_UID, uid);
    match ctx.api.list_eps(Some(namespace), &selector).await {
        Ok(eps) => {
            let stale: Vec<DanmEp> = eps.into_iter().filter(|ep| ep.spec.pod_uid == uid).collect();
            for e in crate::teardown::cleanup_eps(ctx, &stale).await {
                tracing::warn!(error = %e, "stale DanmEp cleanup");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list stale DanmEps"),
    }
}

async fn add_interface(
    ctx: &Ctx,
    pod: &PodInfo,
    plan: &Plan,
    reservation: Option<(Reserved, Network)>,
    journal: &Journal,
) -> Result<AttachmentResult, Error> {
    let req = &plan.req;
    let kind = req.network.kind;
    let danm_ipam = plan.danm_ipam;
    let (reserved, network) = reservation.unwrap_or_else(|| (Reserved::default(), plan.network.clone()));

    let ep_name = plan.ep_name.clone();
    let mut ep_labels = pod.labels.clone();
    ep_labels.insert(
        labels::CONTAINER_ID.to_owned(),
        labels::container_label(&pod.container_id),
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
            validate: true,
        },
    )
    .await?;
    tracing::debug!(ifname = %plan.ifname, "step: config translated");
    let pod_ns = Netns::path(&pod.netns_path);
    let native = if chain.plugins.len() == 1 {
        native::parse(&chain.plugins[0])
    } else {
        None
    };
    // The DanmEp records that the host executes the interface itself, so DEL needs no translation.
    if native.is_some() {
        ep.metadata.annotations = Some(BTreeMap::from([(
            native::NATIVE_EP_ANNOTATION.to_owned(),
            "true".to_owned(),
        )]));
    }
    journal.push(Undo::Ep {
        namespace: pod.namespace.clone(),
        name: ep_name.clone(),
        created: false,
    });
    let mut ep = ctx.api.create_ep(&ep).await?;
    journal.confirm_ep(&ep_name);
    tracing::debug!(ifname = %plan.ifname, "step: DanmEp created");
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
            let (result, raw) = delegate::add(&chain, &plan.ifname, &env).await?;
            if let Some(raw) = raw {
                // Without it the delegate's CHECK cannot run and its DEL gets no prevResult: worth a warning,
                // not a failed pod.
                if let Err(e) = ctx.results().save(ctx.env.container_id(), &plan.ifname, &raw) {
                    tracing::warn!(ifname = %plan.ifname, dir = %ctx.config.result_dir, error = %e,
                        "cannot keep the delegate's ADD result");
                }
            }
            (result, true)
        }
    };

    let (mut ip4, mut ip6) = (reserved.ip4.clone(), reserved.ip6.clone());
    // An SR-IOV VF keeps its own MAC address: the DanmEp records it (DANM's did). Other interfaces get theirs when
    // made, and their DanmEps are written before that, so only this backend pays the extra write.
    if plan.ty == "sriov"
        && let Some(mac) = result
            .interfaces
            .iter()
            .find(|i| i.name == plan.ifname && !i.mac.is_empty())
            .map(|i| i.mac.clone())
    {
        ep.spec.interface.mac_address = mac;
        ep = ctx.api.replace_ep(&ep).await?;
    }
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

    tracing::debug!(ifname = %plan.ifname, "step: interface created");
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

/// Reserves the addresses of every interface that uses danm's IPAM: one conditional write per network (however
/// many of the pod's interfaces are on it), the networks concurrently. Each write runs as its own task that the
/// deadline does not cancel (see [`Progress`]); what it reserved is journaled for the interfaces it serves. A
/// failure names the interfaces it concerns.
async fn reserve_all(
    ctx: &Arc<Ctx>,
    plans: &[Plan],
    journals: &[Journal],
    progress: &Progress,
) -> Result<Vec<Option<(Reserved, Network)>>, Error> {
    let mut groups: BTreeMap<(NetworkKind, String, String), Vec<usize>> = BTreeMap::new();
    for (i, plan) in plans.iter().enumerate().filter(|(_, p)| p.danm_ipam) {
        let ns = plan.network.namespace().unwrap_or_default().to_owned();
        groups
            .entry((plan.req.network.kind, ns, plan.req.network.name.clone()))
            .or_default()
            .push(i);
    }
    let mut receivers = Vec::new();
    for ((kind, namespace, name), members) in groups {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ctx = ctx.clone();
        let network = plans[members[0]].network.clone();
        let requests: Vec<(IpRequest, IpRequest, String)> = members
            .iter()
            .map(|&i| (plans[i].req.ip, plans[i].req.ip6, plans[i].ep_name.clone()))
            .collect();
        let member_journals: Vec<Journal> = members.iter().map(|&i| journals[i].clone()).collect();
        let handle = tokio::spawn(async move {
            let refs: Vec<ipam::Request<'_>> = requests
                .iter()
                .map(|(ip4, ip6, owner)| ipam::Request {
                    ip4: *ip4,
                    ip6: *ip6,
                    owner,
                })
                .collect();
            let outcome = ctx.ipam().reserve(&network, &refs).await;
            if let Ok((reserved, _)) = &outcome {
                for ((r, journal), (_, _, owner)) in reserved.iter().zip(&member_journals).zip(&requests) {
                    if r.holds_addresses() {
                        journal.push(Undo::Ips {
                            kind,
                            namespace: namespace.clone(),
                            network: name.clone(),
                            ip4: r.ip4.clone(),
                            ip6: r.ip6.clone(),
                            owner: owner.clone(),
                        });
                    }
                }
            }
            let _ = tx.send(outcome);
        });
        progress
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle);
        receivers.push((members, rx));
    }
    let mut out: Vec<Option<(Reserved, Network)>> = plans.iter().map(|_| None).collect();
    let mut failures = Vec::new();
    for (members, rx) in receivers {
        let failed = |i: usize, error: Error| {
            (
                i,
                InterfaceFailure {
                    network: plans[i].req.network.to_string(),
                    interface: plans[i].ifname.clone(),
                    error,
                },
            )
        };
        match rx.await {
            Ok(Ok((reserved, written))) => {
                for (i, r) in members.into_iter().zip(reserved) {
                    out[i] = Some((r, written.clone()));
                }
            }
            Ok(Err(ipam::BatchError {
                index: Some(k),
                error,
            })) => failures.push(failed(members[k], error.into())),
            Ok(Err(ipam::BatchError { index: None, error })) => {
                // The write for the whole group failed: every member shares the cause and its code.
                let error = Error::from(error);
                let shared = danm_core::cni::CniError::new(error.code(), error.to_string());
                for &i in &members[1..] {
                    failures.push(failed(i, Error::Cni(shared.clone())));
                }
                failures.push(failed(members[0], error));
            }
            Err(_) => {
                for &i in &members {
                    failures.push(failed(
                        i,
                        Error::Other("the address reservation task ended".into()),
                    ));
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(out)
    } else {
        failures.sort_by_key(|(i, _)| *i);
        Err(Error::Interfaces(failures.into_iter().map(|(_, f)| f).collect()))
    }
}

fn ctx_pf(ctx: &Ctx, device_id: &str) -> Result<String, Error> {
    ctx.sysfs.pf_name(device_id)
}
