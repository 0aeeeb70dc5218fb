//! The kube-runtime controller: one reconciliation per Service, triggered by the Service, by Pods and DanmEps of
//! its namespace, and by changes to the objects it owns; reads shared reflector caches, writes only what differs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use danm_api::{DanmEp, NetworkKind};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::desired::{
    ENDPOINTS_MANAGED_BY_LABEL, Family, MANAGER, SERVICE_NAME_LABEL, SLICE_MANAGED_BY_LABEL,
    danmep_label_changes, desired_endpoints, endpoints_match, ep_of_pod, is_managed_endpoints,
    is_managed_slice, slice_matches, slice_name,
};
use crate::selection::{Selection, SelectionError, selection};

/// svcwatcher's counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub writes: Counter,
    pub label_syncs: Counter,
}

impl Metrics {
    pub fn register(registry: &danm_controller_kit::MetricsRegistry) -> Self {
        let m = Metrics::default();
        registry.register("reconciles", "Service reconciliations", m.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed Service reconciliations",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "writes",
            "EndpointSlice/Endpoints creates, updates and deletes",
            m.writes.clone(),
        );
        registry.register(
            "label_syncs",
            "DanmEp label updates copied from pods",
            m.label_syncs.clone(),
        );
        m
    }
}

/// Errors of one reconciliation.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error("{verb} {kind} {namespace}/{name}: {source}")]
    Write {
        verb: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What reconciliations share: the client, the caches and the counters.
pub struct Context {
    pub client: Client,
    pub pods: Store<Pod>,
    pub danmeps: Store<DanmEp>,
    pub slices: Store<EndpointSlice>,
    pub endpoints: Store<Endpoints>,
    pub metrics: Metrics,
}

fn write_err(
    verb: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> ReconcileError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| ReconcileError::Write {
        verb,
        kind,
        namespace,
        name,
        source,
    }
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == code)
}

/// Deletes every slice and the Endpoints svcwatcher made for Service `namespace/name`.
pub async fn remove_managed(ctx: &Context, namespace: &str, name: &str) -> Result<(), ReconcileError> {
    let slices_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), namespace);
    for slice in ctx.slices.state() {
        if slice.metadata.namespace.as_deref() == Some(namespace)
            && is_managed_slice(&slice)
            && slice.labels().get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
        {
            let slice_name = slice.name_any();
            match slices_api.delete(&slice_name, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.metrics.writes.inc();
                }
                Err(err) if is_status(&err, 404) => {}
                Err(err) => return Err(write_err("delete", "EndpointSlice", namespace, &slice_name)(err)),
            }
        }
    }
    let key = ObjectRef::new(name).within(namespace);
    if ctx.endpoints.get(&key).is_some_and(|e| is_managed_endpoints(&e)) {
        let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                ctx.metrics.writes.inc();
            }
            Err(err) if is_status(&err, 404) => {}
            Err(err) => return Err(write_err("delete", "Endpoints", namespace, name)(err)),
        }
    }
    Ok(())
}

/// An Endpoints object without our label that DANM's Go svcwatcher wrote (it copied the Service's annotations):
/// taken over on upgrade. Anything else of that name is left alone.
fn adoptable(existing: &Endpoints, svc: &Service) -> bool {
    existing
        .metadata
        .labels
        .as_ref()
        .is_none_or(|l| !l.contains_key(ENDPOINTS_MANAGED_BY_LABEL))
        && existing.metadata.annotations == svc.metadata.annotations
}

/// Replaces `name` with `want` (whose resourceVersion comes from the cache). The cache may lag behind our own
/// previous write; on a conflict the object is read fresh and, if it still differs, replaced once more.
async fn replace_fresh<K>(
    api: &Api<K>,
    name: &str,
    mut want: K,
    same: fn(&K, &K) -> bool,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.replace(name, &PostParams::default(), &want).await {
        Ok(_) => Ok(()),
        Err(err) if is_status(&err, 409) => {
            let fresh = api.get(name).await?;
            if same(&fresh, &want) {
                return Ok(());
            }
            want.meta_mut().resource_version = fresh.meta().resource_version.clone();
            api.replace(name, &PostParams::default(), &want).await.map(drop)
        }
        Err(err) => Err(err),
    }
}

