//! `danm-lab bench pods-at-once`: N pods (default 200) whose Pod objects and network namespaces exist are started at
//! the same instant, each by its own `danm` ADD process against a lab API server running as a separate process.
//! Every ADD must succeed or fail with CNI code 11 ("try again"; such pods are then retried one by one as kubelet
//! would), no address may be given twice, and DEL must leave no DanmEp, address, link or namespace behind. Prints one
//! JSON line with the counts, the wall time, ADD latencies, and the peak memory of the lab server (`VmHWM`) and of
//! the largest `danm` process (rusage of the waited-for children).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use danm_core::ipam::blocks::IpamMode;
use futures::future::join_all;
use serde::Serialize;

use super::cni_pods::{self, BenchPod, DanmCni};
use super::host::{self, ChildLab, CniRun, Netnses, Veth};

/// The run's size and where its binaries are.
#[derive(Clone, Debug)]
pub struct PodsOptions {
    pub pods: usize,
    /// Networks (interfaces) per pod.
    pub networks: usize,
    pub mode: IpamMode,
    pub danm: PathBuf,
    pub lab: PathBuf,
    pub plugin_dir: PathBuf,
    /// How many times a pod refused with code 11 is retried (one at a time) before it counts as failed.
    pub retries: usize,
}

/// The JSON line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PodsReport {
    pub pods: usize,
    pub networks_per_pod: usize,
    pub mode: String,
    pub loadavg: [f64; 3],
    /// From the first ADD started to the last ADD finished.
    pub wall_s: f64,
    pub add_p50_ms: f64,
    pub add_p99_ms: f64,
    pub add_max_ms: f64,
    pub succeeded: usize,
    /// ADDs refused with code 11 ("try again").
    pub try_again: usize,
    /// ADDs that failed with any other code (must be 0).
    pub other_errors: usize,
    pub error_samples: Vec<String>,
    /// Pods refused with code 11 that succeeded when retried.
    pub retried_ok: usize,
    /// Addresses given to two pods (must be 0).
    pub duplicates: usize,
    /// Addresses the API holds that no result carries, or the reverse (must be 0).
    pub api_mismatch: usize,
    pub danm_max_rss_kib: u64,
    pub lab_server_peak_rss_kib: u64,
    pub del_wall_s: f64,
    pub del_errors: usize,
    pub leftover_danmeps: usize,
    pub leftover_addresses: usize,
    pub leftover_netns: usize,
}

impl PodsReport {
    /// Whether the run met its invariants.
    pub fn passed(&self) -> bool {
        self.other_errors == 0
            && self.duplicates == 0
            && self.api_mismatch == 0
            && self.del_errors == 0
            && self.leftover_danmeps == 0
            && self.leftover_addresses == 0
            && self.leftover_netns == 0
            && self.succeeded + self.retried_ok == self.pods
    }
}

fn net_names(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("burst{i}"), format!("10.{}.0.0/20", 60 + i)))
        .collect()
}

