//! `svcwatcher`: the Deployment binary. Candidates elect a leader with a Lease; the leader runs the controller.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use danm_controller_kit::{CommonArgs, Readiness, health_router};
use danm_svcwatcher::controller::run;
use danm_svcwatcher::leader::{LeaderElector, LeadershipEnd, LeaseConfig};
use tracing::{error, info};

#[derive(Debug, Parser)]
#[command(
    name = "svcwatcher",
    version,
    about = "EndpointSlices and Endpoints of DANM-selected services"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "DANM_SVCWATCHER_LEASE_NAMESPACE", default_value = "kube-system")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "DANM_SVCWATCHER_LEASE_NAME",
        default_value = "danm-svc-controller"
    )]
    lease_name: String,
    /// This candidate's identity (default: the hostname, i.e. the pod name).
    #[arg(long, env = "DANM_SVCWATCHER_IDENTITY")]
    identity: Option<String>,
    /// Lease duration in milliseconds.
    #[arg(long, env = "DANM_SVCWATCHER_LEASE_MS", default_value_t = 10_000)]
    lease_ms: u64,
    /// Renew deadline in milliseconds.
    #[arg(long, env = "DANM_SVCWATCHER_RENEW_MS", default_value_t = 5_000)]
    renew_ms: u64,
    /// Retry period in milliseconds.
    #[arg(long, env = "DANM_SVCWATCHER_RETRY_MS", default_value_t = 2_000)]
    retry_ms: u64,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "DANM_SVCWATCHER_METRICS_ADDR", default_value = "0.0.0.0:9472")]
    metrics_addr: SocketAddr,
    /// Seconds an orphan (a DanmEp whose pod is gone, an address no live owner holds) must stay one before the
    /// IPAM reconciler acts on it.
    #[arg(long, env = "DANM_IPAM_GRACE_SECONDS", default_value_t = 300)]
    ipam_grace_seconds: u64,
    /// Seconds between IPAM reconciler scans (0: no reconciler).
    #[arg(long, env = "DANM_IPAM_SCAN_SECONDS", default_value_t = 60)]
    ipam_scan_seconds: u64,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| format!("svcwatcher-{}", std::process::id()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.common.init_tracing()?;
    let client = args.common.client().await?;
    let (registry, metrics, ipam_metrics) = danm_svcwatcher::metrics_registry();
    let ready = Readiness::default();
    ready.set(true);
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    let router = health_router(ready, registry);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            error!(error = %err, "health server stopped");
        }
    });
    let mut cfg = LeaseConfig::new(
        &args.lease_namespace,
        &args.lease_name,
        &args.identity.unwrap_or_else(hostname),
    );
    cfg.lease_duration = Duration::from_millis(args.lease_ms);
    cfg.renew_deadline = Duration::from_millis(args.renew_ms);
    cfg.retry_period = Duration::from_millis(args.retry_ms);
    info!(identity = %cfg.identity, lease = %format!("{}/{}", cfg.namespace, cfg.name), "svcwatcher candidate starting");
    let elector = LeaderElector::new(client.clone(), cfg);
    let (grace, scan) = (args.ipam_grace_seconds, args.ipam_scan_seconds);
    // SIGTERM (pod deletion, rollout) or SIGINT: stop the controller and release the lease for a fast hand-over.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        info!("shutting down; releasing the lease");
    };
    // The leader runs the Service controller and, beside it, the IPAM reconciler; both stop on shutdown.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let work = {
        let client = client.clone();
        async move {
            let mut rx = stop_rx;
            let ipam_client = client.clone();
            let reconciler = async move {
                if scan == 0 {
                    return;
                }
                danm_svcwatcher::ipam::run(
                    ipam_client,
                    Duration::from_secs(grace),
                    Duration::from_secs(scan),
                    ipam_metrics,
                    async move {
                        let _ = rx.wait_for(|stop| *stop).await;
                    },
                )
                .await;
            };
            let services = async move {
                run(client, metrics, async move {
                    shutdown.await;
                    let _ = stop_tx.send(true);
                })
                .await
            };
            let (out, ()) = tokio::join!(services, reconciler);
            out
        }
    };
    match elector.run(work).await {
        LeadershipEnd::WorkDone => Ok(()),
        LeadershipEnd::Lost => {
            // Like client-go: stop at once so no two leaders write; the Deployment restarts the process.
            error!("leadership lost; exiting");
            std::process::exit(1);
        }
    }
}