async fn sync_endpoints(ctx: &Context, svc: &Service, mut want: Endpoints) -> Result<(), ReconcileError> {
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &namespace);
    let cached = ctx.endpoints.get(&ObjectRef::new(&name).within(&namespace));
    let existing = match cached {
        Some(e) => Some((*e).clone()),
        None => api
            .get_opt(&name)
            .await
            .map_err(write_err("get", "Endpoints", &namespace, &name))?,
    };
    match existing {
        None => {
            api.create(&PostParams::default(), &want)
                .await
                .map_err(write_err("create", "Endpoints", &namespace, &name))?;
        }
        Some(have) if endpoints_match(&have, &want) => return Ok(()),
        Some(have) if is_managed_endpoints(&have) || adoptable(&have, svc) => {
            want.metadata.resource_version = have.metadata.resource_version.clone();
            replace_fresh(&api, &name, want, endpoints_match)
                .await
                .map_err(write_err("update", "Endpoints", &namespace, &name))?;
        }
        Some(_) => {
            warn!(service = %format!("{namespace}/{name}"), "an Endpoints object of this name exists and is not managed by svcwatcher; leaving it alone");
            return Ok(());
        }
    }
    ctx.metrics.writes.inc();
    Ok(())
}

async fn sync_slice(ctx: &Context, namespace: &str, mut want: EndpointSlice) -> Result<(), ReconcileError> {
    let name = want.name_any();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), namespace);
    match ctx.slices.get(&ObjectRef::new(&name).within(namespace)) {
        Some(have) if slice_matches(&have, &want) => return Ok(()),
        Some(have) => {
            want.metadata.resource_version = have.metadata.resource_version.clone();
            replace_fresh(&api, &name, want, slice_matches)
                .await
                .map_err(write_err("update", "EndpointSlice", namespace, &name))?;
        }
        None => match api.create(&PostParams::default(), &want).await {
            Ok(_) => {}
            Err(err) if is_status(&err, 409) => {
                // The cache lags behind our own earlier create: replace what is there.
                let have =
                    api.get(&name)
                        .await
                        .map_err(write_err("get", "EndpointSlice", namespace, &name))?;
                if !is_managed_slice(&have) {
                    warn!(slice = %format!("{namespace}/{name}"), "an EndpointSlice of this name is not managed by svcwatcher; leaving it alone");
                    return Ok(());
                }
                if slice_matches(&have, &want) {
                    return Ok(());
                }
                want.metadata.resource_version = have.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &want)
                    .await
                    .map_err(write_err("update", "EndpointSlice", namespace, &name))?;
            }
            Err(err) => return Err(write_err("create", "EndpointSlice", namespace, &name)(err)),
        },
    }
    ctx.metrics.writes.inc();
    Ok(())
}

