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
    /// Print the server's raw throughput (conditional writes to one object, creates), or run `ipam-scale`.
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
    }
    Ok(())
}
