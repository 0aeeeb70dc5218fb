//! The node installer `deploy/cni/install.sh` (what the danm-cni DaemonSet runs), run against temporary "host"
//! directories and a lab API server with TLS and a bearer token standing in for the ServiceAccount: the installed
//! binaries, plugins, precompiled cache, kubeconfig and CNI config list must give a `danm` that works as installed.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::lab::plugin_dir;
use common::run_plugin;
use danm_lab::{LabOptions, LabServer};
use serde_json::Value;

const DANM: &str = env!("CARGO_BIN_EXE_danm");
const FAKEIPAM: &str = env!("CARGO_BIN_EXE_fakeipam");
/// deploy/cni/install.sh of this checkout (found at run time: a test binary may have been built for another clone).
fn install_script() -> std::path::PathBuf {
    danm_testkit::fixtures::workspace_dir().join("deploy/cni/install.sh")
}

/// `danmctl`, built next to `danm` by `cargo test --workspace` / `cargo build --workspace`.
fn danmctl() -> Option<PathBuf> {
    let path = Path::new(DANM).with_file_name("danmctl");
    path.exists().then_some(path)
}

struct Node {
    root: tempfile::TempDir,
}

impl Node {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn install(&self, server: &str, plugins: &Path) -> std::process::Output {
        Command::new("sh")
            .arg(install_script())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DANM_SRC_BIN", self.path("image/bin"))
            .env("DANM_SRC_PLUGINS", plugins)
            .env("CNI_BIN_DIR", self.path("host/opt/cni/bin"))
            .env("CNI_CONF_DIR", self.path("host/etc/cni/net.d"))
            .env("DANM_DIR", self.path("host/etc/danm"))
            .env("DANM_HOST_DIR", self.path("host/etc/danm"))
            .env("DANM_SA_DIR", self.path("sa"))
            .env("DANM_API_SERVER", server)
            .output()
            .expect("run install.sh")
    }

    /// The installed danm's STATUS, with the config a runtime derives from the installed list.
    fn status(&self) -> std::process::Output {
        let list: Value =
            serde_json::from_slice(&std::fs::read(self.path("host/etc/cni/net.d/00-danm.conflist")).unwrap())
                .expect("the config list is JSON");
        let mut conf = list["plugins"][0].clone();
        conf["name"] = list["name"].clone();
        conf["cniVersion"] = "1.1.0".into();
        run_plugin(
            &self.path("host/opt/cni/bin/danm"),
            "STATUS",
            &[],
            &conf.to_string(),
        )
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installer_leaves_a_working_danm_with_precompiled_plugins_a_token_kubeconfig_and_a_config_list() {
    let (Some(plugins), Some(danmctl)) = (plugin_dir(), danmctl()) else {
        danm_testkit::fixtures::skip(
            "needs the built plugins (make guests) and danmctl (cargo build --workspace)",
        );
        return;
    };
    let lab = LabServer::start(LabOptions {
        tls: true,
        token: Some("node-token".into()),
        ..LabOptions::default()
    })
    .await
    .expect("lab server");
    let node = Node {
        root: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(node.path("image/bin")).unwrap();
    for (name, bin) in [
        ("danm", Path::new(DANM)),
        ("fakeipam", Path::new(FAKEIPAM)),
        ("danmctl", &danmctl),
    ] {
        std::os::unix::fs::symlink(bin, node.path("image/bin").join(name)).unwrap();
    }
    std::fs::create_dir_all(node.path("sa")).unwrap();
    std::fs::write(node.path("sa/ca.crt"), lab.ca_pem().unwrap()).unwrap();
    std::fs::write(node.path("sa/token"), "node-token").unwrap();

    let out = node.install(lab.url(), &plugins);
    assert!(
        out.status.success(),
        "install.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The config list: CNI 1.0.0 for runtimes with an older libcni, and 1.1.0 (STATUS, GC) for those that have it.
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.path("host/etc/cni/net.d/00-danm.conflist")).unwrap())
            .unwrap();
    assert_eq!(list["cniVersion"], "1.0.0", "{list}");
    assert_eq!(
        list["cniVersions"],
        serde_json::json!(["1.0.0", "1.1.0"]),
        "{list}"
    );

    // Binaries, plugins and one precompiled artefact per plugin.
    for b in ["danm", "fakeipam"] {
        assert_eq!(mode(&node.path(&format!("host/opt/cni/bin/{b}"))), 0o755, "{b}");
    }
    let shipped: Vec<String> = std::fs::read_dir(&plugins)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wasm"))
        .collect();
    for p in &shipped {
        assert!(
            node.path("host/etc/danm/plugins").join(p).exists(),
            "{p} installed"
        );
    }
    let artefacts = std::fs::read_dir(node.path("host/etc/danm/cache"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".cwasm"))
        .count();
    assert_eq!(artefacts, shipped.len(), "every plugin precompiled");
    assert_eq!(
        mode(&node.path("host/etc/danm/cache")),
        0o700,
        "the cache is root-only"
    );
    assert_eq!(mode(&node.path("host/etc/danm/kubeconfig")), 0o600);
    assert_eq!(mode(&node.path("host/etc/danm/token")), 0o600);

    // The installed danm reaches the API server (TLS with the ServiceAccount CA, bearer token from the token file)
    // and loads the plugins: STATUS succeeds.
    let out = node.status();
    assert!(
        out.status.success(),
        "STATUS: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The token file is read on every call: a wrong token fails STATUS (50), the refreshed one works again.
    std::fs::write(node.path("host/etc/danm/token"), "stale").unwrap();
    let out = node.status();
    let err: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(err["code"], 50, "a rejected token: {err}");
    let out = node.install(lab.url(), &plugins);
    assert!(out.status.success(), "install.sh again refreshes the token");
    assert!(node.status().status.success(), "STATUS with the refreshed token");

    // A plugin that is no longer shipped is removed on the next install.
    std::fs::write(node.path("host/etc/danm/plugins/retired.wasm"), b"\0asm").unwrap();
    assert!(node.install(lab.url(), &plugins).status.success());
    assert!(!node.path("host/etc/danm/plugins/retired.wasm").exists());
    assert!(node.status().status.success());
}
