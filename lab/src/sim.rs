//! The pod simulator: a pod is a Pod object in the API server plus a network namespace under /var/run/netns,
//! wired by running the node's CNI config list exactly as kubelet/containerd do; deleting runs DEL first.

pub mod cni;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Pod simulator failures, naming the pod.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("pod {namespace}/{name}: API: {source}")]
    Kube {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("kubeconfig {path}: {message}")]
    Client { path: PathBuf, message: String },
    #[error("pod {namespace}/{name}: network namespace {netns}: {message}")]
    Netns {
        namespace: String,
        name: String,
        netns: String,
        message: String,
    },
    #[error("pod {namespace}/{name}: {source}")]
    Cni {
        namespace: String,
        name: String,
        source: cni::CniError,
    },
    #[error("pod {namespace}/{name}: DEL failed: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Del {
        namespace: String,
        name: String,
        errors: Vec<String>,
    },
    #[error("simulator state {path}: {message}")]
    State { path: PathBuf, message: String },
}

/// Where the simulator finds its API server, CNI configs and plugins.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub kubeconfig: PathBuf,
    pub cni_conf_dir: PathBuf,
    /// Colon-separated plugin directories (`CNI_PATH`).
    pub cni_path: String,
    /// Per-pod state files (container id, netns, cached result) so DEL works from another process.
    pub state_dir: PathBuf,
    /// `/var/run/netns` (where `ip netns` keeps its namespaces).
    pub netns_dir: PathBuf,
}

/// The pod to create.
#[derive(Debug, Clone, Default)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub node_name: String,
}

/// A simulated pod after ADD.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub container_id: String,
    /// `ip netns` name.
    pub netns_name: String,
    /// Path passed as CNI_NETNS.
    pub netns: PathBuf,
    /// The config list file used.
    pub conflist: PathBuf,
    /// The final CNI result.
    pub result: Value,
    /// The pod IPs taken from the result.
    pub ips: Vec<String>,
}

/// The simulator.
#[derive(Clone)]
pub struct PodSim {
    cfg: SimConfig,
    client: kube::Client,
}

impl std::fmt::Debug for PodSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSim").field("cfg", &self.cfg).finish()
    }
}

