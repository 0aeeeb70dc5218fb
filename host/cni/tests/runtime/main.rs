//! danm driven by a real container runtime (`make runtime-e2e`, root): Debian's containerd with its CRI plugin and
//! runc, its CNI directories filled by deploy/cni's installer, the images deploy/ names built by
//! deploy/images/build.sh with buildah, and this test playing kubelet over CRI against a lab API server that holds the
//! pods. It checks what a node sees: a sandbox with three interfaces (native macvlan, a vxlan-parented macvlan, a
//! delegated bridge), its teardown, failing ADDs that leave nothing, a containerd restart under running pods, the
//! webhook image running as a container, and 50 pods 10 at a time against Debian's bridge + host-local (printed).
//!
//! Ignored by a plain `cargo test` (it starts a containerd and takes a minute): `make runtime-e2e` runs it.

#[path = "../common/mod.rs"]
mod common;
mod cri;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::installer::{DANM, Node, danmctl, node_lab};
use common::lab::{Lab, plugin_dir};
use common::{HostLinks, cmd, cmd_ok, links_in, veth_and_vxlan};
use cri::{Containerd, Cri, sandbox_config};
use danm_api::NetworkKind;

use futures::StreamExt;
use k8s_cri::v1 as api;
use serde_json::{Value, json};

const NS: &str = "default";
/// How many pods the scale phase starts, and how many at a time.
const PODS: usize = 50;
const AT_ONCE: usize = 10;

/// The fixtures the test needs: root, containerd, runc, ctr, buildah, Debian's CNI plugins, the built plugins and
/// danmctl. A printed skip, or a failure where fixtures are required.
fn fixtures() -> Option<(PathBuf, PathBuf)> {
    let (Some(plugins), Some(danmctl)) = (plugin_dir(), danmctl()) else {
        danm_testkit::fixtures::skip(
            "needs the built plugins (make guests) and danmctl (cargo build --workspace)",
        );
        return None;
    };
    let tools = [
        "/usr/bin/containerd",
        "/usr/bin/ctr",
        "/usr/sbin/runc",
        "/usr/bin/buildah",
        "/usr/bin/busybox",
        "/usr/bin/curl",
        "/usr/bin/openssl",
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/usr/lib/cni/loopback",
    ];
    if !common::root_and(&tools) {
        return None;
    }
    Some((plugins, danmctl))
}

/// deploy/images/build.sh of this checkout: every image into `out`, from this build's binaries and plugins.
fn build_images(out: &Path, plugins: &Path) -> Duration {
    let script = danm_testkit::fixtures::workspace_dir().join("deploy/images/build.sh");
    let start = Instant::now();
    let run = Command::new("bash")
        .arg(script)
        .arg(out)
        .env("DANM_BIN_DIR", Path::new(DANM).parent().unwrap())
        .env("DANM_PLUGIN_DIR", plugins)
        .output()
        .expect("run deploy/images/build.sh");
    assert!(
        run.status.success(),
        "deploy/images/build.sh: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    print!("{}", String::from_utf8_lossy(&run.stdout));
    start.elapsed()
}

/// Interfaces are set up in parallel: their order in the namespace is not the annotation's.
fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

fn netns_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The network namespaces containerd made (`cni-<uuid>` under /var/run/netns).
fn cni_netns() -> BTreeSet<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("cni-"))
                .collect()
        })
        .unwrap_or_default()
}

/// The sandboxes' namespaces a failing run leaves (containerd removes them only when it removes the sandbox):
/// deleted when the test ends, whatever was there before it started kept.
struct NetnsLeft(BTreeSet<String>);

impl Drop for NetnsLeft {
    fn drop(&mut self) {
        for left in cni_netns().difference(&self.0) {
            cmd(&["ip", "netns", "del", left]);
        }
    }
}

struct World {
    lab: Lab,
    node: Node,
    containerd: Containerd,
    cri: Cri,
    tag: String,
}

impl World {
    /// A pod object in the lab with danm's annotation, and the sandbox config kubelet would send for it.
    async fn pod(&self, name: &str, interfaces: Value) -> api::PodSandboxConfig {
        let pod = self.lab.pod(NS, name, Some(interfaces), &[]).await;
        sandbox_config(NS, name, pod.metadata.uid.as_deref().unwrap())
    }

    async fn eps_of(&self, pod: &str) -> Vec<danm_api::DanmEp> {
        self.lab
            .eps(NS)
            .await
            .into_iter()
            .filter(|ep| ep.spec.pod == pod)
            .collect()
    }

