//! `danm-lab`: runs the lab API server, simulates pods against it, and measures its raw throughput.

use anyhow::Context;
use clap::{Parser, Subcommand};
use danm_lab::sim::{PodSim, PodSpec, SimConfig};
use danm_lab::{AdmissionConfig, LabOptions, LabServer};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "danm-lab",
    about = "The danm local lab: a Kubernetes-API-compatible server and a pod simulator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the lab API server until interrupted.
    Serve(ServeArgs),
    /// Simulated pods: a Pod object plus a network namespace wired by a CNI config list.
    Pod {
        #[command(subcommand)]
        cmd: PodCmd,
    },
    /// Print the server's raw throughput (conditional writes to one object, creates), or run a named benchmark.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        what: Option<BenchCmd>,
        /// Operations per measurement.
        #[arg(long, default_value_t = 2000)]
        ops: usize,
        /// Concurrent clients for the create measurement.
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// Pod ADD/DEL cycles through the real `danm` binary while danm processes are SIGKILLed, the API server
    /// restarts and fails requests; then GC, the IPAM reconciler and an audit of the API and the kernel. Prints one
    /// JSON line; exits non-zero if anything was duplicated, leaked or left behind. Needs root.
    Chaos(ChaosArgs),
}

#[derive(clap::Args)]
struct ChaosArgs {
    /// Pod lifecycles to complete.
    #[arg(long, default_value_t = 500)]
    cycles: usize,
    /// Pods in flight at once.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Fraction of danm processes (ADD and DEL) SIGKILLed at a random moment.
    #[arg(long, default_value_t = 0.1)]
    kill_rate: f64,
    /// Restarts of the lab API server (with persistence) during the cycles.
    #[arg(long, default_value_t = 2)]
    api_restarts: usize,
    /// `bitmap` (DANM's alloc/alloc6 in the networks) or `blocks`.
    #[arg(long, default_value = "blocks")]
    mode: String,
    /// No cycle starts after this many seconds; the report says how many completed.
    #[arg(long, default_value_t = 900)]
    deadline_seconds: u64,
    /// The `danm` binary (default: next to this executable).
    #[arg(long)]
    danm: Option<PathBuf>,
    /// The built backend plugins (macvlan.wasm is used).
    #[arg(long, env = "DANM_PLUGIN_DIR", default_value = "build/plugins")]
    plugin_dir: PathBuf,
    /// Where the lab state, danm's config, cache and logs go (kept); default a fresh temporary directory, removed
    /// when the run passes.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// The lab server's bearer token (default: a random one).
    #[arg(long, env = "DANM_LAB_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Seed of the random choices (default: random; the report prints it).
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// A cluster-scale IPAM simulation: simulated nodes allocate and release pod interfaces through danm's IPAM
    /// against an in-process lab server while a watcher of networks counts what it receives; prints one JSON line.
    IpamScale {
        /// Simulated nodes (tasks, each with its own client).
        #[arg(long, default_value_t = 100)]
        nodes: usize,
        /// Pod interfaces allocated (dual-stack) and then released, in all.
        #[arg(long, default_value_t = 2000)]
        pods: usize,
        /// `bitmap` (DANM's alloc/alloc6 in the network) or `blocks`.
        #[arg(long, default_value = "blocks")]
        mode: String,
        /// The network's IPv4 cidr.
        #[arg(long, default_value = "10.128.0.0/16")]
        cidr: String,
        /// The network's IPv6 net6.
        #[arg(long, default_value = "fd00:5ca1:e::/64")]
        net6: String,
    },
    /// The real `danm-webhook` over TLS at a constant rate from this process (open loop, a mix of network and
    /// TenantConfig reviews), backed by a lab server process; prints one JSON line, exits 1 on any error.
    Webhook {
        /// Requests per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds of load (after a one-second warm-up).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Pods (DanmEps) connected to the networks whose updates and deletes must be refused.
        #[arg(long, default_value_t = 150)]
        pods: usize,
        /// The webhook binary (default: `danm-webhook` next to this binary).
        #[arg(long)]
        webhook: Option<PathBuf>,
        #[command(flatten)]
        bins: LoadBins,
    },
    /// N pods started at once, each by its own `danm` ADD, against a lab server process: every ADD succeeds or
    /// says "try again" (code 11), no duplicate address, clean DEL; prints one JSON line, exits 1 otherwise.
    PodsAtOnce {
        #[arg(long, default_value_t = 200)]
        pods: usize,
        /// Networks (interfaces) per pod.
        #[arg(long, default_value_t = 2)]
        networks: usize,
        /// `blocks` or `bitmap`.
        #[arg(long, default_value = "blocks")]
        mode: String,
        /// Retries, one at a time, of a pod told to try again.
        #[arg(long, default_value_t = 5)]
        retries: usize,
        #[command(flatten)]
        bins: LoadBins,
    },
    /// Whereabouts #313: P pods x M macvlan attachments (M networks), K pods at a time, through `danm` and through
    /// Debian's macvlan + host-local in the same run; prints one JSON line with the ratio, exits 1 on any error.
    Attachments {
        #[arg(long, default_value_t = 128)]
        pods: usize,
        #[arg(long, default_value_t = 16)]
        networks: usize,
        /// Pods started at a time.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// `blocks` or `bitmap`.
        #[arg(long, default_value = "blocks")]
        mode: String,
        /// Where Debian's CNI plugins are.
        #[arg(long, default_value = "/usr/lib/cni")]
        cni_bin_dir: PathBuf,
        /// Skip the Debian baseline.
        #[arg(long)]
        no_baseline: bool,
        #[command(flatten)]
        bins: LoadBins,
    },
}

