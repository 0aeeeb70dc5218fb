//! `danm-lab chaos`: pod ADD/DEL cycles through the real `danm` binary on two macvlan networks in real network
//! namespaces, while `danm` processes are SIGKILLed at random moments, the lab API server restarts (with
//! persistence) and injects 409/500/slow answers, and the IPAM reconciler runs; then CNI GC for the pods left alive
//! and the reconciler with a short grace; then an audit of the API and the kernel. Prints one JSON line.
//!
//! The pods are driven as kubelet drives them: a failed or killed ADD is followed by a DEL and a new sandbox (up to
//! four tries); a killed DEL is retried only half of the time (the other half models a node that went away), so
//! GC and the reconciler have something to find.

pub mod audit;
pub mod danm;
pub mod kernel;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use danm_api::{DanmEp, DanmIpBlock, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::blocks::IpamMode;
use danm_ipam::reconcile::{Reconciler, ScanReport};
use danm_ipam::{IpamConfig, IpamStore};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use crate::{Fault, LabHandle, LabOptions, LabServer};
use audit::{ApiView, LivePod};
use danm::{Danm, Outcome, Sandbox};

/// The namespace of the run's pods and networks.
const NS: &str = "default";
/// danm's own deadline per invocation (`timeoutSeconds`).
const DANM_TIMEOUT_SECONDS: u64 = 5;
/// ADD tries per pod, as kubelet retries a failed sandbox.
const ADD_TRIES: usize = 4;

/// Chaos run failures that stop it before it can report (set-up, the final audit).
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("the chaos run needs root (network namespaces and links)")]
    NotRoot,
    #[error("chaos run set-up: {what}: {message}")]
    Setup { what: String, message: String },
    #[error("chaos run audit: {0}")]
    Audit(String),
}

fn setup(what: impl Into<String>) -> impl FnOnce(String) -> ChaosError {
    let what = what.into();
    move |message| ChaosError::Setup { what, message }
}

/// The run's size and knobs.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Pod lifecycles (create, ADD, DEL, delete) to complete.
    pub cycles: usize,
    /// Pods in flight at once.
    pub concurrency: usize,
    /// The fraction of `danm` processes (ADD and DEL) that are SIGKILLed.
    pub kill_rate: f64,
    /// Restarts of the lab API server during the cycles.
    pub api_restarts: usize,
    pub mode: IpamMode,
    /// The whole run stops starting cycles at this deadline (the report says how many completed).
    pub deadline: Duration,
    /// The `danm` binary.
    pub danm: PathBuf,
    /// The built backend plugins (`macvlan.wasm` is used).
    pub plugin_dir: PathBuf,
    /// Where the lab state, danm's config, cache and logs go (kept after the run).
    pub work_dir: PathBuf,
    /// The lab server's bearer token.
    pub token: String,
    /// Seeds the random choices (kills, faults, timings).
    pub seed: u64,
    /// The reconciler's grace period during the cycles (must exceed danm's deadline, so an ADD in flight is
    /// never touched) and after them (when no ADD is in flight).
    pub grace_during: Duration,
    pub grace_after: Duration,
}

impl ChaosOptions {
    pub fn new(danm: PathBuf, plugin_dir: PathBuf, work_dir: PathBuf) -> Self {
        ChaosOptions {
            cycles: 500,
            concurrency: 20,
            kill_rate: 0.1,
            api_restarts: 2,
            mode: IpamMode::Blocks,
            deadline: Duration::from_secs(900),
            danm,
            plugin_dir,
            work_dir,
            token: format!("{}", uuid::Uuid::new_v4().simple()),
            seed: rand::random(),
            grace_during: Duration::from_secs(DANM_TIMEOUT_SECONDS + 3),
            grace_after: Duration::from_secs(1),
        }
    }
}

/// The JSON line. The counts after `killed` must all be 0 for the run to pass (`missing_interfaces` too);
/// the fields after them describe the run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChaosReport {
    pub cycles: usize,
    pub killed: usize,
    pub api_restarts: usize,
    pub duplicates_seen: usize,
    pub leaked_addresses: usize,
    pub orphan_danmeps: usize,
    pub leftover_links: usize,
    pub leftover_netns: usize,
    pub bitmap_or_blocks_mismatch: usize,
    pub missing_interfaces: usize,
    pub mode: String,
    pub seed: u64,
    pub danm_runs: usize,
    pub kills_planned: usize,
    /// Running means of a successful ADD's and DEL's wall time (ms): kills land uniformly inside them.
    pub add_ms: f64,
    pub del_ms: f64,
    pub failed_adds: usize,
    pub gave_up_pods: usize,
    pub abandoned_dels: usize,
    pub faults_injected: usize,
    pub duplicate_samples: usize,
    pub live_pods: usize,
    pub gc_ok: bool,
    pub reconciler_released: usize,
    pub reconciler_danmeps_deleted: usize,
    pub reconciler_scans_skipped: usize,
    pub seconds: f64,
}