    /// Stop (twice: the second is harmless) and remove a sandbox.
    async fn stop_and_remove(&self, id: &str) {
        self.cri
            .stop_pod(id)
            .await
            .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
        self.cri
            .stop_pod(id)
            .await
            .unwrap_or_else(|e| panic!("a second StopPodSandbox: {e}"));
        self.cri
            .remove_pod(id)
            .await
            .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "starts containerd and takes a minute: make runtime-e2e"]
async fn containerd_cri_drives_danm_from_sandbox_to_teardown_and_at_scale() {
    let Some((plugins, danmctl)) = fixtures() else {
        return;
    };
    let _netns_left = NetnsLeft(cni_netns());
    let work = tempfile::tempdir().unwrap();
    let tag = format!("{}", std::process::id() % 10000);

    // The images deploy/ names, and the sandbox image, built with buildah into OCI archives.
    let images = work.path().join("images");
    let took = build_images(&images, &plugins);
    println!("runtime-e2e: 5 images built in {:.1} s", took.as_secs_f64());

    // The lab API server (TLS, a ServiceAccount token) and a node as the installer leaves it, plus Debian's plugins
    // in the CNI bin directory (containerd runs `loopback` itself; danm delegates `bridge`).
    let lab = node_lab().await;
    let node = Node::with_image(&danmctl, lab.handle.ca_pem().unwrap());
    let out = node.install(lab.handle.url(), &plugins);
    assert!(out.status.success(), "install.sh: {out:?}");
    let cni_bin = node.path("host/opt/cni/bin");
    for entry in std::fs::read_dir("/usr/lib/cni").unwrap().flatten() {
        let _ = std::os::unix::fs::symlink(entry.path(), cni_bin.join(entry.file_name()));
    }
    let cni_conf = node.path("host/etc/cni/net.d");

    let containerd = Containerd::start(
        &work.path().join("containerd"),
        &cni_bin,
        &cni_conf,
        "docker.io/danm/pause:latest",
    );
    for image in ["pause", "webhook", "cni", "netwatcher", "svcwatcher"] {
        containerd.import(&images.join(format!("{image}.oci.tar")));
    }
    let cri = containerd.client().await;
    let listed = cri
        .images
        .clone()
        .list_images(api::ListImagesRequest { filter: None })
        .await
        .expect("ListImages")
        .into_inner();
    let tags: BTreeSet<&str> = listed
        .images
        .iter()
        .flat_map(|i| i.repo_tags.iter().map(String::as_str))
        .collect();
    for image in ["pause", "webhook", "cni", "netwatcher", "svcwatcher"] {
        let want = format!("docker.io/danm/{image}:latest");
        assert!(tags.contains(want.as_str()), "{want} imported: {tags:?}");
    }
    let mut world = World {
        lab,
        node,
        containerd,
        cri,
        tag,
    };

    // Host links: a veth end as the macvlan parent, the VxLAN link netwatcher would make on it.
    let t = &world.tag;
    let (parent, peer, vxid, brid) = (
        format!("rp{t}"),
        format!("rq{t}"),
        format!("rx{t}"),
        format!("rb{t}"),
    );
    let vxlink = format!("vx_{vxid}");
    let _links = HostLinks(vec![parent.clone(), vxlink.clone(), format!("br_{brid}")]);
    veth_and_vxlan(&parent, &peer, &vxlink, 71);
    let lab = &world.lab;
    let mac = lab
        .network(NetworkKind::DanmNet, NS, "mac", json!({"NetworkID":"mac","NetworkType":"macvlan",
            "Options":{"host_device": parent, "cidr":"10.171.0.0/24","routes":{"10.181.0.0/24":"10.171.0.254"}}}))
        .await;
    let vx = lab
        .network(
            NetworkKind::DanmNet,
            NS,
            "vx",
            json!({"NetworkID": vxid,"NetworkType":"macvlan",
            "Options":{"host_device": parent, "vxlan": 71, "cidr":"10.172.0.0/24","container_prefix":"vx"}}),
        )
        .await;
    let br = lab
        .network(
            NetworkKind::DanmNet,
            NS,
            "br",
            json!({"NetworkID": brid,"NetworkType":"bridge",
            "Options":{"cidr":"10.173.0.0/24","mode":"gateway",
                       // The bridge takes the subnet's first address as the pods' gateway: not in the pool.
                       "allocation_pool":{"start":"10.173.0.10","end":"10.173.0.250"}}}),
        )
        .await;
    let nets = [&mac, &vx, &br];
    let mut free = Vec::new();
    for net in nets {
        free.push(world.lab.holdings(net).await);
    }

    three_interfaces_then_teardown(&world, &nets, &free).await;
    failed_adds_leave_nothing(&world, &parent).await;
    a_containerd_restart_keeps_pods_that_still_stop_cleanly(&mut world).await;
    the_webhook_image_runs_as_a_container_that_answers_readyz(&world, &plugins, work.path()).await;
    fifty_pods_ten_at_a_time_against_bridge_and_host_local(&world, work.path()).await;
}

/// RunPodSandbox for a pod with three interfaces: the links, addresses and routes in its netns, its DanmEps, the
/// network-status annotation and the primary IP in PodSandboxStatus; then Stop (twice) and Remove: nothing left.
async fn three_interfaces_then_teardown(
    w: &World,
    nets: &[&danm_api::Network; 3],
    free: &[(String, String, usize)],
) {
    let config = w
        .pod(
            "trio",
            json!([{"network":"mac","ip":"dynamic"},{"network":"vx","ip":"dynamic"},
                   {"network":"br","ip":"dynamic"}]),
        )
        .await;
    let start = Instant::now();
    let id = w
        .cri
        .run_pod(&config)
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox trio: {e}\n{}", w.containerd.log_tail()));
    println!(
        "runtime-e2e: RunPodSandbox with 3 interfaces took {} ms",
        start.elapsed().as_millis()
    );
    let netns = netns_name(&w.cri.netns_path(&id).await);
    assert_eq!(
        sorted(links_in(&netns)),
        ["eth0", "eth2", "vx1"],
        "interfaces of the sandbox"
    );
    let show = |dev: &str| cmd_ok(&["ip", "-n", &netns, "-d", "addr", "show", "dev", dev]);
    assert!(
        show("eth0").contains("macvlan") && show("eth0").contains("10.171.0.1/24"),
        "{}",
        show("eth0")
    );
    assert!(
        show("vx1").contains("macvlan") && show("vx1").contains("10.172.0.1/24"),
        "{}",
        show("vx1")
    );
    assert!(
        show("eth2").contains("veth") && show("eth2").contains("10.173.0.10/24"),
        "eth2 on the bridge: {}",
        show("eth2")
    );
    let routes = cmd_ok(&["ip", "-n", &netns, "route", "show"]);
    for want in [
        "10.171.0.0/24 dev eth0",
        "10.172.0.0/24 dev vx1",
        "10.173.0.0/24 dev eth2",
        "10.181.0.0/24 via 10.171.0.254 dev eth0",
    ] {
        assert!(routes.contains(want), "route {want} in\n{routes}");
    }
    // PodSandboxStatus: the primary IP is eth0's.
    let (status, _) = w.cri.pod_status(&id).await;
    assert_eq!(status.state, api::PodSandboxState::SandboxReady as i32);
    assert_eq!(status.network.as_ref().map(|n| n.ip.as_str()), Some("10.171.0.1"));
    // The DanmEps name the sandbox as the container and the pod's UID.
    let eps = w.eps_of("trio").await;
    assert_eq!(eps.len(), 3, "one DanmEp per interface");
    let uid = &config.metadata.as_ref().unwrap().uid;
    for ep in &eps {
        assert_eq!(
            ep.spec.cid,
            id,
            "DanmEp {} names the sandbox",
            ep.metadata.name.as_deref().unwrap_or("")
        );
        assert_eq!(&ep.spec.pod_uid, uid);
    }
    // network-status, as Multus users read it.
    let pod = w.lab.get_pod(NS, "trio").await;
    let status: Value = serde_json::from_str(
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("k8s.v1.cni.cncf.io/network-status"))
            .expect("network-status"),
    )
    .unwrap();
    let ifaces: Vec<&str> = status
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["interface"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ifaces, ["eth0", "vx1", "eth2"], "{status}");

