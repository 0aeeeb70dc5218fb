//! `danmctl plugins`: offline checks of a plugin directory — list, check, validate and translate network files with
//! the same WebAssembly plugins the CNI and the webhook run.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use danm_wasm::{Operation, PluginError, PluginKind, PluginSet, Review, RuntimeConfig, TranslateRequest};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins: file, kind, NetworkTypes served, WIT version, sha256.
    List(DirArgs),
    /// Load every plugin and report every problem (exit status 1 if there is one).
    Check(DirArgs),
    /// Validate a network or TenantConfig file with the rules plugin and the network's backend.
    Validate(ValidateArgs),
    /// Print the CNI config a backend plugin makes of a network file for one interface.
    Translate(TranslateArgs),
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// The plugin directory.
    #[arg(long, env = "DANM_PLUGIN_DIR", default_value = danm_wasm::DEFAULT_PLUGIN_DIR)]
    plugin_dir: PathBuf,
    /// Cache compiled plugins here (root-only directory); without it plugins are compiled in memory.
    #[arg(long, env = "DANM_PLUGIN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Deadline of one plugin call, in milliseconds.
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Op {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The object (YAML or JSON; `-` = stdin).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// The admission operation to validate for.
    #[arg(long, value_enum, default_value = "create")]
    operation: Op,
    /// The stored object, for `--operation update`.
    #[arg(long)]
    old: Option<PathBuf>,
    /// The cluster's TenantConfig (TenantNetwork rules use its networkIds).
    #[arg(long)]
    tenant_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The network object (YAML or JSON; `-` = stdin).
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Interface name in the pod.
    #[arg(long, default_value = "eth1")]
    ifname: String,
    /// IPv4 address in CIDR form.
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address in CIDR form.
    #[arg(long)]
    ip6: Option<String>,
    /// Parent link resolved by the host (e.g. the SR-IOV PF); default: the plugin's own resolution.
    #[arg(long)]
    parent: Option<String>,
    /// Device from the network's device pool (SR-IOV VF PCI address).
    #[arg(long)]
    device_id: Option<String>,
    #[arg(long, default_value = "1.0.0")]
    cni_version: String,
    /// The pod, `namespace/name` (only used in messages).
    #[arg(long, default_value = "default/danmctl")]
    pod: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PluginsCmdError {
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse {} as YAML or JSON: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("{} has no kind", path.display())]
    NoKind { path: PathBuf },
    #[error("{count} violation(s)")]
    Violations { count: usize },
    #[error("{count} plugin problem(s)")]
    Problems { count: usize },
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
}

pub fn run(cmd: PluginsCommand) -> Result<(), PluginsCmdError> {
    match cmd {
        PluginsCommand::List(d) => list(&d),
        PluginsCommand::Check(d) => check(&d),
        PluginsCommand::Validate(a) => validate(&a),
        PluginsCommand::Translate(a) => translate(&a),
    }
}

/// One plugin as `kubectl danm plugins` shows it.
#[derive(Debug, serde::Serialize)]
pub struct PluginRow {
    pub file: String,
    pub kind: &'static str,
    /// The NetworkTypes (backends) it serves.
    pub network_types: Vec<String>,
    /// The `danm:plugin` WIT version it was built against.
    pub wit: String,
    pub sha256: String,
    /// Whether the cache holds its precompiled artefact.
    pub cache: danm_wasm::CacheState,
}

/// What a plugin directory serves: every plugin, the backends and the load problems.
#[derive(Debug, serde::Serialize)]
pub struct PluginReport {
    pub dir: PathBuf,
    pub cache_dir: PathBuf,
    /// The WIT versions this build of danm supports.
    pub supported_wit: Vec<String>,
    pub plugins: Vec<PluginRow>,
    /// NetworkTypes served by exactly one backend (what the CNI and the webhook run natively).
    pub backends: Vec<String>,
    pub errors: Vec<String>,
}

/// Loads `dir` (compiled in memory: the cache is only looked at, never written) and reports what it serves and
/// whether `cache_dir` holds each plugin precompiled.
pub fn report(dir: &Path, cache_dir: &Path, timeout_ms: u64) -> Result<PluginReport, PluginsCmdError> {
    let set = load(&DirArgs {
        plugin_dir: dir.to_owned(),
        cache_dir: None,
        timeout_ms,
    })?;
    let plugins = set
        .plugins()
        .map(|p| PluginRow {
            file: p
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kind: kind_name(p.kind),
            network_types: p.network_types.clone(),
            wit: p.version.clone(),
            sha256: p.sha256.clone(),
            cache: set.cache_state(p, cache_dir),
        })
        .collect();
    Ok(PluginReport {
        dir: dir.to_owned(),
        cache_dir: cache_dir.to_owned(),
        supported_wit: danm_wasm::SUPPORTED_VERSIONS
            .iter()
            .map(|v| (*v).to_owned())
            .collect(),
        plugins,
        backends: set.network_types(),
        errors: set.errors().iter().map(ToString::to_string).collect(),
    })
}

