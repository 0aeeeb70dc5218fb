//! `danm-lab bench ipam-scale`: a cluster-scale IPAM simulation. N simulated nodes (tasks, each with its own
//! client) allocate and release pod interfaces through danm's real IPAM code against an in-process lab server, while
//! one watcher of networks counts what it receives. Prints one JSON line.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use danm_api::{DanmIpBlock, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::IpRequest;
use danm_core::ipam::blocks::IpamMode;
use danm_ipam::{ApiError, Ipam, IpamApiError, IpamConfig, IpamStore, Release, Request};
use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::{LabOptions, LabServer};

/// The simulation's size and mode.
#[derive(Clone, Debug)]
pub struct ScaleOptions {
    pub nodes: usize,
    /// Pod interfaces allocated (and then released) in all.
    pub pods: usize,
    pub mode: IpamMode,
    /// The network's IPv4 cidr and IPv6 net6 (DANM's pool defaults apply).
    pub cidr: String,
    pub net6: String,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            nodes: 100,
            pods: 2000,
            mode: IpamMode::Blocks,
            cidr: "10.128.0.0/16".into(),
            net6: "fd00:5ca1:e::/64".into(),
        }
    }
}

/// What the run measured (the JSON line).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScaleReport {
    pub mode: String,
    pub nodes: usize,
    pub allocations: usize,
    pub allocations_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub conflicts_per_allocation: f64,
    pub bytes_written_per_allocation: f64,
    pub network_watch_bytes_per_allocation: f64,
    pub duplicates: usize,
    /// Allocations and releases that failed with "try again" (retries exhausted) and were retried, as a CNI's caller
    /// would.
    pub retried_failures: u64,
    /// The network object's size after the allocations.
    pub network_bytes: usize,
    /// Blocks after the allocations (blocks mode).
    pub blocks: usize,
    /// Addresses still held after every interface was released (must be 0).
    pub held_after_release: usize,
}

/// An [`IpamStore`] that counts the bytes of every write and every lost race.
struct Counting {
    inner: kube::Client,
    written: Arc<AtomicU64>,
    conflicts: Arc<AtomicU64>,
}

impl Counting {
    fn wrote<T: serde::Serialize>(&self, obj: &T) {
        let n = serde_json::to_vec(obj).map(|v| v.len()).unwrap_or(0);
        self.written.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn lost<T>(&self, r: &Result<T, ApiError>) {
        if matches!(r, Err(ApiError::Conflict { .. } | ApiError::AlreadyExists { .. })) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait]
impl IpamStore for Counting {
    async fn get_network(
        &self,
        kind: NetworkKind,
        ns: &str,
        name: &str,
    ) -> Result<Option<Network>, ApiError> {
        self.inner.get_network(kind, ns, name).await
    }
    async fn replace_network(&self, network: &Network) -> Result<Network, ApiError> {
        self.wrote(network);
        let r = self.inner.replace_network(network).await;
        self.lost(&r);
        r
    }
    async fn list_blocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ApiError> {
        self.inner.list_blocks(selector).await
    }
    async fn get_block(&self, name: &str) -> Result<Option<DanmIpBlock>, ApiError> {
        self.inner.get_block(name).await
    }
    async fn create_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.wrote(block);
        let r = self.inner.create_block(block).await;
        self.lost(&r);
        r
    }
    async fn replace_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.wrote(block);
        let r = self.inner.replace_block(block).await;
        self.lost(&r);
        r
    }
    async fn delete_block(&self, name: &str, resource_version: &str) -> Result<bool, ApiError> {
        self.inner.delete_block(name, resource_version).await
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or_default()
}

/// Runs the simulation on a fresh in-process lab server.
pub async fn run(opts: &ScaleOptions) -> anyhow::Result<ScaleReport> {
    let lab = LabServer::start(LabOptions::default()).await?;
    let client = lab.client().await?;
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    for (_, crd) in danm_api::crd::all() {
        crds.create(&PostParams::default(), &serde_json::from_value(crd)?)
            .await?;
    }
    let mut spec: NetworkSpec = serde_json::from_value(json!({
        "NetworkID": "scale", "NetworkType": "macvlan",
        "Options": {"host_device": "eth9", "cidr": opts.cidr, "net6": opts.net6},
    }))?;
    danm_core::ipam::apply_network_defaults(&mut spec.options)?;
    if opts.mode == IpamMode::Blocks {
        spec.options.alloc.clear();
        spec.options.alloc6.clear();
    }
    let mut net = Network::new(NetworkKind::DanmNet, Some("default"), "scale", spec);
    net.metadata.annotations = Some(BTreeMap::from([(
        danm_api::annotations::IPAM_MODE.to_owned(),
        opts.mode.as_str().to_owned(),
    )]));
    let networks: kube::Api<Network> =
        kube::Api::namespaced_with(client.clone(), "default", &NetworkKind::DanmNet);
    networks.create(&PostParams::default(), &net).await?;

    // One watcher of networks, as netwatcher is on every node: the bytes of every object it receives.
    let watched = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (watched, networks) = (watched.clone(), networks.clone());
        let rv = networks
            .get("scale")
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut stream = networks
            .watch(&kube::api::WatchParams::default(), &rv)
            .await?
            .boxed();
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                let n = match event {
                    kube::api::WatchEvent::Added(o)
                    | kube::api::WatchEvent::Modified(o)
                    | kube::api::WatchEvent::Deleted(o) => {
                        serde_json::to_vec(&o).map(|v| v.len()).unwrap_or(0)
                    }
                    _ => 0,
                };
                watched.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };

