//! A new backend dropped into a running node (issue #18 item 5, root): the real `danm-webhook` serves the lab API
//! server from a plugin directory without `host-device.wasm` and re-scans it every second
//! (`DANM_WEBHOOK_PLUGIN_RELOAD_SECONDS`); the test copies the backend template's `host-device.wasm` in as an installer
//! would (a temporary name, then an atomic rename), and, with no restart of the webhook and no rebuild of `danm`,
//! the webhook validates host-device networks and the real `danm` binary gives a pod its interface through Debian's
//! `host-device` plugin: a veth end of the test's namespace moved into the pod, and given back on DEL.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, ipam_mode, lab};
use common::node::{DANM, Node, warm_plugin_cache};
use common::{Netns, cmd_ok};
use danm_api::{Network, NetworkKind};
use danm_testkit::fixtures;
use kube::api::{Api, PostParams};
use serde_json::json;

/// How often the webhook re-scans its plugin directory in this test.
const RELOAD_SECONDS: u64 = 1;
/// What loading the new plugin may add to the reload period before the webhook serves it: the webhook compiles it,
/// and only it (cranelift, optimised even in the dev profile; about a second on a busy 2-core machine).
const LOAD_ALLOWANCE: Duration = Duration::from_secs(10);

/// `danm-webhook` of this build: next to `danm` (`cargo test --workspace`, `cargo build -p danm-webhook`), or
/// `DANM_WEBHOOK_BIN`.
fn webhook_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("DANM_WEBHOOK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(DANM).with_file_name("danm-webhook"));
    if bin.is_file() {
        return Some(bin);
    }
    fixtures::skip(&format!(
        "{} is not built: `cargo build -p danm-webhook` (or set DANM_WEBHOOK_BIN)",
        bin.display()
    ));
    None
}

/// The webhook process; killed (by its own handle) when the test ends.
struct Webhook {
    child: Child,
    log: PathBuf,
}

impl Webhook {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `danm-webhook` on loopback with the lab's kubeconfig and its own certificate, loading `plugins` and
/// re-scanning them every [`RELOAD_SECONDS`]; returns once it accepts connections.
fn start_webhook(bin: &Path, lab: &Lab, plugins: &Path, work: &Path) -> (Webhook, SocketAddr) {
    let certs = danm_lab::tls::generate(&["127.0.0.1"]).unwrap();
    let (cert, key, log) = (
        work.join("cert.pem"),
        work.join("key.pem"),
        work.join("webhook.log"),
    );
    std::fs::write(&cert, &certs.cert_pem).unwrap();
    std::fs::write(&key, &certs.key_pem).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .arg("--plugin-dir")
        .arg(plugins)
        .arg("--tls-cert-bundle")
        .arg(&cert)
        .arg("--tls-private-key-file")
        .arg(&key)
        .args(["--bind-address", "127.0.0.1", "--bind-port"])
        .arg(addr.port().to_string())
        .arg("--kubeconfig")
        .arg(lab.handle.kubeconfig_path())
        .env("DANM_WEBHOOK_PLUGIN_RELOAD_SECONDS", RELOAD_SECONDS.to_string())
        .env("DANM_IPAM_MODE", ipam_mode())
        .env("DANM_LOG", "info")
        .env("DANM_LOG_FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("danm-webhook starts");
    let mut webhook = Webhook { child, log };
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Some(status) = webhook.child.try_wait().unwrap() {
            panic!("danm-webhook exited ({status}):\n{}", webhook.log());
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "danm-webhook did not listen on {addr} within 120 s:\n{}",
            webhook.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (webhook, addr)
}

/// A DanmNet of type host-device in `default`; `device` is its `spec.Options.host_device` (none when `None`).
fn host_device_net(name: &str, device: Option<&str>) -> Network {
    let mut options = json!({"cidr": "10.77.0.0/24",
        "allocation_pool": {"start": "10.77.0.10", "end": "10.77.0.20"}});
    if let Some(d) = device {
        options["host_device"] = json!(d);
    }
    serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"NetworkID": name, "NetworkType": "host-device", "Options": options}}))
    .unwrap()
}

/// The webhook's answer to a dry-run CREATE of `net`: `Ok` when admitted, the denial's text otherwise.
async fn dry_run(api: &Api<Network>, net: &Network) -> Result<Network, String> {
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.create(&pp, net).await.map_err(|e| match e {
        kube::Error::Api(s) => s.message,
        other => panic!("expected an admission answer, got {other}"),
    })
}

