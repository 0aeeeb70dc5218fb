//! `danmctl ipam show --network` and `danmctl ipam migrate`: the IPAM commands that work on a cluster (kubeconfig)
//! instead of a file, for both IPAM modes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use danm_api::{DanmEp, Network, NetworkKind};
use danm_core::ipam::Family;
use danm_core::ipam::blocks::IpamMode;
use danm_ipam::migrate::{MigrateError, migrate};
use danm_ipam::{ApiError, Ipam, IpamApiError, IpamConfig, IpamStore};
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A network in a cluster.
#[derive(Debug, Args)]
pub struct ClusterNetworkArgs {
    /// The network's kind: DanmNet, TenantNetwork or ClusterNetwork.
    #[arg(long, default_value = "DanmNet")]
    pub kind: String,
    /// The network's namespace (ignored for ClusterNetworks).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// kubeconfig file; the in-cluster or default configuration when unset.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Errors of the online commands.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    #[error("{0}")]
    Kind(#[from] danm_api::UnknownKind),
    #[error("cannot build a Kubernetes client from {kubeconfig}: {reason}")]
    Client { kubeconfig: String, reason: String },
    #[error("{network} does not exist")]
    NoNetwork { network: String },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ipam(#[from] IpamApiError),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("{network}: {source}")]
    Bitmap {
        network: String,
        #[source]
        source: danm_core::ipam::IpamError,
    },
}

/// A single-threaded runtime for one command.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A client from `kubeconfig`, else the inferred configuration (KUBECONFIG, ~/.kube/config, in-cluster). Its
/// `default_namespace()` is the kubeconfig context's namespace.
pub async fn client(kubeconfig: Option<&Path>) -> Result<kube::Client, OnlineError> {
    let err = |reason: String| OnlineError::Client {
        kubeconfig: kubeconfig.map_or("the default configuration".into(), |p| p.display().to_string()),
        reason,
    };
    let config = match kubeconfig {
        None => kube::Config::infer().await.map_err(|e| err(e.to_string()))?,
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| err(e.to_string()))?
        }
    };
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// Migrates a bitmap network to blocks; prints what was done.
pub fn run_migrate(name: &str, args: &ClusterNetworkArgs) -> Result<String, OnlineError> {
    runtime().block_on(async {
        let kind: NetworkKind = args.kind.parse()?;
        let client = client(args.kubeconfig.as_deref()).await?;
        let list = async || {
            let api: kube::Api<DanmEp> = kube::Api::all(client.clone());
            api.list(&ListParams::default())
                .await
                .map(|l| l.items)
                .map_err(|e| ApiError::from_kube("DanmEps".into(), e))
        };
        let report = migrate(
            &client,
            &IpamConfig::default(),
            kind,
            &args.namespace,
            name,
            list,
            None,
        )
        .await?;
        Ok(if report.already_blocks {
            format!("{} is in blocks mode already; nothing to do\n", report.network)
        } else {
            format!(
                "{}: {} addresses moved into {} blocks; the network is in blocks mode now\n",
                report.network, report.addresses, report.blocks_written
            )
        })
    })
}

/// The allocations of a network in a cluster, in either mode.
pub fn run_show(name: &str, args: &ClusterNetworkArgs) -> Result<String, OnlineError> {
    runtime().block_on(async {
        let kind: NetworkKind = args.kind.parse()?;
        let client = client(args.kubeconfig.as_deref()).await?;
        let network = client
            .get_network(kind, &args.namespace, name)
            .await?
            .ok_or_else(|| OnlineError::NoNetwork {
                network: danm_ipam::network_object(kind, &args.namespace, name),
            })?;
        let ipam = Ipam::new(&client, "", IpamConfig::default());
        let mode = ipam.mode(&network).map_err(|source| OnlineError::Bitmap {
            network: name.to_owned(),
            source,
        })?;
        match mode {
            IpamMode::Bitmap => {
                let usage = danm_core::ipam::usage(&network.spec).map_err(|source| OnlineError::Bitmap {
                    network: name.to_owned(),
                    source,
                })?;
                let reference = danm_ipam::network_id(&network).to_string();
                Ok(format!(
                    "IPAM mode: bitmap\n{}",
                    crate::usage::render_usage(&reference, &network, &usage)
                ))
            }
            IpamMode::Blocks => Ok(render_blocks(&network, &ipam.block_stats(&network).await?)),
        }
    })
}

fn render_blocks(network: &Network, stats: &[danm_ipam::BlockStats]) -> String {
    let mut s = format!("{}\nIPAM mode: blocks\n", danm_ipam::network_id(network));
    for family in [Family::V4, Family::V6] {
        let blocks: Vec<_> = stats.iter().filter(|b| b.family == family).collect();
        let used: usize = blocks.iter().map(|b| b.used).sum();
        let capacity: u128 = blocks.iter().map(|b| b.capacity).sum();
        let _ = writeln!(
            s,
            "{family}: {} blocks, {used} addresses used of {capacity} in them",
            blocks.len()
        );
        for b in blocks {
            let _ = writeln!(
                s,
                "  {:<20} {:<24} used {}/{}",
                b.cidr, b.node, b.used, b.capacity
            );
        }
    }
    s
}
