//! What the load benchmarks share: danm's binaries found next to `danm-lab`, a lab API server in a child process
//! (so its peak memory is its own), peak memory from `/proc` and from the rusage of waited-for children, the load
//! average, percentiles, veth parents, network namespaces and CNI invocations with a clean environment.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A binary built next to the running `danm-lab` (the same cargo target directory): `danm`, `danm-webhook`.
pub fn sibling_bin(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The 1, 5 and 15 minute load averages (the machine is shared; every report carries them).
pub fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// Peak resident set size (`VmHWM`) of a live process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The largest peak RSS (KiB) of any child this process has waited for (`getrusage(RUSAGE_CHILDREN)`).
pub fn children_max_rss_kib() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map(|u| u.max_rss().max(0) as u64)
        .unwrap_or(0)
}

/// The `p` quantile of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .map(|d| d.as_secs_f64() * 1e3)
        .unwrap_or_default()
}

/// Rounds to two decimals for the JSON line.
pub fn r2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Runs `ip` with `args`; the error carries the command and its stderr.
pub async fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .context("running ip (iproute2)")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why a bench that needs root, `ip` and the built plugins cannot run here, if it cannot.
pub fn root_skip_reason(plugin_dir: &Path) -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Some("needs root (network namespaces and links)".into());
    }
    if !plugin_dir.join("macvlan.wasm").exists() {
        return Some(format!(
            "no macvlan.wasm in the plugin directory {} (run `make guests` or pass --plugin-dir)",
            plugin_dir.display()
        ));
    }
    None
}

/// A veth pair in the host namespace, up, used as the macvlan parent of a bench; deleted on drop.
#[derive(Debug)]
pub struct Veth(pub String);

impl Veth {
    pub async fn new(name: &str) -> anyhow::Result<Veth> {
        let _ = ip(&["link", "del", name]).await;
        ip(&[
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ])
        .await?;
        ip(&["link", "set", name, "up"]).await?;
        Ok(Veth(name.to_owned()))
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .output();
    }
}

/// Network namespaces created by a bench (`ip netns`), deleted on drop if still there.
#[derive(Debug, Default)]
pub struct Netnses(pub Vec<String>);

impl Netnses {
    pub async fn add(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        let _ = ip(&["netns", "del", name]).await;
        ip(&["netns", "add", name]).await?;
        self.0.push(name.to_owned());
        Ok(PathBuf::from("/var/run/netns").join(name))
    }

    /// Deletes every namespace; returns how many could not be deleted.
    pub async fn delete_all(&mut self) -> usize {
        let mut failed = 0;
        for n in std::mem::take(&mut self.0) {
            if Path::new("/var/run/netns").join(&n).exists() && ip(&["netns", "del", &n]).await.is_err() {
                failed += 1;
            }
        }
        failed
    }
}

impl Drop for Netnses {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", n])
                .output();
        }
    }
}

/// How many of the names are still present under /var/run/netns.
pub fn netns_left(names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| Path::new("/var/run/netns").join(n).exists())
        .count()
}

