//! `kubectl danm` through the real `kubectl` and its plugin discovery (the built `kubectl-danm` on PATH), against a
//! lab API server holding a demo-like state made through the API: a blocks-mode DanmNet with DanmIpBlocks and
//! DanmEps, a bitmap DanmNet, an exhausted pool, a ClusterNetwork with AllowedTenants, a NAD, and pods that are
//! fine, drifted, refused, starved, misnamed or failed.
//!
//! Without kubectl the tests print why they skip, or fail where fixtures are required (CI=true,
//! DANM_REQUIRE_FIXTURES=1). Run with `--nocapture` to see the outputs (the README shows them).

use std::path::{Path, PathBuf};
use std::process::Command;

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec, DanmIpBlock, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::IpRequest;
use danm_ipam::{Ipam, IpamConfig, Request};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

/// `kubectl` with only `kubectl-danm` (and the system) on PATH, a HOME of its own and no KUBECONFIG.
struct Kubectl {
    bin: PathBuf,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(bin: PathBuf, kubeconfig: &Path) -> Kubectl {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::copy(
            env!("CARGO_BIN_EXE_kubectl-danm"),
            dir.path().join("bin/kubectl-danm"),
        )
        .unwrap();
        Kubectl {
            bin,
            kubeconfig: kubeconfig.to_owned(),
            dir,
        }
    }

    /// `kubectl danm ARGS --kubeconfig LAB`.
    fn danm(&self, args: &[&str]) -> Run {
        self.run_with(args, Some(&self.kubeconfig), None)
    }

    fn run_with(&self, args: &[&str], kubeconfig_flag: Option<&Path>, kubeconfig_env: Option<&Path>) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("danm").args(args);
        if let Some(k) = kubeconfig_flag {
            cmd.arg("--kubeconfig").arg(k);
        }
        cmd.env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.path().join("bin").display()),
            )
            .env("HOME", self.dir.path());
        if let Some(k) = kubeconfig_env {
            cmd.env("KUBECONFIG", k);
        }
        let out = cmd.output().expect("kubectl runs");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!(
            "$ kubectl danm {}\n{}{}(exit {})\n",
            args.join(" "),
            run.stdout,
            run.stderr,
            run.code
        );
        run
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let r = self.danm(&all);
        assert_eq!(r.code, code, "{}{}", r.stdout, r.stderr);
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.stdout))
    }
}

fn spec(v: Value) -> NetworkSpec {
    let mut spec: NetworkSpec = serde_json::from_value(v).unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    spec
}

async fn create_network(
    client: &kube::Client,
    kind: NetworkKind,
    name: &str,
    mode: &str,
    s: NetworkSpec,
) -> Network {
    let ns = kind.namespaced().then_some("demo");
    let mut n = Network::new(kind, ns, name, s);
    n.metadata.annotations = Some([(danm_api::annotations::IPAM_MODE.to_owned(), mode.to_owned())].into());
    if mode == "blocks" {
        n.spec.options.alloc.clear();
        n.spec.options.alloc6.clear();
    }
    let api: Api<Network> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &kind),
        None => Api::all_with(client.clone(), &kind),
    };
    api.create(&PostParams::default(), &n).await.unwrap()
}

async fn create_pod(client: &kube::Client, name: &str, annotations: Value) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), "demo");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "demo", "annotations": annotations},
        "spec": {"nodeName": "worker-1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &pod).await.unwrap()
}