async fn ip(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The `ip netns` name of a pod: `<namespace>.<name>`, shortened with a hash part if too long.
pub fn netns_name(namespace: &str, name: &str) -> String {
    let n = format!("{namespace}.{name}");
    if n.len() <= 200 {
        n
    } else {
        format!("{}-{:x}", &n[..180], n.len())
    }
}

impl PodSim {
    /// A simulator whose API client comes from `cfg.kubeconfig`.
    pub async fn new(cfg: SimConfig) -> Result<Self, SimError> {
        let err = |message: String| SimError::Client {
            path: cfg.kubeconfig.clone(),
            message,
        };
        let kc = kube::config::Kubeconfig::read_from(&cfg.kubeconfig).map_err(|e| err(e.to_string()))?;
        let c = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| err(e.to_string()))?;
        let client = kube::Client::try_from(c).map_err(|e| err(e.to_string()))?;
        Ok(Self { cfg, client })
    }

    /// A simulator using an existing client.
    pub fn with_client(cfg: SimConfig, client: kube::Client) -> Self {
        Self { cfg, client }
    }

    fn state_file(&self, namespace: &str, name: &str) -> PathBuf {
        self.cfg.state_dir.join(format!("{namespace}_{name}.json"))
    }

    fn kube_err(namespace: &str, name: &str) -> impl FnOnce(kube::Error) -> SimError {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        move |source| SimError::Kube {
            namespace,
            name,
            source,
        }
    }

    /// Creates the Pod, its network namespace, runs CNI ADD and records the result in the pod status (podIP(s),
    /// phase Running, Ready). On a CNI failure the namespace is removed, DEL is run to clean up, and the Pod stays
    /// Pending with the error in its `PodReadyToStartContainers` condition.
    pub async fn add(&self, spec: &PodSpec) -> Result<SimPod, SimError> {
        let (ns, name) = (spec.namespace.as_str(), spec.name.as_str());
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": spec.labels, "annotations": spec.annotations},
            "spec": {"nodeName": spec.node_name, "containers": [{"name": "app", "image": "danm-lab/pause"}]},
        }))
        .expect("static pod shape");
        let created = pods
            .create(&PostParams::default(), &pod)
            .await
            .map_err(Self::kube_err(ns, name))?;
        let uid = created.metadata.uid.clone().unwrap_or_default();
        let container_id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let netns_name = netns_name(ns, name);
        let netns = self.cfg.netns_dir.join(&netns_name);
        ip(&["netns", "add", &netns_name])
            .await
            .map_err(|message| SimError::Netns {
                namespace: ns.into(),
                name: name.into(),
                netns: netns_name.clone(),
                message,
            })?;
        let cni_err = |source| SimError::Cni {
            namespace: ns.into(),
            name: name.into(),
            source,
        };
        let list = match cni::load_dir(&self.cfg.cni_conf_dir) {
            Ok(l) => l,
            Err(e) => {
                let _ = ip(&["netns", "del", &netns_name]).await;
                return Err(cni_err(e));
            }
        };
        let rt = self.runtime(ns, name, &uid, &container_id, &netns);
        let result = match cni::add(&list, &rt).await {
            Ok(r) => r,
            Err(e) => {
                let _ = cni::del(&list, &rt, None).await;
                let _ = ip(&["netns", "del", &netns_name]).await;
                let _ = self.patch_status(ns, name, json!({"conditions": [{
                    "type": "PodReadyToStartContainers", "status": "False", "reason": "CNIFailed", "message": e.to_string()
                }]})).await;
                return Err(cni_err(e));
            }
        };
        let ips = cni::result_ips(&result);
        let sim = SimPod {
            namespace: ns.into(),
            name: name.into(),
            uid,
            container_id,
            netns_name,
            netns,
            conflist: list.path.clone(),
            result,
            ips,
        };
        self.save(&sim)?;
        let pod_ips: Vec<Value> = sim.ips.iter().map(|i| json!({"ip": i})).collect();
        let now = crate::server::store::now();
        let mut status = json!({
            "phase": "Running", "hostIP": "127.0.0.1", "startTime": now,
            "podIPs": pod_ips,
            "containerStatuses": [{"name": "app", "ready": true, "started": true, "restartCount": 0,
                "image": "danm-lab/pause", "imageID": "", "containerID": format!("containerd://{}", sim.container_id),
                "state": {"running": {"startedAt": now}}}],
        });
        status["conditions"] = conditions(true);
        if let Some(first) = sim.ips.first() {
            status["podIP"] = json!(first);
        }
        self.patch_status(ns, name, status).await?;
        Ok(sim)
    }

    fn runtime(&self, ns: &str, name: &str, uid: &str, container_id: &str, netns: &Path) -> cni::Runtime {
        cni::Runtime {
            container_id: container_id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), ns.into()),
                ("K8S_POD_NAME".into(), name.into()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), container_id.into()),
                ("K8S_POD_UID".into(), uid.into()),
            ],
            cni_path: self.cfg.cni_path.clone(),
        }
    }

    fn save(&self, sim: &SimPod) -> Result<(), SimError> {
        let path = self.state_file(&sim.namespace, &sim.name);
        let err = |message: String| SimError::State {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(&self.cfg.state_dir).map_err(|e| err(e.to_string()))?;
        std::fs::write(&path, serde_json::to_vec_pretty(sim).unwrap_or_default())
            .map_err(|e| err(e.to_string()))
    }

    /// The recorded state of a simulated pod, if this simulator created it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<SimPod> {
        let raw = std::fs::read(self.state_file(namespace, name)).ok()?;
        serde_json::from_slice(&raw).ok()
    }

    async fn patch_status(&self, ns: &str, name: &str, status: Value) -> Result<(), SimError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .map_err(Self::kube_err(ns, name))?;
        Ok(())
    }

    /// Sets the Ready/ContainersReady conditions (and the container's `ready`), as kubelet does when probes change.
    pub async fn set_ready(&self, namespace: &str, name: &str, ready: bool) -> Result<(), SimError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut cs = pods
            .get(name)
            .await
            .map_err(Self::kube_err(namespace, name))?
            .status
            .and_then(|s| s.container_statuses)
            .map(|v| serde_json::to_value(v).unwrap_or(json!([])))
            .unwrap_or(json!([]));
        for c in cs.as_array_mut().into_iter().flatten() {
            c["ready"] = json!(ready);
        }
        self.patch_status(
            namespace,
            name,
            json!({"conditions": conditions(ready), "containerStatuses": cs}),
        )
        .await
    }

    /// Runs CNI DEL (with the cached result), removes the network namespace and deletes the Pod. Keeps going after
    /// failures and reports them all; a pod the simulator has no state for is only deleted from the API.
    pub async fn del(&self, namespace: &str, name: &str) -> Result<(), SimError> {
        let mut errors = Vec::new();
        if let Some(sim) = self.get(namespace, name) {
            let list = cni::load_file(&sim.conflist).or_else(|_| cni::load_dir(&self.cfg.cni_conf_dir));
            match list {
                Ok(list) => {
                    let rt = self.runtime(namespace, name, &sim.uid, &sim.container_id, &sim.netns);
                    errors.extend(
                        cni::del(&list, &rt, Some(&sim.result))
                            .await
                            .into_iter()
                            .map(|e| e.to_string()),
                    );
                }
                Err(e) => errors.push(e.to_string()),
            }
            if sim.netns.exists()
                && let Err(e) = ip(&["netns", "del", &sim.netns_name]).await
            {
                errors.push(e);
            }
            if errors.is_empty() {
                let _ = std::fs::remove_file(self.state_file(namespace, name));
            }
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match pods.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => errors.push(e.to_string()),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SimError::Del {
                namespace: namespace.into(),
                name: name.into(),
                errors,
            })
        }
    }
}

fn conditions(ready: bool) -> Value {
    let now = crate::server::store::now();
    let s = if ready { "True" } else { "False" };
    json!([
        {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": s, "lastTransitionTime": now},
        {"type": "ContainersReady", "status": s, "lastTransitionTime": now},
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
    ])
}