/// One CNI invocation's outcome.
#[derive(Debug, Clone)]
pub struct CniRun {
    pub success: bool,
    /// The CNI error code (0 on success, -1 when the plugin printed no error object).
    pub code: i64,
    pub stdout: Value,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CniRun {
    pub fn message(&self) -> String {
        format!(
            "code {}: {} {}",
            self.code,
            self.stdout.get("msg").and_then(Value::as_str).unwrap_or(""),
            self.stdout
                .get("details")
                .and_then(Value::as_str)
                .unwrap_or(self.stderr.trim())
        )
    }
}

/// The command a runtime runs for a CNI plugin: a clean environment (`CNI_COMMAND`, `PATH` and `env`), stdin,
/// stdout and stderr piped.
fn cni_command(bin: &Path, command: &str, env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a CNI plugin as a runtime does: a clean environment (`CNI_COMMAND`, `PATH` and `env`), the config on stdin.
pub async fn cni(bin: &Path, command: &str, env: &[(&str, &str)], stdin: &str) -> anyhow::Result<CniRun> {
    let started = Instant::now();
    let mut child = tokio::process::Command::from(cni_command(bin, command, env))
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    let elapsed = started.elapsed();
    let stdout: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let code = if out.status.success() {
        0
    } else {
        stdout.get("code").and_then(Value::as_i64).unwrap_or(-1)
    };
    Ok(CniRun {
        success: out.status.success(),
        code,
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    })
}

/// Like [`cni`], but the process is not reaped: its exit is seen as the end of its output, and the caller waits for
/// it later. A child counts in [`children_max_rss_kib`] only once reaped, so a warm-up run reaped after the figures
/// are read (the plugin compilation the node installer would have done) does not count as a pod's ADD.
pub async fn cni_unreaped(
    bin: &Path,
    command: &str,
    env: &[(&str, &str)],
    stdin: &str,
) -> anyhow::Result<(CniRun, std::process::Child)> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut child = cni_command(bin, command, env)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let input = stdin.as_bytes().to_vec();
    let mut i = child.stdin.take().context("stdin")?;
    let mut o = child.stdout.take().context("stdout")?;
    let mut e = child.stderr.take().context("stderr")?;
    let (stdout, stderr) = tokio::task::spawn_blocking(move || {
        let _ = i.write_all(&input);
        drop(i);
        let err = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = e.read_to_end(&mut b);
            b
        });
        let mut out = Vec::new();
        let _ = o.read_to_end(&mut out);
        (out, err.join().unwrap_or_default())
    })
    .await?;
    let stdout: Value = serde_json::from_slice(&stdout).unwrap_or(Value::Null);
    // A CNI plugin prints a result on success and an error object (with "code") on failure.
    let code = stdout.get("code").and_then(Value::as_i64).unwrap_or(0);
    let run = CniRun {
        success: code == 0 && !stdout.is_null(),
        code,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: started.elapsed(),
    };
    Ok((run, child))
}

/// The addresses (with prefix) a CNI result carries.
pub fn result_addresses(result: &Value) -> Vec<String> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("address").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// A lab API server running as a child `danm-lab serve` process, with the kube client of its kubeconfig.
pub struct ChildLab {
    child: tokio::process::Child,
    pub pid: u32,
    pub kubeconfig: PathBuf,
    pub client: kube::Client,
}

impl std::fmt::Debug for ChildLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildLab")
            .field("pid", &self.pid)
            .field("kubeconfig", &self.kubeconfig)
            .finish()
    }
}

impl ChildLab {
    /// Starts `lab_bin serve` on a free loopback port, waits until it serves, installs danm's CRDs.
    pub async fn start(lab_bin: &Path, dir: &Path) -> anyhow::Result<ChildLab> {
        let kubeconfig = dir.join("kubeconfig");
        let log = std::fs::File::create(dir.join("lab-server.log"))?;
        let mut child = tokio::process::Command::new(lab_bin)
            .args(["serve", "--port", "0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .env("DANM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the lab server {}", lab_bin.display()))?;
        let pid = child.id().unwrap_or(0);
        let mut lines = BufReader::new(child.stdout.take().context("lab server stdout")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await? {
                if l.starts_with("danm-lab serving at") {
                    return Ok::<_, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        anyhow::ensure!(
            matches!(ready, Ok(Ok(true))),
            "the lab server {} did not start (see {})",
            lab_bin.display(),
            dir.join("lab-server.log").display()
        );
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
        let client = kube::Client::try_from(cfg)?;
        let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
        for (file, crd) in danm_api::crd::all() {
            crds.create(&PostParams::default(), &serde_json::from_value(crd)?)
                .await
                .with_context(|| format!("installing CRD {file}"))?;
        }
        Ok(ChildLab {
            child,
            pid,
            kubeconfig,
            client,
        })
    }

    /// The server's peak RSS so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        peak_rss_kib(self.pid).unwrap_or(0)
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
