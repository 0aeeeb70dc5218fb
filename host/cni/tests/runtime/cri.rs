//! containerd (Debian's, with its CRI plugin and runc) started by a test in a directory of its own, and a CRI client
//! (the `k8s-cri` crate's protos over containerd's socket) that plays kubelet: pod sandboxes, containers, images.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::Channel;

/// The CRI namespace of containerd that kubelet's pods live in.
pub const K8S_NAMESPACE: &str = "k8s.io";

/// A containerd of the test's own: root, state, socket and CNI directories under `dir`, stopped (with every shim it
/// started and every mount under `dir`) when dropped.
pub struct Containerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    /// Writes the config (CRI: `sandbox_image`, CNI `bin_dir`/`conf_dir`, one config loaded) and starts containerd.
    pub fn start(dir: &Path, cni_bin: &Path, cni_conf: &Path, sandbox_image: &str) -> Containerd {
        std::fs::create_dir_all(dir).unwrap();
        let d = dir.display();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{bin}"
    conf_dir = "{conf}"
    max_conf_num = 1
"#,
            bin = cni_bin.display(),
            conf = cni_conf.display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut c = Containerd {
            dir: dir.to_owned(),
            socket: dir.join("containerd.sock"),
            child: None,
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.socket.exists() {
            assert!(
                Instant::now() < deadline,
                "containerd's socket: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops containerd (SIGTERM, as a service manager does) and starts it again on the same state; the pods' shims
    /// keep running meanwhile.
    pub fn restart(&mut self) {
        self.stop_daemon();
        let _ = std::fs::remove_file(&self.socket);
        self.spawn();
    }

    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of containerd's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `ctr images import` of an OCI archive into the CRI namespace.
    pub fn import(&self, archive: &Path) {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", K8S_NAMESPACE, "images", "import"])
            .arg(archive)
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr images import {}: {}{}",
            archive.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A CRI client over the socket.
    pub async fn client(&self) -> Cri {
        let path = self.socket.clone();
        let connector = tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let channel = loop {
            match tonic::transport::Endpoint::from_static("http://containerd.sock")
                .connect_with_connector(connector.clone())
                .await
            {
                Ok(channel) => break channel,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("connect to containerd: {e}"),
            }
        };
        let cri = Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
        };
        // The CRI plugin answers once it has loaded; wait for it to say the runtime is ready.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match cri.runtime.clone().status(StatusRequest { verbose: false }).await {
                Ok(_) => return cri,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("CRI status: {e}; containerd: {}", self.log_tail()),
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop_daemon();
        // Shims outlive containerd by design: stop the ones this containerd started (their command line names its
        // socket), then unmount what they left under the directory.
        let dir = self.dir.display().to_string();
        let _ = Command::new("pkill")
            .args(["-KILL", "-f", &format!("containerd-shim.*{dir}")])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&dir))
            .collect();
        under.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in under {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

/// The CRI services a kubelet uses.
#[derive(Clone)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

/// What kubelet sends for a pod: its name, namespace and UID (containerd passes them to CNI in `CNI_ARGS`).
pub fn sandbox_config(ns: &str, name: &str, uid: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: ns.to_owned(),
            attempt: 0,
        }),
        hostname: name.to_owned(),
        labels: HashMap::from([("io.kubernetes.pod.name".to_owned(), name.to_owned())]),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Cri {
    pub async fn run_pod(&self, config: &PodSandboxConfig) -> Result<String, tonic::Status> {
        self.runtime
            .clone()
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .map(|r| r.into_inner().pod_sandbox_id)
    }

    pub async fn stop_pod(&self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .clone()
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.to_owned(),
            })
            .await
            .map(|_| ())
    }

    pub async fn remove_pod(&self, id: &str) -> Result<(), tonic::Status> {
        self.runtime
            .clone()
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.to_owned(),
            })
            .await
            .map(|_| ())
    }

    /// The sandbox's status and containerd's verbose info (its `info` JSON: the runtime spec, with the netns path).
    pub async fn pod_status(&self, id: &str) -> (PodSandboxStatus, serde_json::Value) {
        let resp = self
            .runtime
            .clone()
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_owned(),
                verbose: true,
            })
            .await
            .unwrap_or_else(|e| panic!("PodSandboxStatus {id}: {e}"))
            .into_inner();
        let info = resp
            .info
            .get("info")
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or(serde_json::Value::Null);
        (resp.status.expect("a status"), info)
    }

    /// The path of a sandbox's network namespace, from the runtime spec containerd reports.
    pub async fn netns_path(&self, id: &str) -> String {
        let (_, info) = self.pod_status(id).await;
        info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .and_then(|nss| nss.iter().find(|n| n["type"] == "network"))
            .and_then(|n| n["path"].as_str())
            .unwrap_or_else(|| panic!("no network namespace in {info}"))
            .to_owned()
    }

    /// The ids of the sandboxes containerd knows.
    pub async fn pods(&self) -> Vec<PodSandbox> {
        self.runtime
            .clone()
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await
            .expect("ListPodSandbox")
            .into_inner()
            .items
    }

    /// The CRI plugin's view of the CNI config it loaded (the `cniconfig` of its verbose status).
    pub async fn cni_config(&self) -> serde_json::Value {
        let resp = self
            .runtime
            .clone()
            .status(StatusRequest { verbose: true })
            .await
            .expect("CRI status")
            .into_inner();
        resp.info
            .get("cniconfig")
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Creates and starts a container in a sandbox.
    pub async fn start_container(
        &self,
        pod: &str,
        sandbox: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let id = self
            .runtime
            .clone()
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.to_owned(),
                config: Some(config),
                sandbox_config: Some(sandbox.clone()),
            })
            .await?
            .into_inner()
            .container_id;
        self.runtime
            .clone()
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        Ok(id)
    }

    pub async fn container_state(&self, id: &str) -> (i32, String) {
        let s = self
            .runtime
            .clone()
            .container_status(ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await
            .expect("ContainerStatus")
            .into_inner()
            .status
            .expect("a status");
        (
            s.state,
            format!("exit {} {} {}", s.exit_code, s.reason, s.message),
        )
    }

    /// The process id of a running container (containerd's verbose container info).
    pub async fn container_pid(&self, id: &str) -> u32 {
        let resp = self
            .runtime
            .clone()
            .container_status(ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: true,
            })
            .await
            .expect("ContainerStatus")
            .into_inner();
        let info: serde_json::Value = resp
            .info
            .get("info")
            .and_then(|i| serde_json::from_str(i).ok())
            .unwrap_or(serde_json::Value::Null);
        info["pid"].as_u64().unwrap_or_else(|| panic!("no pid in {info}")) as u32
    }

    pub async fn stop_container(&self, id: &str) {
        self.runtime
            .clone()
            .stop_container(StopContainerRequest {
                container_id: id.to_owned(),
                timeout: 5,
            })
            .await
            .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
    }
}