/// Copies `src` into `dir` as `<name>` the way deploy/cni/install.sh installs a plugin: a temporary name the loaders
/// ignore, then an atomic rename.
fn install(src: &Path, dir: &Path, name: &str) {
    let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn host_has(link: &str) -> bool {
    Path::new("/sys/class/net").join(link).exists()
}

/// Deletes the test's host veth pair, wherever its first end is at that moment.
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        common::cmd(&["ip", "link", "del", &self.0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netns_a_host_device_backend_dropped_into_the_plugin_dir_is_served_by_the_running_webhook_and_danm() {
    if !common::root_and(&["/usr/lib/cni/host-device"]) {
        return;
    }
    let Some(installed) = fixtures::plugins_or_skip() else {
        return;
    };
    let Some(new_plugin) = fixtures::extra_plugin_or_skip("host-device") else {
        return;
    };
    let Some(webhook_bin) = webhook_bin() else {
        return;
    };

    // The node's plugin directory as the installer left it: danm's own plugins, no host-device.wasm.
    let work = tempfile::Builder::new()
        .prefix("danm-new-backend")
        .tempdir()
        .unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for p in ["rules", "ipvlan", "macvlan", "sriov", "bridge"] {
        let file = format!("{p}.wasm");
        std::fs::copy(installed.join(&file), plugins.join(&file)).unwrap();
    }
    let copied = Instant::now();
    // danm's runs compile what they load into the node's cache: danm's own plugins now, the new one when it comes.
    warm_plugin_cache(&plugins);
    // A node's plugins are older than 2 s when the webhook starts, so their stamps are trusted (settled) and its
    // reload keeps them compiled.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(copied.elapsed())).await;

    let lab = lab().await;
    let (webhook, addr) = start_webhook(&webhook_bin, &lab, &plugins, work.path());
    lab.handle
        .map_webhook_service("kube-system/danm-webhook-svc", &format!("https://{addr}"));
    lab.handle.set_webhook_insecure(true);
    lab.handle
        .apply_manifests(&fixtures::workspace_dir().join("deploy/webhook/webhook.yaml"))
        .unwrap();
    let nets: Api<Network> = Api::namespaced_with(lab.client.clone(), "default", &NetworkKind::DanmNet);

    // The pod's device: one end of a veth pair in the test's namespace, its peer keeping an address to ping.
    let tag = std::process::id() % 10000;
    let (dev, peer) = (format!("hd{tag}"), format!("hp{tag}"));
    let _veth = Veth(peer.clone());
    cmd_ok(&["ip", "link", "add", &dev, "type", "veth", "peer", "name", &peer]);
    cmd_ok(&["ip", "addr", "add", "10.77.0.1/24", "dev", &peer]);
    cmd_ok(&["ip", "link", "set", &peer, "up"]);

    // Before: no plugin knows host-device. The webhook takes it for a static delegate type, as DANM did, and runs
    // no backend rule: a network without a device is admitted.
    let bad = host_device_net("hd-bad", None);
    dry_run(&nets, &bad).await.unwrap_or_else(|e| {
        panic!("before the drop-in, today's webhook admits a host-device network (static delegation): {e}")
    });
    // The network the pod uses, stored now; danm cannot attach it yet (no backend, no static delegate config).
    let good = host_device_net("hd", Some(&dev));
    let stored = nets
        .create(&PostParams::default(), &good)
        .await
        .expect("the webhook admits the host-device network");
    let held_before = lab.holdings(&stored).await;
    let node = Node::new(&lab, &plugins).with_fakeipam();
    let pod_ns = Netns::new(&format!("hdpod{tag}"));
    lab.pod(
        "default",
        "hdpod",
        Some(json!([{"network": "hd", "ip": "dynamic"}])),
        &[],
    )
    .await;
    let early = node.danm("ADD", "hdpod", "cid-early", &pod_ns.path).await;
    assert!(
        !early.ok,
        "danm attached a host-device network before any plugin served it: {}",
        early.out
    );
    let why = early.out["msg"].as_str().unwrap_or_default();
    assert!(
        why.contains("hd.conf"),
        "the ADD failed for want of a static delegate config: {}",
        early.out
    );
    eprintln!("before the drop-in, ADD fails: {why}");
    assert!(host_has(&dev), "the failed ADD left {dev} in the host");

    // The drop-in, and the time until the running webhook judges host-device networks by the new plugin's rules.
    install(&new_plugin, &plugins, "host-device.wasm");
    let dropped = Instant::now();
    let denial = loop {
        match dry_run(&nets, &bad).await {
            Err(msg) => break msg,
            Ok(_) => {
                assert!(
                    dropped.elapsed() < Duration::from_secs(RELOAD_SECONDS) + LOAD_ALLOWANCE,
                    "the webhook still admits a host-device network without a device {:?} after the drop-in:\n{}",
                    dropped.elapsed(),
                    webhook.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let served_after = dropped.elapsed();
    eprintln!(
        "the webhook served host-device.wasm {:.2} s after the drop-in (reload period {RELOAD_SECONDS} s)",
        served_after.as_secs_f64()
    );
    assert!(
        denial.contains("[HOST-DEVICE] spec.Options.host_device") && denial.contains("network:hd-bad"),
        "the denial names the rule, the field and the network: {denial}"
    );
    let log = webhook.log();
    let reloads: Vec<&str> = log.lines().filter(|l| l.contains("plugins reloaded")).collect();
    assert!(
        reloads.len() == 1 && reloads[0].contains(r#"\"host-device\""#),
        "the webhook reloaded once, serving host-device:\n{log}"
    );
    assert!(
        reloads[0].contains("host-device.wasm") && !reloads[0].contains("rules.wasm"),
        "the reload opened the new file only, keeping the compiled plugins of the others: {}",
        reloads[0]
    );
    eprintln!("webhook: {}", reloads[0]);
    let admitted = dry_run(&nets, &host_device_net("hd-good", Some("ens5f1")))
        .await
        .expect("a host-device network naming its device is admitted");
    assert_eq!(admitted.spec.network_type, "host-device");
    let mut vlan = host_device_net("hd-vlan", Some("ens5f1"));
    vlan.spec.options.vlan = 200;
    let msg = dry_run(&nets, &vlan).await.unwrap_err();
    assert!(msg.contains("spec.Options.vlan"), "{msg}");

    // The same danm binary now attaches the pod through Debian's host-device plugin.
    let add = node.danm("ADD", "hdpod", "cid1", &pod_ns.path).await;
    assert!(add.ok, "ADD: {} {}\n{}", add.out, add.stderr, node.log());
    let ip = add.out["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(ip.starts_with("10.77.0.") && ip.ends_with("/24"), "{}", add.out);
    let names: Vec<&str> = add.out["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("sandbox").is_some())
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eth0"], "{}", add.out);
    let link = cmd_ok(&["ip", "-n", &pod_ns.name, "-d", "addr", "show", "dev", "eth0"]);
    assert!(
        link.contains("veth") && link.contains(&format!("inet {ip}")),
        "{dev} is eth0 in the pod with {ip}: {link}"
    );
    assert!(!host_has(&dev), "{dev} left the host namespace");
    let eps = lab.eps("default").await;
    assert_eq!(eps.len(), 1);
    assert_eq!(
        (
            eps[0].spec.network_type.as_str(),
            eps[0].spec.interface.name.as_str()
        ),
        ("host-device", "eth0")
    );
    let addr_only = ip.split('/').next().unwrap();
    assert!(
        common::cmd(&["ping", "-c", "1", "-W", "2", addr_only]),
        "the host reaches the pod over its device ({addr_only})"
    );
    let check = node.danm("CHECK", "hdpod", "cid1", &pod_ns.path).await;
    assert!(check.ok, "CHECK: {} {}", check.out, check.stderr);

    // DEL gives the device back to the host under its own name, and the address back to the pool.
    let del = node.danm("DEL", "hdpod", "cid1", &pod_ns.path).await;
    assert!(del.ok, "DEL: {} {}", del.out, del.stderr);
    assert!(host_has(&dev), "{dev} is back in the host namespace");
    let left = cmd_ok(&["ip", "-n", &pod_ns.name, "-o", "link", "show"]);
    assert!(!left.contains("eth0"), "{left}");
    assert!(lab.eps("default").await.is_empty());
    assert_eq!(lab.holdings(&stored).await, held_before);
    eprintln!("danm runs: {}", node.run_times());
    drop(webhook);
}
