//! Running the real `danm` binary as kubelet/containerd does (clean environment, config on stdin), optionally
//! SIGKILLed at a chosen moment of its run.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// How one run ended.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0, with stdout as JSON (`Null` when empty).
    Ok(Value),
    /// A non-zero exit, with danm's error JSON (or stderr).
    Failed(String),
    /// SIGKILLed by the chaos run.
    Killed,
}

/// The sandbox a verb is about.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container_id: String,
    /// `CNI_NETNS` (may not exist any more for DEL).
    pub netns: PathBuf,
}

/// The `danm` binary and what every run shares.
#[derive(Debug, Clone)]
pub struct Danm {
    pub bin: PathBuf,
    /// The network config every verb but GC gets on stdin.
    pub config: Value,
    /// danm's stderr of every run is appended here (its log file is set in `config`).
    pub stderr_log: PathBuf,
}

impl Danm {
    /// Runs `command` for `sandbox`; with `kill_after`, sends SIGKILL after that long if danm still runs.
    pub async fn run(
        &self,
        command: &str,
        sandbox: &Sandbox,
        kill_after: Option<Duration>,
    ) -> (Outcome, Duration) {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            sandbox.namespace, sandbox.pod, sandbox.container_id, sandbox.uid
        );
        let env = [
            ("CNI_CONTAINERID", sandbox.container_id.as_str()),
            ("CNI_NETNS", sandbox.netns.to_str().unwrap_or_default()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", args.as_str()),
        ];
        self.exec(command, &env, &self.config, kill_after).await
    }

    /// Runs GC with `cni.dev/valid-attachments` listing `valid` container ids (interface `eth0`).
    pub async fn gc(&self, valid: &[String]) -> (Outcome, Duration) {
        let mut config = self.config.clone();
        config["cniVersion"] = "1.1.0".into();
        config["cni.dev/valid-attachments"] = valid
            .iter()
            .map(|c| serde_json::json!({"containerID": c, "ifname": "eth0"}))
            .collect();
        self.exec("GC", &[], &config, None).await
    }

    /// Runs STATUS (also compiles the plugins into the cache once, before the pods start).
    pub async fn status(&self) -> (Outcome, Duration) {
        let mut config = self.config.clone();
        config["cniVersion"] = "1.1.0".into();
        self.exec("STATUS", &[], &config, None).await
    }

    async fn exec(
        &self,
        command: &str,
        env: &[(&str, &str)],
        config: &Value,
        kill_after: Option<Duration>,
    ) -> (Outcome, Duration) {
        let start = Instant::now();
        let outcome = self.exec_inner(command, env, config, kill_after).await;
        (outcome, start.elapsed())
    }

    async fn exec_inner(
        &self,
        command: &str,
        env: &[(&str, &str)],
        config: &Value,
        kill_after: Option<Duration>,
    ) -> Outcome {
        let stderr = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_log)
        {
            Ok(f) => Stdio::from(f),
            Err(_) => Stdio::null(),
        };
        let mut child = match tokio::process::Command::new(&self.bin)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_PATH", "/usr/lib/cni")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => return Outcome::Failed(format!("cannot run {}: {e}", self.bin.display())),
        };
        let input = serde_json::to_vec(config).unwrap_or_default();
        if let Some(mut stdin) = child.stdin.take() {
            // danm reads all of stdin first; a kill before that shows as a broken pipe here.
            let _ = stdin.write_all(&input).await;
        }
        let mut stdout = child.stdout.take();
        let read = async {
            let mut buf = Vec::new();
            if let Some(out) = stdout.as_mut() {
                let _ = tokio::io::AsyncReadExt::read_to_end(out, &mut buf).await;
            }
            buf
        };
        let killer = async {
            match kill_after {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(read, killer);
        let mut killed = false;
        let out = loop {
            tokio::select! {
                out = &mut read => break out,
                _ = &mut killer, if !killed => {
                    killed = child.start_kill().is_ok();
                }
            }
        };
        let status = match child.wait().await {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(format!("waiting for danm: {e}")),
        };
        if killed && std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
            return Outcome::Killed;
        }
        if status.success() {
            let v = if out.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                serde_json::from_slice(&out).unwrap_or(Value::Null)
            };
            Outcome::Ok(v)
        } else {
            Outcome::Failed(String::from_utf8_lossy(&out).trim().to_owned())
        }
    }
}

/// The addresses (without prefix length) of a CNI result.
pub fn result_ips(result: &Value) -> Vec<String> {
    crate::sim::cni::result_ips(result)
}