/// The human form of a [`PluginReport`].
pub fn render_report(r: &PluginReport) -> String {
    let rows: Vec<Vec<String>> = r
        .plugins
        .iter()
        .map(|p| {
            vec![
                p.file.clone(),
                p.kind.to_owned(),
                if p.network_types.is_empty() {
                    "-".to_owned()
                } else {
                    p.network_types.join(",")
                },
                p.wit.clone(),
                p.cache.to_string(),
            ]
        })
        .collect();
    let mut out = format!(
        "plugin directory {} (cache {}; this danm supports WIT {})\n",
        r.dir.display(),
        r.cache_dir.display(),
        r.supported_wit.join(", ")
    );
    if rows.is_empty() {
        out.push_str("no plugins\n");
    } else {
        out.push_str(&crate::kubectl::table::render(
            &["FILE", "KIND", "TYPES", "WIT", "CACHE"],
            &rows,
        ));
    }
    out.push_str(&format!(
        "backends: {}\n",
        if r.backends.is_empty() {
            "none".to_owned()
        } else {
            r.backends.join(", ")
        }
    ));
    for e in &r.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

fn load(d: &DirArgs) -> Result<PluginSet, PluginsCmdError> {
    let config = RuntimeConfig {
        cache_dir: d.cache_dir.clone(),
        timeout: std::time::Duration::from_millis(d.timeout_ms),
        ..RuntimeConfig::with_plugin_dir(&d.plugin_dir)
    };
    Ok(PluginSet::load(config)?)
}

fn out(text: &str) -> Result<(), PluginsCmdError> {
    writeln!(std::io::stdout(), "{text}").map_err(PluginsCmdError::Output)
}

fn kind_name(k: PluginKind) -> &'static str {
    match k {
        PluginKind::Backend => "backend",
        PluginKind::Rules => "rules",
    }
}

fn list(d: &DirArgs) -> Result<(), PluginsCmdError> {
    let set = load(d)?;
    out(&format!(
        "{:<24} {:<8} {:<20} {:<8} SHA256",
        "FILE", "KIND", "TYPES", "WIT"
    ))?;
    for p in set.plugins() {
        let name = p
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let types = if p.network_types.is_empty() {
            "-".to_owned()
        } else {
            p.network_types.join(",")
        };
        out(&format!(
            "{name:<24} {:<8} {types:<20} {:<8} {}",
            kind_name(p.kind),
            p.version,
            p.sha256
        ))?;
    }
    for e in set.errors() {
        let _ = writeln!(std::io::stderr(), "error: {e}");
    }
    Ok(())
}

fn check(d: &DirArgs) -> Result<(), PluginsCmdError> {
    let set = load(d)?;
    for p in set.plugins() {
        out(&format!(
            "ok: {} ({}, danm:plugin@{})",
            p.file.display(),
            kind_name(p.kind),
            p.version
        ))?;
    }
    if set.plugins().all(|p| p.kind != PluginKind::Rules) {
        out(&format!("warning: no rules plugin in {}", set.dir().display()))?;
    }
    for e in set.errors() {
        out(&format!("error: {e}"))?;
    }
    match set.errors().len() {
        0 => Ok(()),
        count => Err(PluginsCmdError::Problems { count }),
    }
}

/// Reads a YAML or JSON object file and returns its kind and its JSON text.
fn read_object(path: &Path) -> Result<(String, String), PluginsCmdError> {
    let text = if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|source| {
            PluginsCmdError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|source| PluginsCmdError::Read {
            path: path.to_owned(),
            source,
        })?
    };
    let value: serde_json::Value = serde_yaml::from_str(&text).map_err(|e| PluginsCmdError::Parse {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .ok_or_else(|| PluginsCmdError::NoKind {
            path: path.to_owned(),
        })?
        .to_owned();
    Ok((kind, value.to_string()))
}

fn validate(a: &ValidateArgs) -> Result<(), PluginsCmdError> {
    let set = load(&a.dir)?;
    let (kind, json) = read_object(&a.file)?;
    let old = a.old.as_deref().map(read_object).transpose()?.map(|(_, j)| j);
    let tc = a
        .tenant_config
        .as_deref()
        .map(read_object)
        .transpose()?
        .map(|(_, j)| j);
    let op = match a.operation {
        Op::Create => Operation::Create,
        Op::Update => Operation::Update,
        Op::Delete => Operation::Delete,
    };
    let violations = if kind == "TenantConfig" {
        set.review(&Review {
            kind,
            operation: op,
            object_json: Some(json),
            old_object_json: old,
            tenant_config_json: None,
            dynamic_types: Vec::new(),
        })?
    } else {
        let (new, old) = match op {
            Operation::Delete => (None, Some(json.as_str())),
            _ => (Some(json.as_str()), old.as_deref()),
        };
        set.validate_network(&kind, op, new, old, tc.as_deref())?
    };
    if violations.is_empty() {
        return out(&format!("{}: valid", a.file.display()));
    }
    for v in &violations {
        out(&v.to_string())?;
    }
    Err(PluginsCmdError::Violations {
        count: violations.len(),
    })
}

fn translate(a: &TranslateArgs) -> Result<(), PluginsCmdError> {
    let set = load(&a.dir)?;
    let (_, network_json) = read_object(&a.file)?;
    let (ns, name) = a.pod.split_once('/').unwrap_or(("default", a.pod.as_str()));
    let req = TranslateRequest {
        network_json,
        interface_name: a.ifname.clone(),
        ip4: a.ip.clone(),
        ip6: a.ip6.clone(),
        parent: a.parent.clone(),
        device_id: a.device_id.clone(),
        cni_version: a.cni_version.clone(),
        pod_namespace: ns.to_owned(),
        pod_name: name.to_owned(),
    };
    let config = set.translate(&req)?;
    // The runtime checked it is a JSON object; print it readably.
    let pretty = serde_json::from_str::<serde_json::Value>(&config)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(config);
    out(&pretty)
}