    let written = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let per_node = opts.pods / opts.nodes.max(1);
    let mut stores = Vec::with_capacity(opts.nodes);
    for _ in 0..opts.nodes {
        stores.push(Counting {
            inner: lab.client().await?,
            written: written.clone(),
            conflicts: conflicts.clone(),
        });
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(opts.nodes);
    for (i, store) in stores.into_iter().enumerate() {
        let retried = retried.clone();
        tasks.push(tokio::spawn(async move {
            let node = format!("node-{i}");
            let ipam = Ipam::new(&store, &node, IpamConfig::default());
            let mut got = Vec::with_capacity(per_node);
            let mut lat = Vec::with_capacity(per_node);
            for p in 0..per_node {
                let owner = format!("{node}-ep-{p}");
                let t = Instant::now();
                let reserved = loop {
                    // An ADD reads the network first, then reserves.
                    let net = store
                        .get_network(NetworkKind::DanmNet, "default", "scale")
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("the network is gone"))?;
                    let req = Request {
                        ip4: IpRequest::Dynamic,
                        ip6: IpRequest::Dynamic,
                        owner: &owner,
                    };
                    match ipam.reserve(&net, &[req]).await {
                        Ok((mut r, _)) => break r.remove(0),
                        Err(e) if matches!(e.error, IpamApiError::Conflicts { .. }) => {
                            retried.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return Err(anyhow::anyhow!("{node}: {e}")),
                    }
                };
                lat.push(t.elapsed());
                got.push((reserved, owner));
            }
            anyhow::Ok((node, got, lat, store))
        }));
    }
    let mut all = Vec::new();
    let mut lat = Vec::new();
    let mut done = Vec::new();
    for t in tasks {
        let (node, got, l, store) = t.await??;
        lat.extend(l);
        all.extend(got.iter().cloned());
        done.push((node, got, store));
    }
    let elapsed = start.elapsed();
    let allocations = all.len();
    let bytes_written = written.load(Ordering::Relaxed);
    let conflicts_n = conflicts.load(Ordering::Relaxed);
    // Give the watcher a moment to drain what the server already sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let watch_bytes = watched.load(Ordering::Relaxed);

    // Duplicates: among what the nodes were given, and against what the store says is held.
    let mut seen = BTreeSet::new();
    let mut duplicates = 0;
    for (r, _) in &all {
        for a in [&r.ip4, &r.ip6] {
            if !seen.insert(a.clone()) {
                duplicates += 1;
            }
        }
    }
    let net = networks.get("scale").await?;
    let network_bytes = serde_json::to_vec(&net)?.len();
    let held = held_addresses(&client, &net, opts.mode).await?;
    duplicates += held.symmetric_difference(&seen).count();
    let blocks = client.list_blocks("").await?.len();

    // Release everything, each node its own.
    let mut releases = Vec::new();
    for (node, got, store) in done {
        let retried = retried.clone();
        releases.push(tokio::spawn(async move {
            let ipam = Ipam::new(&store, &node, IpamConfig::default());
            for (r, owner) in &got {
                let rel = Release {
                    ip4: &r.ip4,
                    ip6: &r.ip6,
                    owner,
                };
                // A DEL that gives up ("try again") is repeated, as the runtime repeats it.
                loop {
                    let net = store
                        .get_network(NetworkKind::DanmNet, "default", "scale")
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("the network is gone"))?;
                    match ipam.release(&net, &[rel]).await {
                        Ok(_) => break,
                        Err(IpamApiError::Conflicts { .. }) => {
                            retried.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return Err(anyhow::anyhow!("{node}: {e}")),
                    }
                }
            }
            anyhow::Ok(())
        }));
    }
    for r in releases {
        r.await??;
    }
    let net = networks.get("scale").await?;
    let held_after_release = held_addresses(&client, &net, opts.mode).await?.len();
    watcher.abort();
    lab.shutdown().await;

    lat.sort();
    let per = |n: u64| n as f64 / allocations.max(1) as f64;
    Ok(ScaleReport {
        mode: opts.mode.to_string(),
        nodes: opts.nodes,
        allocations,
        allocations_per_s: allocations as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(&lat, 0.5),
        p99_ms: pct(&lat, 0.99),
        conflicts_per_allocation: per(conflicts_n),
        bytes_written_per_allocation: per(bytes_written),
        network_watch_bytes_per_allocation: per(watch_bytes),
        duplicates,
        retried_failures: retried.load(Ordering::Relaxed),
        network_bytes,
        blocks,
        held_after_release,
    })
}

/// Every address the store records as held: the bitmap's set bits (minus the protected ones a fresh bitmap has), or
/// the owners of every block of this network; as `addr/prefix` like the allocation results. A family the network
/// does not have (empty `cidr` or `net6`) holds nothing.
pub(crate) async fn held_addresses(
    client: &kube::Client,
    net: &Network,
    mode: IpamMode,
) -> anyhow::Result<BTreeSet<String>> {
    let o = &net.spec.options;
    let v4 = match o.cidr.is_empty() {
        true => 0,
        false => danm_core::ipam::parse_v4_cidr(&o.cidr)?.prefix(),
    };
    let v6 = match o.net6.is_empty() {
        true => 0,
        false => danm_core::ipam::parse_v6_cidr(&o.net6)?.prefix(),
    };
    let mut held = BTreeSet::new();
    match mode {
        IpamMode::Bitmap => {
            let usage = danm_core::ipam::usage(&net.spec)?;
            for (family, prefix) in [(&usage.v4, v4), (&usage.v6, v6)] {
                for a in family.iter().flat_map(|f| f.allocated_addrs()) {
                    held.insert(format!("{a}/{prefix}"));
                }
            }
        }
        IpamMode::Blocks => {
            let kind = net.network_kind().unwrap_or(NetworkKind::DanmNet);
            let id = danm_core::ipam::blocks::NetworkId::new(kind, net.namespace().unwrap_or(""), net.name());
            for block in client.list_blocks("").await? {
                if block.spec.network != id.to_string() {
                    continue;
                }
                let prefix = if block.spec.cidr.contains(':') { v6 } else { v4 };
                let base: std::net::IpAddr = block.spec.cidr.split('/').next().unwrap_or_default().parse()?;
                for rel in block.spec.owners.keys() {
                    held.insert(format!("{}/{prefix}", danm_core::ipam::addr_plus(base, *rel)));
                }
            }
        }
    }
    Ok(held)
}

/// The report as its JSON line.
pub fn json_line(report: &ScaleReport) -> String {
    serde_json::to_string(report).unwrap_or_else(|_| Value::Null.to_string())
}
