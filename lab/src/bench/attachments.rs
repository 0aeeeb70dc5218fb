//! `danm-lab bench attachments`: the scenario of Whereabouts issue #313 (Multus + Whereabouts hit kubelet's
//! 4-minute sandbox limit): P pods (default 128) with M macvlan attachments each (default 16, one per network),
//! K pods at a time (default 8), real namespaces, on this machine. Runs it through the real `danm` binary (one ADD
//! per pod, every interface from its DanmNet) and, in the same run, through Debian's `macvlan` + `host-local` CNI
//! plugins doing the same attachments (one ADD per interface, as a meta-plugin calling them in turn would), driven
//! the same way. Checks every interface is up in its namespace and no address is given twice, tears everything
//! down (DEL, namespaces, API objects) and counts what is left. Prints one JSON line with both times and their ratio.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use danm_core::ipam::blocks::IpamMode;
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};

use super::cni_pods::{self, BenchPod, DanmCni};
use super::host::{self, ChildLab, Veth};

/// The run's size and where its binaries are.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    pub pods: usize,
    pub networks: usize,
    /// Pods started at a time.
    pub parallel: usize,
    pub mode: IpamMode,
    pub danm: PathBuf,
    pub lab: PathBuf,
    pub plugin_dir: PathBuf,
    /// Debian's CNI plugins (`macvlan`, `host-local`).
    pub cni_bin_dir: PathBuf,
    /// Skip the Debian baseline (smoke runs).
    pub no_baseline: bool,
}

/// One driver's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DriverFigures {
    /// From the first pod's start to the last pod's interfaces all configured (namespace creation included).
    pub add_s: f64,
    pub pod_p50_ms: f64,
    pub pod_p99_ms: f64,
    /// Interfaces found up in the pods' namespaces after the ADDs.
    pub interfaces_up: usize,
    pub add_errors: usize,
    pub duplicates: usize,
    /// DEL of every pod and deletion of its namespace.
    pub del_s: f64,
    pub del_errors: usize,
    pub leftover_netns: usize,
    pub error_samples: Vec<String>,
}

/// The JSON line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AttachReport {
    pub pods: usize,
    pub networks: usize,
    pub parallel: usize,
    pub mode: String,
    pub interfaces: usize,
    pub loadavg: [f64; 3],
    pub danm: DriverFigures,
    pub danm_max_rss_kib: u64,
    pub lab_server_peak_rss_kib: u64,
    pub danm_leftover_danmeps: usize,
    pub danm_leftover_addresses: usize,
    /// Debian's macvlan + host-local, same attachments, same driver (absent with `--no-baseline`).
    pub debian: Option<DriverFigures>,
    pub debian_leftover_leases: usize,
    /// danm's ADD time over Debian's.
    pub ratio_add_danm_over_debian: Option<f64>,
    pub ratio_del_danm_over_debian: Option<f64>,
    pub leftover_host_links: usize,
    pub target_60s_met: bool,
}

impl AttachReport {
    /// Whether every interface came up, nothing was given twice and nothing was left behind.
    pub fn passed(&self) -> bool {
        let clean = |d: &DriverFigures| {
            d.add_errors == 0
                && d.duplicates == 0
                && d.del_errors == 0
                && d.leftover_netns == 0
                && d.interfaces_up == self.interfaces
        };
        clean(&self.danm)
            && self.debian.as_ref().is_none_or(clean)
            && self.danm_leftover_danmeps == 0
            && self.danm_leftover_addresses == 0
            && self.debian_leftover_leases == 0
            && self.leftover_host_links == 0
    }
}