    w.stop_and_remove(&id).await;
    assert!(w.eps_of("trio").await.is_empty(), "DanmEps left after Stop");
    for (net, before) in nets.iter().zip(free) {
        assert_eq!(
            &w.lab.holdings(net).await,
            before,
            "addresses left in {}",
            net.name()
        );
    }
    assert!(
        !Path::new(&format!("/var/run/netns/{netns}")).exists(),
        "the netns is gone"
    );
    assert!(
        w.cri.pods().await.iter().all(|p| p.id != id),
        "the sandbox is removed"
    );
}

/// An unknown network and an exhausted pool: RunPodSandbox fails with danm's error text in the CRI error, and
/// nothing is left (no sandbox, netns, DanmEp or address).
async fn failed_adds_leave_nothing(w: &World, parent: &str) {
    let netns_before = cni_netns();
    let config = w.pod("lost", json!([{"network":"nosuch","ip":"dynamic"}])).await;
    let err = w
        .cri
        .run_pod(&config)
        .await
        .expect_err("an unknown network fails");
    assert!(
        err.message().contains("nosuch"),
        "the CRI error carries danm's message naming the network: {}",
        err.message()
    );
    assert!(w.eps_of("lost").await.is_empty());

    let tiny = w
        .lab
        .network(
            NetworkKind::DanmNet,
            NS,
            "tiny",
            json!({"NetworkID":"tiny","NetworkType":"macvlan",
            "Options":{"host_device": parent, "cidr":"10.174.0.0/24",
                       "allocation_pool":{"start":"10.174.0.10","end":"10.174.0.11"}}}),
        )
        .await;
    let mut fill = Vec::new();
    for name in ["fill0", "fill1"] {
        let config = w.pod(name, json!([{"network":"tiny","ip":"dynamic"}])).await;
        fill.push(
            w.cri
                .run_pod(&config)
                .await
                .expect("one of the pool's two addresses"),
        );
    }
    let held = w.lab.holdings(&tiny).await;
    let second = w.pod("second", json!([{"network":"tiny","ip":"dynamic"}])).await;
    let err = w.cri.run_pod(&second).await.expect_err("an exhausted pool fails");
    assert!(
        err.message().contains("network:tiny") && err.message().contains("all addresses are reserved"),
        "the CRI error carries danm's message: {}",
        err.message()
    );
    assert!(w.eps_of("second").await.is_empty(), "no DanmEp of the failed pod");
    assert_eq!(w.lab.holdings(&tiny).await, held, "nothing more allocated");
    let sandboxes = w.cri.pods().await;
    assert_eq!(
        sandboxes.len(),
        2,
        "only the pool's two pods have sandboxes: {sandboxes:?}"
    );
    for id in &fill {
        w.stop_and_remove(id).await;
    }
    assert_eq!(cni_netns(), netns_before, "no network namespace left");
}