impl ChaosReport {
    /// Whether nothing was duplicated, leaked or left behind.
    pub fn passed(&self) -> bool {
        [
            self.duplicates_seen,
            self.leaked_addresses,
            self.orphan_danmeps,
            self.leftover_links,
            self.leftover_netns,
            self.bitmap_or_blocks_mismatch,
            self.missing_interfaces,
        ]
        .iter()
        .all(|n| *n == 0)
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The lab API server, restartable in place (same port, token, state directory and kubeconfig).
struct Server {
    handle: RwLock<Option<LabHandle>>,
    opts: LabOptions,
}

impl Server {
    async fn inject(&self, fault: Fault) {
        if let Some(h) = self.handle.read().await.as_ref() {
            h.inject(fault);
        }
    }

    async fn clear_faults(&self) {
        if let Some(h) = self.handle.read().await.as_ref() {
            h.clear_faults();
        }
    }

    /// Stops the server, keeps it down for `down`, and starts it again from its state directory.
    async fn restart(&self, down: Duration) -> Result<(), String> {
        let mut h = self.handle.write().await;
        if let Some(old) = h.take() {
            old.shutdown().await;
        }
        tracing::info!(down_ms = down.as_millis() as u64, "chaos: lab API server stopped");
        tokio::time::sleep(down).await;
        let mut last = String::new();
        for _ in 0..50 {
            match LabServer::start(self.opts.clone()).await {
                Ok(new) => {
                    *h = Some(new);
                    tracing::info!("chaos: lab API server started again from its state");
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last)
    }
}

/// What the workers share.
struct Shared {
    opts: ChaosOptions,
    danm: Danm,
    client: kube::Client,
    prefix: String,
    node: String,
    deadline: Instant,
    /// Cycles handed out / completed.
    next: AtomicUsize,
    done: AtomicUsize,
    stop: AtomicBool,
    killed: AtomicUsize,
    /// Kills decided; a kill planned after danm already exited does not land.
    kills_planned: AtomicUsize,
    danm_runs: AtomicUsize,
    failed_adds: AtomicUsize,
    gave_up: AtomicUsize,
    abandoned_dels: AtomicUsize,
    /// Pods whose ADD succeeded and whose DEL has not started, by UID.
    live: Mutex<BTreeMap<String, LivePod>>,
    /// Running estimates (ms) of an ADD's and a DEL's duration, to pick kill moments inside a run.
    est: Mutex<(f64, f64)>,
}

impl Shared {
    /// Runs danm, SIGKILLing it at a random moment of its expected run. A kill planned for after danm's exit does
    /// not land, so kills are planned more often than `kill_rate` by the ratio planned/landed so far: the fraction
    /// of processes actually killed stays near `kill_rate`.
    async fn danm(&self, rng: &mut StdRng, command: &str, sandbox: &Sandbox) -> Outcome {
        let add = command == "ADD";
        let planned = self.kills_planned.load(Ordering::Relaxed) as f64;
        let landed = self.killed.load(Ordering::Relaxed) as f64;
        let rate = (self.opts.kill_rate * (planned + 1.0) / (landed + 1.0)).min(1.0);
        let kill_after = (self.opts.kill_rate > 0.0 && rng.random_bool(rate)).then(|| {
            let est = {
                let e = self.est.lock().unwrap_or_else(PoisonError::into_inner);
                if add { e.0 } else { e.1 }
            };
            Duration::from_micros(rng.random_range(0..=(est * 1000.0) as u64))
        });
        if kill_after.is_some() {
            self.kills_planned.fetch_add(1, Ordering::Relaxed);
        }
        let (outcome, took) = self.danm.run(command, sandbox, kill_after).await;
        self.danm_runs.fetch_add(1, Ordering::Relaxed);
        match &outcome {
            Outcome::Killed => {
                self.killed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Ok(_) => {
                let mut e = self.est.lock().unwrap_or_else(PoisonError::into_inner);
                let slot = if add { &mut e.0 } else { &mut e.1 };
                *slot = 0.8 * *slot + 0.2 * took.as_secs_f64() * 1000.0;
            }
            Outcome::Failed(_) => {}
        }
        outcome
    }

    /// Retries an API call of the driver itself (faults and restarts hit it too) until the deadline passes.
    async fn api<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let give_up = self.deadline + Duration::from_secs(60);
        let mut delay = Duration::from_millis(20);
        loop {
            match tokio::time::timeout(Duration::from_secs(10), f()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if Instant::now() > give_up => return Err(format!("{what}: {e}")),
                Err(_) if Instant::now() > give_up => return Err(format!("{what}: timed out")),
                _ => {}
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    async fn create_pod(&self, name: &str) -> Result<String, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        let interfaces = json!([
            {"network": "chaos-a", "ip": "dynamic", "ip6": "dynamic"},
            {"network": "chaos-b", "ip": "dynamic"},
        ])
        .to_string();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "annotations": {"danm.k8s.io/interfaces": interfaces}},
            "spec": {"nodeName": self.node, "containers": [{"name": "app", "image": "danm-lab/pause"}]},
        }))
        .expect("static pod shape");
        let created = self
            .api(&format!("creating pod {NS}/{name}"), || {
                let (pods, pod) = (pods.clone(), pod.clone());
                async move {
                    match pods.create(&PostParams::default(), &pod).await {
                        // A create whose answer was lost (a restart) went through.
                        Err(kube::Error::Api(s)) if s.code == 409 => pods.get(name).await,
                        other => other,
                    }
                }
            })
            .await?;
        Ok(created.metadata.uid.unwrap_or_default())
    }

    async fn delete_pod(&self, name: &str) -> Result<(), String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NS);
        self.api(&format!("deleting pod {NS}/{name}"), || {
            let pods = pods.clone();
            async move {
                match pods.delete(name, &DeleteParams::default()).await {
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                    other => other.map(drop),
                }
            }
        })
        .await
    }

