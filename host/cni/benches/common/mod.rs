//! Shared by the CNI benchmarks: root check, an in-process lab API server with danm's CRDs, DanmNets and pods,
//! veth parents and pod network namespaces, and running the `danm` binary (or a Debian plugin) as kubelet does.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use danm_api::{Network, NetworkKind, NetworkSpec};
use danm_lab::LabHandle;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::{Value, json};

pub const NS: &str = "default";

pub use danm_testkit::fixtures::is_root;

/// The built backend plugins (`make guests`, or `DANM_PLUGIN_DIR`).
pub fn plugin_dir() -> Option<PathBuf> {
    let dir = danm_testkit::fixtures::plugin_dir();
    danm_testkit::fixtures::plugins_built(&dir).then_some(dir)
}

/// Why this machine cannot run the benchmark, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !is_root() {
        return Some("needs root (network namespaces and links)".into());
    }
    if plugin_dir().is_none() {
        return Some("the backend plugins are not built (run `make guests`)".into());
    }
    None
}

fn ip(args: &[&str]) -> Output {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("spawn ip")
}

/// A veth pair in the host netns, up, used as macvlan parent; removed on drop.
pub struct Veth(pub String);

impl Veth {
    pub fn new(tag: &str) -> Veth {
        let name = format!("{tag}{}", std::process::id() % 100_000);
        let _ = ip(&["link", "del", &name]);
        let out = ip(&[
            "link",
            "add",
            &name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{name}p"),
        ]);
        assert!(
            out.status.success(),
            "veth {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(ip(&["link", "set", &name, "up"]).status.success());
        Veth(name)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.0]);
    }
}

/// A named network namespace (created in-process, like `ip netns add`); removed on drop.
pub struct PodNs(pub PathBuf);

impl PodNs {
    pub fn new(name: &str) -> PodNs {
        let _ = danm_netlink::netns::delete_named(name);
        match danm_netlink::netns::create_named(name).expect("create netns") {
            danm_netlink::Netns::Path(p) => PodNs(p),
            other => panic!("unexpected netns {other:?}"),
        }
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// The names of the links in the namespace other than `lo`.
    pub fn links(&self) -> Vec<String> {
        let name = self.0.file_name().unwrap().to_str().unwrap();
        let out = ip(&["-n", name, "-j", "link", "show"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str())
            .filter(|n| *n != "lo")
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        let _ = danm_netlink::netns::delete_path(&self.0);
    }
}

pub use danm_testkit::lab::with_crds as lab;

/// Creates a DanmNet as the webhook would leave it (pool defaults and bitmaps applied).
pub async fn danmnet(client: &kube::Client, name: &str, spec: Value) -> Network {
    let mut spec: NetworkSpec = serde_json::from_value(spec).unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    let api: kube::Api<Network> = kube::Api::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet);
    api.create(
        &PostParams::default(),
        &Network::new(NetworkKind::DanmNet, Some(NS), name, spec),
    )
    .await
    .expect("DanmNet")
}

pub async fn get_danmnet(client: &kube::Client, name: &str) -> Network {
    kube::Api::<Network>::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet)
        .get(name)
        .await
        .unwrap()
}

pub async fn pod(client: &kube::Client, name: &str, interfaces: Value) {
    let annotations = BTreeMap::from([("danm.k8s.io/interfaces".to_owned(), interfaces.to_string())]);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "pause"}]}
    }))
    .unwrap();
    kube::Api::<Pod>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod");
}

pub use danm_testkit::process::run_plugin_async as exec_plugin;

/// Panics with the plugin's output unless it succeeded; returns stdout.
pub fn ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `danm` binary with a config pointing at the lab and the built plugins (precompiled into `cache`).
pub struct Danm {
    pub config: String,
}

impl Danm {
    pub fn new(lab: &LabHandle, cache: &Path) -> Danm {
        let config = json!({"cniVersion": "1.0.0", "name": "danm", "type": "danm",
                            "kubeconfig": lab.kubeconfig_path(), "pluginDir": plugin_dir().unwrap(),
                            "cacheDir": cache, "logLevel": "warn"});
        Danm {
            config: config.to_string(),
        }
    }

    pub async fn run(&self, command: &str, pod: &str, cid: &str, netns: &str) -> Output {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid}"
        );
        let env = [
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", args.as_str()),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        exec_plugin(&danm_bin(), command, &env, &self.config).await
    }
}

/// The `danm` binary: this build's, or `$DANM_BENCH_DANM` (to compare another build against the same baselines).
fn danm_bin() -> PathBuf {
    std::env::var_os("DANM_BENCH_DANM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_danm")))
}

pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
