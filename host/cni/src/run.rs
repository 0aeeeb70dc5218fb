//! The CNI edge: env and stdin are parsed once into typed values, the verb is dispatched, and every failure becomes
//! a CNI error object here and nowhere else.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use danm_core::cni::{CniCommand, CniConfig, CniError, VersionInfo, codes};
use danm_netlink::RtNetlink;

use crate::api::{Api, ApiError, KubeApi};
use crate::context::Ctx;
use crate::error::Error;
use crate::ipam::Retry;
use crate::native::Sysfs;
use crate::translate::{Loading, TranslateError, Translator};
use tokio::time::Instant;

pub use danm_core::cni::Invocation;

/// What the binary prints and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Success; the text (if any) goes to stdout.
    Ok(Option<String>),
    /// Failure; the CNI error JSON goes to stdout and the exit code is 1.
    Err(String),
}

/// Parses env (through `lookup`) and stdin. `Err` carries the error JSON to print.
pub fn parse(lookup: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Invocation, String> {
    Invocation::parse(lookup, stdin)
}

/// The whole binary minus process I/O: VERSION needs no stdin; everything else is parsed, run and mapped.
pub fn main_with(lookup: impl Fn(&str) -> Option<String>, read_stdin: impl FnOnce() -> Vec<u8>) -> Outcome {
    // The deadline counts from here, so client and plugin start-up are inside it.
    let started = std::time::Instant::now();
    if lookup("CNI_COMMAND").as_deref() == Some(CniCommand::Version.as_str()) {
        return Outcome::Ok(Some(VersionInfo::danm().to_json()));
    }
    let stdin = read_stdin();
    let inv = match parse(&lookup, &stdin) {
        Ok(inv) => inv,
        // A pod must always be removable: DEL logs what it could not read and succeeds (nothing can be found
        // without a config or the pod's identity; GC and the reconciler release what is left).
        Err(json) if lookup("CNI_COMMAND").as_deref() == Some(CniCommand::Del.as_str()) => {
            let _ = writeln!(
                std::io::stderr(),
                "danm: DEL cannot read its input, nothing removed: {json}"
            );
            return Outcome::Ok(None);
        }
        Err(json) => return Outcome::Err(json),
    };
    let _guard = crate::logging::init(&inv.config);
    tracing::info!(command = %inv.env.command, container = inv.env.container_id(), args = ?inv.env.args, "danm invoked");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return Outcome::Err(
                CniError::new(codes::IO_FAILURE, e.to_string()).to_json(inv.version.as_str()),
            );
        }
    };
    let version = inv.version;
    let process_path = lookup("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let deadline = Instant::from_std(started) + inv.config.timeout();
    match runtime.block_on(run(inv, process_path, deadline)) {
        Ok(out) => Outcome::Ok(out),
        Err(e) => {
            tracing::error!(code = e.code, msg = %e.msg, "failed");
            Outcome::Err(e.to_json(version.as_str()))
        }
    }
}