/// Where the load benchmarks find danm's binaries and plugins.
#[derive(clap::Args)]
struct LoadBins {
    /// The `danm` CNI binary (default: `danm` next to this binary).
    #[arg(long)]
    danm: Option<PathBuf>,
    /// The plugin directory (`make guests` fills build/plugins).
    #[arg(long, env = "DANM_PLUGIN_DIR", default_value = "build/plugins")]
    plugin_dir: PathBuf,
}

impl LoadBins {
    fn danm(&self) -> PathBuf {
        self.danm
            .clone()
            .unwrap_or_else(|| danm_lab::bench::host::sibling_bin("danm"))
    }

    fn plugin_dir(&self) -> anyhow::Result<PathBuf> {
        std::path::absolute(&self.plugin_dir)
            .with_context(|| format!("--plugin-dir {}", self.plugin_dir.display()))
    }
}

fn lab_bin() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the danm-lab binary")
}

/// Prints the report's JSON line; fails when the run did not meet its invariants.
fn report<R: serde::Serialize>(what: &str, r: &R, passed: bool) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(r)?);
    anyhow::ensure!(passed, "{what}: the run failed its checks (see the JSON line)");
    Ok(())
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 6443, env = "DANM_LAB_PORT")]
    port: u16,
    /// Address to bind instead of 127.0.0.1.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Persist state to this directory (loaded on start).
    #[arg(long, env = "DANM_LAB_DIR")]
    dir: Option<PathBuf>,
    /// Where to write the kubeconfig.
    #[arg(long, default_value = "/tmp/danm-lab/kubeconfig")]
    kubeconfig_out: PathBuf,
    /// Serve HTTPS with a self-signed CA (embedded in the kubeconfig).
    #[arg(long)]
    tls: bool,
    /// Require this bearer token.
    #[arg(long, env = "DANM_LAB_TOKEN")]
    token: Option<String>,
    /// Map a webhook Service to a URL: `namespace/name=https://127.0.0.1:8443` (repeatable).
    #[arg(long = "webhook-service", value_name = "NS/NAME=URL")]
    webhook_services: Vec<String>,
    /// Skip TLS verification of webhooks that carry no caBundle.
    #[arg(long)]
    webhook_insecure: bool,
    /// Create the objects of these manifests at start (files or directories; e.g. deploy/crds).
    #[arg(long = "apply", value_name = "PATH")]
    apply: Vec<PathBuf>,
    /// Events kept for watch replay.
    #[arg(long, default_value_t = 10_000)]
    history: usize,
}

