//! Conformance with a real CNI runtime library: our own Go driver (tests/libcni/main.go), built against Debian's
//! libcni, runs ADD, CHECK and DEL of the `danm` binary for every cniVersion libcni knows, so libcni's own config
//! handling, version checks and result parsing judge danm's output. Needs root, `go` and
//! golang-github-appc-cni-dev (installed by scripts/setup.sh), and the built plugins (`make guests`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use danm_api::{DanmEp, Network, NetworkKind, NetworkSpec};
use danm_lab::{LabHandle, LabOptions, LabServer};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use serde_json::{Value, json};

const NS: &str = "default";
const LIBCNI_SRC: &str = "/usr/share/gocode/src/github.com/containernetworking/cni/libcni";
/// The cniVersions the Debian libcni supports (1.1.2 ships no 1.1.0: `pkg/version/version.go`); 0.1.0/0.2.0 results
/// cannot describe interfaces, and danm supports 0.3.1 upwards.
const VERSIONS: [&str; 3] = ["0.3.1", "0.4.0", "1.0.0"];

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"))
}

fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The built backend plugins (`make guests`, or `DANM_PLUGIN_DIR`).
fn plugin_dir() -> Option<PathBuf> {
    let dir = std::env::var("DANM_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../build/plugins")));
    dir.join("macvlan.wasm").exists().then_some(dir)
}

/// A veth pair in the host netns (the macvlan parent) and a named pod netns, both removed on drop.
struct Links {
    veth: String,
    netns: String,
}

impl Links {
    fn new(tag: &str) -> Links {
        let id = std::process::id() % 100_000;
        let links = Links {
            veth: format!("{tag}{id}"),
            netns: format!("danm-{tag}-{id}"),
        };
        links.cleanup();
        run_ok(&[
            "ip",
            "link",
            "add",
            &links.veth,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{}p", links.veth),
        ]);
        run_ok(&["ip", "link", "set", &links.veth, "up"]);
        run_ok(&["ip", "netns", "add", &links.netns]);
        run_ok(&["ip", "-n", &links.netns, "link", "set", "lo", "up"]);
        links
    }

    fn netns_path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }

    /// The MAC and the IPv4 addresses (`ip/len`) of `dev` in the pod netns, `None` when the link does not exist.
    fn link(&self, dev: &str) -> Option<(String, Vec<String>)> {
        let out = run(&["ip", "-n", &self.netns, "-j", "addr", "show", "dev", dev]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mac = v[0]["address"].as_str().unwrap_or_default().to_owned();
        Some((
            mac,
            v[0]["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["family"] == "inet")
                .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
                .collect(),
        ))
    }

    fn cleanup(&self) {
        let _ = run(&["ip", "netns", "del", &self.netns]);
        let _ = run(&["ip", "link", "del", &self.veth]);
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Builds the driver with the Go toolchain, offline, against the system's libcni.
fn build_driver(dir: &Path) -> PathBuf {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/libcni");
    let out = dir.join("libcni-driver");
    let gopath = format!("{}:/usr/share/gocode", dir.join("gopath").display());
    let res = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(src)
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOPATH", gopath)
        .env("GOCACHE", dir.join("gocache"))
        .output()
        .expect("spawn go build");
    assert!(
        res.status.success(),
        "go build of the libcni driver failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    out
}

/// One libcni invocation; `Ok(stdout)` or `Err(stderr)`.
struct Driver {
    bin: PathBuf,
    conf_dir: PathBuf,
    cni_path: PathBuf,
    cache_dir: PathBuf,
    netns: String,
}

impl Driver {
    async fn call(&self, verb: &str, name: &str, cid: &str, pod: &str) -> Result<String, String> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("-verb")
            .arg(verb)
            .arg("-confdir")
            .arg(&self.conf_dir)
            .arg("-name")
            .arg(name)
            .arg("-netns")
            .arg(&self.netns)
            .arg("-id")
            .arg(cid)
            .arg("-path")
            .arg(&self.cni_path)
            .arg("-cachedir")
            .arg(&self.cache_dir)
            .arg("-args")
            .arg(format!(
                "IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid}"
            ));
        let out = cmd.output().await.expect("spawn the libcni driver");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ))
        }
    }
}

async fn start_lab() -> (LabHandle, kube::Client) {
    let lab = LabServer::start(LabOptions::default()).await.expect("lab server");
    let client = lab.client().await.expect("lab client");
    let crds: kube::Api<CustomResourceDefinition> = kube::Api::all(client.clone());
    for (_, crd) in danm_api::crd::all() {
        crds.create(&PostParams::default(), &serde_json::from_value(crd).unwrap())
            .await
            .expect("CRD");
    }
    (lab, client)
}

