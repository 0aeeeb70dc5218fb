//! A node as deploy/cni/install.sh leaves it: temporary "host" directories (CNI bin and config directories, /etc/danm)
//! filled by the installer from an "image" holding this build's `danm`, `fakeipam` and `danmctl`, trusting a lab API
//! server's CA with a ServiceAccount token. The install tests and the runtime end-to-end test use it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::lab::Lab;
use super::run_plugin;

/// The API server a node's installed `danm` talks to: a lab server with TLS and danm's CRDs that takes the
/// ServiceAccount token [`Node::with_image`] gives the node.
pub async fn node_lab() -> Lab {
    let handle = danm_lab::LabServer::start(danm_lab::LabOptions {
        tls: true,
        token: Some("node-token".into()),
        ..danm_lab::LabOptions::default()
    })
    .await
    .expect("lab server");
    let client = handle.client().await.expect("lab client");
    danm_testkit::lab::install_crds(&client).await;
    let api = std::sync::Arc::new(danm_cni::api::KubeApi::new(client.clone()));
    Lab {
        handle,
        client,
        api: api.clone(),
        cni: api,
    }
}

pub const DANM: &str = env!("CARGO_BIN_EXE_danm");
pub const FAKEIPAM: &str = env!("CARGO_BIN_EXE_fakeipam");
/// deploy/cni/install.sh of this checkout (found at run time: a test binary may have been built for another clone).
pub fn install_script() -> std::path::PathBuf {
    danm_testkit::fixtures::workspace_dir().join("deploy/cni/install.sh")
}

/// `danmctl`, built next to `danm` by `cargo test --workspace` / `cargo build --workspace`.
pub fn danmctl() -> Option<PathBuf> {
    let path = Path::new(DANM).with_file_name("danmctl");
    path.exists().then_some(path)
}

pub struct Node {
    root: tempfile::TempDir,
}

impl Node {
    /// A node whose installer image holds this build's `danm`, `fakeipam` and `danmctl` (symlinked), with a
    /// ServiceAccount directory trusting the lab's CA and holding a token.
    pub fn with_image(danmctl: &Path, ca_pem: &str) -> Node {
        let node = Node {
            root: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(node.path("image/bin")).unwrap();
        for (name, bin) in [
            ("danm", Path::new(DANM)),
            ("fakeipam", Path::new(FAKEIPAM)),
            ("danmctl", danmctl),
        ] {
            std::os::unix::fs::symlink(bin, node.path("image/bin").join(name)).unwrap();
        }
        std::fs::create_dir_all(node.path("sa")).unwrap();
        std::fs::write(node.path("sa/ca.crt"), ca_pem).unwrap();
        std::fs::write(node.path("sa/token"), "node-token").unwrap();
        node
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    pub fn install(&self, server: &str, plugins: &Path) -> std::process::Output {
        self.install_from(server, &self.path("image/bin"), plugins)
    }

    /// install.sh with the image's binaries in `bin` and its plugins in `plugins`.
    pub fn install_from(&self, server: &str, bin: &Path, plugins: &Path) -> std::process::Output {
        Command::new("sh")
            .arg(install_script())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DANM_SRC_BIN", bin)
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

    /// The config a runtime derives from the installed list for `cni_version`.
    pub fn conf(&self, cni_version: &str) -> String {
        let list: Value =
            serde_json::from_slice(&std::fs::read(self.path("host/etc/cni/net.d/00-danm.conflist")).unwrap())
                .expect("the config list is JSON");
        let mut conf = list["plugins"][0].clone();
        conf["name"] = list["name"].clone();
        conf["cniVersion"] = cni_version.into();
        conf.to_string()
    }

    /// The installed danm's STATUS, with the config a runtime derives from the installed list.
    pub fn status(&self) -> std::process::Output {
        run_plugin(
            &self.path("host/opt/cni/bin/danm"),
            "STATUS",
            &[],
            &self.conf("1.1.0"),
        )
    }

    /// The installed danm run as a runtime runs it for pod `default/<pod>`, interface eth0 in `netns`.
    pub fn pod_call(&self, command: &str, pod: &str, cid: &str, netns: &str) -> std::process::Output {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid}"
        );
        let path = format!("{}:/usr/lib/cni", self.path("host/opt/cni/bin").display());
        run_plugin(
            &self.path("host/opt/cni/bin/danm"),
            command,
            &[
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", netns),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", &args),
                ("CNI_PATH", &path),
            ],
            &self.conf("1.0.0"),
        )
    }
}