    /// Tears a sandbox down as kubelet does after a failed ADD or at pod deletion: DEL (a killed DEL is retried
    /// unless `may_abandon` and a coin says the node went away), then the namespace goes.
    async fn teardown(&self, rng: &mut StdRng, sandbox: &Sandbox, may_abandon: bool) -> Result<(), String> {
        loop {
            match self.danm(rng, "DEL", sandbox).await {
                Outcome::Killed if may_abandon && rng.random_bool(0.5) => {
                    self.abandoned_dels.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Outcome::Killed => continue,
                Outcome::Failed(e) => {
                    tracing::warn!(
                        pod = sandbox.pod,
                        container = sandbox.container_id,
                        error = e,
                        "chaos: DEL failed"
                    );
                    break;
                }
                Outcome::Ok(_) => break,
            }
        }
        let netns = sandbox
            .netns
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        kernel::netns_del(netns).await
    }

    /// One pod's life. Returns an error only when the driver itself cannot go on (the API never answers).
    async fn cycle(&self, rng: &mut StdRng, n: usize, keep: bool) -> Result<(), String> {
        let name = format!("chaos-{n}");
        let uid = self.create_pod(&name).await?;
        let mut live = None;
        for attempt in 0..ADD_TRIES {
            let netns = format!("{}{n}-{attempt}", self.prefix);
            kernel::netns_add(&netns).await?;
            let sandbox = Sandbox {
                namespace: NS.into(),
                pod: name.clone(),
                uid: uid.clone(),
                container_id: format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                ),
                netns: PathBuf::from("/var/run/netns").join(&netns),
            };
            match self.danm(rng, "ADD", &sandbox).await {
                Outcome::Ok(result) => {
                    live = Some((sandbox, netns, result));
                    break;
                }
                outcome => {
                    if let Outcome::Failed(e) = &outcome {
                        tracing::info!(pod = name, attempt, error = e, "chaos: ADD failed");
                    }
                    self.failed_adds.fetch_add(1, Ordering::Relaxed);
                    self.teardown(rng, &sandbox, true).await?;
                    tokio::time::sleep(Duration::from_millis(rng.random_range(10..100))).await;
                }
            }
        }
        let Some((sandbox, netns, result)) = live else {
            self.gave_up.fetch_add(1, Ordering::Relaxed);
            return self.delete_pod(&name).await;
        };
        let pod = LivePod {
            name: name.clone(),
            uid: uid.clone(),
            container_id: sandbox.container_id.clone(),
            netns,
            ips: danm::result_ips(&result),
        };
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.clone(), pod);
        if keep {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..300))).await;
        self.live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&uid);
        self.teardown(rng, &sandbox, true).await?;
        self.delete_pod(&name).await
    }

    async fn worker(self: Arc<Self>, id: usize) -> Result<(), String> {
        let mut rng = StdRng::seed_from_u64(self.opts.seed.wrapping_add(id as u64 * 7919));
        let keep_from = self
            .opts
            .cycles
            .saturating_sub(self.opts.concurrency.min(self.opts.cycles / 4));
        loop {
            if self.stop.load(Ordering::Relaxed) || Instant::now() > self.deadline {
                return Ok(());
            }
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            if n >= self.opts.cycles {
                return Ok(());
            }
            self.cycle(&mut rng, n, n >= keep_from).await?;
            self.done.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Lists what the audit and the sampler read, all or nothing.
async fn api_view(client: &kube::Client, network_names: &[&str]) -> Result<ApiView, String> {
    let pods: Api<Pod> = Api::all(client.clone());
    let eps: Api<DanmEp> = Api::all(client.clone());
    let nets: Api<Network> = Api::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet);
    let pods = pods
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| format!("listing pods: {e}"))?;
    let eps = eps
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing DanmEps: {e}"))?;
    let mut networks = Vec::new();
    for n in network_names {
        networks.push(
            nets.get(n)
                .await
                .map_err(|e| format!("reading DanmNet {NS}/{n}: {e}"))?,
        );
    }
    let blocks: Vec<DanmIpBlock> = client
        .list_blocks("")
        .await
        .map_err(|e| format!("listing DanmIpBlocks: {e}"))?;
    Ok(ApiView {
        pods: pods.items.into_iter().filter_map(|p| p.metadata.uid).collect(),
        eps: eps.items,
        networks,
        blocks,
    })
}

