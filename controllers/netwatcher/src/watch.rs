//! The API side: which kinds are installed, reflectors over them, and the level-triggered loop that recomputes
//! the desired links from the caches and reconciles them on every change, at start-up and periodically.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use danm_api::{Network, NetworkAttachmentDefinition, NetworkKind};
use danm_controller_kit::Readiness;
use futures::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::desired::desired_links;
use crate::metrics::Metrics;
use crate::reconciler::LinkReconciler;
use crate::source::{LinkSource, NadUpdate, SourceKind, nad_view, network_source};

/// The start-up failure when none of the four kinds can be listed (behaviour §6).
pub const NO_APIS_MESSAGE: &str =
    "no network management APIs are installed in the cluster, netwatcher cannot start!";

/// Errors of the API side.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{NO_APIS_MESSAGE}")]
    NoApis,
}

/// Every kind netwatcher can watch.
pub fn all_kinds() -> Vec<SourceKind> {
    let mut kinds: Vec<SourceKind> = NetworkKind::ALL.into_iter().map(SourceKind::Network).collect();
    kinds.push(SourceKind::Nad);
    kinds
}

async fn can_list(client: &Client, kind: SourceKind) -> Result<(), kube::Error> {
    let lp = ListParams::default().limit(1);
    match kind {
        SourceKind::Network(k) => Api::<Network>::all_with(client.clone(), &k)
            .list(&lp)
            .await
            .map(drop),
        SourceKind::Nad => Api::<NetworkAttachmentDefinition>::all(client.clone())
            .list(&lp)
            .await
            .map(drop),
    }
}

/// The kinds whose List works, each tried up to `attempts` times `delay` apart (behaviour §6: 5 × 100 ms).
/// Fails with [`WatchError::NoApis`] when none does.
pub async fn installed_kinds(
    client: &Client,
    attempts: u32,
    delay: Duration,
) -> Result<Vec<SourceKind>, WatchError> {
    let mut found = Vec::new();
    for kind in all_kinds() {
        for attempt in 1..=attempts.max(1) {
            match can_list(client, kind).await {
                Ok(()) => {
                    info!(%kind, "API installed; watching it");
                    found.push(kind);
                    break;
                }
                Err(err) => {
                    debug!(%kind, attempt, error = %err, "cannot list");
                    if attempt < attempts {
                        tokio::time::sleep(delay).await;
                    } else {
                        info!(%kind, error = %err, "API not available; not watching it");
                    }
                }
            }
        }
    }
    if found.is_empty() {
        Err(WatchError::NoApis)
    } else {
        Ok(found)
    }
}

/// Read-only caches of the watched objects.
#[derive(Clone, Default)]
pub struct Caches {
    pub networks: BTreeMap<NetworkKind, Store<Network>>,
    pub nads: Option<Store<NetworkAttachmentDefinition>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("networks", &self.networks.keys().collect::<Vec<_>>())
            .field("nads", &self.nads.is_some())
            .finish()
    }
}

/// What the caches ask for: the link sources and the NAD rewrites still to do.
pub fn collect(caches: &Caches) -> (Vec<LinkSource>, Vec<(NetworkAttachmentDefinition, NadUpdate)>) {
    let mut sources = Vec::new();
    let mut rewrites = Vec::new();
    for (kind, store) in &caches.networks {
        for net in store.state() {
            sources.push(network_source(*kind, &net));
        }
    }
    if let Some(store) = &caches.nads {
        for nad in store.state() {
            match nad_view(&nad) {
                Ok(view) => {
                    sources.extend(view.source);
                    if let Some(update) = view.update {
                        rewrites.push(((*nad).clone(), update));
                    }
                }
                Err(err) => warn!(error = %err, "ignoring NetworkAttachmentDefinition"),
            }
        }
    }
    (sources, rewrites)
}

