//! Pods wired by the real `danm` binary for the load benchmarks: macvlan DanmNets on a veth parent in either IPAM
//! mode, Pod objects whose annotation names them, ADD and DEL run as kubelet runs them, and the checks every load
//! bench ends with (duplicate addresses, addresses still held, DanmEps left over).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use danm_api::{DanmEp, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::blocks::IpamMode;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use super::host::{CniRun, cni};

/// The namespace of every bench pod and network.
pub const NS: &str = "default";

/// A pod the bench created: its API object and its network namespace.
#[derive(Clone, Debug)]
pub struct BenchPod {
    pub name: String,
    pub uid: String,
    pub container_id: String,
    pub netns_name: String,
    pub netns: PathBuf,
}

/// The `danm` binary with a CNI config pointing at the lab and the plugins.
#[derive(Clone, Debug)]
pub struct DanmCni {
    pub bin: PathBuf,
    pub config: String,
}

impl DanmCni {
    pub fn new(bin: &Path, kubeconfig: &Path, plugin_dir: &Path, cache_dir: &Path) -> DanmCni {
        let config = json!({"cniVersion": "1.0.0", "name": "danm", "type": "danm", "kubeconfig": kubeconfig,
            "pluginDir": plugin_dir, "cacheDir": cache_dir, "logLevel": "warn"});
        DanmCni {
            bin: bin.into(),
            config: config.to_string(),
        }
    }

    /// The same binary and config with a longer deadline (`timeoutSeconds`): the warm-up pod, whose ADD compiles
    /// the plugins into the cache as the node installer would have, may take longer than a pod's deadline on a
    /// busy machine.
    pub fn warm_up(&self) -> DanmCni {
        let mut config: Value = serde_json::from_str(&self.config).unwrap_or_default();
        config["timeoutSeconds"] = json!(300);
        DanmCni {
            bin: self.bin.clone(),
            config: config.to_string(),
        }
    }

    /// Runs `command` (ADD, DEL) for `pod` as kubelet would.
    pub async fn run(&self, command: &str, pod: &BenchPod) -> anyhow::Result<CniRun> {
        let (args, netns) = Self::args(pod);
        let env = Self::env(pod, &args, &netns);
        cni(&self.bin, command, &env, &self.config).await
    }

    /// [`DanmCni::run`] without reaping the process (see [`super::host::cni_unreaped`]).
    pub async fn run_unreaped(
        &self,
        command: &str,
        pod: &BenchPod,
    ) -> anyhow::Result<(CniRun, std::process::Child)> {
        let (args, netns) = Self::args(pod);
        let env = Self::env(pod, &args, &netns);
        super::host::cni_unreaped(&self.bin, command, &env, &self.config).await
    }

    fn args(pod: &BenchPod) -> (String, String) {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.name, pod.container_id, pod.uid
        );
        (args, pod.netns.to_string_lossy().into_owned())
    }

    fn env<'a>(pod: &'a BenchPod, args: &'a str, netns: &'a str) -> [(&'static str, &'a str); 5] {
        [
            ("CNI_CONTAINERID", pod.container_id.as_str()),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", args),
            ("CNI_PATH", "/usr/lib/cni"),
        ]
    }
}