/// Reserves an address on `network` for a DanmEp of `pod` on `node` and writes the DanmEp; returns its address.
async fn attach(
    client: &kube::Client,
    network: &Network,
    pod: &Pod,
    node: &str,
    ep: &str,
    ifname: &str,
) -> String {
    let ipam = Ipam::new(client, node, IpamConfig::default());
    let req = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Absent,
        owner: ep,
    };
    let (got, _) = ipam.reserve(network, &[req]).await.unwrap();
    let eps: Api<DanmEp> = Api::namespaced(client.clone(), "demo");
    let d = DanmEp::new(
        "demo",
        ep,
        DanmEpSpec {
            network_name: network.name().into(),
            network_type: network.spec.network_type.clone(),
            api_type: network.kind.clone(),
            endpoint_id: ep.into(),
            host: node.into(),
            pod: pod.metadata.name.clone().unwrap(),
            pod_uid: pod.metadata.uid.clone().unwrap(),
            interface: DanmEpInterface {
                name: ifname.into(),
                address: got[0].ip4.clone(),
                ..DanmEpInterface::default()
            },
            ..DanmEpSpec::default()
        },
    );
    eps.create(&PostParams::default(), &d).await.unwrap();
    got[0].ip4.clone()
}

async fn set_status(client: &kube::Client, pod: &str, status: Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "demo");
    let patch =
        json!({"metadata": {"annotations": {danm_api::NETWORK_STATUS_ANNOTATION: status.to_string()}}});
    api.patch(
        pod,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
}

fn bare(addr: &str) -> String {
    addr.split('/').next().unwrap().to_owned()
}