/// containerd restarted while two pods run: their interfaces survive, and they still stop cleanly.
async fn a_containerd_restart_keeps_pods_that_still_stop_cleanly(w: &mut World) {
    let mut running = Vec::new();
    for name in ["keep0", "keep1"] {
        let config = w
            .pod(
                name,
                json!([{"network":"mac","ip":"dynamic"},{"network":"br","ip":"dynamic"}]),
            )
            .await;
        let id = w.cri.run_pod(&config).await.expect("RunPodSandbox");
        let netns = netns_name(&w.cri.netns_path(&id).await);
        running.push((name, id, netns));
    }
    w.containerd.restart();
    w.cri = w.containerd.client().await;
    for (name, id, netns) in &running {
        let (status, _) = w.cri.pod_status(id).await;
        assert_eq!(
            status.state,
            api::PodSandboxState::SandboxReady as i32,
            "{name} after the restart"
        );
        assert_eq!(
            sorted(links_in(netns)),
            ["eth0", "eth1"],
            "{name}'s interfaces survive the restart"
        );
    }
    for (name, id, netns) in &running {
        w.stop_and_remove(id).await;
        assert!(w.eps_of(name).await.is_empty(), "{name}'s DanmEps");
        assert!(links_in(netns).is_empty(), "{name}'s links");
    }
}