/// Creates macvlan DanmNets `names[i]` with `cidrs[i]` on `parent` in `mode`, as the webhook leaves them (pool
/// defaults; bitmaps only in bitmap mode). Returns each network's bitmap as created (the "nothing held" state).
pub async fn create_networks(
    client: &kube::Client,
    nets: &[(String, String)],
    parent: &str,
    mode: IpamMode,
) -> anyhow::Result<BTreeMap<String, Network>> {
    let api: kube::Api<Network> = kube::Api::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet);
    let mut created = BTreeMap::new();
    for (name, cidr) in nets {
        let mut spec: NetworkSpec = serde_json::from_value(json!({
            "NetworkID": name, "NetworkType": "macvlan",
            "Options": {"host_device": parent, "cidr": cidr},
        }))?;
        danm_core::ipam::apply_network_defaults(&mut spec.options)?;
        if mode == IpamMode::Blocks {
            spec.options.alloc.clear();
            spec.options.alloc6.clear();
        }
        let mut net = Network::new(NetworkKind::DanmNet, Some(NS), name, spec);
        net.metadata.annotations = Some(BTreeMap::from([(
            danm_api::annotations::IPAM_MODE.to_owned(),
            mode.as_str().to_owned(),
        )]));
        let n = api
            .create(&PostParams::default(), &net)
            .await
            .with_context(|| format!("creating DanmNet {NS}/{name}"))?;
        created.insert(name.clone(), n);
    }
    Ok(created)
}

/// Deletes the bench's networks and every DanmIpBlock (the lab has no garbage collector to remove them).
pub async fn delete_networks(client: &kube::Client, names: &[String]) -> anyhow::Result<()> {
    let api: kube::Api<Network> = kube::Api::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet);
    for n in names {
        match api.delete(n, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("deleting DanmNet {NS}/{n}")),
        }
    }
    let blocks: kube::Api<danm_api::DanmIpBlock> = kube::Api::all(client.clone());
    for b in blocks.list(&ListParams::default()).await? {
        let name = b.metadata.name.clone().unwrap_or_default();
        let _ = blocks.delete(&name, &DeleteParams::default()).await;
    }
    Ok(())
}

/// Creates the Pod object (the scheduler's and kubelet's part) with an interfaces annotation naming `networks`.
pub async fn create_pod(
    client: &kube::Client,
    name: &str,
    networks: &[String],
    netns_dir_name: &str,
) -> anyhow::Result<BenchPod> {
    let interfaces: Vec<Value> = networks.iter().map(|n| json!({"network": n})).collect();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS,
            "annotations": {"danm.k8s.io/interfaces": Value::Array(interfaces).to_string()}},
        "spec": {"nodeName": "lab-node", "containers": [{"name": "app", "image": "danm-lab/pause"}]},
    }))?;
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), NS);
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {NS}/{name}"))?;
    Ok(BenchPod {
        name: name.to_owned(),
        uid: created.metadata.uid.unwrap_or_default(),
        container_id: format!("{}", uuid::Uuid::new_v4().simple()),
        netns_name: netns_dir_name.to_owned(),
        netns: PathBuf::from("/var/run/netns").join(netns_dir_name),
    })
}

/// Deletes the bench's pods (404 is fine).
pub async fn delete_pods(client: &kube::Client, names: &[String]) {
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), NS);
    for n in names {
        let _ = pods.delete(n, &DeleteParams::default()).await;
    }
}

/// Addresses given out more than once among `results` (each an address list of one successful ADD).
pub fn duplicates<'a>(results: impl IntoIterator<Item = &'a Vec<String>>) -> usize {
    let mut seen = BTreeSet::new();
    results
        .into_iter()
        .flatten()
        .filter(|a| !seen.insert(a.as_str()))
        .count()
}

/// Addresses the API still records as held on `names` (blocks' owners or bitmap bits beyond a fresh network's).
pub async fn held_addresses(
    client: &kube::Client,
    names: &[String],
    mode: IpamMode,
) -> anyhow::Result<usize> {
    let api: kube::Api<Network> = kube::Api::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet);
    let mut held = 0;
    for n in names {
        let net = api.get(n).await?;
        held += super::ipam_scale::held_addresses(client, &net, mode).await?.len();
    }
    Ok(held)
}

/// DanmEps left in the bench namespace.
pub async fn danmeps_left(client: &kube::Client) -> anyhow::Result<usize> {
    let eps: kube::Api<DanmEp> = kube::Api::namespaced(client.clone(), NS);
    Ok(eps.list(&ListParams::default()).await?.items.len())
}