/// Creates a DanmNet as the webhook would leave it (pool defaults and bitmaps applied).
async fn danmnet(client: &kube::Client, name: &str, spec: Value) -> Network {
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

async fn pod(client: &kube::Client, name: &str, interfaces: Value) {
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

async fn danmeps(client: &kube::Client) -> Vec<DanmEp> {
    kube::Api::<DanmEp>::namespaced(client.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libcni_adds_checks_and_deletes_a_danm_macvlan_interface_for_every_cni_version() {
    if !is_root() {
        eprintln!("skipping: needs root (network namespaces and links)");
        return;
    }
    if Command::new("go").arg("version").output().is_err() {
        eprintln!("skipping: no `go` toolchain (scripts/setup.sh installs golang-go)");
        return;
    }
    if !Path::new(LIBCNI_SRC).exists() {
        eprintln!(
            "skipping: no libcni sources at {LIBCNI_SRC} (scripts/setup.sh installs golang-github-appc-cni-dev)"
        );
        return;
    }
    let Some(plugins) = plugin_dir() else {
        eprintln!("skipping: the backend plugins are not built (run `make guests`)");
        return;
    };

    let tmp = tempfile::Builder::new().prefix("danm-libcni").tempdir().unwrap();
    let driver_bin = build_driver(tmp.path());
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_danm"), bin_dir.join("danm")).unwrap();
    let conf_dir = tmp.path().join("net.d");
    std::fs::create_dir_all(&conf_dir).unwrap();

    let (lab, client) = start_lab().await;
    let links = Links::new("lcv");
    let net = danmnet(
        &client,
        "lcnet",
        json!({"NetworkID": "lcnet", "NetworkType": "macvlan",
               "Options": {"host_device": links.veth, "cidr": "10.77.0.0/24"}}),
    )
    .await;
    pod(&client, "lcpod", json!([{"network": "lcnet", "ip": "dynamic"}])).await;

    let driver = Driver {
        bin: driver_bin,
        conf_dir: conf_dir.clone(),
        cni_path: bin_dir,
        cache_dir: tmp.path().join("cache"),
        netns: links.netns_path(),
    };
    for version in VERSIONS {
        let name = format!("danm-{}", version.replace('.', ""));
        let conflist = json!({
            "cniVersion": version, "name": name,
            "plugins": [{"type": "danm", "kubeconfig": lab.kubeconfig_path(), "pluginDir": plugins,
                         "cacheDir": tmp.path().join("wasm-cache"), "cniDir": tmp.path().join("cni-dir"),
                         "logLevel": "debug", "logFile": tmp.path().join("danm.log")}]
        });
        std::fs::write(conf_dir.join(format!("{name}.conflist")), conflist.to_string()).unwrap();
        let cid = format!("lc-{version}");

        // VERSION through libcni: the list's version is among those danm reports.
        let validate = driver
            .call("validate", &name, &cid, "lcpod")
            .await
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        let validate: Value = serde_json::from_str(&validate).unwrap();
        assert!(
            validate["supportedVersions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v == version),
            "{version}: {validate}"
        );

        // ADD: libcni parsed danm's result as a `version` result.
        let out = driver
            .call("add", &name, &cid, "lcpod")
            .await
            .unwrap_or_else(|e| panic!("ADD {version}: {e}"));
        let result: Value = serde_json::from_str(&out).unwrap();
        eprintln!("libcni ADD {version}: {out}");
        assert_eq!(result["cniVersion"], version, "{result}");
        let eps = danmeps(&client).await;
        assert_eq!(eps.len(), 1, "{version}: one DanmEp after ADD");
        let addr = eps[0].spec.interface.address.clone();
        assert!(
            addr.starts_with("10.77.0.") && addr.ends_with("/24"),
            "{version}: DanmEp address {addr}"
        );
        let ips = result["ips"]
            .as_array()
            .unwrap_or_else(|| panic!("{version}: no ips in {result}"));
        assert_eq!(ips.len(), 1, "{result}");
        assert_eq!(ips[0]["address"], addr.as_str(), "{result}");
        if version.starts_with("0.") {
            assert_eq!(
                ips[0]["version"], "4",
                "{version}: 0.x results carry the IP version: {result}"
            );
        } else {
            assert!(
                ips[0].get("version").is_none(),
                "{version}: 1.x results have no IP version: {result}"
            );
        }
        let ifaces = result["interfaces"]
            .as_array()
            .unwrap_or_else(|| panic!("{version}: no interfaces in {result}"));
        let idx = ips[0]["interface"].as_u64().expect("the IP names its interface") as usize;
        assert_eq!(ifaces[idx]["name"], "eth0", "{result}");
        assert_eq!(ifaces[idx]["sandbox"], links.netns_path().as_str(), "{result}");
        let mac = ifaces[idx]["mac"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            links.link("eth0"),
            Some((mac, vec![addr.clone()])),
            "{version}: eth0 in the pod netns"
        );

        // CHECK (libcni refuses it below 0.4.0 itself), using libcni's cached ADD result as prevResult.
        if version != "0.3.1" {
            driver
                .call("check", &name, &cid, "lcpod")
                .await
                .unwrap_or_else(|e| panic!("CHECK {version}: {e}"));
        } else {
            let refused = driver
                .call("check", &name, &cid, "lcpod")
                .await
                .expect_err("libcni has no CHECK for 0.3.1");
            assert!(
                refused.contains("does not support the CHECK command"),
                "{refused}"
            );
        }

        // DEL, twice (idempotent): the link, the DanmEp and the address are gone.
        driver
            .call("del", &name, &cid, "lcpod")
            .await
            .unwrap_or_else(|e| panic!("DEL {version}: {e}"));
        driver
            .call("del", &name, &cid, "lcpod")
            .await
            .unwrap_or_else(|e| panic!("second DEL {version}: {e}"));
        assert_eq!(links.link("eth0"), None, "{version}: eth0 is gone after DEL");
        assert!(
            danmeps(&client).await.is_empty(),
            "{version}: the DanmEp is gone after DEL"
        );
        let now: Network = kube::Api::namespaced_with(client.clone(), NS, &NetworkKind::DanmNet)
            .get("lcnet")
            .await
            .unwrap();
        assert_eq!(
            now.spec.options.alloc, net.spec.options.alloc,
            "{version}: the address is released"
        );
    }
    lab.shutdown().await;
}
