//! netns tests (root): the `danm` binary invoked exactly as kubelet invokes it, against the in-process lab API
//! server, on real namespaces and links of this kernel; and a differential test of the native macvlan backend
//! against Debian's reference macvlan plugin.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::lab::{Lab, lab, plugin_link_dir};
use common::{HostLinks, Netns, cmd, cmd_ok, links_in, run_plugin, veth_and_vxlan};
use danm_api::NetworkKind;
use danm_cni::journal::Journal;
use danm_cni::native::{self, Sysfs};
use danm_netlink::{LinkKind, Netlink, RtNetlink, TABLE_MAIN};
use serde_json::{Value, json};

const DANM: &str = env!("CARGO_BIN_EXE_danm");
const FAKEIPAM: &str = env!("CARGO_BIN_EXE_fakeipam");

fn ready() -> bool {
    if !common::root_and(&["/usr/lib/cni/bridge"]) {
        return false;
    }
    if plugin_link_dir().is_none() {
        common::skip_without_plugins();
        return false;
    }
    true
}

/// A node: a bin dir with danm and fakeipam, a cni dir, a cache dir, and the danm config.
struct Node {
    dir: tempfile::TempDir,
    config: Value,
}

/// The plugin cache every node of this test binary shares, compiled once here: danm counts plugin loading
/// against its deadline, and compiling all plugins in a debug build on a busy machine can take longer than that.
fn warm_cache() -> PathBuf {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        common::node::warm_plugin_cache(&plugin_link_dir().unwrap());
    });
    common::node::plugin_cache_dir()
}

impl Node {
    fn new(lab: &Lab) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(DANM, bin.join("danm")).unwrap();
        std::os::unix::fs::symlink(FAKEIPAM, bin.join("fakeipam")).unwrap();
        let config = json!({"cniVersion":"1.0.0","name":"danm","type":"danm",
            "kubeconfig": lab.handle.kubeconfig_path(), "pluginDir": plugin_link_dir().unwrap(),
            "cacheDir": warm_cache(), "cniDir": dir.path(), "logFile": dir.path().join("danm.log"),
            "resultDir": dir.path().join("results")});
        Node { dir, config }
    }

    fn cni_path(&self) -> String {
        format!("{}:/usr/lib/cni", self.dir.path().join("bin").display())
    }

    /// Runs danm as kubelet does; returns (exit ok, stdout JSON or Null).
    async fn danm(&self, command: &str, pod: &str, cid: &str, netns: &str) -> (bool, Value) {
        let args = format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid}"
        );
        let (path, config) = (self.cni_path(), self.config.to_string());
        let (cid, netns) = (cid.to_owned(), netns.to_owned());
        let command = command.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            run_plugin(
                Path::new(DANM),
                &command,
                &[
                    ("CNI_CONTAINERID", &cid),
                    ("CNI_NETNS", &netns),
                    ("CNI_IFNAME", "eth0"),
                    ("CNI_ARGS", &args),
                    ("CNI_PATH", &path),
                ],
                &config,
            )
        })
        .await
        .unwrap();
        let v = if out.stdout.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap()
        };
        if !out.status.success() {
            eprintln!("danm stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        (out.status.success(), v)
    }
}