/// Loads the backend plugins of the config.
pub fn load_plugins(config: &CniConfig) -> Result<Arc<dyn Translator>, TranslateError> {
    let mut rc = danm_wasm::RuntimeConfig {
        // One short-lived process: a timer per plugin call instead of a ticker thread.
        epoch_clock: danm_wasm::EpochClock::CallTimer,
        ..danm_wasm::RuntimeConfig::with_plugin_dir(&config.plugin_dir)
    };
    if let Some(cache) = &config.cache_dir {
        rc.cache_dir = Some(PathBuf::from(cache));
    }
    danm_wasm::PluginSet::load_strict(rc)
        .map(|s| Arc::new(s) as Arc<dyn Translator>)
        .map_err(|e| TranslateError::NotLoaded(Arc::new(e)))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Builds the services and runs the verb, all before `deadline`. The API client and the plugin set are built
/// concurrently (the plugins on a plain thread: loading them is synchronous work).
pub async fn run(
    inv: Invocation,
    process_path: String,
    deadline: Instant,
) -> Result<Option<String>, CniError> {
    let command = inv.env.command;
    // For ADD and STATUS the plugins load on their own thread while the client is built and the flow reads the pod
    // and networks; the other verbs load them only if they need them.
    let plugin_config = inv.config.clone();
    let load = move || load_plugins(&plugin_config);
    let translator = Arc::new(match command {
        CniCommand::Add | CniCommand::Status => Loading::start(load, deadline.into_std()),
        _ => Loading::deferred(load, deadline.into_std()),
    });
    // DEL's first kernel request goes out before the API client is built (see `del::del_after`).
    let netlink = Arc::new(RtNetlink::new());
    let early_del = (command == CniCommand::Del)
        .then(|| crate::del::EarlyLinkDelete::start(netlink.clone(), inv.env.netns.as_deref()));
    let client = tokio::time::timeout_at(
        deadline,
        KubeApi::from_kubeconfig(&inv.config.kubeconfig, inv.config.timeout()),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ApiError::Client {
            path: inv.config.kubeconfig.clone(),
            reason: format!("not built within the {} s deadline", inv.config.timeout_seconds),
        })
    });
    tracing::debug!("step: API client built");
    let api: Arc<dyn Api> = match client {
        Ok(api) => Arc::new(api),
        Err(e) => {
            return match command {
                CniCommand::Del => {
                    tracing::error!(error = %e, "DEL: no API client; nothing can be released");
                    if let Some(early) = early_del {
                        for e in early.finish().await.errors {
                            tracing::error!(error = %e, "DEL");
                        }
                    }
                    Ok(None)
                }
                CniCommand::Status => Err(CniError::new(codes::STATUS_NOT_AVAILABLE, e.to_string())),
                _ => Err(Error::from(e).to_cni()),
            };
        }
    };
    let plugin_status = if command == CniCommand::Status {
        translator.ready()
    } else {
        Ok(())
    };
    let ctx = Arc::new(Ctx {
        api,
        netlink,
        translator,
        config: inv.config,
        version: inv.version,
        env: inv.env,
        args: inv.args,
        hostname: hostname(),
        retry: Retry::default(),
        sysfs: Sysfs::default(),
        kubelet_root: PathBuf::from("/var/lib/kubelet"),
        process_path,
        delegates: Arc::new(crate::delegate::ProcessRunner),
    });
    if let Some(early) = early_del {
        crate::del::del_after(ctx, early).await;
        return Ok(None);
    }
    dispatch_until(ctx, plugin_status, deadline)
        .await
        .map_err(|e| e.to_cni())
}

/// Runs the verb on a ready context, with the config's deadline counted from now.
pub async fn dispatch(
    ctx: Arc<Ctx>,
    plugin_status: Result<(), TranslateError>,
) -> Result<Option<String>, Error> {
    let deadline = Instant::now() + ctx.config.timeout();
    dispatch_until(ctx, plugin_status, deadline).await
}

/// Runs the verb on a ready context; ADD is bounded by `deadline`.
pub async fn dispatch_until(
    ctx: Arc<Ctx>,
    plugin_status: Result<(), TranslateError>,
    deadline: Instant,
) -> Result<Option<String>, Error> {
    let version = ctx.version;
    match ctx.env.command {
        CniCommand::Add => crate::add::add_until(ctx, deadline)
            .await
            .map(|r| Some(r.to_json(version))),
        CniCommand::Del => {
            crate::del::del(ctx).await;
            Ok(None)
        }
        CniCommand::Check => {
            let problems = crate::check::check(ctx).await?;
            if problems.is_empty() {
                Ok(None)
            } else {
                Err(Error::Cni(
                    CniError::new(
                        codes::DANM_FAILURE,
                        "CHECK found differences from what ADD set up",
                    )
                    .with_details(problems.join("; ")),
                ))
            }
        }
        CniCommand::Status => crate::gc::status(ctx, plugin_status).await.map(|_| None),
        CniCommand::Gc => crate::gc::gc(ctx).await.map(|n| {
            tracing::info!(removed = n, "GC");
            None
        }),
        CniCommand::Version => Ok(Some(VersionInfo::danm().to_json())),
    }
}
