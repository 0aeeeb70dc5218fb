//! A node for tests that run the `danm` binary as kubelet runs it: its config (lab kubeconfig, plugin dir, one
//! compiled-plugin cache shared by every run of the process), plugin directories holding only the plugins a test
//! needs, and the CNI call with its exit status and JSON.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Value, json};

use super::lab::{Lab, plugin_dir};
use super::run_plugin;

pub const DANM: &str = env!("CARGO_BIN_EXE_danm");
pub const FAKEIPAM: &str = env!("CARGO_BIN_EXE_fakeipam");

/// The compiled-plugin cache (`cacheDir`) every danm run of this test process uses: `DANM_TEST_PLUGIN_CACHE` when
/// set (the kernel lane sets it once per VM boot, so each plugin compiles once there), else a directory made once
/// per test binary. A fresh cache per run would compile every plugin on every run: ~0.1 s natively, seconds under
/// the lane's emulated CPU.
pub fn plugin_cache_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os("DANM_TEST_PLUGIN_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => tempfile::Builder::new()
            .prefix("danm-plugin-cache")
            .tempdir()
            .unwrap()
            .keep(),
    })
    .clone()
}

/// A directory with links to only the named plugins (`<name>.wasm`) of the built plugin directory (`make
/// guests`), made once per name list and process; `None` when the plugins are not built. danm loads every plugin of
/// its directory on every run, so a test that needs one backend gives it a directory with that one.
pub fn plugin_subset_dir(names: &[&str]) -> Option<PathBuf> {
    static DIRS: OnceLock<std::sync::Mutex<std::collections::BTreeMap<String, PathBuf>>> = OnceLock::new();
    let src = plugin_dir()?;
    let files: Vec<PathBuf> = names.iter().map(|n| src.join(format!("{n}.wasm"))).collect();
    if files.iter().any(|f| !f.exists()) {
        return None;
    }
    let mut dirs = DIRS.get_or_init(Default::default).lock().unwrap();
    let key = names.join(",");
    if let Some(dir) = dirs.get(&key) {
        return Some(dir.clone());
    }
    let dir = tempfile::Builder::new()
        .prefix("danm-plugins")
        .tempdir()
        .unwrap()
        .keep();
    for file in &files {
        std::os::unix::fs::symlink(file, dir.join(file.file_name().unwrap())).unwrap();
    }
    dirs.insert(key, dir.clone());
    Some(dir)
}

/// Compiles the plugins of `plugin_dir` into [`plugin_cache_dir`] in this process, so the danm runs that follow
/// only load them. Returns how long it took.
pub fn warm_plugin_cache(plugin_dir: &Path) -> std::time::Duration {
    let start = Instant::now();
    let mut rc = danm_wasm::RuntimeConfig::with_plugin_dir(plugin_dir);
    rc.cache_dir = Some(plugin_cache_dir());
    danm_wasm::PluginSet::load_strict(rc).expect("plugins load");
    start.elapsed()
}

/// What one danm run returned.
#[derive(Debug)]
pub struct DanmRun {
    pub ok: bool,
    /// stdout as JSON (`Null` when empty).
    pub out: Value,
    pub stderr: String,
    pub seconds: f64,
}

/// A node: a temp dir with the CNI config dir and danm's log, and the danm config pointing at the lab.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub config: Value,
    /// `CNI_PATH` of every run: Debian's plugins, after [`Node::with_fakeipam`] this build's `fakeipam` first.
    cni_path: String,
    /// (command, seconds) of every danm run, in order.
    runs: std::sync::Mutex<Vec<(String, f64)>>,
}

impl Node {
    /// A node whose danm loads the plugins of `plugins` (see [`plugin_subset_dir`]) and caches their compiled form
    /// in [`plugin_cache_dir`]. ADD's deadline is 120 s: under the kernel lane's emulated CPU a danm run takes
    /// seconds, and the first one of a boot compiles the plugins (~20 s for ipvlan.wasm).
    pub fn new(lab: &Lab, plugins: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = json!({"cniVersion":"1.0.0","name":"danm","type":"danm",
            "kubeconfig": lab.handle.kubeconfig_path(), "pluginDir": plugins, "timeoutSeconds": 120,
            "cacheDir": plugin_cache_dir(), "cniDir": dir.path(), "logFile": dir.path().join("danm.log"),
            "resultDir": dir.path().join("results")});
        Node {
            dir,
            config,
            cni_path: "/usr/lib/cni".into(),
            runs: Default::default(),
        }
    }

    /// The node with this build's `fakeipam` (and `danm`) in a bin dir first on `CNI_PATH`, as the installer puts
    /// them: a delegated backend's plugin gets danm's addresses through it.
    pub fn with_fakeipam(mut self) -> Self {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(DANM, bin.join("danm")).unwrap();
        std::os::unix::fs::symlink(FAKEIPAM, bin.join("fakeipam")).unwrap();
        self.cni_path = format!("{}:/usr/lib/cni", bin.display());
        self
    }

    /// The danm runs so far with their wall time, e.g. `ADD 2.1s, CHECK 1.7s, DEL 2.2s`.
    pub fn run_times(&self) -> String {
        let runs = self.runs.lock().unwrap();
        let parts: Vec<String> = runs.iter().map(|(c, s)| format!("{c} {s:.1}s")).collect();
        parts.join(", ")
    }

    /// danm's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("danm.log")).unwrap_or_default()
    }

    /// Runs danm with `command` for pod `default/<pod>`, container `cid`, in `netns`, interface `eth0`, the way
    /// kubelet does (clean environment, config on stdin).
    pub async fn danm(&self, command: &str, pod: &str, cid: &str, netns: &str) -> DanmRun {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid}"
        );
        let (config, cni_path) = (self.config.to_string(), self.cni_path.clone());
        let (cid, netns, command) = (cid.to_owned(), netns.to_owned(), command.to_owned());
        let verb = command.clone();
        let start = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            run_plugin(
                Path::new(DANM),
                &command,
                &[
                    ("CNI_CONTAINERID", &cid),
                    ("CNI_NETNS", &netns),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_ARGS", &args),
                    ("CNI_PATH", &cni_path),
                ],
                &config,
            )
        })
        .await
        .unwrap();
        let seconds = start.elapsed().as_secs_f64();
        self.runs.lock().unwrap().push((verb, seconds));
        let value = if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "danm printed something that is not JSON ({e}): {}",
                    String::from_utf8_lossy(&out.stdout)
                )
            })
        };
        DanmRun {
            ok: out.status.success(),
            out: value,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            seconds,
        }
    }
}