/// A host veth pair whose end `name` (up) parents test macvlans; the pair goes when the guard drops.
fn veth_parent(name: String, peer: String) -> (HostLinks, String) {
    let guard = HostLinks(vec![name.clone()]);
    cmd_ok(&["ip", "link", "add", &name, "type", "veth", "peer", "name", &peer]);
    cmd_ok(&["ip", "link", "set", &name, "up"]);
    (guard, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_two_pods_with_macvlan_vxlan_and_bridge_interfaces_ping_each_other_and_del_leaves_nothing() {
    if !ready() {
        return;
    }
    let tag = format!("{}", std::process::id() % 10000);
    let (parent, peer, vxid, brid) = (
        format!("dp{tag}"),
        format!("dq{tag}"),
        format!("vx{tag}"),
        format!("b{tag}"),
    );
    let vxlink = format!("vx_{vxid}");
    let _host = HostLinks(vec![parent.clone(), vxlink.clone(), format!("br_{brid}")]);
    veth_and_vxlan(&parent, &peer, &vxlink, 50);

    let lab = lab().await;
    let node = Node::new(&lab);
    let mac = lab
        .network(NetworkKind::DanmNet, "default", "mac", json!({"NetworkID":"mac","NetworkType":"macvlan",
            "Options":{"host_device": parent, "cidr":"10.131.0.0/24","routes":{"10.140.0.0/24":"10.131.0.254"},
                       "rt_tables": 20}}))
        .await;
    let vx = lab
        .network(
            NetworkKind::DanmNet,
            "default",
            "vx",
            json!({"NetworkID": vxid,"NetworkType":"macvlan",
            "Options":{"host_device": parent, "vxlan": 50, "cidr":"10.132.0.0/24","container_prefix":"vx"}}),
        )
        .await;
    let br = lab
        .network(
            NetworkKind::DanmNet,
            "default",
            "br",
            json!({"NetworkID": brid,"NetworkType":"bridge",
            "Options":{"cidr":"10.133.0.0/24","net6":"fd33::/120"}}),
        )
        .await;
    let annotation = json!([{"network":"mac","ip":"dynamic","proutes":{"10.150.0.0/24":"10.131.0.254"}},
                            {"network":"vx","ip":"dynamic"},{"network":"br","ip":"dynamic","ip6":"dynamic"}]);
    let pods = [Netns::new(&format!("dpa{tag}")), Netns::new(&format!("dpb{tag}"))];
    let mut results = Vec::new();
    for (i, ns) in pods.iter().enumerate() {
        let name = format!("pod{i}");
        lab.pod("default", &name, Some(annotation.clone()), &[("app", "demo")])
            .await;
        let (ok, out) = node.danm("ADD", &name, &format!("cid{i}"), &ns.path).await;
        assert!(ok, "ADD {name}: {out}");
        results.push(out);
    }
    let names: Vec<&str> = results[0]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("sandbox").is_some())
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eth0", "vx1", "eth2"], "{}", results[0]);

    let a = &pods[0].name;
    let show = |dev: &str| cmd_ok(&["ip", "-n", a, "-d", "addr", "show", "dev", dev]);
    assert!(
        show("eth0").contains("macvlan mode bridge") && show("eth0").contains("10.131.0.1/24"),
        "{}",
        show("eth0")
    );
    assert!(
        show("vx1").contains("macvlan") && show("vx1").contains("10.132.0.1/24"),
        "{}",
        show("vx1")
    );
    assert!(
        show("eth2").contains("veth")
            && show("eth2").contains("10.133.0.")
            && show("eth2").contains("fd33::"),
        "{}",
        show("eth2")
    );
    let vx1 = cmd_ok(&["ip", "-n", a, "-o", "link", "show", "dev", "vx1"]);
    let vxidx = cmd_ok(&["cat", &format!("/sys/class/net/{vxlink}/ifindex")]);
    assert!(
        vx1.contains(&format!("vx1@if{}", vxidx.trim())),
        "vx1 is on {vxlink}: {vx1}"
    );
    // The network names no MTU: the interface inherits its VxLAN parent's (1500 minus the VxLAN overhead), where
    // DANM's fixed 1500 failed.
    assert!(
        vx1.contains("mtu 1450"),
        "vx1 inherits the VxLAN link's MTU: {vx1}"
    );
    let routes = cmd_ok(&["ip", "-n", a, "route", "show"]);
    assert!(
        routes.contains("10.140.0.0/24 via 10.131.0.254 dev eth0"),
        "{routes}"
    );
    let rules = cmd_ok(&["ip", "-n", a, "rule", "show"]);
    assert!(rules.contains("from 10.131.0.0/24 lookup 20"), "{rules}");
    let t20 = cmd_ok(&["ip", "-n", a, "route", "show", "table", "20"]);
    assert!(t20.contains("10.150.0.0/24 via 10.131.0.254 dev eth0"), "{t20}");
    assert_eq!(
        cmd_ok(&[
            "ip",
            "netns",
            "exec",
            a,
            "sysctl",
            "-n",
            "net.ipv6.conf.eth0.disable_ipv6"
        ])
        .trim(),
        "1"
    );
    assert_eq!(
        cmd_ok(&[
            "ip",
            "netns",
            "exec",
            a,
            "sysctl",
            "-n",
            "net.ipv6.conf.eth2.accept_ra"
        ])
        .trim(),
        "0"
    );
    assert_eq!(lab.eps("default").await.len(), 6);

    // Traffic: pod0 -> pod1 over macvlan, over the vxlan-parented macvlan, and over the bridge.
    let b_ip = |i: usize| {
        results[1]["ips"][i]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    for i in [0, 1, 2] {
        let target = b_ip(i);
        assert!(
            cmd(&["ip", "netns", "exec", a, "ping", "-c", "1", "-W", "2", &target]),
            "ping {target} from pod0"
        );
    }
    // CHECK passes, including the bridge plugin's own. It runs for pod1, whose ADD was the bridge's last change: the
    // reference bridge plugin's CHECK compares the bridge's MAC with the one in its ADD result, and a Linux bridge
    // takes the lowest MAC of its ports, so pod0's result may predate pod1's port (as under any runtime).
    let (ok, out) = node.danm("CHECK", "pod1", "cid1", &pods[1].path).await;
    assert!(ok, "CHECK: {out}");

    for (i, ns) in pods.iter().enumerate() {
        let (ok, out) = node
            .danm("DEL", &format!("pod{i}"), &format!("cid{i}"), &ns.path)
            .await;
        assert!(ok, "DEL: {out}");
        assert_eq!(
            links_in(&ns.name),
            Vec::<String>::new(),
            "links left in {}",
            ns.name
        );
        assert!(!cmd_ok(&["ip", "-n", &ns.name, "rule", "show"]).contains("lookup 20"));
    }
    assert!(lab.eps("default").await.is_empty());
    for net in [&mac, &vx, &br] {
        let held = lab.holdings(net).await;
        assert_eq!(
            held,
            (net.spec.options.alloc.clone(), net.spec.options.alloc6.clone(), 0)
        );
    }
}

/// A plugin that never returns, in the real CNI process (where each plugin call arms its own timer instead of a
/// ticker thread): ADD fails at the plugin's deadline, naming it, and rolls back the pod's other interface.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_a_spinning_plugin_fails_add_at_its_deadline_and_nothing_is_left() {
    if !ready() {
        return;
    }
    if !plugin_link_dir().unwrap().join("spin.wasm").exists() {
        common::skip_without_plugins();
        return;
    }
    let tag = format!("{}", std::process::id() % 10000);
    let (_host, parent) = veth_parent(format!("sp{tag}"), format!("sq{tag}"));
    let lab = lab().await;
    let node = Node::new(&lab);
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "smac",
        json!({"NetworkID":"smac","NetworkType":"macvlan",
        "Options":{"host_device": parent, "cidr":"10.134.0.0/24"}}),
    )
    .await;
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "spinnet",
        json!({"NetworkID":"spinnet","NetworkType":"spin",
        "Options":{"cidr":"10.135.0.0/24"}}),
    )
    .await;
    let annotation = json!([{"network":"smac","ip":"dynamic"},{"network":"spinnet","ip":"dynamic"}]);
    lab.pod("default", "spinpod", Some(annotation), &[]).await;
    let ns = Netns::new(&format!("dsp{tag}"));
    let start = std::time::Instant::now();
    let (ok, out) = node.danm("ADD", "spinpod", "cidspin", &ns.path).await;
    let took = start.elapsed();
    assert!(!ok, "{out}");
    let msg =
        out["msg"].as_str().unwrap_or_default().to_owned() + out["details"].as_str().unwrap_or_default();
    assert!(msg.contains("spin.wasm") && msg.contains("deadline"), "{out}");
    // The plugin deadline is 500 ms; the whole ADD (process start, API, rollback) stays well inside seconds.
    assert!(took < std::time::Duration::from_secs(10), "ADD took {took:?}");
    assert!(links_in(&ns.name).is_empty(), "{:?}", links_in(&ns.name));
    let (ok, out) = node.danm("DEL", "spinpod", "cidspin", &ns.path).await;
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_bad_stdin_missing_env_and_a_dead_api_server_are_cni_errors() {
    if !ready() {
        return;
    }
    let env = [
        ("CNI_CONTAINERID", "c"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
    ];
    let out = run_plugin(Path::new(DANM), "ADD", &env, "{not json");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success());
    assert_eq!(v["code"], 6);
    let out = run_plugin(
        Path::new(DANM),
        "ADD",
        &[],
        r#"{"cniVersion":"1.0.0","name":"danm","type":"danm"}"#,
    );
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["code"], 4);
    let out = run_plugin(Path::new(DANM), "VERSION", &[], "");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );

    // An API server that is down: ADD fails with the API code; DEL still succeeds.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc");
    std::fs::write(&kc, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n").unwrap();
    let conf = json!({"cniVersion":"1.0.0","name":"danm","type":"danm","kubeconfig": kc, "timeoutSeconds": 2,
                      "pluginDir": plugin_link_dir().unwrap(), "cacheDir": dir.path().join("cache")})
    .to_string();
    let env = [
        ("CNI_CONTAINERID", "c"),
        ("CNI_NETNS", "/var/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        (
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c",
        ),
    ];
    let out = run_plugin(Path::new(DANM), "ADD", &env, &conf);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], 101, "{v}");
    assert!(run_plugin(Path::new(DANM), "DEL", &env, &conf).status.success());
    let out = run_plugin(Path::new(DANM), "STATUS", &[], &conf.replace("1.0.0", "1.1.0"));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["code"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_native_macvlan_matches_debians_macvlan_plugin_for_the_same_config() {
    if !ready() || !common::root_and(&["/usr/lib/cni/macvlan"]) {
        return;
    }
    let tag = format!("{}", std::process::id() % 10000);
    let (_host, parent) = veth_parent(format!("df{tag}"), format!("dg{tag}"));
    let ours = Netns::new(&format!("dfo{tag}"));
    let theirs = Netns::new(&format!("dft{tag}"));
    for mtu in [0u32, 1400] {
        let mut conf = json!({"cniVersion":"1.0.0","name":"diff","type":"macvlan","master": parent,"mode":"bridge",
            "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.160.0.5/24","version":4},{"ipcidr":"fd60::5/64","version":6}]}});
        if mtu > 0 {
            conf["mtu"] = json!(mtu);
        }
        // Debian's plugin, with fakeipam as its IPAM.
        let bin = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(FAKEIPAM, bin.path().join("fakeipam")).unwrap();
        let path = format!("{}:/usr/lib/cni", bin.path().display());
        let env = [
            ("CNI_CONTAINERID", "c"),
            ("CNI_NETNS", theirs.path.as_str()),
            ("CNI_IFNAME", "net1"),
            ("CNI_PATH", path.as_str()),
        ];
        let out = run_plugin(Path::new("/usr/lib/cni/macvlan"), "ADD", &env, &conf.to_string());
        assert!(out.status.success(), "{out:?}");
        // danm's native backend.
        let nl: Arc<dyn Netlink> = Arc::new(RtNetlink::new());
        let ns_ours = danm_netlink::Netns::path(&ours.path);
        let ns_theirs = danm_netlink::Netns::path(&theirs.path);
        let cfg = native::parse(&conf).unwrap().unwrap();
        native::add(
            nl.as_ref(),
            &Sysfs::default(),
            &ns_ours,
            "net1",
            &cfg,
            &Journal::default(),
            "ep-diff",
        )
        .await
        .unwrap();

        let (a, b) = (
            nl.link(&ns_ours, "net1").await.unwrap(),
            nl.link(&ns_theirs, "net1").await.unwrap(),
        );
        assert_eq!(a.kind, b.kind);
        assert!(matches!(a.kind, LinkKind::Macvlan { .. }));
        assert_eq!(a.mtu, b.mtu, "mtu {mtu}");
        assert_eq!(a.parent_index, b.parent_index, "same parent");
        assert_eq!(a.up, b.up);
        let addrs = |ns: &danm_netlink::Netns| {
            let nl = nl.clone();
            let ns = ns.clone();
            async move {
                let mut v: Vec<String> = nl
                    .addresses(&ns, "net1")
                    .await
                    .unwrap()
                    .iter()
                    .filter(|a| !a.addr.ip().to_string().starts_with("fe80"))
                    .map(|a| a.addr.to_string())
                    .collect();
                v.sort();
                v
            }
        };
        assert_eq!(addrs(&ns_ours).await, addrs(&ns_theirs).await);
        let routes = |ns: danm_netlink::Netns| {
            let nl = nl.clone();
            async move {
                let mut v: Vec<String> = nl
                    .routes(&ns, TABLE_MAIN)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| format!("{} {:?} {:?}", r.dst, r.gateway, r.dev))
                    .collect();
                v.sort();
                v
            }
        };
        assert_eq!(routes(ns_ours.clone()).await, routes(ns_theirs.clone()).await);
        let out = run_plugin(Path::new("/usr/lib/cni/macvlan"), "DEL", &env, &conf.to_string());
        assert!(out.status.success());
        native::remove(nl.as_ref(), &ns_ours, "net1", false, None)
            .await
            .unwrap();
        nl.forget_netns(&ns_ours);
        nl.forget_netns(&ns_theirs);
        let _ = PathBuf::new();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_danm_asked_for_1_1_0_runs_debians_bridge_at_1_0_0_through_add_check_and_del() {
    if !ready() {
        return;
    }
    // The premise: Debian's bridge does not speak 1.1.0.
    let out = run_plugin(
        Path::new("/usr/lib/cni/bridge"),
        "VERSION",
        &[],
        r#"{"cniVersion":"1.1.0"}"#,
    );
    let versions: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !versions["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("1.1.0")),
        "{versions}"
    );
    let tag = format!("{}", std::process::id() % 10000);
    let brid = format!("v{tag}");
    let _host = HostLinks(vec![format!("br_{brid}")]);
    let lab = lab().await;
    let mut node = Node::new(&lab);
    node.config["cniVersion"] = json!("1.1.0");
    let br = lab
        .network(
            NetworkKind::DanmNet,
            "default",
            "br11",
            json!({"NetworkID": brid,"NetworkType":"bridge","Options":{"cidr":"10.134.0.0/24","net6":"fd34::/120"}}),
        )
        .await;
    lab.pod(
        "default",
        "pod11",
        Some(json!([{"network":"br11","ip":"dynamic","ip6":"dynamic"}])),
        &[],
    )
    .await;
    let ns = Netns::new(&format!("dv{tag}"));
    let (ok, out) = node.danm("ADD", "pod11", "cid11", &ns.path).await;
    assert!(ok, "ADD: {out}");
    assert_eq!(out["cniVersion"], "1.1.0", "{out}");
    let ips: Vec<&str> = out["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["address"].as_str().unwrap())
        .collect();
    assert!(
        ips.iter().any(|a| a.starts_with("10.134.0.")) && ips.iter().any(|a| a.starts_with("fd34::")),
        "{out}"
    );
    let eth0 = cmd_ok(&["ip", "-n", &ns.name, "-d", "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains("veth") && eth0.contains("10.134.0."), "{eth0}");
    // The bridge plugin's own result is kept, at the version it ran.
    let kept = node.dir.path().join("results/cid11/eth0.json");
    let added: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(added["cniVersion"], "1.0.0", "{added}");
    assert!(
        added["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == format!("br_{brid}").as_str()),
        "{added}"
    );
    let (ok, out) = node.danm("CHECK", "pod11", "cid11", &ns.path).await;
    assert!(ok, "CHECK: {out}");
    // Something only the bridge plugin's CHECK looks at: its bridge on the host.
    cmd_ok(&["ip", "link", "del", &format!("br_{brid}")]);
    let (ok, out) = node.danm("CHECK", "pod11", "cid11", &ns.path).await;
    assert!(!ok, "CHECK without the bridge: {out}");
    let msg = out.to_string();
    assert!(
        msg.contains("bridge") && msg.contains("CHECK") && msg.contains("eth0"),
        "{msg}"
    );
    let (ok, out) = node.danm("DEL", "pod11", "cid11", &ns.path).await;
    assert!(ok, "DEL: {out}");
    assert!(!kept.exists(), "DEL forgets the kept result");
    assert_eq!(links_in(&ns.name), Vec::<String>::new());
    assert!(lab.eps("default").await.is_empty());
    assert_eq!(
        lab.holdings(&br).await,
        (br.spec.options.alloc.clone(), br.spec.options.alloc6.clone(), 0)
    );
}

/// The NPWG spec's examples on Debian's reference plugins (behaviour §2.1): a macvlan NAD with the static IPAM given
/// the element's `ips` and `mac`, a bridge NAD with host-local, and a conflist NAD (macvlan + tuning) in another
/// namespace selected as `<namespace>/<name>@<ifname>`; two pods (the JSON form and the comma form) next to their
/// danm eth0, links and addresses as asked, network-status listing them, traffic between the pods over the bridge
/// and the conflist's macvlan, and DEL leaving no link, DanmEp or host-local lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_npwg_nads_on_debians_plugins_macvlan_static_bridge_host_local_and_a_conflist() {
    if !common::root_and(&[
        "/usr/lib/cni/macvlan",
        "/usr/lib/cni/static",
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/usr/lib/cni/tuning",
    ]) || !ready()
    {
        return;
    }
    let tag = format!("{}", std::process::id() % 10000);
    let (_host, parent) = veth_parent(format!("np{tag}"), format!("nq{tag}"));
    // The peer up too: macvlans pass traffic between each other only on a parent with carrier.
    cmd_ok(&["ip", "link", "set", &format!("nq{tag}"), "up"]);
    let bridge = format!("npbr{tag}");
    let _bridge = HostLinks(vec![bridge.clone()]);
    // The bridge made here with a MAC of its own: otherwise Linux gives it the lowest MAC of its ports, which changes
    // as pods join, and the reference bridge plugin's CHECK of an earlier pod would compare it with a stale one.
    cmd_ok(&["ip", "link", "add", &bridge, "type", "bridge"]);
    cmd_ok(&["ip", "link", "set", &bridge, "address", "02:42:0a:ab:00:01"]);
    let leases = tempfile::tempdir().unwrap();
    let lab = lab().await;
    let node = Node::new(&lab);
    lab.namespace("other").await;
    let dflt = lab
        .network(
            NetworkKind::DanmNet,
            "default",
            "default",
            json!({"NetworkID":"default","NetworkType":"macvlan",
                   "Options":{"host_device": parent, "cidr":"10.169.0.0/24"}}),
        )
        .await;
    let nads: kube::Api<danm_api::NetworkAttachmentDefinition> =
        kube::Api::namespaced(lab.client.clone(), "default");
    let other: kube::Api<danm_api::NetworkAttachmentDefinition> =
        kube::Api::namespaced(lab.client.clone(), "other");
    let nad = |name: &str, config: Value| -> danm_api::NetworkAttachmentDefinition {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"config": config.to_string()}}))
            .unwrap()
    };
    let pp = kube::api::PostParams::default();
    nads.create(
        &pp,
        &nad(
            "macvlan-conf",
            json!({"cniVersion":"1.0.0","name":"macvlan-conf","type":"macvlan","master": parent,"mode":"bridge",
                   "capabilities":{"ips":true,"mac":true},"ipam":{"type":"static"}}),
        ),
    )
    .await
    .unwrap();
    nads.create(
        &pp,
        &nad(
            "br-hl",
            json!({"cniVersion":"1.0.0","name":"br-hl","type":"bridge","bridge": bridge,
                   "ipam":{"type":"host-local","subnet":"10.171.0.0/24","dataDir": leases.path()}}),
        ),
    )
    .await
    .unwrap();
    other
        .create(
            &pp,
            &nad(
                "chain",
                json!({"cniVersion":"1.0.0","name":"chain","plugins":[
                    {"type":"macvlan","master": parent,"mode":"bridge",
                     "ipam":{"type":"host-local","subnet":"10.172.0.0/24","dataDir": leases.path()}},
                    {"type":"tuning","mtu":1400}]}),
            ),
        )
        .await
        .unwrap();
    let annotated = |pod: &str, value: &str| {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": pod, "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": value}},
            "spec": {"containers": [{"name": "c", "image": "pause"}]}
        }))
        .unwrap();
        pod
    };
    let pods_api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(lab.client.clone(), "default");
    pods_api
        .create(
            &pp,
            &annotated(
                "npwg0",
                r#"[{"name":"macvlan-conf","interface":"data0","ips":["10.170.0.5/24"],"mac":"c2:b0:57:49:47:f1"},
                    {"name":"br-hl"},{"name":"chain","namespace":"other","interface":"ext0"}]"#,
            ),
        )
        .await
        .unwrap();
    pods_api
        .create(&pp, &annotated("npwg1", "br-hl, other/chain@ext0"))
        .await
        .unwrap();
    let pods = [Netns::new(&format!("npa{tag}")), Netns::new(&format!("npb{tag}"))];
    let mut results = Vec::new();
    for (i, ns) in pods.iter().enumerate() {
        let (ok, out) = node
            .danm("ADD", &format!("npwg{i}"), &format!("ncid{i}"), &ns.path)
            .await;
        assert!(ok, "ADD npwg{i}: {out}");
        results.push(out);
    }
    let sandboxed = |r: &Value| -> Vec<String> {
        r["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i.get("sandbox").is_some())
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        sandboxed(&results[0]),
        ["eth0", "data0", "net2", "ext0"],
        "{}",
        results[0]
    );
    assert_eq!(sandboxed(&results[1]), ["eth0", "net1", "ext0"], "{}", results[1]);

    let a = &pods[0].name;
    let show = |ns: &str, dev: &str| cmd_ok(&["ip", "-n", ns, "-d", "addr", "show", "dev", dev]);
    let data0 = show(a, "data0");
    assert!(data0.contains("macvlan mode bridge"), "{data0}");
    assert!(
        data0.contains("10.170.0.5/24"),
        "the element's ips through the static IPAM: {data0}"
    );
    assert!(data0.contains("c2:b0:57:49:47:f1"), "the element's mac: {data0}");
    let net2 = show(a, "net2");
    assert!(net2.contains("veth") && net2.contains("10.171.0."), "{net2}");
    let ext0 = show(a, "ext0");
    assert!(ext0.contains("macvlan") && ext0.contains("10.172.0."), "{ext0}");
    assert!(
        ext0.contains("mtu 1400"),
        "the conflist's tuning ran after macvlan: {ext0}"
    );
    let bridged = cmd_ok(&["ip", "-o", "link", "show", "master", &bridge]);
    assert_eq!(
        bridged.lines().count(),
        2,
        "both pods' veths on {bridge}: {bridged}"
    );

    // network-status lists the NPWG attachments after eth0 (name, interface, ips, mac).
    let pod = lab.get_pod("default", "npwg0").await;
    let status: Vec<Value> =
        serde_json::from_str(&pod.metadata.annotations.unwrap()[danm_api::NETWORK_STATUS_ANNOTATION])
            .unwrap();
    let ip_of = |r: &Value, i: usize| {
        r["ips"][i]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let summary: Vec<(String, String, Value)> = status
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["interface"].as_str().unwrap().to_owned(),
                s["ips"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "default/default".to_owned(),
                "eth0".to_owned(),
                json!(["10.169.0.1"])
            ),
            (
                "default/macvlan-conf".to_owned(),
                "data0".to_owned(),
                json!(["10.170.0.5"])
            ),
            (
                "default/br-hl".to_owned(),
                "net2".to_owned(),
                json!([ip_of(&results[0], 2)])
            ),
            (
                "other/chain".to_owned(),
                "ext0".to_owned(),
                json!([ip_of(&results[0], 3)])
            ),
        ],
        "{status:?}"
    );
    assert_eq!(status[0]["default"], true);
    assert_eq!(status[1]["mac"], "c2:b0:57:49:47:f1");
    assert!(
        status[1..].iter().all(|s| s.get("default").is_none()),
        "{status:?}"
    );

    // Traffic from pod 0 to pod 1 over the bridge NAD and over the conflist's macvlan.
    for (i, via) in [(1, "bridge"), (2, "conflist macvlan")] {
        let target = ip_of(&results[1], i);
        assert!(
            cmd(&["ip", "netns", "exec", a, "ping", "-c", "1", "-W", "2", &target]),
            "ping {target} ({via}) from npwg0"
        );
    }
    assert_eq!(lab.eps("default").await.len(), 7, "one DanmEp per interface");
    // CHECK passes: danm's checks of each NPWG interface and the NAD plugins' own (macvlan, static, host-local,
    // tuning, bridge), given the config and result of ADD, for both pods (the bridge keeps its MAC, see above). Then
    // it notices an address gone from a conflist's interface.
    let (ok, out) = node.danm("CHECK", "npwg1", "ncid1", &pods[1].path).await;
    assert!(ok, "CHECK npwg1: {out}");
    let (ok, out) = node.danm("CHECK", "npwg0", "ncid0", &pods[0].path).await;
    assert!(
        ok,
        "CHECK npwg0 (static IPAM given the element's ips again): {out}"
    );
    let ext0 = ip_of(&results[1], 2);
    cmd_ok(&[
        "ip",
        "-n",
        &pods[1].name,
        "addr",
        "del",
        &format!("{ext0}/24"),
        "dev",
        "ext0",
    ]);
    let (ok, out) = node.danm("CHECK", "npwg1", "ncid1", &pods[1].path).await;
    assert!(!ok, "CHECK after an address was removed");
    let msg =
        out["msg"].as_str().unwrap_or_default().to_owned() + out["details"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&format!("ext0: address {ext0}/24 is missing")),
        "{out}"
    );
    let leased = || -> Vec<String> {
        walk(leases.path())
            .into_iter()
            .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
            .collect()
    };
    assert_eq!(
        leased().len(),
        4,
        "host-local leased two addresses per pod: {:?}",
        leased()
    );

    for (i, ns) in pods.iter().enumerate() {
        let (ok, out) = node
            .danm("DEL", &format!("npwg{i}"), &format!("ncid{i}"), &ns.path)
            .await;
        assert!(ok, "DEL npwg{i}: {out}");
        assert_eq!(
            links_in(&ns.name),
            Vec::<String>::new(),
            "links left in {}",
            ns.name
        );
    }
    assert!(lab.eps("default").await.is_empty());
    assert_eq!(
        lab.holdings(&dflt).await,
        (
            dflt.spec.options.alloc.clone(),
            dflt.spec.options.alloc6.clone(),
            0
        ),
        "eth0's address released"
    );
    assert!(leased().is_empty(), "host-local leases left: {:?}", leased());
}