fn spawn_reflector<K>(api: Api<K>, writer: Writer<K>, what: SourceKind, changed: Arc<Notify>)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync,
{
    tokio::spawn(async move {
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(err) => warn!(kind = %what, error = %err, "watch error; retrying with backoff"),
            }
        }
    });
}

/// Starts reflectors for `kinds` and returns their caches and the notifier they ring on every event.
pub fn start_caches(client: &Client, kinds: &[SourceKind]) -> (Caches, Arc<Notify>) {
    let changed = Arc::new(Notify::new());
    let mut caches = Caches::default();
    for kind in kinds {
        match kind {
            SourceKind::Network(k) => {
                let writer = Writer::new(*k);
                caches.networks.insert(*k, writer.as_reader());
                spawn_reflector(
                    Api::<Network>::all_with(client.clone(), k),
                    writer,
                    *kind,
                    changed.clone(),
                );
            }
            SourceKind::Nad => {
                let writer = Writer::default();
                caches.nads = Some(writer.as_reader());
                spawn_reflector(
                    Api::<NetworkAttachmentDefinition>::all(client.clone()),
                    writer,
                    *kind,
                    changed.clone(),
                );
            }
        }
    }
    (caches, changed)
}

async fn wait_ready(caches: &Caches) {
    for store in caches.networks.values() {
        let _ = store.wait_until_ready().await;
    }
    if let Some(store) = &caches.nads {
        let _ = store.wait_until_ready().await;
    }
}

async fn rewrite_nad(
    client: &Client,
    nad: &NetworkAttachmentDefinition,
    update: &NadUpdate,
) -> Result<(), kube::Error> {
    let ns = nad.metadata.namespace.as_deref().unwrap_or("default");
    let name = nad.metadata.name.as_deref().unwrap_or_default();
    let api = Api::<NetworkAttachmentDefinition>::namespaced(client.clone(), ns);
    api.replace(name, &PostParams::default(), &update.apply(nad))
        .await
        .map(drop)
}

/// How often the loop runs without events, and how long it lets a burst of events settle.
#[derive(Clone, Copy, Debug)]
pub struct LoopTiming {
    pub resync: Duration,
    pub debounce: Duration,
}

/// The loop: after the caches are filled, reconcile; then again on every change (coalesced over `debounce`)
/// and every `resync`. Runs until the task is dropped.
pub async fn run(
    client: Client,
    caches: Caches,
    changed: Arc<Notify>,
    reconciler: Arc<LinkReconciler>,
    metrics: Metrics,
    timing: LoopTiming,
    ready: Readiness,
) {
    let LoopTiming { resync, debounce } = timing;
    wait_ready(&caches).await;
    info!("caches synced; reconciling");
    loop {
        let (sources, rewrites) = collect(&caches);
        let desired = desired_links(&sources);
        for problem in &desired.problems {
            warn!(%problem, "network cannot have its host link");
        }
        match reconciler.reconcile(&desired).await {
            Ok(outcome) => {
                if !(outcome.created.is_empty() && outcome.deleted.is_empty()) {
                    info!(created = ?outcome.created, deleted = ?outcome.deleted, drift = ?outcome.drift_repaired, "reconciled host links");
                }
                ready.set(true);
            }
            Err(err) => warn!(error = %err, "reconciliation failed"),
        }
        for (nad, update) in &rewrites {
            match rewrite_nad(&client, nad, update).await {
                Ok(()) => {
                    metrics.nad_updates.inc();
                    info!(nad = ?nad.metadata.name, namespace = ?nad.metadata.namespace, config = %update.config, "rewrote NAD master");
                }
                Err(err) => {
                    metrics.reconcile_errors.inc();
                    warn!(nad = ?nad.metadata.name, error = %err, "cannot rewrite NAD master; retrying on the next event");
                }
            }
        }
        tokio::select! {
            () = changed.notified() => {
                tokio::time::sleep(debounce).await;
            }
            () = tokio::time::sleep(resync) => {
                debug!("periodic resync");
            }
        }
    }
}
