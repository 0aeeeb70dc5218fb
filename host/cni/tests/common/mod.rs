//! Test helpers: root check, named netns guard, running CNI plugins and `ip`, the kernel lane's skip rule; the lab
//! harness in [`lab`], the `danm` binary on a test node in [`node`].
#![allow(dead_code)]

pub mod lab;
pub mod node;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub fn is_root() -> bool {
    // SAFETY-free check: /proc/self/status Uid line.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether this runs inside the kernel lane (`DANM_KERNEL_LANE=1`), where a missing capability is a failure.
pub fn in_kernel_lane() -> bool {
    std::env::var("DANM_KERNEL_LANE").is_ok_and(|v| v == "1")
}

/// Prints why a test skips; inside the kernel lane it fails instead, so the lane cannot pass by skipping.
pub fn skip(reason: &str) {
    assert!(!in_kernel_lane(), "kernel lane: {reason}");
    eprintln!("skipping: {reason}");
}

/// Whether the run must have every fixture it builds itself (the plugins): under CI (`CI=true`) and `make test`
/// (`DANM_REQUIRE_FIXTURES=1`) a test that would skip for lack of them fails instead.
pub fn fixtures_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("DANM_REQUIRE_FIXTURES").is_ok_and(|v| v == "1")
}

/// A test cannot run because the plugins are not built: it says so and skips, or fails when they are required.
pub fn skip_without_plugins() {
    let reason = "the backend plugins are not built: run `make guests` (or set DANM_PLUGIN_DIR)";
    assert!(!fixtures_required() && !in_kernel_lane(), "{reason}");
    eprintln!("skipping: {reason}");
}

/// Runs a command, panics unless it succeeds, returns stdout.
pub fn cmd_ok(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, returns whether it succeeded (for cleanup).
pub fn cmd(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a CNI plugin with a clean env holding only `CNI_COMMAND`, `PATH` and `env`.
pub fn run_plugin(bin: &Path, command: &str, env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugin");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
    pub path: String,
}

impl Netns {
    pub fn new(name: &str) -> Self {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        cmd_ok(&["ip", "netns", "add", name]);
        cmd_ok(&["ip", "-n", name, "link", "set", "lo", "up"]);
        Netns {
            name: name.to_string(),
            path: format!("/var/run/netns/{name}"),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Why this kernel cannot create `links` (a kind it lacks), probed in a scratch namespace on a thread of its own (so
/// it works from any runtime); `None` if it can. `needed_by` names what needs them in the message. Callers keep the
/// answer in a `OnceLock`.
pub fn missing_link_kinds(needed_by: &str, links: Vec<danm_netlink::NewLink>) -> Option<String> {
    use danm_netlink::Netlink;
    let needed_by = needed_by.to_owned();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let name = format!("danm-probe-{}", std::process::id());
                let ns = match danm_netlink::netns::create_named(&name) {
                    Ok(ns) => ns,
                    Err(e) => return Some(format!("cannot create a network namespace ({e})")),
                };
                let nl = danm_netlink::RtNetlink::new();
                let mut why = None;
                for link in &links {
                    if let Err(e) = nl.create_link(&ns, link).await {
                        why = Some(format!(
                            "this kernel lacks a link kind {needed_by} needs ({e}); `make kernel-lane` runs this test"
                        ));
                        break;
                    }
                }
                nl.forget_netns(&ns);
                let _ = danm_netlink::netns::delete_named(&name);
                why
            })
    })
    .join()
    .unwrap()
}