/// Runs the burst; the lab server and the veth parent are its own and are removed at the end.
pub async fn run(opts: &PodsOptions) -> anyhow::Result<PodsReport> {
    if let Some(why) = host::root_skip_reason(&opts.plugin_dir) {
        anyhow::bail!("pods-at-once cannot run: {why}");
    }
    let dir = std::env::temp_dir().join(format!("danm-load-pods-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(opts, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(opts: &PodsOptions, dir: &std::path::Path) -> anyhow::Result<PodsReport> {
    let mut report = PodsReport {
        pods: opts.pods,
        networks_per_pod: opts.networks,
        mode: opts.mode.to_string(),
        loadavg: host::loadavg(),
        ..Default::default()
    };
    let lab = ChildLab::start(&opts.lab, dir).await?;
    let client = lab.client.clone();
    let parent = Veth::new(&format!("dlp{}", std::process::id() % 100_000)).await?;
    let nets = net_names(opts.networks);
    let names: Vec<String> = nets.iter().map(|(n, _)| n.clone()).collect();
    cni_pods::create_networks(&client, &nets, &parent.0, opts.mode).await?;
    let danm = DanmCni::new(&opts.danm, &lab.kubeconfig, &opts.plugin_dir, &dir.join("cache"));
    let mut netnses = Netnses::default();
    let tag = std::process::id() % 100_000;

    // One pod first, alone: compiles the plugins into the cache as the node installer would have.
    let warm = cni_pods::create_pod(&client, "warmup", &names, &format!("dlw{tag}")).await?;
    netnses.add(&warm.netns_name).await?;
    let (r, mut warm_process) = danm.warm_up().run_unreaped("ADD", &warm).await?;
    anyhow::ensure!(r.success, "the warm-up pod's ADD failed: {}", r.message());
    danm.run("DEL", &warm).await?;
    netnses.delete_all().await;
    cni_pods::delete_pods(&client, std::slice::from_ref(&warm.name)).await;

    let mut pods = Vec::with_capacity(opts.pods);
    for i in 0..opts.pods {
        let pod =
            cni_pods::create_pod(&client, &format!("burst-{i}"), &names, &format!("dlp{tag}-{i}")).await?;
        netnses.add(&pod.netns_name).await?;
        pods.push(pod);
    }
    let ns_names = netnses.0.clone();

    // Every ADD at once.
    let started = Instant::now();
    let runs: Vec<anyhow::Result<CniRun>> = join_all(pods.iter().map(|p| danm.run("ADD", p))).await;
    report.wall_s = host::r2(started.elapsed().as_secs_f64());
    let mut lat: Vec<Duration> = Vec::new();
    let mut results: Vec<Vec<String>> = Vec::new();
    let mut again: Vec<&BenchPod> = Vec::new();
    for (pod, r) in pods.iter().zip(runs) {
        let r = r?;
        lat.push(r.elapsed);
        if r.success {
            report.succeeded += 1;
            results.push(host::result_addresses(&r.stdout));
        } else if r.code == 11 {
            report.try_again += 1;
            again.push(pod);
        } else {
            report.other_errors += 1;
            if report.error_samples.len() < 5 {
                report
                    .error_samples
                    .push(format!("pod {}: {}", pod.name, r.message()));
            }
        }
    }
    lat.sort();
    report.add_p50_ms = host::r2(host::quantile_ms(&lat, 0.5));
    report.add_p99_ms = host::r2(host::quantile_ms(&lat, 0.99));
    report.add_max_ms = host::r2(host::quantile_ms(&lat, 1.0));

    // Pods told to try again are retried one at a time, as kubelet retries a sandbox.
    for pod in again {
        for _ in 0..opts.retries {
            let r = danm.run("ADD", pod).await?;
            if r.success {
                report.retried_ok += 1;
                results.push(host::result_addresses(&r.stdout));
                break;
            }
            if r.code != 11 {
                report.other_errors += 1;
                if report.error_samples.len() < 5 {
                    report
                        .error_samples
                        .push(format!("pod {} (retried): {}", pod.name, r.message()));
                }
                break;
            }
        }
    }
    report.duplicates = cni_pods::duplicates(&results);
    let given: usize = results.iter().map(Vec::len).sum();
    report.api_mismatch = cni_pods::held_addresses(&client, &names, opts.mode)
        .await?
        .abs_diff(given);
    report.danm_max_rss_kib = host::children_max_rss_kib();
    report.lab_server_peak_rss_kib = lab.peak_rss_kib();
    let _ = warm_process.wait();

    // DEL every pod at once, then the namespaces and the API objects.
    let started = Instant::now();
    let dels = join_all(pods.iter().map(|p| danm.run("DEL", p))).await;
    report.del_wall_s = host::r2(started.elapsed().as_secs_f64());
    for (pod, r) in pods.iter().zip(dels) {
        let r = r?;
        if !r.success {
            report.del_errors += 1;
            if report.error_samples.len() < 5 {
                report
                    .error_samples
                    .push(format!("pod {} DEL: {}", pod.name, r.message()));
            }
        }
    }
    netnses.delete_all().await;
    report.leftover_netns = host::netns_left(&ns_names);
    report.leftover_danmeps = cni_pods::danmeps_left(&client).await?;
    report.leftover_addresses = cni_pods::held_addresses(&client, &names, opts.mode).await?;
    let pod_names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    cni_pods::delete_pods(&client, &pod_names).await;
    cni_pods::delete_networks(&client, &names).await?;
    drop(parent);
    lab.stop().await;
    Ok(report)
}