/// The demo: returns the lab (kept alive) and the addresses `web` got.
async fn demo(client: &kube::Client) -> (String, String) {
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in ["demo", "team-a"] {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        nss.create(&PostParams::default(), &n).await.unwrap();
    }
    let internal = create_network(
        client,
        NetworkKind::DanmNet,
        "internal",
        "blocks",
        spec(json!({"NetworkID": "internal", "NetworkType": "macvlan",
            "Options": {"cidr": "10.10.0.0/24", "host_device": "lab0", "vxlan": 600}})),
    )
    .await;
    create_network(
        client,
        NetworkKind::DanmNet,
        "external",
        "bitmap",
        spec(json!({"NetworkID": "external", "NetworkType": "macvlan",
            "Options": {"cidr": "10.20.0.0/24", "host_device": "lab0", "vlan": 200}})),
    )
    .await;
    create_network(
        client,
        NetworkKind::DanmNet,
        "small",
        "bitmap",
        spec(json!({"NetworkID": "small", "NetworkType": "ipvlan",
            "Options": {"cidr": "10.30.0.0/30", "host_device": "lab0"}})),
    )
    .await;
    create_network(
        client,
        NetworkKind::ClusterNetwork,
        "shared",
        "blocks",
        spec(json!({"NetworkID": "shared", "NetworkType": "macvlan", "AllowedTenants": ["team-a"],
            "Options": {"cidr": "10.40.0.0/24", "net6": "fd00:40::/64", "host_device": "lab0", "vxlan": 1000}})),
    )
    .await;
    create_network(
        client,
        NetworkKind::TenantNetwork,
        "tenant",
        "blocks",
        spec(json!({"NetworkID": "tenant", "NetworkType": "ipvlan",
            "Options": {"cidr": "10.50.0.0/25", "host_device": "lab0", "vlan": 300}})),
    )
    .await;
    let nads: Api<danm_api::NetworkAttachmentDefinition> = Api::namespaced(client.clone(), "demo");
    let nad: danm_api::NetworkAttachmentDefinition = serde_json::from_value(json!({
        "metadata": {"name": "legacy", "namespace": "demo"},
        "spec": {"config": r#"{"cniVersion":"1.0.0","type":"macvlan","master":"lab0","ipam":{"type":"host-local","subnet":"192.168.50.0/24"}}"#}
    }))
    .unwrap();
    nads.create(&PostParams::default(), &nad).await.unwrap();

    // web: two interfaces, its network-status written as the CNI writes it.
    let web = create_pod(
        client,
        "web",
        json!({"danm.k8s.io/interfaces": r#"[{"network":"internal","ip":"dynamic"},{"network":"external","ip":"dynamic"}]"#}),
    )
    .await;
    let a_int = attach(client, &internal, &web, "worker-1", "ep-web-internal", "eth0").await;
    let external: Network = Api::namespaced_with(client.clone(), "demo", &NetworkKind::DanmNet)
        .get("external")
        .await
        .unwrap();
    let a_ext = attach(client, &external, &web, "worker-1", "ep-web-external", "ext1").await;
    set_status(
        client,
        "web",
        json!([
            {"name": "demo/internal", "interface": "eth0", "ips": [bare(&a_int)], "mac": "02:00:00:00:01:01", "default": true, "dns": {}},
            {"name": "demo/external", "interface": "ext1", "ips": [bare(&a_ext)], "mac": "02:00:00:00:01:02", "dns": {}}
        ]),
    )
    .await;
    // multus: written for Multus, selecting an existing NAD and one that does not exist.
    create_pod(
        client,
        "multus",
        json!({"k8s.v1.cni.cncf.io/networks": "legacy, ghost@net9"}),
    )
    .await;
    // drift: on another node (a second block), its status naming a wrong address.
    let drift = create_pod(
        client,
        "drift",
        json!({"danm.k8s.io/interfaces": r#"[{"network":"internal","ip":"dynamic"}]"#}),
    )
    .await;
    attach(client, &internal, &drift, "worker-2", "ep-drift", "eth0").await;
    set_status(
        client,
        "drift",
        json!([{"name": "demo/internal", "interface": "eth0", "ips": ["10.10.0.250"], "default": true, "dns": {}}]),
    )
    .await;
    // small's two addresses are taken; starved asks for a third.
    let ipam = Ipam::new(client, "worker-1", IpamConfig::default());
    for owner in ["taken-1", "taken-2"] {
        let small: Network = Api::namespaced_with(client.clone(), "demo", &NetworkKind::DanmNet)
            .get("small")
            .await
            .unwrap();
        let req = Request {
            ip4: IpRequest::Dynamic,
            ip6: IpRequest::Absent,
            owner,
        };
        ipam.reserve(&small, &[req]).await.unwrap();
    }
    create_pod(
        client,
        "starved",
        json!({"danm.k8s.io/interfaces": r#"[{"network":"small","ip":"dynamic"}]"#}),
    )
    .await;
    create_pod(
        client,
        "refused",
        json!({"danm.k8s.io/interfaces": r#"[{"clusterNetwork":"shared","ip":"dynamic"}]"#}),
    )
    .await;
    create_pod(
        client,
        "misnamed",
        json!({"danm.k8s.io/interfaces": r#"[{"network":"nosuch","ip":"dynamic"}]"#}),
    )
    .await;
    create_pod(client, "bare", json!({})).await;
    let failed = create_pod(
        client,
        "failed",
        json!({"danm.k8s.io/interfaces": r#"[{"network":"internal","ip":"dynamic"}]"#}),
    )
    .await;
    // The CNI's failure event, as the CNI writes it.
    let events: Api<Event> = Api::namespaced(client.clone(), "demo");
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "failed.danm-1", "namespace": "demo"},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": "demo", "name": "failed",
                           "uid": failed.metadata.uid.clone().unwrap()},
        "type": "Warning", "reason": "DanmAddFailed",
        "message": "CNI network could not be set up: CNI operation for network:DanmNet:internal interface:eth0 failed with:netlink: no such device lab0",
        "source": {"component": "danm", "host": "worker-1"},
        "count": 3,
        "firstTimestamp": "2026-01-01T10:00:00Z", "lastTimestamp": "2026-01-01T10:02:00Z"
    }))
    .unwrap();
    events.create(&PostParams::default(), &ev).await.unwrap();
    // An earlier failure, one event of its own as the CNI writes them: counted, its message superseded.
    let older: Event = serde_json::from_value(json!({
        "metadata": {"name": "failed.danm-0", "namespace": "demo"},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": "demo", "name": "failed",
                           "uid": failed.metadata.uid.clone().unwrap()},
        "type": "Warning", "reason": "DanmAddFailed", "message": "an older failure",
        "source": {"component": "danm", "host": "worker-1"},
        "count": 1,
        "firstTimestamp": "2026-01-01T09:00:00Z", "lastTimestamp": "2026-01-01T09:00:00Z"
    }))
    .unwrap();
    events.create(&PostParams::default(), &older).await.unwrap();
    // Another pod's failure and another reason on this pod are not this pod's failures.
    let other: Event = serde_json::from_value(json!({
        "metadata": {"name": "failed.other", "namespace": "demo"},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": "demo", "name": "failed",
                           "uid": failed.metadata.uid.clone().unwrap()},
        "type": "Normal", "reason": "Scheduled", "message": "scheduled",
        "lastTimestamp": "2026-01-01T11:00:00Z"
    }))
    .unwrap();
    events.create(&PostParams::default(), &other).await.unwrap();
    (bare(&a_int), bare(&a_ext))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_danm_networks_pod_and_why_describe_a_demo_cluster() {
    let Some(bin) = danm_testkit::fixtures::kubectl_or_skip() else {
        return;
    };
    let (lab, client) = danm_testkit::lab::with_crds().await;
    let (a_int, a_ext) = demo(&client).await;
    let blocks: Api<DanmIpBlock> = Api::all(client.clone());
    let blocks = blocks.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        blocks.len(),
        2,
        "worker-1 and worker-2 each claimed a block of internal"
    );
    let k = Kubectl::new(bin, lab.kubeconfig_path());
    let svg_path = k.dir.path().join("pools.svg");
    let svg_arg = svg_path.to_str().unwrap().to_owned();

    tokio::task::spawn_blocking(move || {
        // networks: every kind, sorted, aligned, with use bars.
        let r = k.danm(&["networks", "-n", "demo", "--svg", &svg_arg]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines[0].starts_with("KIND ") && lines[0].contains("IPV4 USED"), "{}", r.stdout);
        let names: Vec<&str> = lines[1..].iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
        assert_eq!(names, ["demo/external", "demo/internal", "demo/small", "demo/tenant", "shared", "demo/legacy"], "{}", r.stdout);
        let col = lines[0].find("NAME").unwrap();
        assert!(lines.iter().all(|l| l.len() <= col || l[..col].ends_with("  ") || l.starts_with("KIND")), "aligned:\n{}", r.stdout);
        let line = |name: &str| *lines.iter().find(|l| l.contains(name)).unwrap();
        let internal = line("demo/internal");
        assert!(internal.contains("blocks") && internal.contains("2/254 [#.........]") && internal.contains("vxlan 600"), "{internal}");
        let external = line("demo/external");
        assert!(external.contains("bitmap") && external.contains("1/254") && external.contains("vlan 200") && external.contains("lab0"), "{external}");
        assert!(line("demo/small").contains("2/2 [##########]"), "{}", r.stdout);
        let tenant = line("demo/tenant");
        assert!(
            tenant.starts_with("TenantNetwork") && tenant.contains("ipvlan") && tenant.contains("0/126") && tenant.contains("vlan 300"),
            "{tenant}"
        );
        let shared = line("shared");
        assert!(shared.starts_with("ClusterNetwork") && shared.contains("fd00:40::/64") && shared.contains("0/254"), "{shared}");
        assert!(line("demo/legacy").contains("192.168.50.0/24"), "{}", r.stdout);

        let j = k.json(&["networks", "-n", "demo"], 0);
        let rows = j.as_array().unwrap();
        assert_eq!(rows.len(), 6);
        let internal = rows.iter().find(|r| r["name"] == "internal").unwrap();
        assert_eq!(internal["ipam_mode"], "blocks");
        assert_eq!(internal["ipv4"], json!({"used": 2, "free": 252, "size": 254}));
        assert_eq!(internal["type"], "macvlan");
        let nad = rows.iter().find(|r| r["kind"] == "NetworkAttachmentDefinition").unwrap();
        assert_eq!(nad["host_device"], "lab0");
        let y = k.danm(&["networks", "-n", "demo", "-o", "yaml"]);
        assert!(y.code == 0 && y.stdout.contains("ipam_mode: bitmap"), "{}", y.stdout);

        // The SVG: one block element per DanmIpBlock, one segment per 64 addresses of each bitmap.
        let svg = std::fs::read_to_string(&svg_arg).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
        let rects = |class: &str| -> Vec<roxmltree::Node> {
            doc.descendants()
                .filter(|n| n.has_tag_name("rect") && n.attribute("class") == Some(class))
                .collect()
        };
        let drawn = rects("block");
        assert_eq!(drawn.len(), blocks.len(), "{svg}");
        for b in &blocks {
            let r = drawn
                .iter()
                .find(|r| r.attribute("data-cidr") == Some(b.spec.cidr.as_str()))
                .unwrap_or_else(|| panic!("no rect for block {}", b.spec.cidr));
            assert_eq!(r.attribute("data-node"), Some(b.spec.node.as_str()));
            assert_eq!(r.attribute("data-used"), Some(b.spec.owners.len().to_string().as_str()));
        }
        assert_eq!(rects("segment").len(), 4 + 1, "external /24: 4 segments; small /30: 1");
        assert_eq!(rects("legend").len(), 6);
        render_headless(&svg_arg);

        // The context's namespace is the default; KUBECONFIG is read when no flag is given.
        let ctx = k.dir.path().join("kubeconfig-demo");
        let text = std::fs::read_to_string(&k.kubeconfig).unwrap();
        std::fs::write(&ctx, text.replace("namespace: default", "namespace: demo")).unwrap();
        let r = k.run_with(&["networks"], None, Some(&ctx));
        assert!(r.code == 0 && r.stdout.contains("demo/internal"), "{}{}", r.stdout, r.stderr);
        let r = k.danm(&["networks"]);
        assert!(r.code == 0 && !r.stdout.contains("demo/internal") && r.stdout.contains("shared"), "{}", r.stdout);
        let r = k.danm(&["networks", "-A"]);
        assert!(r.stdout.contains("demo/internal"), "{}", r.stdout);

        // pod: interfaces and the network-status check.
        let r = k.danm(&["pod", "web", "-n", "demo"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let eth0 = r.stdout.lines().find(|l| l.starts_with("eth0")).unwrap();
        assert!(
            eth0.contains("DanmNet internal") && eth0.contains(&a_int) && eth0.contains("02:00:00:00:01:01")
                && eth0.contains("macvlan") && eth0.contains("ep-web-internal") && eth0.ends_with("agrees"),
            "{eth0}"
        );
        assert!(r.stdout.lines().any(|l| l.starts_with("ext1") && l.contains(&a_ext) && l.ends_with("agrees")), "{}", r.stdout);
        let j = k.json(&["pod", "web", "-n", "demo"], 0);
        assert_eq!(j["interfaces"].as_array().unwrap().len(), 2);
        assert_eq!(j["interfaces"][0]["status"]["state"], "agrees");
        let r = k.danm(&["pod", "drift", "-n", "demo"]);
        assert_eq!(r.code, 2, "a disagreement is exit status 2: {}", r.stdout);
        assert!(r.stdout.contains("differs: ips [10.10.0.250], DanmEp ["), "{}", r.stdout);
        let j = k.json(&["pod", "drift", "-n", "demo"], 2);
        assert_eq!(j["interfaces"][0]["status"]["state"], "differs");
        let r = k.danm(&["pod", "nosuch", "-n", "demo"]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("pod demo/nosuch does not exist"), "{}", r.stderr);

        // why: each cause, its evidence, and what to do.
        let why = |pod: &str, code: i32| {
            let r = k.danm(&["why", pod, "-n", "demo"]);
            assert_eq!(r.code, code, "why {pod}: {}{}", r.stdout, r.stderr);
            assert!(r.stdout.lines().last().unwrap().starts_with("what to do: "), "{}", r.stdout);
            r.stdout
        };
        let out = why("misnamed", 2);
        assert!(out.contains("problem: DanmNet demo/nosuch does not exist"), "{out}");
        let out = why("refused", 2);
        assert!(
            out.contains("problem: ClusterNetwork shared does not allow namespace demo: spec.AllowedTenants is [team-a]")
                && out.contains("what to do: add demo to spec.AllowedTenants of ClusterNetwork shared"),
            "{out}"
        );
        let out = why("starved", 2);
        assert!(out.contains("problem: the IPv4 pool of DanmNet demo/small is exhausted: 2/2 [##########]"), "{out}");
        let out = why("bare", 2);
        assert!(out.contains("no danm.k8s.io/interfaces annotation and there is no default network"), "{out}");
        let out = why("failed", 2);
        assert!(
            out.contains("problem: the CNI's ADD failed 4 times, last at 2026-01-01T10:02:00Z: CNI network could not be set up")
                && out.contains("no such device lab0"),
            "{out}"
        );
        let out = why("multus", 2);
        assert!(
            out.contains("requests: NetworkAttachmentDefinition demo/legacy, NetworkAttachmentDefinition demo/ghost")
                && out.contains("problem: NetworkAttachmentDefinition demo/ghost does not exist (looked up for namespace demo)"),
            "{out}"
        );
        let out = why("web", 0);
        assert!(out.contains("requests: DanmNet demo/internal, DanmNet demo/external") && out.contains("what to do: nothing to do"), "{out}");
        let j = k.json(&["why", "refused", "-n", "demo"], 2);
        assert_eq!(j["problems"][0]["problem"], "not-allowed");
        assert_eq!(j["problems"][0]["allowed_tenants"], json!(["team-a"]));
        let j = k.json(&["why", "failed", "-n", "demo"], 2);
        assert_eq!(j["problems"][0]["problem"], "cni-failed");
        assert_eq!(j["problems"][0]["count"], 4);
        assert!(!out_has_older(&j), "{j}");

        // Bad input and an unreachable cluster are exit status 1, with the object and the cause.
        let r = k.danm(&["why", "web", "-A"]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("-A/--all-namespaces only applies to `networks`"), "{}", r.stderr);
        let dead = k.dir.path().join("kubeconfig-dead");
        std::fs::write(&dead, text.replace(&lab_server(&text), "http://127.0.0.1:9")).unwrap();
        let r = k.run_with(&["networks", "-n", "demo"], Some(&dead), None);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("API request for DanmNets in namespace demo failed"), "{}", r.stderr);
        let r = k.danm(&["--help"]);
        assert!(r.stdout.starts_with("Inspect danm's networks"), "{}", r.stdout);
        assert!(r.code == 0 && r.stdout.contains("Exit status:") && r.stdout.contains("2  a problem was found"), "{}", r.stdout);
    })
    .await
    .unwrap();
    lab.shutdown().await;
}

fn out_has_older(j: &Value) -> bool {
    j.to_string().contains("an older failure")
}

fn lab_server(kubeconfig: &str) -> String {
    kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap()
        .to_owned()
}

/// Renders the SVG headless to a PNG with librsvg (`rsvg-convert`, Debian package librsvg2-bin, which
/// scripts/setup.sh installs), as a browser would draw it: a picture of the expected size comes out.
fn render_headless(svg: &str) {
    let rsvg = Path::new("/usr/bin/rsvg-convert");
    if !rsvg.exists() {
        danm_testkit::fixtures::skip(
            "the headless render of the SVG needs rsvg-convert (Debian package librsvg2-bin; scripts/setup.sh installs it)",
        );
        return;
    }
    let png = Path::new(svg).with_extension("png");
    let out = Command::new(rsvg)
        .arg("--format=png")
        .arg("--output")
        .arg(&png)
        .arg(svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsvg-convert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 2000,
        "rsvg-convert rendered no picture ({} bytes)",
        bytes.len()
    );
    // The PNG's size (IHDR) is the SVG's: nothing was cut off.
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    let text = std::fs::read_to_string(svg).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    let attr = |n: &str| -> u32 {
        doc.root_element()
            .attribute(n)
            .and_then(|v| v.trim_end_matches("px").parse::<f64>().ok())
            .map_or(0, |v| v.ceil() as u32)
    };
    assert_eq!((width, height), (attr("width"), attr("height")), "rendered size");
}

/// A directory holding one file that is not a WebAssembly component.
fn junk_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("junk.wasm"), b"not wasm").unwrap();
    d
}

#[test]
fn kubectl_danm_plugins_reports_backends_versions_and_the_cache() {
    let Some(bin) = danm_testkit::fixtures::kubectl_or_skip() else {
        return;
    };
    // No cluster is needed: a kubeconfig that points nowhere.
    let cfg = tempfile::tempdir().unwrap();
    let kc = cfg.path().join("kubeconfig");
    std::fs::write(
        &kc,
        danm_lab::kubeconfig::render("http://127.0.0.1:9", None, None),
    )
    .unwrap();
    let k = Kubectl::new(bin, &kc);
    let junk = junk_dir();
    let cache = tempfile::tempdir().unwrap();
    let dir = junk.path().to_str().unwrap();
    let cache_dir = cache.path().join("cache");
    let cache_arg = cache_dir.to_str().unwrap();
    let r = k.danm(&["plugins", "--dir", dir, "--cache-dir", cache_arg]);
    assert_eq!(
        r.code, 2,
        "a plugin that does not load is a problem: {}{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout.contains("no plugins") && r.stdout.contains("error: ") && r.stdout.contains("junk.wasm"),
        "{}",
        r.stdout
    );
    let j = k.json(&["plugins", "--dir", dir, "--cache-dir", cache_arg], 2);
    assert_eq!(j["plugins"], json!([]));
    assert_eq!(j["supported_wit"], json!(["0.1.0"]));

    let Some(built) = danm_testkit::fixtures::plugins_or_skip() else {
        return;
    };
    // Exactly the five real plugins, whatever else the build directory holds.
    let plugins = tempfile::tempdir().unwrap();
    for p in ["bridge", "ipvlan", "macvlan", "rules", "sriov"] {
        let f = format!("{p}.wasm");
        std::fs::copy(built.join(&f), plugins.path().join(&f)).unwrap();
    }
    let dir = plugins.path().to_str().unwrap();
    let r = k.danm(&["plugins", "--dir", dir, "--cache-dir", cache_arg]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let line = r.stdout.lines().find(|l| l.starts_with("macvlan.wasm")).unwrap();
    assert!(
        line.contains("backend")
            && line.contains("macvlan")
            && line.contains("0.1.0")
            && line.ends_with("no cache"),
        "{line}"
    );
    assert!(
        r.stdout.contains("backends: bridge, ipvlan, macvlan, sriov"),
        "{}",
        r.stdout
    );
    // An empty cache directory: nothing precompiled yet.
    std::fs::create_dir(&cache_dir).unwrap();
    let j = k.json(&["plugins", "--dir", dir, "--cache-dir", cache_arg], 0);
    assert!(
        j["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["cache"] == "not-precompiled"),
        "{j}"
    );
    // Precompiled by `danmctl plugins check`, as the node installer does.
    let check = Command::new(env!("CARGO_BIN_EXE_danmctl"))
        .args(["plugins", "check", "--plugin-dir", dir, "--cache-dir", cache_arg])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let j = k.json(&["plugins", "--dir", dir, "--cache-dir", cache_arg], 0);
    let rows = j["plugins"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|p| p["cache"] == "precompiled"), "{j}");
    let rules = rows.iter().find(|p| p["kind"] == "rules").unwrap();
    assert_eq!(rules["wit"], "0.1.0");
}
