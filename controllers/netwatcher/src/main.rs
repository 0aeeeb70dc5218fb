//! `netwatcher`: the DaemonSet binary (host netns, one per node) keeping DANM's host VLAN/VxLAN links.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use danm_controller_kit::{CommonArgs, Readiness, health_router};
use danm_netlink::{Netns, RtNetlink};
use danm_netwatcher::LinkReconciler;
use danm_netwatcher::watch::{LoopTiming, WatchError, installed_kinds, run, start_caches};
use tracing::{error, info};

#[derive(Debug, Parser)]
#[command(
    name = "netwatcher",
    version,
    about = "Keeps the host VLAN/VxLAN links DANM networks and NADs need"
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
    /// Seconds between full reconciliations without any event (drift repair).
    #[arg(long, env = "DANM_NETWATCHER_RESYNC_SECONDS", default_value_t = 60)]
    resync_seconds: u64,
    /// Milliseconds a burst of events may settle before reconciling.
    #[arg(long, env = "DANM_NETWATCHER_DEBOUNCE_MS", default_value_t = 100)]
    debounce_ms: u64,
    /// Manage the links of this namespace file instead of the host namespace (tests).
    #[arg(long, env = "DANM_NETWATCHER_NETNS")]
    netns: Option<PathBuf>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "DANM_NETWATCHER_METRICS_ADDR", default_value = "0.0.0.0:9471")]
    metrics_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.common.init_tracing()?;
    let client = args.common.client().await?;
    let kinds = match installed_kinds(&client, 5, Duration::from_millis(100)).await {
        Ok(kinds) => kinds,
        Err(err @ WatchError::NoApis) => {
            error!("{err}");
            std::process::exit(1);
        }
    };
    let (registry, metrics) = danm_netwatcher::metrics::registry();
    let ready = Readiness::default();
    let listener = tokio::net::TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    let router = health_router(ready.clone(), registry);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            error!(error = %err, "health server stopped");
        }
    });
    let netns = args.netns.map(Netns::path).unwrap_or(Netns::Host);
    info!(%netns, ?kinds, "netwatcher starting");
    let reconciler = Arc::new(LinkReconciler::new(
        Arc::new(RtNetlink::new()),
        netns,
        metrics.clone(),
    ));
    let (caches, changed) = start_caches(&client, &kinds);
    let timing = LoopTiming {
        resync: Duration::from_secs(args.resync_seconds.max(1)),
        debounce: Duration::from_millis(args.debounce_ms),
    };
    tokio::select! {
        () = run(client, caches, changed, reconciler, metrics, timing, ready) => Ok(()),
        _ = tokio::signal::ctrl_c() => {
            info!("interrupted; stopping");
            Ok(())
        }
    }
}
