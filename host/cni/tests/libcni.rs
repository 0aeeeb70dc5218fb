//! Conformance with a real CNI runtime library: a small Go driver (conformance/driver.go), built offline against
//! Debian's libcni, runs ADD, CHECK (from 0.4.0) and DEL of danm for each supported cniVersion, so libcni's own
//! version checks and result parsing judge danm's output. Needs root, `go` and golang-github-appc-cni-dev.

mod common;

use std::path::Path;
use std::process::Command;

use common::lab::{lab, plugin_link_dir};
use common::{Netns, cmd, cmd_ok};
use danm_api::NetworkKind;
use serde_json::{Value, json};

const DANM: &str = env!("CARGO_BIN_EXE_danm");
const FAKEIPAM: &str = env!("CARGO_BIN_EXE_fakeipam");
const LIBCNI: &str = "/usr/share/gocode/src/github.com/containernetworking/cni/libcni";

/// The libcni versions that know a spec version (Debian's libcni 1.1.x knows up to 1.0.0).
fn libcni_knows(version: &str) -> bool {
    std::fs::read_to_string("/usr/share/gocode/src/github.com/containernetworking/cni/pkg/version/version.go")
        .map(|s| s.contains(&format!("\"{version}\"")))
        .unwrap_or(false)
}

fn build_driver(dir: &Path) -> Option<std::path::PathBuf> {
    let src = danm_testkit::fixtures::workspace_dir().join("host/cni/conformance/driver.go");
    let out = dir.join("driver");
    let status = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(&src)
        .env("GO111MODULE", "off")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", dir.join("gocache"))
        .env(
            "GOPATH",
            format!("{}:/usr/share/gocode", dir.join("gopath").display()),
        )
        .status()
        .ok()?;
    status.success().then_some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_libcni_runs_add_check_and_del_of_danm_for_every_version_it_knows() {
    if !common::root_and(&[LIBCNI]) {
        return;
    }
    if plugin_link_dir().is_none() {
        common::skip_without_plugins();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(driver) = build_driver(tmp.path()) else {
        danm_testkit::fixtures::skip("the Go driver does not build here (no go toolchain?)");
        return;
    };
    let tag = format!("{}", std::process::id() % 10000);
    let (parent, peer) = (format!("dl{tag}"), format!("dm{tag}"));
    cmd_ok(&[
        "ip", "link", "add", &parent, "type", "veth", "peer", "name", &peer,
    ]);
    cmd_ok(&["ip", "link", "set", &parent, "up"]);
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(DANM, bin.join("danm")).unwrap();
    std::os::unix::fs::symlink(FAKEIPAM, bin.join("fakeipam")).unwrap();

    let lab = lab().await;
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "default",
        json!({"NetworkID":"lc","NetworkType":"macvlan",
        "Options":{"host_device": parent, "cidr":"10.170.0.0/24","net6":"fd70::/120"}}),
    )
    .await;
    // A delegated interface too: Debian's bridge plugin through bridge.wasm, so libcni's CHECK reaches the bridge
    // plugin's own CHECK (with the ADD result danm kept for it).
    let brid = format!("l{tag}");
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "lcbr",
        json!({"NetworkID": brid, "NetworkType": "bridge", "Options": {"cidr": "10.171.0.0/24"}}),
    )
    .await;
    let ns = Netns::new(&format!("dlc{tag}"));
    let mut tested = Vec::new();
    for (i, v) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        if !libcni_knows(v) {
            eprintln!("libcni here does not know cniVersion {v}; not tested with it");
            continue;
        }
        let pod = format!("lc{i}");
        lab.pod(
            "default",
            &pod,
            Some(json!([{"network":"default","ip":"dynamic","ip6":"dynamic"},{"network":"lcbr","ip":"dynamic"}])),
            &[],
        )
        .await;
        let conflist = tmp.path().join(format!("{i}.conflist"));
        std::fs::write(
            &conflist,
            // The first ADD compiles the plugins into the empty cache inside danm's deadline; a debug build on a busy
            // test machine needs more than the default 10 s for that.
            json!({"cniVersion": v, "name": "danm", "plugins": [{"type": "danm", "kubeconfig": lab.handle.kubeconfig_path(),
                   "pluginDir": plugin_link_dir().unwrap(), "cacheDir": tmp.path().join("cache"), "cniDir": tmp.path(),
                   "resultDir": tmp.path().join("results"), "timeoutSeconds": 120,
                   "logFile": tmp.path().join(format!("{i}.log")), "logLevel": "debug"}]})
            .to_string(),
        )
        .unwrap();
        let cid = format!("libcni{i}");
        let (driver, conflist, nspath, cache, bin, cid2, pod2) = (
            driver.clone(),
            conflist.clone(),
            ns.path.clone(),
            tmp.path().join("libcni-cache"),
            format!("{}:/usr/lib/cni", bin.display()),
            cid.clone(),
            pod.clone(),
        );
        let out = tokio::task::spawn_blocking(move || {
            Command::new(&driver)
                .arg(&conflist)
                .arg(&nspath)
                .arg(&cid2)
                .arg(&cache)
                .arg(&bin)
                .args([
                    "IgnoreUnknown=1",
                    "K8S_POD_NAMESPACE=default",
                    &format!("K8S_POD_NAME={pod2}"),
                ])
                .arg(format!("K8S_POD_INFRA_CONTAINER_ID={cid2}"))
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "libcni {v}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result["cniVersion"], *v);
        assert!(result["ips"].as_array().unwrap().len() == 3, "{result}");
        assert!(
            lab.eps("default").await.is_empty(),
            "DEL through libcni left DanmEps ({v})"
        );
        // From 0.4.0 libcni CHECKs, and danm runs the bridge plugin's own CHECK with the result it kept.
        let log = std::fs::read_to_string(tmp.path().join(format!("{i}.log"))).unwrap();
        let bridge_check = log
            .lines()
            .any(|l| l.contains("running a delegate") && l.contains("bridge") && l.contains("CHECK"));
        assert_eq!(bridge_check, *v != "0.3.1", "bridge CHECK at {v}:\n{log}");
        assert!(
            !tmp.path().join("results").join(&cid).exists(),
            "DEL forgets the kept result ({v})"
        );
        tested.push(*v);
    }
    cmd(&["ip", "link", "del", &parent]);
    cmd(&["ip", "link", "del", &format!("br_{brid}")]);
    assert!(tested.len() >= 3, "libcni tested only {tested:?}");
}
