//! DEL must always let a pod go: the real `danm` binary, given a config or CNI_ARGS it cannot read, logs the problem
//! on stderr, prints nothing on stdout and exits 0; ADD with the same input fails with the CNI error.

use std::io::Write;
use std::process::{Command, Stdio};

fn danm(command: &str, args: &str, stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_danm"))
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "c1")
        .env("CNI_NETNS", "/var/run/netns/none")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env("CNI_ARGS", args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("danm runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn del_succeeds_on_a_config_or_cni_args_it_cannot_read_and_add_does_not() {
    let good_args = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p";
    for (args, stdin, what) in [
        (good_args, "{not json", "an undecodable config"),
        (good_args, r#"{"cniVersion":"1.0.0"}"#, "a config without a name"),
        (
            "K8S_POD_NAMESPACE",
            r#"{"cniVersion":"1.0.0","name":"danm"}"#,
            "malformed CNI_ARGS",
        ),
    ] {
        let (ok, stdout, stderr) = danm("DEL", args, stdin);
        assert!(ok, "DEL with {what} must succeed: {stdout} {stderr}");
        assert!(stdout.is_empty(), "DEL prints nothing on success: {stdout}");
        assert!(stderr.contains("DEL cannot read its input"), "{what}: {stderr}");
        let (ok, stdout, _) = danm("ADD", args, stdin);
        assert!(!ok, "ADD with {what} must fail");
        assert!(stdout.contains("\"code\""), "ADD prints a CNI error: {stdout}");
    }
}