#[derive(Subcommand)]
enum PodCmd {
    /// Create the Pod, its netns, and run CNI ADD; prints the CNI result.
    Add(PodArgs),
    /// Run CNI DEL, remove the netns and delete the Pod.
    Del(PodArgs),
    /// Set the Pod's Ready condition.
    Ready {
        #[command(flatten)]
        pod: PodArgs,
        /// true or false.
        #[arg(long, action = clap::ArgAction::Set, default_value_t = true)]
        ready: bool,
    },
}

#[derive(clap::Args)]
struct PodArgs {
    /// Pod name.
    name: String,
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// Label `k=v` (repeatable).
    #[arg(short, long = "label")]
    labels: Vec<String>,
    /// Annotation `k=v` (repeatable), e.g. `danm.k8s.io/interfaces=[{"network":"a"}]`.
    #[arg(short, long = "annotation")]
    annotations: Vec<String>,
    /// spec.nodeName.
    #[arg(long, default_value = "lab-node")]
    node: String,
    #[arg(long, env = "KUBECONFIG", default_value = "/tmp/danm-lab/kubeconfig")]
    kubeconfig: PathBuf,
    /// CNI config directory (the first .conflist/.conf in lexical order is used, as containerd does).
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// CNI plugin directories, colon-separated.
    #[arg(long, default_value = "/opt/cni/bin:/usr/lib/cni")]
    cni_path: String,
    /// Where the simulator keeps per-pod state (container id, netns, CNI result).
    #[arg(long, default_value = "/var/lib/danm-lab/pods")]
    state_dir: PathBuf,
}

fn kv(list: &[String]) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    list.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .context(format!("{s:?} is not k=v"))
        })
        .collect()
}

impl PodArgs {
    fn sim(&self) -> SimConfig {
        SimConfig {
            kubeconfig: self.kubeconfig.clone(),
            cni_conf_dir: self.cni_conf_dir.clone(),
            cni_path: self.cni_path.clone(),
            state_dir: self.state_dir.clone(),
            netns_dir: PathBuf::from("/var/run/netns"),
        }
    }

