//! `kubectl danm`: the operator's kubectl plugin — networks and their pools (as a table, JSON, YAML or an SVG
//! map), a pod's interfaces against its network-status annotation, why a pod has no interface, and what the
//! plugin directory serves. The binary `kubectl-danm` only parses and calls [`run`].

pub mod cluster;
pub mod networks;
pub mod pod;
pub mod svg;
pub mod table;
pub mod why;

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use danm_ipam::{ApiError, IpamApiError};
use serde::Serialize;

use crate::online::OnlineError;
use crate::plugins::PluginsCmdError;
use cluster::Scope;

const EXIT_CODES: &str = "\
Exit status:
  0  done; nothing wrong found
  1  error: the cluster could not be read, an object does not exist, bad input
  2  a problem was found: `why` found why the pod lacks an interface, `pod` found the network-status annotation
     disagreeing with the DanmEps, `plugins` found a plugin that does not load";

/// Inspect danm's networks, pools and pod interfaces on a cluster.
#[derive(Debug, Parser)]
#[command(name = "kubectl-danm", bin_name = "kubectl danm", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes, before or after its name.
#[derive(Debug, Args)]
pub struct Global {
    /// kubeconfig file; else KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace; default: the kubeconfig context's.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Every namespace (networks only).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Output format; default: a human table.
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<Format>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every network (DanmNet, TenantNetwork, ClusterNetwork, NAD): type, ranges, IPAM mode, addresses used per
    /// family, VNI, host device.
    Networks {
        /// Also write an SVG map of every pool (blocks: one box per DanmIpBlock; bitmap: fixed-size segments).
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// A pod's interfaces (network, addresses, MAC, backend, DanmEp) and whether its network-status annotation
    /// agrees with its DanmEps.
    Pod {
        /// The pod's name.
        name: String,
    },
    /// Explain why a pod lacks an interface: its annotation, unknown networks, AllowedTenants, exhausted pools,
    /// the CNI's last failure; ends with what to do.
    Why {
        /// The pod's name.
        pod: String,
    },
    /// The backends a plugin directory serves, their WIT versions and whether the cache holds them precompiled.
    Plugins {
        /// The plugin directory.
        #[arg(long, default_value = danm_wasm::DEFAULT_PLUGIN_DIR)]
        dir: PathBuf,
        /// The cache of precompiled plugins (the CNI config's `cacheDir`).
        #[arg(long, default_value = danm_wasm::DEFAULT_CACHE_DIR)]
        cache_dir: PathBuf,
    },
}

/// Errors of `kubectl danm`; each names the object and the cause.
#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error(transparent)]
    Client(#[from] OnlineError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ipam(#[from] IpamApiError),
    #[error("pod {namespace}/{name} does not exist")]
    NoPod { namespace: String, name: String },
    #[error("cannot write the SVG picture to {}: {source}", path.display())]
    Svg { path: PathBuf, source: std::io::Error },
    #[error("cannot encode the output as {format}: {reason}")]
    Encode { format: &'static str, reason: String },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    #[error(transparent)]
    Plugins(#[from] PluginsCmdError),
    #[error("{0}")]
    Usage(String),
}

/// How a command ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    /// Exit status 2.
    ProblemFound,
}

fn emit<T: Serialize>(
    format: Option<Format>,
    value: &T,
    human: impl FnOnce() -> String,
) -> Result<(), KubectlError> {
    let text = match format {
        None => human(),
        Some(Format::Json) => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| KubectlError::Encode {
                format: "JSON",
                reason: e.to_string(),
            })?,
        Some(Format::Yaml) => serde_yaml::to_string(value).map_err(|e| KubectlError::Encode {
            format: "YAML",
            reason: e.to_string(),
        })?,
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(KubectlError::Output)
}

/// Runs one command.
pub fn run(cli: Cli) -> Result<Outcome, KubectlError> {
    let g = cli.global;
    if g.all_namespaces && !matches!(cli.command, Command::Networks { .. }) {
        return Err(KubectlError::Usage(
            "-A/--all-namespaces only applies to `networks`; name the pod's namespace with -n".into(),
        ));
    }
    match cli.command {
        Command::Plugins { dir, cache_dir } => plugins(&g, &dir, &cache_dir),
        Command::Networks { svg } => crate::online::runtime().block_on(networks_cmd(&g, svg)),
        Command::Pod { name } => crate::online::runtime().block_on(pod_cmd(&g, &name)),
        Command::Why { pod } => crate::online::runtime().block_on(why_cmd(&g, &pod)),
    }
}

fn problem_if(found: bool) -> Outcome {
    if found {
        Outcome::ProblemFound
    } else {
        Outcome::Clean
    }
}

/// A client and the namespace to work in (`-n`, else the kubeconfig context's).
async fn connect(g: &Global) -> Result<(kube::Client, String), KubectlError> {
    let client = crate::online::client(g.kubeconfig.as_deref()).await?;
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    Ok((client, namespace))
}

fn plugins(g: &Global, dir: &Path, cache_dir: &Path) -> Result<Outcome, KubectlError> {
    let report = crate::plugins::report(dir, cache_dir, 500)?;
    emit(g.output, &report, || crate::plugins::render_report(&report))?;
    Ok(problem_if(!report.errors.is_empty()))
}

async fn networks_cmd(g: &Global, svg: Option<PathBuf>) -> Result<Outcome, KubectlError> {
    let (client, namespace) = connect(g).await?;
    let scope = if g.all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(namespace)
    };
    let mut views = cluster::networks(&client, &scope).await?;
    views.sort_by(|a, b| networks::order(&a.row, &b.row));
    let mut rows: Vec<networks::NetworkRow> = views.iter().map(|v| v.row.clone()).collect();
    rows.extend(cluster::nads(&client, &scope).await?.unwrap_or_default());
    networks::sort(&mut rows);
    if let Some(path) = svg {
        let maps: Vec<networks::PoolMap> = views.iter().flat_map(|v| v.maps.clone()).collect();
        std::fs::write(&path, svg::render(&maps)).map_err(|source| KubectlError::Svg { path, source })?;
    }
    emit(g.output, &rows, || networks::render(&rows))?;
    Ok(Outcome::Clean)
}

async fn pod_cmd(g: &Global, name: &str) -> Result<Outcome, KubectlError> {
    let (client, namespace) = connect(g).await?;
    let p = cluster::pod(&client, &namespace, name).await?;
    let eps = cluster::danmeps(&client, &p).await?;
    let status = p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(danm_api::NETWORK_STATUS_ANNOTATION))
        .map(String::as_str);
    let report = pod::report(&namespace, name, &eps, status);
    emit(g.output, &report, || pod::render(&report))?;
    Ok(problem_if(report.disagrees()))
}

async fn why_cmd(g: &Global, name: &str) -> Result<Outcome, KubectlError> {
    let (client, namespace) = connect(g).await?;
    let p = cluster::pod(&client, &namespace, name).await?;
    let facts = cluster::facts(&client, &p).await?;
    let d = why::diagnose(&facts);
    emit(g.output, &d, || why::render(&d))?;
    Ok(problem_if(d.found_problem()))
}