/// A DanmNet as the webhook leaves it: pool defaults applied, in `mode`.
fn network(name: &str, spec: Value, mode: IpamMode) -> Result<Network, String> {
    let mut spec: NetworkSpec = serde_json::from_value(spec).map_err(|e| e.to_string())?;
    danm_core::ipam::apply_network_defaults(&mut spec.options).map_err(|e| e.to_string())?;
    let mut net = Network::new(NetworkKind::DanmNet, Some(NS), name, spec);
    if mode == IpamMode::Blocks {
        net.spec.options.alloc.clear();
        net.spec.options.alloc6.clear();
    }
    net.metadata.annotations = Some(BTreeMap::from([(
        danm_api::annotations::IPAM_MODE.to_owned(),
        mode.to_string(),
    )]));
    Ok(net)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Runs the whole chaos run and returns its report (whether it passed is [`ChaosReport::passed`]).
pub async fn run(opts: &ChaosOptions) -> Result<ChaosReport, ChaosError> {
    if !is_root() {
        return Err(ChaosError::NotRoot);
    }
    let started = Instant::now();
    let work = &opts.work_dir;
    for d in ["state", "cache", "plugins", "cni", "results"] {
        std::fs::create_dir_all(work.join(d))
            .map_err(|e| setup(format!("creating {}", work.join(d).display()))(e.to_string()))?;
    }
    let macvlan = opts.plugin_dir.join("macvlan.wasm");
    if !macvlan.exists() {
        return Err(setup("the backend plugins")(format!(
            "{} is missing (run `make guests`)",
            macvlan.display()
        )));
    }
    let link = work.join("plugins/macvlan.wasm");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&macvlan, &link)
        .map_err(|e| setup(format!("linking {}", link.display()))(e.to_string()))?;
    if !opts.danm.exists() {
        return Err(setup("the danm binary")(format!(
            "{} is missing",
            opts.danm.display()
        )));
    }

    // The API server, with persistence and a bearer token.
    let mut lab_opts = LabOptions {
        token: Some(opts.token.clone()),
        state_dir: Some(work.join("state")),
        kubeconfig_out: Some(work.join("kubeconfig")),
        ..LabOptions::default()
    };
    let first = LabServer::start(lab_opts.clone())
        .await
        .map_err(|e| setup("the lab API server")(e.to_string()))?;
    lab_opts.addr = first.addr();
    let client = first
        .client()
        .await
        .map_err(|e| setup("the lab client")(e.to_string()))?;
    let server = Arc::new(Server {
        handle: RwLock::new(Some(first)),
        opts: lab_opts,
    });
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, crd) in danm_api::crd::all() {
        let crd: CustomResourceDefinition =
            serde_json::from_value(crd).map_err(|e| setup(file)(e.to_string()))?;
        crds.create(&PostParams::default(), &crd)
            .await
            .map_err(|e| setup(file)(e.to_string()))?;
    }

    // Two networks on two veth parents; the first dual-stack.
    let tag = std::process::id() % 100_000;
    let prefix = format!("chaos{}{tag}-", &opts.mode.to_string()[..1]);
    let parents = [
        kernel::Parent::create(&format!("dc{}a{tag}", &opts.mode.to_string()[..1]))
            .await
            .map_err(setup("a parent link"))?,
        kernel::Parent::create(&format!("dc{}b{tag}", &opts.mode.to_string()[..1]))
            .await
            .map_err(setup("a parent link"))?,
    ];
    let parent_names: Vec<String> = parents.iter().map(|p| p.0.clone()).collect();
    let nets: Api<Network> = Api::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet);
    for (name, spec) in [
        (
            "chaos-a",
            json!({"NetworkID": "chaosa", "NetworkType": "macvlan",
                   "Options": {"host_device": parent_names[0], "cidr": "10.211.0.0/22", "net6": "fd00:c4a0:5::/64"}}),
        ),
        (
            "chaos-b",
            json!({"NetworkID": "chaosb", "NetworkType": "macvlan", "Options": {"host_device": parent_names[1], "cidr": "10.212.0.0/23"}}),
        ),
    ] {
        let net = network(name, spec, opts.mode).map_err(setup(format!("DanmNet {name}")))?;
        nets.create(&PostParams::default(), &net)
            .await
            .map_err(|e| setup(format!("DanmNet {name}"))(e.to_string()))?;
    }

    let danm = Danm {
        bin: opts.danm.clone(),
        config: json!({"cniVersion": "1.0.0", "name": "danm", "type": "danm",
            "kubeconfig": work.join("kubeconfig"), "pluginDir": work.join("plugins"), "cacheDir": work.join("cache"),
            "cniDir": work.join("cni"), "resultDir": work.join("results"), "logFile": work.join("danm.log"),
            "logLevel": "info", "timeoutSeconds": DANM_TIMEOUT_SECONDS, "ipamMode": opts.mode.to_string()}),
        stderr_log: work.join("danm-stderr.log"),
    };
    if let (Outcome::Killed | Outcome::Failed(_), _) = danm.status().await {
        return Err(setup("danm STATUS")(format!(
            "failed; see {}",
            work.join("danm-stderr.log").display()
        )));
    }

    let shared = Arc::new(Shared {
        opts: opts.clone(),
        danm,
        client: client.clone(),
        prefix: prefix.clone(),
        node: hostname(),
        deadline: started + opts.deadline,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        killed: AtomicUsize::new(0),
        kills_planned: AtomicUsize::new(0),
        danm_runs: AtomicUsize::new(0),
        failed_adds: AtomicUsize::new(0),
        gave_up: AtomicUsize::new(0),
        abandoned_dels: AtomicUsize::new(0),
        live: Mutex::new(BTreeMap::new()),
        est: Mutex::new((60.0, 40.0)),
    });
    let cycling = Arc::new(AtomicBool::new(true));
    let duplicates: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let samples = Arc::new(AtomicUsize::new(0));
    let faults = Arc::new(AtomicUsize::new(0));
    let restarts = Arc::new(AtomicUsize::new(0));
    let reconciled: Arc<Mutex<(usize, usize, usize)>> = Arc::default();
    let mut background = Vec::new();

    // Duplicates, sampled: the addresses of the pods live across one list of the DanmEps, from danm's results
    // and from the DanmEps.
    background.push(tokio::spawn({
        let (shared, cycling, duplicates, samples) = (
            shared.clone(),
            cycling.clone(),
            duplicates.clone(),
            samples.clone(),
        );
        async move {
            let eps: Api<DanmEp> = Api::namespaced(shared.client.clone(), NS);
            while cycling.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let before = shared.live.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let Ok(Ok(list)) =
                    tokio::time::timeout(Duration::from_secs(2), eps.list(&ListParams::default())).await
                else {
                    continue;
                };
                let after = shared.live.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let steady: Vec<&LivePod> = before
                    .values()
                    .filter(|p| {
                        after
                            .get(&p.uid)
                            .is_some_and(|q| q.container_id == p.container_id)
                    })
                    .collect();
                let mut holders: Vec<(&str, String)> = Vec::new();
                for p in &steady {
                    holders.extend(p.ips.iter().map(|a| (p.uid.as_str(), a.clone())));
                }
                for ep in &list.items {
                    if steady
                        .iter()
                        .any(|p| p.uid == ep.spec.pod_uid && p.container_id == ep.spec.cid)
                    {
                        for a in [&ep.spec.interface.address, &ep.spec.interface.address_ipv6] {
                            if let Some(a) = a.split('/').next().filter(|a| !a.is_empty()) {
                                holders.push((ep.spec.pod_uid.as_str(), a.to_owned()));
                            }
                        }
                    }
                }
                let found = audit::duplicates(holders.into_iter());
                if !found.is_empty() {
                    tracing::error!(addresses = ?found, "chaos: an address is held by two live pods");
                }
                duplicates
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(found);
                samples.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));

    // Faults: 409s and 500s on writes of danm's objects and pods, and slow answers (danm's deadline runs out).
    background.push(tokio::spawn({
        let (server, cycling, faults) = (server.clone(), cycling.clone(), faults.clone());
        let mut rng = StdRng::seed_from_u64(opts.seed ^ 0xfa17);
        async move {
            const RESOURCES: [&str; 4] = ["danmeps", "danmipblocks", "danmnets", "pods"];
            while cycling.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(rng.random_range(200..700))).await;
                let resource = RESOURCES[rng.random_range(0..RESOURCES.len())];
                match rng.random_range(0..10) {
                    0..=4 => {
                        server
                            .inject(Fault::fail_writes(resource, rng.random_range(1..4), 409))
                            .await
                    }
                    5..=7 => {
                        server
                            .inject(Fault::fail_writes(resource, rng.random_range(1..3), 500))
                            .await
                    }
                    _ => {
                        let latency = Duration::from_millis(rng.random_range(1_000..7_000));
                        server.inject(Fault::latency(resource, latency)).await;
                        tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
                        server.clear_faults().await;
                    }
                }
                faults.fetch_add(1, Ordering::Relaxed);
            }
            server.clear_faults().await;
        }
    }));

    // Restarts, spread over the cycles.
    background.push(tokio::spawn({
        let (server, shared, cycling, restarts) =
            (server.clone(), shared.clone(), cycling.clone(), restarts.clone());
        let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x5e5e);
        async move {
            let k = shared.opts.api_restarts;
            for i in 0..k {
                let at = shared.opts.cycles * (i + 1) / (k + 1);
                while shared.done.load(Ordering::Relaxed) < at {
                    if !cycling.load(Ordering::Relaxed) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let down = Duration::from_millis(rng.random_range(200..1_500));
                match server.restart(down).await {
                    Ok(()) => {
                        restarts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => tracing::error!(error = e, "chaos: the lab API server did not start again"),
                }
            }
        }
    }));

    // The reconciler as svcwatcher's leader runs it, with a grace longer than danm's deadline.
    background.push(tokio::spawn({
        let (client, cycling, reconciled) = (client.clone(), cycling.clone(), reconciled.clone());
        let grace = opts.grace_during;
        async move {
            let mut r = Reconciler::new(IpamConfig::default(), grace);
            while cycling.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let report = r.scan(&client, k8s_openapi::jiff::Timestamp::now()).await;
                record(&reconciled, &report);
            }
        }
    }));

    // The pods.
    let workers: Vec<_> = (0..opts.concurrency.max(1))
        .map(|id| tokio::spawn(shared.clone().worker(id)))
        .collect();
    let mut worker_errors = Vec::new();
    for w in workers {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => worker_errors.push(e),
            Err(e) => worker_errors.push(e.to_string()),
        }
    }
    cycling.store(false, Ordering::Relaxed);
    for b in background {
        let _ = b.await;
    }
    for e in &worker_errors {
        tracing::error!(error = e, "chaos: a worker stopped");
    }
    server.clear_faults().await;
    if server.handle.read().await.is_none() {
        server.restart(Duration::ZERO).await.map_err(ChaosError::Audit)?;
    }

    // CNI GC for the pods left alive, then the reconciler with a short grace until it has nothing left to do.
    tracing::info!(
        cycles = shared.done.load(Ordering::Relaxed),
        "chaos: cycles over; GC and the reconciler"
    );
    let live: Vec<LivePod> = shared
        .live
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect();
    let valid: Vec<String> = live.iter().map(|p| p.container_id.clone()).collect();
    let (gc, _) = shared.danm.gc(&valid).await;
    let gc_ok = matches!(gc, Outcome::Ok(_));
    if let Outcome::Failed(e) = &gc {
        tracing::warn!(error = e, "chaos: GC failed");
    }
    let mut r = Reconciler::new(IpamConfig::default(), opts.grace_after);
    let settle = Instant::now() + opts.grace_after * 10 + Duration::from_secs(20);
    let mut quiet = 0;
    while Instant::now() < settle && quiet < 2 {
        let report = r.scan(&client, k8s_openapi::jiff::Timestamp::now()).await;
        record(&reconciled, &report);
        let idle = report.skipped.is_none()
            && report.waiting == 0
            && report.addresses_released == 0
            && report.danmeps_deleted == 0
            && report.errors.is_empty();
        quiet = if idle { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The audit.
    tracing::info!("chaos: audit");
    let view = tokio::time::timeout(
        Duration::from_secs(30),
        api_view(&client, &["chaos-a", "chaos-b"]),
    )
    .await
    .map_err(|_| ChaosError::Audit("the API did not answer within 30 s".into()))?
    .map_err(ChaosError::Audit)?;
    let findings = audit::audit(&live, &view, opts.mode, &prefix, &parent_names, 2)
        .await
        .map_err(ChaosError::Audit)?;
    for d in &findings.details {
        tracing::error!("chaos audit: {d}");
    }
    let mut dups = duplicates.lock().unwrap_or_else(PoisonError::into_inner).clone();
    dups.extend(findings.duplicates.iter().cloned());

    tracing::info!("chaos: cleaning up");
    // Clean up what the live pods hold, then the parents (dropped) and the server.
    for p in &live {
        let _ = kernel::netns_del(&p.netns).await;
    }
    for ns in kernel::netns_with_prefix(&prefix).await.unwrap_or_default() {
        let _ = kernel::netns_del(&ns).await;
    }
    drop(parents);
    if let Some(h) = server.handle.write().await.take() {
        h.shutdown().await;
    }
    let (released, deleted, skipped) = *reconciled.lock().unwrap_or_else(PoisonError::into_inner);
    let (add_ms, del_ms) = *shared.est.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(ChaosReport {
        cycles: shared.done.load(Ordering::Relaxed),
        killed: shared.killed.load(Ordering::Relaxed),
        api_restarts: restarts.load(Ordering::Relaxed),
        duplicates_seen: dups.len(),
        leaked_addresses: findings.leaked_addresses,
        orphan_danmeps: findings.orphan_danmeps,
        leftover_links: findings.leftover_links,
        leftover_netns: findings.leftover_netns,
        bitmap_or_blocks_mismatch: findings.bitmap_or_blocks_mismatch,
        missing_interfaces: findings.missing_interfaces,
        mode: opts.mode.to_string(),
        seed: opts.seed,
        danm_runs: shared.danm_runs.load(Ordering::Relaxed),
        kills_planned: shared.kills_planned.load(Ordering::Relaxed),
        add_ms: add_ms.round(),
        del_ms: del_ms.round(),
        failed_adds: shared.failed_adds.load(Ordering::Relaxed),
        gave_up_pods: shared.gave_up.load(Ordering::Relaxed),
        abandoned_dels: shared.abandoned_dels.load(Ordering::Relaxed),
        faults_injected: faults.load(Ordering::Relaxed),
        duplicate_samples: samples.load(Ordering::Relaxed),
        live_pods: live.len(),
        gc_ok,
        reconciler_released: released,
        reconciler_danmeps_deleted: deleted,
        reconciler_scans_skipped: skipped,
        seconds: (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
    })
}

fn record(acc: &Mutex<(usize, usize, usize)>, report: &ScanReport) {
    report.log();
    let mut a = acc.lock().unwrap_or_else(PoisonError::into_inner);
    a.0 += report.addresses_released;
    a.1 += report.danmeps_deleted;
    a.2 += usize::from(report.skipped.is_some());
}
