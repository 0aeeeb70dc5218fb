//! `danm-webhook`: serves the admission webhook over HTTPS, or (`review`) judges one AdmissionReview offline.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use danm_controller_kit::{CertFiles, CommonArgs, Readiness, ReloadingCert};
use danm_core::ipam::blocks::IpamMode;
use danm_webhook::admit::{Endpoint, Webhook};
use danm_webhook::cluster::KubeCluster;
use danm_webhook::metrics::WebhookMetrics;
use danm_webhook::offline::{self, OfflineReview};
use danm_webhook::plugins::{self, DEFAULT_PLUGIN_DIR};
use danm_webhook::server;
use danm_webhook::validator::Validator;

#[derive(Parser, Debug)]
#[command(name = "danm-webhook", version, about = "danm's admission webhook")]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Directory holding the rules plugin and the backend plugins (.wasm).
    #[arg(long, global = true, env = "DANM_PLUGIN_DIR", default_value = DEFAULT_PLUGIN_DIR)]
    plugin_dir: PathBuf,
    /// Cache of compiled plugins. `review` defaults to ~/.cache/danm/plugins; the server compiles in memory.
    #[arg(long, global = true, env = "DANM_PLUGIN_CACHE_DIR")]
    plugin_cache_dir: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
    /// IPAM mode of new networks that name none (`danm.k8s.io/ipam-mode`): `blocks` or `bitmap`. Defaults to
    /// `blocks` when serving; `review` judges as DANM's webhook did (`bitmap`) unless told otherwise.
    #[arg(long, global = true, env = "DANM_IPAM_MODE")]
    ipam_mode: Option<IpamMode>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve over HTTPS (the default).
    Serve,
    /// Judge one AdmissionReview offline against a file of cluster objects and print the response.
    Review(ReviewArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// PEM certificate (leaf first, optional chain); reloaded when it changes.
    #[arg(
        long,
        env = "DANM_WEBHOOK_TLS_CERT",
        default_value = "/etc/webhook/certs/cert.pem"
    )]
    tls_cert_bundle: PathBuf,
    /// PEM private key; reloaded when it changes.
    #[arg(
        long,
        env = "DANM_WEBHOOK_TLS_KEY",
        default_value = "/etc/webhook/certs/key.pem"
    )]
    tls_private_key_file: PathBuf,
    #[arg(
        long,
        global = true,
        env = "DANM_WEBHOOK_BIND_ADDRESS",
        default_value = "0.0.0.0"
    )]
    bind_address: IpAddr,
    #[arg(long, global = true, env = "DANM_WEBHOOK_BIND_PORT", default_value_t = 8443)]
    bind_port: u16,
    /// Seconds between checks of the certificate files.
    #[arg(
        long,
        global = true,
        env = "DANM_WEBHOOK_CERT_RELOAD_SECONDS",
        default_value_t = 10
    )]
    cert_reload_seconds: u64,
    /// Seconds between checks of the plugin directory.
    #[arg(
        long,
        global = true,
        env = "DANM_WEBHOOK_PLUGIN_RELOAD_SECONDS",
        default_value_t = 10
    )]
    plugin_reload_seconds: u64,
}

#[derive(Args, Debug)]
struct ReviewArgs {
    /// /netvalidation, /confvalidation or /netdeletion.
    #[arg(long, default_value = "/netvalidation")]
    endpoint: Endpoint,
    /// File holding the AdmissionReview.
    #[arg(long)]
    request: PathBuf,
    /// Existing cluster objects (JSON array, v1 List, or multi-document YAML).
    #[arg(long)]
    objects: Option<PathBuf>,
    /// Where to write the cluster objects after the call (JSON array; YAML for .yaml/.yml).
    #[arg(long)]
    objects_out: Option<PathBuf>,
    /// Seed for the random interface-profile choice.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match cli.cmd {
        Some(Cmd::Review(ref args)) => rt.block_on(review(&cli, args)),
        _ => {
            if let Err(e) = cli.common.init_tracing() {
                eprintln!("{e}");
            }
            match rt.block_on(serve(&cli)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("danm-webhook: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

async fn review(cli: &Cli, args: &ReviewArgs) -> std::process::ExitCode {
    // Logs go to stderr only on request, so stdout holds exactly one AdmissionReview.
    if cli.common.log.is_some() {
        let _ = cli.common.init_tracing();
    }
    // A short-lived process: keep compiled plugins between runs unless told otherwise.
    let cache = cli.plugin_cache_dir.clone().or_else(plugins::user_cache_dir);
    let validator = match plugins::load(&cli.plugin_dir, cache.as_deref(), false) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("danm-webhook review: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    let req = OfflineReview {
        endpoint: args.endpoint,
        request: args.request.clone(),
        objects: args.objects.clone(),
        objects_out: args.objects_out.clone(),
        seed: args.seed,
        ipam_mode: cli.ipam_mode.unwrap_or(IpamMode::Bitmap),
    };
    match offline::run(&req, validator).await {
        Ok(resp) => {
            println!("{}", serde_json::to_string_pretty(&resp).expect("JSON"));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("danm-webhook review: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn serve(cli: &Cli) -> anyhow::Result<()> {
    let a = &cli.serve;
    let validator =
        plugins::load(&cli.plugin_dir, cli.plugin_cache_dir.as_deref(), true).context("loading plugins")?;
    tracing::info!(plugins = %validator.describe(), "plugins loaded");
    validator.spawn_reloader(Duration::from_secs(a.plugin_reload_seconds.max(1)));
    let client = cli.common.client().await?;
    let (registry, metrics) = WebhookMetrics::registry();
    let metrics = Arc::new(metrics);
    let webhook = Arc::new(
        Webhook::new(Arc::new(KubeCluster::new(client)), validator)
            .with_metrics(metrics)
            .with_ipam_mode(cli.ipam_mode.unwrap_or(IpamMode::Blocks)),
    );
    let cert = ReloadingCert::new(CertFiles {
        cert: a.tls_cert_bundle.clone(),
        key: a.tls_private_key_file.clone(),
    })?;
    cert.spawn_watcher(Duration::from_secs(a.cert_reload_seconds.max(1)));
    let tls = cert.server_config()?;
    let ready = Readiness::default();
    let router = server::router(webhook, ready.clone(), registry);
    let addr = SocketAddr::new(a.bind_address, a.bind_port);
    let listener = danm_controller_kit::tls::bind(addr).await?;
    tracing::info!(%addr, "serving");
    ready.set(true);
    danm_controller_kit::serve_tls(listener, router, tls, Duration::from_secs(5), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
