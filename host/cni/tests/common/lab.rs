//! Flow-test harness: an in-process lab API server with danm's CRDs, the real backend plugins, a fake or real
//! netlink, and a [`Ctx`] per invocation.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use danm_api::{DanmEp, Network, NetworkKind, NetworkSpec};
use danm_cni::api::{Api, IpamStore, KubeApi};
use danm_cni::context::Ctx;
use danm_cni::delegate::PluginRunner;
use danm_cni::ipam::Retry;
use danm_cni::native::Sysfs;
use danm_cni::translate::Translator;
use danm_core::cni::{CniArgs, CniConfig, CniEnv};
use danm_lab::LabHandle;
use danm_netlink::Netlink;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::{Value, json};

/// The IPAM mode the flow tests create networks in: `DANM_TEST_IPAM_MODE` (`bitmap` unless it says `blocks`).
pub fn ipam_mode() -> &'static str {
    match std::env::var("DANM_TEST_IPAM_MODE").as_deref() {
        Ok("blocks") => "blocks",
        _ => "bitmap",
    }
}

pub struct Lab {
    pub handle: LabHandle,
    /// The test's own client (set-up and checks).
    pub client: kube::Client,
    /// [`Lab::client`] as the CNI's API, for the test's own reads and writes.
    pub api: Arc<KubeApi>,
    /// The CNI's API for the invocations under test: a client of its own that names itself `danm/test`, so the
    /// lab's audit attributes its calls to the CNI (`make rbac`).
    pub cni: Arc<KubeApi>,
}

pub async fn lab() -> Lab {
    let (handle, client) = danm_testkit::lab::with_crds().await;
    let api = Arc::new(KubeApi::new(client.clone()));
    let cni = Arc::new(KubeApi::new(
        handle.client_as("danm/test").await.expect("lab client"),
    ));
    Lab {
        handle,
        client,
        api,
        cni,
    }
}

impl Lab {
    /// Creates a network as the webhook would leave it: pool defaults applied, and in the IPAM mode the test run
    /// asks for (`DANM_TEST_IPAM_MODE`: `bitmap`, the default, writes the bitmaps; `blocks` marks the network
    /// and writes none).
    pub async fn network(&self, kind: NetworkKind, ns: &str, name: &str, spec: Value) -> Network {
        self.network_in(ipam_mode(), kind, ns, name, spec).await
    }

    /// [`Lab::network`] in IPAM mode `mode` (`bitmap` or `blocks`), whatever the test run asks for.
    pub async fn network_in(
        &self,
        mode: &str,
        kind: NetworkKind,
        ns: &str,
        name: &str,
        spec: Value,
    ) -> Network {
        let mut spec: NetworkSpec = serde_json::from_value(spec).unwrap();
        danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
        let blocks = mode == "blocks";
        if blocks {
            spec.options.alloc.clear();
            spec.options.alloc6.clear();
        }
        let mut net = Network::new(kind, Some(ns), name, spec);
        if blocks {
            net.metadata.annotations = Some(BTreeMap::from([(
                danm_api::annotations::IPAM_MODE.to_owned(),
                "blocks".to_owned(),
            )]));
        }
        let api: kube::Api<Network> = if kind.namespaced() {
            kube::Api::namespaced_with(self.client.clone(), ns, &kind)
        } else {
            kube::Api::all_with(self.client.clone(), &kind)
        };
        api.create(&PostParams::default(), &net)
            .await
            .expect("create network")
    }

    /// What a network holds: its bitmaps (as text) and the number of addresses its blocks record an owner for.
    /// Comparing it before and after a pod's life checks both IPAM modes.
    pub async fn holdings(&self, net: &Network) -> (String, String, usize) {
        let kind = net.network_kind().unwrap();
        let now = self
            .get_network(kind, net.namespace().unwrap_or_default(), net.name())
            .await;
        let id = danm_ipam::network_id(&now);
        let selector = format!("{}={}", danm_api::labels::NETWORK_ID, id.label());
        let owners = self
            .api
            .list_blocks(&selector)
            .await
            .unwrap()
            .iter()
            .filter(|b| b.spec.network == id.to_string())
            .map(|b| b.spec.owners.len())
            .sum();
        (now.spec.options.alloc, now.spec.options.alloc6, owners)
    }

    pub async fn get_network(&self, kind: NetworkKind, ns: &str, name: &str) -> Network {
        self.api
            .get_network(kind, ns, name)
            .await
            .unwrap()
            .expect("network exists")
    }