    fn spec(&self) -> anyhow::Result<PodSpec> {
        Ok(PodSpec {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            labels: kv(&self.labels)?,
            annotations: kv(&self.annotations)?,
            node_name: self.node.clone(),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DANM_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Serve(a) => {
            let mut admission = AdmissionConfig {
                insecure: a.webhook_insecure,
                ..Default::default()
            };
            for m in &a.webhook_services {
                let (k, v) = m
                    .split_once('=')
                    .context(format!("--webhook-service {m:?} is not NS/NAME=URL"))?;
                admission.services.insert(k.to_string(), v.to_string());
            }
            let opts = LabOptions {
                addr: SocketAddr::new(a.bind, a.port),
                tls: a.tls,
                token: a.token,
                state_dir: a.dir,
                kubeconfig_out: Some(a.kubeconfig_out),
                history: a.history,
                admission,
            };
            let handle = LabServer::start(opts).await?;
            for p in &a.apply {
                for o in handle.apply_manifests(p)? {
                    println!("{o} applied");
                }
            }
            println!(
                "danm-lab serving at {} (kubeconfig {})",
                handle.url(),
                handle.kubeconfig_path().display()
            );
            tokio::signal::ctrl_c().await?;
            handle.shutdown().await;
        }
        Cmd::Pod { cmd } => match cmd {
            PodCmd::Add(p) => {
                let sim = PodSim::new(p.sim()).await?;
                let pod = sim.add(&p.spec()?).await?;
                println!("{}", serde_json::to_string_pretty(&pod.result)?);
            }
            PodCmd::Del(p) => {
                let sim = PodSim::new(p.sim()).await?;
                sim.del(&p.namespace, &p.name).await?;
            }
            PodCmd::Ready { pod, ready } => {
                let sim = PodSim::new(pod.sim()).await?;
                sim.set_ready(&pod.namespace, &pod.name, ready).await?;
            }
        },
        Cmd::Bench {
            what: None,
            ops,
            clients,
        } => {
            let report = danm_lab::bench::run(ops, clients).await?;
            print!("{report}");
        }
        Cmd::Bench {
            what:
                Some(BenchCmd::IpamScale {
                    nodes,
                    pods,
                    mode,
                    cidr,
                    net6,
                }),
            ..
        } => {
            let opts = danm_lab::bench::ipam_scale::ScaleOptions {
                nodes,
                pods,
                mode: mode.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?,
                cidr,
                net6,
            };
            let report = danm_lab::bench::ipam_scale::run(&opts).await?;
            println!("{}", danm_lab::bench::ipam_scale::json_line(&report));
        }
        Cmd::Bench {
            what:
                Some(BenchCmd::Webhook {
                    rate,
                    seconds,
                    pods,
                    webhook,
                    bins,
                }),
            ..
        } => {
            use danm_lab::bench::webhook_load;
            let opts = webhook_load::WebhookOptions {
                rate,
                seconds,
                pods,
                webhook: webhook.unwrap_or_else(|| danm_lab::bench::host::sibling_bin("danm-webhook")),
                lab: lab_bin()?,
                plugin_dir: bins.plugin_dir()?,
            };
            let r = webhook_load::run(&opts).await?;
            report("webhook", &r, r.passed())?;
        }
        Cmd::Bench {
            what:
                Some(BenchCmd::PodsAtOnce {
                    pods,
                    networks,
                    mode,
                    retries,
                    bins,
                }),
            ..
        } => {
            use danm_lab::bench::pods_at_once;
            let opts = pods_at_once::PodsOptions {
                pods,
                networks,
                mode: mode.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?,
                danm: bins.danm(),
                lab: lab_bin()?,
                plugin_dir: bins.plugin_dir()?,
                retries,
            };
            let r = pods_at_once::run(&opts).await?;
            report("pods-at-once", &r, r.passed())?;
        }
        Cmd::Bench {
            what:
                Some(BenchCmd::Attachments {
                    pods,
                    networks,
                    parallel,
                    mode,
                    cni_bin_dir,
                    no_baseline,
                    bins,
                }),
            ..
        } => {
            use danm_lab::bench::attachments;
            let opts = attachments::AttachOptions {
                pods,
                networks,
                parallel,
                mode: mode.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?,
                danm: bins.danm(),
                lab: lab_bin()?,
                plugin_dir: bins.plugin_dir()?,
                cni_bin_dir,
                no_baseline,
            };
            let r = attachments::run(&opts).await?;
            report("attachments", &r, r.passed())?;
        }
        Cmd::Chaos(a) => {
            let danm = match a.danm {
                Some(d) => d,
                None => std::env::current_exe()?
                    .parent()
                    .context("the executable has no directory")?
                    .join("danm"),
            };
            let (work_dir, temp) = match a.work_dir {
                Some(d) => (d, None),
                None => {
                    let t = tempfile::Builder::new().prefix("danm-chaos").tempdir()?;
                    (t.path().to_path_buf(), Some(t))
                }
            };
            let mut opts = danm_lab::chaos::ChaosOptions::new(danm, a.plugin_dir, work_dir.clone());
            opts.cycles = a.cycles;
            opts.concurrency = a.concurrency;
            opts.kill_rate = a.kill_rate.clamp(0.0, 1.0);
            opts.api_restarts = a.api_restarts;
            opts.mode = a.mode.parse().map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
            opts.deadline = std::time::Duration::from_secs(a.deadline_seconds);
            if let Some(t) = a.token {
                opts.token = t;
            }
            if let Some(s) = a.seed {
                opts.seed = s;
            }
            let report = danm_lab::chaos::run(&opts).await?;
            println!("{}", serde_json::to_string(&report)?);
            if !report.passed() {
                // Keep the evidence.
                if let Some(t) = temp {
                    let kept = t.keep();
                    eprintln!(
                        "chaos: the run failed; its logs and state are in {}",
                        kept.display()
                    );
                }
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
