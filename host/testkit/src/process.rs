//! Running commands (`ip`, the CNI plugins) as the tests need them: checked, for cleanup, or as a runtime runs a CNI
//! plugin (clean environment, config on stdin).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs a command, panics unless it succeeds, returns its stdout.
pub fn cmd_ok(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, returns whether it succeeded (for cleanup, where failing is fine).
pub fn cmd(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The command a runtime runs for a CNI plugin: a clean environment holding only `CNI_COMMAND`, `PATH` and `env`,
/// stdin, stdout and stderr piped.
fn plugin_command(bin: &Path, command: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs a CNI plugin as a runtime does: a clean environment holding only `CNI_COMMAND`, `PATH` and `env`, the
/// config on stdin.
pub fn run_plugin(bin: &Path, command: &str, env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = plugin_command(bin, command, env)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    // A plugin that exits before reading its config closes the pipe; its output says why.
    let _ = child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes());
    child.wait_with_output().expect("plugin output")
}

/// [`run_plugin`] on the tokio runtime, for tests and benches that run many plugins at once.
pub async fn run_plugin_async(bin: &Path, command: &str, env: &[(&str, &str)], stdin: &str) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::from(plugin_command(bin, command, env))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut input = child.stdin.take().expect("piped stdin");
    // A plugin that exits before reading its config closes the pipe; its output says why.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    child.wait_with_output().await.expect("plugin output")
}