    pub async fn pod(&self, ns: &str, name: &str, interfaces: Option<Value>, labels: &[(&str, &str)]) -> Pod {
        let mut annotations = BTreeMap::new();
        if let Some(i) = interfaces {
            annotations.insert("danm.k8s.io/interfaces".to_owned(), i.to_string());
        }
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "pause"}]}
        }))
        .unwrap();
        let pods: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), ns);
        pods.create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    pub async fn get_pod(&self, ns: &str, name: &str) -> Pod {
        self.api.get_pod(ns, name).await.unwrap()
    }

    pub async fn eps(&self, ns: &str) -> Vec<DanmEp> {
        let api: kube::Api<DanmEp> = kube::Api::namespaced(self.client.clone(), ns);
        api.list(&Default::default()).await.unwrap().items
    }

    pub async fn namespace(&self, name: &str) {
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(self.client.clone());
        let ns =
            serde_json::from_value(json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":name}}))
                .unwrap();
        api.create(&PostParams::default(), &ns).await.expect("namespace");
    }
}

/// The directory of the built plugins (`make guests`), if present.
pub fn plugin_dir() -> Option<PathBuf> {
    let dir = danm_testkit::fixtures::plugin_dir();
    danm_testkit::fixtures::plugins_built(&dir).then_some(dir)
}

/// A directory of links to the real backend plugins plus the `trap` and `spin` test plugins (made once per test
/// binary).
pub fn plugin_link_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let src = plugin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("danm-plugins")
            .tempdir()
            .unwrap()
            .keep();
        for entry in std::fs::read_dir(&src).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // An older staging named plugins danm_guest_<x>.wasm; skip such a file when <x>.wasm exists too.
            if let Some(short) = name.strip_prefix("danm_guest_")
                && src.join(short).exists()
            {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), dir.join(&name)).unwrap();
        }
        for test in ["trap.wasm", "spin.wasm"] {
            let file = danm_testkit::fixtures::test_plugin_dir().join(test);
            if file.exists() {
                std::os::unix::fs::symlink(&file, dir.join(test)).unwrap();
            }
        }
        Some(dir)
    })
    .clone()
}

/// The plugins of [`plugin_link_dir`], loaded once per test binary.
pub fn plugins() -> Option<Arc<danm_wasm::PluginSet>> {
    static SET: OnceLock<Option<Arc<danm_wasm::PluginSet>>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut rc = danm_wasm::RuntimeConfig::with_plugin_dir(plugin_link_dir()?);
        rc.cache_dir = None;
        Some(Arc::new(
            danm_wasm::PluginSet::load_strict(rc).expect("plugins load"),
        ))
    })
    .clone()
}

/// One invocation's inputs.
pub struct Call<'a> {
    pub command: &'a str,
    pub namespace: &'a str,
    pub pod: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub config: Value,
    pub cni_path: Vec<String>,
}

impl<'a> Call<'a> {
    pub fn new(
        command: &'a str,
        namespace: &'a str,
        pod: &'a str,
        container_id: &'a str,
        netns: &'a str,
    ) -> Self {
        Call {
            command,
            namespace,
            pod,
            container_id,
            netns,
            config: json!({"cniVersion": "1.0.0", "name": "danm", "type": "danm"}),
            cni_path: vec!["/usr/lib/cni".into()],
        }
    }
}

pub struct Services {
    pub api: Arc<dyn Api>,
    pub netlink: Arc<dyn Netlink>,
    pub translator: Arc<dyn Translator>,
    pub sysfs: Sysfs,
    pub kubelet_root: PathBuf,
    pub retry: Retry,
    /// What runs delegate plugins: the real process runner, or the flow tests' plugins written in Rust.
    pub delegates: Arc<dyn PluginRunner>,
}

pub fn ctx(svc: &Services, call: &Call<'_>) -> Arc<Ctx> {
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
        call.namespace, call.pod, call.container_id
    );
    let path = call.cni_path.join(":");
    let env = CniEnv::from_pairs([
        ("CNI_COMMAND", call.command),
        ("CNI_CONTAINERID", call.container_id),
        ("CNI_NETNS", call.netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args.as_str()),
        ("CNI_PATH", path.as_str()),
    ])
    .unwrap();
    let config = CniConfig::parse(call.config.to_string().as_bytes()).unwrap();
    let version = config.version().unwrap();
    let args = CniArgs::parse(
        env.args.as_deref().unwrap_or_default(),
        env.container_id.as_deref(),
    )
    .unwrap();
    Arc::new(Ctx {
        api: svc.api.clone(),
        netlink: svc.netlink.clone(),
        translator: svc.translator.clone(),
        config,
        version,
        env,
        args,
        hostname: "node1".into(),
        retry: svc.retry,
        sysfs: svc.sysfs.clone(),
        kubelet_root: svc.kubelet_root.clone(),
        process_path: "/usr/sbin:/usr/bin:/sbin:/bin".into(),
        delegates: svc.delegates.clone(),
    })
}