/// An NPWG element's `default-route` (behaviour §2.1) on a real namespace: the pod's IPv4 default route, which danm's
/// eth0 installed from its network's routes, goes through the element's gateway on the NAD's interface instead; the
/// IPv6 default route (no IPv6 gateway in the list) stays on eth0; network-status marks the NAD's attachment
/// `default` and no other; CHECK passes and notices the route gone; DEL leaves nothing. A gateway off the
/// attachment's subnet fails the ADD naming the element, and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_npwg_default_route_moves_the_pods_default_route_to_the_nad_interface() {
    if !common::root_and(&["/usr/lib/cni/macvlan", "/usr/lib/cni/static"]) || !ready() {
        return;
    }
    let tag = format!("{}", std::process::id() % 10000);
    let (_host, parent) = veth_parent(format!("rp{tag}"), format!("rq{tag}"));
    let lab = lab().await;
    let node = Node::new(&lab);
    let dflt = lab
        .network(
            NetworkKind::DanmNet,
            "default",
            "default",
            json!({"NetworkID":"default","NetworkType":"macvlan",
                   "Options":{"host_device": parent, "cidr":"10.174.0.0/24","net6":"fd74::/120",
                              "routes":{"0.0.0.0/0":"10.174.0.254"},"routes6":{"::/0":"fd74::fe"}}}),
        )
        .await;
    let nads: kube::Api<danm_api::NetworkAttachmentDefinition> =
        kube::Api::namespaced(lab.client.clone(), "default");
    let pp = kube::api::PostParams::default();
    let nad: danm_api::NetworkAttachmentDefinition = serde_json::from_value(json!({
        "metadata": {"name": "uplink"},
        "spec": {"config": json!({"cniVersion":"1.0.0","name":"uplink","type":"macvlan","master": parent,
                                  "mode":"bridge","capabilities":{"ips":true},"ipam":{"type":"static"}}).to_string()}
    }))
    .unwrap();
    nads.create(&pp, &nad).await.unwrap();
    let pods_api: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(lab.client.clone(), "default");
    // eth0 asks for both families, so it installs both default routes of its network.
    let annotated = |pod: &str, value: &str| -> k8s_openapi::api::core::v1::Pod {
        serde_json::from_value(json!({
            "metadata": {"name": pod, "namespace": "default",
                         "annotations": {"k8s.v1.cni.cncf.io/networks": value,
                                         "danm.k8s.io/interfaces":
                                             r#"[{"network":"default","ip":"dynamic","ip6":"dynamic"}]"#}},
            "spec": {"containers": [{"name": "c", "image": "pause"}]}
        }))
        .unwrap()
    };
    pods_api
        .create(
            &pp,
            &annotated(
                "gw0",
                r#"[{"name":"uplink","ips":["10.175.0.5/24"],"default-route":["10.175.0.1"]}]"#,
            ),
        )
        .await
        .unwrap();
    let ns = Netns::new(&format!("rta{tag}"));
    let (ok, out) = node.danm("ADD", "gw0", "rcid0", &ns.path).await;
    assert!(ok, "ADD gw0: {out}");
    let routes = |family: &str| cmd_ok(&["ip", family, "-n", &ns.name, "route", "show", "default"]);
    let v4 = routes("-4");
    assert!(
        v4.lines().count() == 1 && v4.starts_with("default via 10.175.0.1 dev net1 "),
        "the IPv4 default route moved to net1, eth0's is gone: {v4}"
    );
    let v6 = routes("-6");
    assert!(
        v6.contains("default via fd74::fe dev eth0"),
        "IPv6 had no gateway in the list: eth0 keeps its default route: {v6}"
    );
    let pod = lab.get_pod("default", "gw0").await;
    let status: Vec<Value> =
        serde_json::from_str(&pod.metadata.annotations.unwrap()[danm_api::NETWORK_STATUS_ANNOTATION])
            .unwrap();
    let defaults: Vec<(String, bool)> = status
        .iter()
        .map(|s| {
            (
                s["interface"].as_str().unwrap().to_owned(),
                s["default"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        defaults,
        [("eth0".to_owned(), false), ("net1".to_owned(), true)],
        "{status:?}"
    );
    let (ok, out) = node.danm("CHECK", "gw0", "rcid0", &ns.path).await;
    assert!(ok, "CHECK with the default route on net1: {out}");
    cmd_ok(&[
        "ip",
        "-n",
        &ns.name,
        "route",
        "del",
        "default",
        "via",
        "10.175.0.1",
    ]);
    let (ok, out) = node.danm("CHECK", "gw0", "rcid0", &ns.path).await;
    assert!(!ok, "CHECK after the default route was removed");
    let msg =
        out["msg"].as_str().unwrap_or_default().to_owned() + out["details"].as_str().unwrap_or_default();
    assert!(
        msg.contains("net1: default route via 10.175.0.1 (default-route) is missing"),
        "{out}"
    );
    let (ok, out) = node.danm("DEL", "gw0", "rcid0", &ns.path).await;
    assert!(ok, "DEL gw0: {out}");
    assert_eq!(links_in(&ns.name), Vec::<String>::new());

    // A gateway off the attachment's subnet: the element is named, nothing is left.
    pods_api
        .create(
            &pp,
            &annotated(
                "gw1",
                r#"[{"name":"uplink","interface":"up0","ips":["10.175.0.6/24"],"default-route":["10.99.0.1"]}]"#,
            ),
        )
        .await
        .unwrap();
    let ns1 = Netns::new(&format!("rtb{tag}"));
    let (ok, out) = node.danm("ADD", "gw1", "rcid1", &ns1.path).await;
    assert!(!ok, "ADD gw1 should fail: {out}");
    assert_eq!(out["code"], 107, "{out}");
    let msg =
        out["msg"].as_str().unwrap_or_default().to_owned() + out["details"].as_str().unwrap_or_default();
    assert!(
        msg.contains(
            "pod default/gw1: annotation k8s.v1.cni.cncf.io/networks: element 0 field default-route: gateway \
             10.99.0.1 is not on the subnet of interface up0 (NetworkAttachmentDefinition:default/uplink; its \
             addresses: 10.175.0.6/24)"
        ),
        "{out}"
    );
    assert_eq!(links_in(&ns1.name), Vec::<String>::new(), "rolled back");
    assert!(lab.eps("default").await.is_empty(), "no DanmEp left");
    assert_eq!(
        lab.holdings(&dflt).await,
        (
            dflt.spec.options.alloc.clone(),
            dflt.spec.options.alloc6.clone(),
            0
        ),
        "eth0's addresses released"
    );
}

/// The file names under `dir`, recursively.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}