/// Reconciles one Service: computes its slices and Endpoints from the caches and writes what differs; removes
/// svcwatcher's objects when the Service is not (or no longer) managed.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    ctx.metrics.reconciles.inc();
    let namespace = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let Some(sel) = selection(&svc)? else {
        remove_managed(&ctx, &namespace, &name).await?;
        return Ok(Action::await_change());
    };
    let eps_state = ctx.danmeps.state();
    let eps: Vec<&DanmEp> = eps_state
        .iter()
        .filter(|e| e.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .map(Arc::as_ref)
        .collect();
    let pods_state = ctx.pods.state();
    let pods: Vec<&Pod> = pods_state
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .map(Arc::as_ref)
        .collect();
    let desired = desired_endpoints(&svc, &sel, &eps, &pods);
    let wanted: Vec<String> = desired.slices.iter().map(ResourceExt::name_any).collect();
    for slice in desired.slices {
        sync_slice(&ctx, &namespace, slice).await?;
    }
    let slices_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &namespace);
    for stale in ctx.slices.state() {
        if stale.metadata.namespace.as_deref() == Some(namespace.as_str())
            && is_managed_slice(&stale)
            && stale.labels().get(SERVICE_NAME_LABEL) == Some(&name)
            && !wanted.contains(&stale.name_any())
        {
            match slices_api
                .delete(&stale.name_any(), &DeleteParams::default())
                .await
            {
                Ok(_) => {
                    ctx.metrics.writes.inc();
                }
                Err(err) if is_status(&err, 404) => {}
                Err(err) => {
                    return Err(write_err(
                        "delete",
                        "EndpointSlice",
                        &namespace,
                        &stale.name_any(),
                    )(err));
                }
            }
        }
    }
    sync_endpoints(&ctx, &svc, desired.endpoints).await?;
    debug!(service = %format!("{namespace}/{name}"), "reconciled");
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(svc: Arc<Service>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_errors.inc();
    warn!(service = %format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any()), error = %err, "reconcile failed; retrying");
    match err {
        ReconcileError::Selection(_) => Action::await_change(),
        ReconcileError::Write { .. } => Action::requeue(Duration::from_millis(500)),
    }
}

fn managed_services_in(store: &Store<Service>, namespace: &str) -> Vec<(Arc<Service>, Selection)> {
    store
        .state()
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
        .filter_map(|s| selection(&s).ok().flatten().map(|sel| (s, sel)))
        .collect()
}

/// Whether a slice of `svc` currently lists an endpoint of pod `pod` (so a change of that pod may remove it).
fn slices_target(slices: &Store<EndpointSlice>, svc: &Service, pod: &str) -> bool {
    let ns = svc.namespace().unwrap_or_default();
    [Family::V4, Family::V6].into_iter().any(|family| {
        let base = slice_name(&svc.name_any(), family);
        (1..)
            .map(|i| {
                if i == 1 {
                    base.clone()
                } else {
                    format!("{base}-{i}")
                }
            })
            .map_while(|name| slices.get(&ObjectRef::new(&name).within(&ns)))
            .any(|slice| {
                slice
                    .endpoints
                    .iter()
                    .any(|e| e.target_ref.as_ref().and_then(|t| t.name.as_deref()) == Some(pod))
            })
    })
}

fn service_ref(svc: &Service) -> ObjectRef<Service> {
    ObjectRef::from_obj(svc)
}

/// Copies pod labels onto the pod's DanmEps (behaviour §7) for tools that read DanmEp labels; selection
/// itself reads the pod's labels. Pod events are taken in batches, with one index of the DanmEp cache per
/// batch.
async fn label_sync(
    client: Client,
    danmeps: Store<DanmEp>,
    metrics: Metrics,
    mut pods: mpsc::UnboundedReceiver<Arc<Pod>>,
) {
    while let Some(first) = pods.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = pods.try_recv() {
            batch.push(more);
        }
        let mut index: HashMap<(String, String), Vec<Arc<DanmEp>>> = HashMap::new();
        for ep in danmeps.state() {
            let key = (ep.namespace().unwrap_or_default(), ep.spec.pod.clone());
            index.entry(key).or_default().push(ep);
        }
        for pod in batch {
            let namespace = pod.namespace().unwrap_or_default();
            let Some(eps) = index.get(&(namespace.clone(), pod.name_any())) else {
                continue;
            };
            let api: Api<DanmEp> = Api::namespaced(client.clone(), &namespace);
            for ep in eps {
                if !ep_of_pod(ep, &pod) {
                    continue;
                }
                if let Some(changes) = danmep_label_changes(&pod, ep) {
                    let patch = serde_json::json!({ "metadata": { "labels": changes } });
                    match api
                        .patch(&ep.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => {
                            metrics.label_syncs.inc();
                        }
                        Err(err) => {
                            warn!(danmep = %ep.name_any(), namespace = %namespace, error = %err, "cannot copy pod labels onto DanmEp")
                        }
                    }
                }
            }
        }
    }
}

