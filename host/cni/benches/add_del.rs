//! ADD+DEL benchmarks of the `danm` binary, run as kubelet runs it against an in-process lab API server, with the
//! baseline in the same run: Debian's macvlan plugin with static IPAM doing the same interface.
//! Prints medians and ratios. Needs root, /usr/lib/cni and the built plugins; prints why it skips otherwise.
//!
//! `cargo bench -p danm-cni --bench add_del` (DANM_BENCH_ROUNDS, default 60: one macvlan delete waits 11-31 ms for
//! the kernel, so fewer rounds cannot resolve a difference of a few percent; DANM_BENCH_DANM runs another `danm`
//! binary, to compare two builds against the same baseline).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use danm_api::{Network, NetworkKind, NetworkSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use serde_json::{Value, json};

/// The `danm` binary: this build's, or `$DANM_BENCH_DANM`.
fn danm() -> PathBuf {
    std::env::var_os("DANM_BENCH_DANM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_danm")))
}
const FAKEIPAM: &str = env!("CARGO_BIN_EXE_fakeipam");

use danm_testkit::process::{cmd as sh, run_plugin as plugin};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let Some(plugins) = danm_testkit::fixtures::plugins_or_skip() else {
        return;
    };
    if !danm_testkit::fixtures::root_or_skip("network namespaces and links") {
        return;
    }
    if !Path::new("/usr/lib/cni/macvlan").exists() {
        danm_testkit::fixtures::skip("needs /usr/lib/cni/macvlan (containernetworking-plugins)");
        return;
    }
    let rounds: usize = std::env::var("DANM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let tag = std::process::id() % 10000;
    let (parent, peer, ns) = (format!("bp{tag}"), format!("bq{tag}"), format!("bns{tag}"));
    sh(&[
        "ip", "link", "add", &parent, "type", "veth", "peer", "name", &peer,
    ]);
    sh(&["ip", "link", "set", &parent, "up"]);
    sh(&["ip", "netns", "add", &ns]);
    let netns = format!("/var/run/netns/{ns}");
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let danm = danm();
    std::os::unix::fs::symlink(&danm, bin.join("danm")).unwrap();
    std::os::unix::fs::symlink(FAKEIPAM, bin.join("fakeipam")).unwrap();
    let cni_path = format!("{}:/usr/lib/cni", bin.display());

    let (lab, client) = danm_testkit::lab::with_crds().await;
    let mut spec: NetworkSpec = serde_json::from_value(json!({"NetworkID":"bench","NetworkType":"macvlan",
        "Options":{"host_device": parent, "cidr":"10.190.0.0/24"}}))
    .unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    let nets: kube::Api<Network> =
        kube::Api::namespaced_with(client.clone(), "default", &NetworkKind::DanmNet);
    nets.create(
        &PostParams::default(),
        &Network::new(NetworkKind::DanmNet, Some("default"), "bench", spec),
    )
    .await
    .unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
    let mut uids = std::collections::BTreeMap::new();
    for (name, n) in [("one", 1usize), ("eight", 8)] {
        let ifs: Vec<Value> = (0..n)
            .map(|_| json!({"network":"bench","ip":"dynamic"}))
            .collect();
        let pod: Pod = serde_json::from_value(json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":name,"namespace":"default",
            "annotations":{"danm.k8s.io/interfaces": Value::Array(ifs).to_string()}},"spec":{"containers":[{"name":"c","image":"x"}]}}))
        .unwrap();
        let created = pods.create(&PostParams::default(), &pod).await.unwrap();
        uids.insert(name, created.metadata.uid.unwrap_or_default());
    }
    let uids = std::sync::Arc::new(uids);
    let danm_conf =
        json!({"cniVersion":"1.0.0","name":"danm","type":"danm","kubeconfig": lab.kubeconfig_path(),
        "pluginDir": plugins, "cacheDir": tmp.path().join("cache"),
        "logFile": std::env::var("DANM_BENCH_LOG").unwrap_or_else(|_| "/dev/null".into()),
        "logLevel": std::env::var("DANM_BENCH_LOG_LEVEL").unwrap_or_else(|_| "warn".into())})
        .to_string();

    let danm_round = |pod: &'static str| {
        let (conf, path, netns, uids, danm) = (
            danm_conf.clone(),
            cni_path.clone(),
            netns.clone(),
            uids.clone(),
            danm.clone(),
        );
        async move {
            tokio::task::spawn_blocking(move || {
                // As containerd passes them, the pod UID included.
                let args = format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};\
                                    K8S_POD_INFRA_CONTAINER_ID=b{pod};K8S_POD_UID={}",
                    uids[pod]
                );
                let env = [
                    ("CNI_CONTAINERID", "b"),
                    ("CNI_NETNS", netns.as_str()),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_ARGS", args.as_str()),
                    ("CNI_PATH", path.as_str()),
                ];
                let t = Instant::now();
                let add = plugin(&danm, "ADD", &env, &conf);
                assert!(add.status.success(), "{}", String::from_utf8_lossy(&add.stdout));
                let t_add = t.elapsed();
                let del = plugin(&danm, "DEL", &env, &conf);
                assert!(del.status.success());
                (t_add, t.elapsed())
            })
            .await
            .unwrap()
        }
    };
    let debian_round = || {
        let conf =
            json!({"cniVersion":"1.0.0","name":"deb","type":"macvlan","master": parent,"mode":"bridge",
            "ipam":{"type":"static","addresses":[{"address":"10.191.0.5/24"}]}})
            .to_string();
        let env = [
            ("CNI_CONTAINERID", "d"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ];
        let t = Instant::now();
        assert!(
            plugin(Path::new("/usr/lib/cni/macvlan"), "ADD", &env, &conf)
                .status
                .success()
        );
        let t_add = t.elapsed();
        assert!(
            plugin(Path::new("/usr/lib/cni/macvlan"), "DEL", &env, &conf)
                .status
                .success()
        );
        (t_add, t.elapsed())
    };

    danm_round("one").await; // warms the plugin cache
    let (mut ours, mut theirs, mut eight) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ours_add, mut theirs_add) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (a, o) = danm_round("one").await;
        ours_add.push(a);
        ours.push(o);
        let (a, t) = debian_round();
        theirs_add.push(a);
        theirs.push(t);
        eight.push(danm_round("eight").await.1);
    }
    let (o, t, e) = (median(ours), median(theirs), median(eight));
    let (oa, ta) = (median(ours_add), median(theirs_add));
    println!("ADD+DEL, one macvlan interface, median of {rounds}:");
    println!("  danm (lab API IPAM + DanmEp + wasm translation + native netlink): {o:?} (ADD {oa:?})");
    println!("  Debian macvlan + static IPAM:                                     {t:?} (ADD {ta:?})");
    println!(
        "  ratio danm/Debian = {:.2} (target <= 1.0)",
        o.as_secs_f64() / t.as_secs_f64()
    );
    println!(
        "ADD+DEL, 8 interfaces vs 1 (danm): {e:?} vs {o:?}, ratio = {:.2} (target <= 2.5)",
        e.as_secs_f64() / o.as_secs_f64()
    );
    sh(&["ip", "netns", "del", &ns]);
    sh(&["ip", "link", "del", &parent]);
    let _ = std::fs::remove_dir_all(&plugins);
}