/// The webhook image (danm/webhook:latest, as deploy/webhook names it) run as a container in a pod whose one
/// interface is danm's bridge network: it answers `/readyz` over TLS at the pod's address, as its user (147).
async fn the_webhook_image_runs_as_a_container_that_answers_readyz(w: &World, plugins: &Path, work: &Path) {
    let certs = work.join("webhook-certs");
    std::fs::create_dir_all(&certs).unwrap();
    cmd_ok(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=danm-webhook",
        "-keyout",
        &certs.join("tls.key").to_string_lossy(),
        "-out",
        &certs.join("tls.crt").to_string_lossy(),
    ]);
    // What the pod would get from its ServiceAccount: the lab's address, CA and a token, readable by its user.
    std::fs::write(certs.join("ca.crt"), w.lab.handle.ca_pem().unwrap()).unwrap();
    let kubeconfig = certs.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {}\n    \
             certificate-authority: /etc/webhook/certs/ca.crt\nusers:\n- name: webhook\n  user:\n    token: \
             node-token\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: webhook}}\ncurrent-context: lab\n",
            w.lab.handle.url()
        ),
    )
    .unwrap();
    // What the Secret volumes give the pod: files its user can read.
    cmd_ok(&["chmod", "-R", "a+rX", &certs.to_string_lossy()]);
    let mut config = w.pod("webhook", json!([{"network":"br","ip":"dynamic"}])).await;
    let logs = work.join("pod-logs");
    std::fs::create_dir_all(&logs).unwrap();
    config.log_directory = logs.to_string_lossy().into_owned();
    let pod = w.cri.run_pod(&config).await.expect("RunPodSandbox webhook");
    let (status, _) = w.cri.pod_status(&pod).await;
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    assert!(
        ip.starts_with("10.173.0."),
        "the webhook pod's address on the bridge: {ip:?}"
    );
    let env = |k: &str, v: &str| api::KeyValue {
        key: k.to_owned(),
        value: v.to_owned(),
    };
    let mount = |container: &str, host: &Path| api::Mount {
        container_path: container.to_owned(),
        host_path: host.to_string_lossy().into_owned(),
        readonly: true,
        ..Default::default()
    };
    let container = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "webhook".into(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: "docker.io/danm/webhook:latest".into(),
            ..Default::default()
        }),
        args: vec!["serve".into()],
        envs: vec![
            env("DANM_PLUGIN_DIR", "/etc/danm/plugins"),
            env("DANM_WEBHOOK_TLS_CERT", "/etc/webhook/certs/tls.crt"),
            env("DANM_WEBHOOK_TLS_KEY", "/etc/webhook/certs/tls.key"),
            env("DANM_WEBHOOK_BIND_PORT", "8443"),
            env("DANM_KUBECONFIG", "/etc/webhook/certs/kubeconfig"),
            env("DANM_LOG", "info"),
        ],
        mounts: vec![
            mount("/etc/webhook/certs", &certs),
            mount("/etc/danm/plugins", plugins),
        ],
        log_path: "webhook.log".into(),
        ..Default::default()
    };
    let id = w
        .cri
        .start_container(&pod, &config, container)
        .await
        .unwrap_or_else(|e| panic!("the webhook container: {e}\n{}", w.containerd.log_tail()));
    let url = format!("https://{ip}:8443/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let out = Command::new("curl")
            .args(["-sk", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", &url])
            .output()
            .expect("run curl");
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        if code == "200" || Instant::now() > deadline {
            break code;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (state, exit) = w.cri.container_state(&id).await;
    assert_eq!(
        answer,
        "200",
        "GET {url}: container state {state} ({exit}); its log:\n{}",
        std::fs::read_to_string(logs.join("webhook.log")).unwrap_or_default()
    );
    // The process runs as the image's user, not root.
    let pid = w.cri.container_pid(&id).await;
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = proc_status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        uid.split_whitespace().nth(1) == Some("147"),
        "the webhook's {uid}"
    );
    w.cri.stop_container(&id).await;
    w.stop_and_remove(&pod).await;
}

/// 50 pods through CRI, 10 at a time, each with one interface on a danm bridge network, once per IPAM mode: all
/// succeed with distinct addresses, all come back. Then the same loop with Debian's bridge + host-local as the node's
/// only network. Prints each and the ratios (the time danm adds to a pod start; the runtime's own work is in both).
async fn fifty_pods_ten_at_a_time_against_bridge_and_host_local(w: &World, work: &Path) {
    let mut danm = Vec::new();
    for (i, mode) in ["bitmap", "blocks"].into_iter().enumerate() {
        let (name, id) = (format!("scale-{mode}"), format!("s{i}{}", w.tag));
        let _bridge = HostLinks(vec![format!("br_{id}")]);
        let net = w
            .lab
            .network_in(
                mode,
                NetworkKind::DanmNet,
                NS,
                &name,
                json!({"NetworkID": id, "NetworkType":"bridge",
                "Options":{"cidr": format!("10.17{}.0.0/24", 7 + i), "mode":"gateway",
                           "allocation_pool":{"start": format!("10.17{}.0.10", 7 + i),
                                              "end": format!("10.17{}.0.250", 7 + i)}}}),
            )
            .await;
        let free = w.lab.holdings(&net).await;
        let mut configs = Vec::new();
        for p in 0..PODS {
            let pod = format!("{mode}{p}");
            configs.push(w.pod(&pod, json!([{"network": name, "ip":"dynamic"}])).await);
        }
        let (up, down, ips) = start_and_stop(&w.cri, &configs).await;
        let distinct: BTreeSet<&String> = ips.iter().collect();
        assert_eq!(
            distinct.len(),
            PODS,
            "{mode}: {PODS} pods, no duplicate address: {ips:?}"
        );
        assert!(
            ips.iter().all(|ip| ip.starts_with(&format!("10.17{}.0.", 7 + i))),
            "{ips:?}"
        );
        assert_eq!(w.lab.holdings(&net).await, free, "{mode}: every address released");
        assert!(
            w.lab
                .eps(NS)
                .await
                .iter()
                .all(|ep| !ep.spec.pod.starts_with(mode))
        );
        danm.push((mode, up, down));
    }

    // The baseline: the same loop with Debian's bridge + host-local as the node's network.
    let conf_dir = w.node.path("host/etc/cni/net.d");
    std::fs::remove_file(conf_dir.join("00-danm.conflist")).unwrap();
    let baseline = json!({"cniVersion":"1.0.0","name":"baseline","plugins":[{"type":"bridge",
        "bridge": format!("rc{}", w.tag), "isGateway": true,
        "ipam":{"type":"host-local","ranges":[[{"subnet":"10.176.0.0/24"}]],
                "dataDir": work.join("host-local").to_string_lossy()}}]});
    std::fs::write(conf_dir.join("10-baseline.conflist"), baseline.to_string()).unwrap();
    let _bridge = HostLinks(vec![format!("rc{}", w.tag)]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.cri.cni_config().await.to_string().contains("baseline") {
        assert!(
            Instant::now() < deadline,
            "containerd did not load the baseline config"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let configs: Vec<_> = (0..PODS)
        .map(|i| sandbox_config(NS, &format!("base{i}"), &format!("uid-base{i}")))
        .collect();
    let (base_up, base_down, base_ips) = start_and_stop(&w.cri, &configs).await;
    let distinct: BTreeSet<&String> = base_ips.iter().collect();
    assert_eq!(distinct.len(), PODS, "the baseline's addresses: {base_ips:?}");

    let per_pod = |d: Duration| d.as_secs_f64() * 1000.0 / PODS as f64;
    println!(
        "runtime-e2e: {PODS} pods, {AT_ONCE} at a time, through CRI, one bridge interface each; 0 duplicate addresses"
    );
    println!(
        "runtime-e2e:   Debian bridge + host-local: start {:.2} s ({:.1} ms/pod), stop+remove {:.2} s",
        base_up.as_secs_f64(),
        per_pod(base_up),
        base_down.as_secs_f64()
    );
    for (mode, up, down) in danm {
        println!(
            "runtime-e2e:   danm, {mode} IPAM: start {:.2} s ({:.1} ms/pod), stop+remove {:.2} s; ratio to the \
             baseline: start {:.2}, stop {:.2}",
            up.as_secs_f64(),
            per_pod(up),
            down.as_secs_f64(),
            up.as_secs_f64() / base_up.as_secs_f64(),
            down.as_secs_f64() / base_down.as_secs_f64()
        );
    }
}

/// Starts every sandbox, `AT_ONCE` at a time, then stops and removes them the same way: the two wall times and the
/// pods' primary addresses.
async fn start_and_stop(cri: &Cri, configs: &[api::PodSandboxConfig]) -> (Duration, Duration, Vec<String>) {
    let start = Instant::now();
    let ids: Vec<String> = futures::stream::iter(configs.iter().cloned())
        .map(|config| async move {
            cri.run_pod(&config)
                .await
                .unwrap_or_else(|e| panic!("RunPodSandbox {:?}: {e}", config.metadata))
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let up = start.elapsed();
    let mut ips = Vec::new();
    for id in &ids {
        let (status, _) = cri.pod_status(id).await;
        ips.push(status.network.map(|n| n.ip).unwrap_or_default());
    }
    let start = Instant::now();
    futures::stream::iter(ids.iter())
        .map(|id| async move {
            cri.stop_pod(id)
                .await
                .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
            cri.remove_pod(id)
                .await
                .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
        })
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<()>>()
        .await;
    (up, start.elapsed(), ips)
}