/// Runs the controller until `shutdown` resolves (or forever).
pub async fn run(
    client: Client,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let wc = watcher::Config::default();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let (danmeps, eps_writer) = reflector::store::<DanmEp>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
    let (services, services_writer) = reflector::store::<Service>();

    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.clone(),
        danmeps: danmeps.clone(),
        slices: slices.clone(),
        endpoints: endpoints.clone(),
        metrics: metrics.clone(),
    });

    let (label_tx, label_rx) = mpsc::unbounded_channel();
    tokio::spawn(label_sync(
        client.clone(),
        danmeps.clone(),
        metrics.clone(),
        label_rx,
    ));

    let deleted_ctx = ctx.clone();
    let svc_stream = watcher(Api::<Service>::all(client.clone()), wc.clone())
        .default_backoff()
        .reflect(services_writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(svc)) = event {
                let ctx = deleted_ctx.clone();
                let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
                tokio::spawn(async move {
                    if let Err(err) = remove_managed(&ctx, &ns, &name).await {
                        warn!(error = %err, "cannot remove the objects of a deleted service");
                    }
                });
            }
        })
        .touched_objects();

    let pod_services = services.clone();
    let pod_stream = watcher(Api::<Pod>::all(client.clone()), wc.clone())
        .default_backoff()
        .reflect(pods_writer)
        .touched_objects()
        .inspect(move |pod| {
            if let Ok(pod) = pod {
                let _ = label_tx.send(Arc::new(pod.clone()));
            }
        });
    let ep_services = services.clone();
    let ep_pods = pods.clone();
    let ep_slices = slices.clone();
    let pod_slices = slices.clone();
    let ep_stream = watcher(Api::<DanmEp>::all(client.clone()), wc.clone())
        .default_backoff()
        .reflect(eps_writer)
        .touched_objects();
    let slice_stream = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        wc.clone().labels(&format!("{SLICE_MANAGED_BY_LABEL}={MANAGER}")),
    )
    .default_backoff()
    .reflect(slices_writer)
    .touched_objects();
    let endpoints_stream = watcher(
        Api::<Endpoints>::all(client.clone()),
        wc.labels(&format!("{ENDPOINTS_MANAGED_BY_LABEL}={MANAGER}")),
    )
    .default_backoff()
    .reflect(endpoints_writer)
    .touched_objects();

    info!("svcwatcher controller starting");
    Controller::for_stream(svc_stream, services)
        .with_config(ControllerConfig::default().debounce(Duration::from_millis(0)))
        .watches_stream(pod_stream, move |pod: Pod| {
            let ns = pod.namespace().unwrap_or_default();
            let name = pod.name_any();
            managed_services_in(&pod_services, &ns)
                .into_iter()
                .filter(|(s, sel)| {
                    sel.selects_labels(pod.metadata.labels.as_ref()) || slices_target(&pod_slices, s, &name)
                })
                .map(|(s, _)| service_ref(&s))
                .collect::<Vec<_>>()
        })
        .watches_stream(ep_stream, move |ep: DanmEp| {
            let ns = ep.namespace().unwrap_or_default();
            let kind = NetworkKind::from_api_type(&ep.spec.api_type).ok();
            managed_services_in(&ep_services, &ns)
                .into_iter()
                .filter(|(_, sel)| kind.is_some_and(|k| sel.selects_network(k, &ep.spec.network_name)))
                .filter(|(s, sel)| {
                    let pod = ep_pods.get(&ObjectRef::new(&ep.spec.pod).within(&ns));
                    pod.is_none_or(|p| sel.selects_labels(p.metadata.labels.as_ref()))
                        || slices_target(&ep_slices, s, &ep.spec.pod)
                })
                .map(|(s, _)| service_ref(&s))
                .collect::<Vec<_>>()
        })
        .owns_stream(slice_stream)
        .owns_stream(endpoints_stream)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                debug!(error = %err, "controller event");
            }
        })
        .await;
}