/// Runs both drivers; the lab server, the parent link and every namespace are its own and are removed at the end.
pub async fn run(opts: &AttachOptions) -> anyhow::Result<AttachReport> {
    if let Some(why) = host::root_skip_reason(&opts.plugin_dir) {
        anyhow::bail!("attachments cannot run: {why}");
    }
    for p in ["macvlan", "host-local"] {
        anyhow::ensure!(
            opts.no_baseline || opts.cni_bin_dir.join(p).exists(),
            "attachments: Debian's {p} plugin is missing in {} (apt-get install containernetworking-plugins)",
            opts.cni_bin_dir.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("danm-load-attach-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(opts, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Counts the interfaces other than `lo` that are administratively up in a namespace.
async fn interfaces_up(netns: &str) -> usize {
    let Ok(out) = host::ip(&["-n", netns, "-j", "link", "show"]).await else {
        return 0;
    };
    let links: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifname"] != "lo")
        .filter(|l| l["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == "UP")))
        .count()
}

/// What one pod's ADD produced.
struct PodAdd {
    elapsed: Duration,
    addresses: Vec<String>,
    errors: Vec<String>,
}

/// One driver's ADD of one pod (namespace included) and its DEL.
trait Driver {
    async fn add(&self, pod: &BenchPod) -> anyhow::Result<PodAdd>;
    async fn del(&self, pod: &BenchPod) -> anyhow::Result<Vec<String>>;
}

struct Danm(DanmCni);

impl Driver for Danm {
    async fn add(&self, pod: &BenchPod) -> anyhow::Result<PodAdd> {
        let t = Instant::now();
        host::ip(&["netns", "add", &pod.netns_name]).await?;
        let r = self.0.run("ADD", pod).await?;
        let errors = match r.success {
            true => vec![],
            false => vec![format!("pod {}: {}", pod.name, r.message())],
        };
        Ok(PodAdd {
            elapsed: t.elapsed(),
            addresses: host::result_addresses(&r.stdout),
            errors,
        })
    }

    async fn del(&self, pod: &BenchPod) -> anyhow::Result<Vec<String>> {
        let r = self.0.run("DEL", pod).await?;
        let mut errors = Vec::new();
        if !r.success {
            errors.push(format!("pod {} DEL: {}", pod.name, r.message()));
        }
        if let Err(e) = host::ip(&["netns", "del", &pod.netns_name]).await {
            errors.push(e.to_string());
        }
        Ok(errors)
    }
}

/// Debian's macvlan with host-local, one ADD per interface in turn (`eth0`, `net1`, ...), as a meta-plugin runs
/// its delegates.
struct Debian {
    bin_dir: PathBuf,
    confs: Vec<String>,
}

impl Debian {
    fn new(bin_dir: &Path, parent: &str, nets: &[(String, String)], data_dir: &Path) -> Debian {
        let confs = nets
            .iter()
            .map(|(name, cidr)| {
                json!({"cniVersion": "1.0.0", "name": name, "type": "macvlan", "master": parent, "mode": "bridge",
                    "ipam": {"type": "host-local", "subnet": cidr, "dataDir": data_dir}})
                .to_string()
            })
            .collect();
        Debian {
            bin_dir: bin_dir.into(),
            confs,
        }
    }

    fn env(&self, pod: &BenchPod, ifname: &str) -> Vec<(&'static str, String)> {
        vec![
            ("CNI_CONTAINERID", pod.container_id.clone()),
            ("CNI_NETNS", pod.netns.to_string_lossy().into_owned()),
            ("CNI_IFNAME", ifname.to_owned()),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={}",
                    pod.name
                ),
            ),
            ("CNI_PATH", self.bin_dir.to_string_lossy().into_owned()),
        ]
    }
}

fn ifname(i: usize) -> String {
    if i == 0 { "eth0".into() } else { format!("net{i}") }
}

impl Driver for Debian {
    async fn add(&self, pod: &BenchPod) -> anyhow::Result<PodAdd> {
        let t = Instant::now();
        host::ip(&["netns", "add", &pod.netns_name]).await?;
        let mut addresses = Vec::new();
        let mut errors = Vec::new();
        for (i, conf) in self.confs.iter().enumerate() {
            let env = self.env(pod, &ifname(i));
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = host::cni(&self.bin_dir.join("macvlan"), "ADD", &env, conf).await?;
            if r.success {
                addresses.extend(host::result_addresses(&r.stdout));
            } else {
                errors.push(format!("pod {} {}: {}", pod.name, ifname(i), r.message()));
                break;
            }
        }
        Ok(PodAdd {
            elapsed: t.elapsed(),
            addresses,
            errors,
        })
    }

    async fn del(&self, pod: &BenchPod) -> anyhow::Result<Vec<String>> {
        let mut errors = Vec::new();
        for (i, conf) in self.confs.iter().enumerate().rev() {
            let env = self.env(pod, &ifname(i));
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = host::cni(&self.bin_dir.join("macvlan"), "DEL", &env, conf).await?;
            if !r.success {
                errors.push(format!("pod {} {} DEL: {}", pod.name, ifname(i), r.message()));
            }
        }
        if let Err(e) = host::ip(&["netns", "del", &pod.netns_name]).await {
            errors.push(e.to_string());
        }
        Ok(errors)
    }
}

/// ADD every pod, `parallel` at a time; count interfaces up; DEL every pod the same way.
async fn drive(driver: &impl Driver, pods: &[BenchPod], parallel: usize) -> anyhow::Result<DriverFigures> {
    let mut f = DriverFigures::default();
    let started = Instant::now();
    let adds: Vec<anyhow::Result<PodAdd>> = futures::stream::iter(pods.iter().map(|p| driver.add(p)))
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    f.add_s = host::r2(started.elapsed().as_secs_f64());
    let mut lat = Vec::new();
    let mut addresses = Vec::new();
    for a in adds {
        let a = a?;
        lat.push(a.elapsed);
        f.add_errors += a.errors.len();
        f.error_samples
            .extend(a.errors.into_iter().take(5 - f.error_samples.len().min(5)));
        addresses.push(a.addresses);
    }
    lat.sort();
    f.pod_p50_ms = host::r2(host::quantile_ms(&lat, 0.5));
    f.pod_p99_ms = host::r2(host::quantile_ms(&lat, 0.99));
    f.duplicates = cni_pods::duplicates(&addresses);
    for p in pods {
        f.interfaces_up += interfaces_up(&p.netns_name).await;
    }
    let started = Instant::now();
    let dels: Vec<anyhow::Result<Vec<String>>> = futures::stream::iter(pods.iter().map(|p| driver.del(p)))
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    f.del_s = host::r2(started.elapsed().as_secs_f64());
    for d in dels {
        let d = d?;
        f.del_errors += d.len();
        f.error_samples
            .extend(d.into_iter().take(5 - f.error_samples.len().min(5)));
    }
    let names: Vec<String> = pods.iter().map(|p| p.netns_name.clone()).collect();
    f.leftover_netns = host::netns_left(&names);
    Ok(f)
}

/// Links in the host namespace whose name starts with `prefix` (the bench's parent and anything leaked there).
async fn host_links(prefix: &str) -> usize {
    host::ip(&["-o", "link", "show"])
        .await
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .filter(|n| n.trim().starts_with(prefix))
        .count()
}

async fn run_in(opts: &AttachOptions, dir: &Path) -> anyhow::Result<AttachReport> {
    let mut report = AttachReport {
        pods: opts.pods,
        networks: opts.networks,
        parallel: opts.parallel,
        mode: opts.mode.to_string(),
        interfaces: opts.pods * opts.networks,
        loadavg: host::loadavg(),
        ..Default::default()
    };
    anyhow::ensure!(opts.networks <= 64, "attachments: at most 64 networks");
    let lab = ChildLab::start(&opts.lab, dir).await?;
    let client = lab.client.clone();
    let tag = std::process::id() % 100_000;
    let link_prefix = format!("dla{tag}");
    let parent = Veth::new(&link_prefix).await?;
    host::ip(&["link", "set", &format!("{link_prefix}p"), "up"]).await?;
    // /23s: 510 addresses per network, enough for 128 pods (and up to 500).
    let nets: Vec<(String, String)> = (0..opts.networks)
        .map(|i| {
            (
                format!("att{i}"),
                format!("10.{}.{}.0/23", 90 + i / 64, (i % 64) * 4),
            )
        })
        .collect();
    anyhow::ensure!(
        opts.pods <= 500,
        "attachments: at most 500 pods (the networks are /23s)"
    );
    let names: Vec<String> = nets.iter().map(|(n, _)| n.clone()).collect();
    cni_pods::create_networks(&client, &nets, &parent.0, opts.mode).await?;
    let danm = DanmCni::new(&opts.danm, &lab.kubeconfig, &opts.plugin_dir, &dir.join("cache"));

    // One pod first, alone: compiles the plugins into the cache as the node installer would have.
    let warm = cni_pods::create_pod(&client, "warmup", &names, &format!("daw{tag}")).await?;
    host::ip(&["netns", "add", &warm.netns_name]).await?;
    let (w, mut warm_process) = danm.warm_up().run_unreaped("ADD", &warm).await?;
    anyhow::ensure!(w.success, "the warm-up pod's ADD failed: {}", w.message());
    let driver = Danm(danm);
    let werr = driver.del(&warm).await?;
    anyhow::ensure!(werr.is_empty(), "the warm-up pod's DEL failed: {werr:?}");
    cni_pods::delete_pods(&client, std::slice::from_ref(&warm.name)).await;

    let mut pods = Vec::with_capacity(opts.pods);
    for i in 0..opts.pods {
        pods.push(
            cni_pods::create_pod(&client, &format!("att-{i}"), &names, &format!("dla{tag}-{i}")).await?,
        );
    }
    report.danm = drive(&driver, &pods, opts.parallel).await?;
    report.danm_max_rss_kib = host::children_max_rss_kib();
    report.lab_server_peak_rss_kib = lab.peak_rss_kib();
    let _ = warm_process.wait();
    report.danm_leftover_danmeps = cni_pods::danmeps_left(&client).await?;
    report.danm_leftover_addresses = cni_pods::held_addresses(&client, &names, opts.mode).await?;
    let pod_names: Vec<String> = pods.iter().map(|p| p.name.clone()).collect();
    cni_pods::delete_pods(&client, &pod_names).await;
    cni_pods::delete_networks(&client, &names).await?;
    lab.stop().await;

    if !opts.no_baseline {
        let data = dir.join("host-local");
        let debian = Debian::new(&opts.cni_bin_dir, &parent.0, &nets, &data);
        // The same warm-up, so both drivers start with warm page caches.
        let w = debian.add(&warm).await?;
        let werr = debian.del(&warm).await?;
        anyhow::ensure!(
            w.errors.is_empty() && werr.is_empty(),
            "Debian's warm-up pod failed: {:?} {werr:?}",
            w.errors
        );
        let figures = drive(&debian, &pods, opts.parallel).await?;
        report.debian_leftover_leases = leases_left(&data);
        report.ratio_add_danm_over_debian = Some(host::r2(report.danm.add_s / figures.add_s.max(1e-3)));
        report.ratio_del_danm_over_debian = Some(host::r2(report.danm.del_s / figures.del_s.max(1e-3)));
        report.debian = Some(figures);
    }
    drop(parent);
    report.leftover_host_links = host_links(&link_prefix).await;
    report.target_60s_met = report.danm.add_s <= 60.0 && report.danm.interfaces_up == report.interfaces;
    Ok(report)
}

/// host-local leases still on disk (files named by address under `<dataDir>/<network>/`).
fn leases_left(data: &Path) -> usize {
    let Ok(nets) = std::fs::read_dir(data) else {
        return 0;
    };
    nets.flatten()
        .filter_map(|n| std::fs::read_dir(n.path()).ok())
        .flatten()
        .flatten()
        .filter(|f| {
            let name = f.file_name().to_string_lossy().into_owned();
            name.parse::<std::net::IpAddr>().is_ok()
        })
        .count()
}
