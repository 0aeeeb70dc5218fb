//! The ADD/DEL/CHECK/GC/STATUS flows on the recording netlink fake, against the in-process lab API server and the
//! real backend plugins. Each failure test checks that nothing is left: no DanmEp, no allocated address, no link.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::lab::{Call, Lab, Services, ctx, lab, plugins};
use danm_api::{NetworkKind, labels};
use danm_cni::error::Error;
use danm_cni::ipam::Retry;
use danm_cni::native::Sysfs;
use danm_cni::run::dispatch;
use danm_core::cni::{CniConfig, codes};
use danm_lab::Fault;
use danm_netlink::{
    Call as NlCall, FakeNetlink, IpvlanMode, LinkKind, MacvlanMode, Netlink, Netns, TABLE_MAIN,
};
use serde_json::{Value, json};

const NS: &str = "default";

struct World {
    lab: Lab,
    fake: Arc<FakeNetlink>,
    svc: Services,
    pod_ns: Netns,
    netns_path: String,
    _tmp: tempfile::TempDir,
}

async fn world() -> Option<World> {
    let Some(translator) = plugins() else {
        common::skip_without_plugins();
        return None;
    };
    let lab = lab().await;
    let fake = Arc::new(FakeNetlink::new());
    fake.add_device(&Netns::Host, "ens1", 1500);
    let netns_path = "/var/run/netns/fakepod".to_owned();
    let pod_ns = Netns::path(&netns_path);
    fake.add_netns(pod_ns.clone());
    let tmp = tempfile::tempdir().unwrap();
    let svc = Services {
        api: lab.api.clone(),
        netlink: fake.clone(),
        translator,
        sysfs: Sysfs {
            root: tmp.path().join("sys"),
        },
        kubelet_root: tmp.path().join("kubelet"),
        retry: Retry::default(),
    };
    Some(World {
        lab,
        fake,
        svc,
        pod_ns,
        netns_path,
        _tmp: tmp,
    })
}

impl World {
    fn call<'a>(&'a self, command: &'a str, pod: &'a str, cid: &'a str) -> Call<'a> {
        Call::new(command, NS, pod, cid, &self.netns_path)
    }

    async fn run(&self, call: &Call<'_>) -> Result<Option<String>, Error> {
        dispatch(ctx(&self.svc, call), Ok(())).await
    }

    /// A pod in the test namespace with this `danm.k8s.io/interfaces` annotation and no labels.
    async fn pod(&self, name: &str, interfaces: Value) -> k8s_openapi::api::core::v1::Pod {
        self.lab.pod(NS, name, Some(interfaces), &[]).await
    }

    /// A DanmNet in the test namespace.
    async fn danmnet(&self, name: &str, spec: Value) -> danm_api::Network {
        self.lab.network(NetworkKind::DanmNet, NS, name, spec).await
    }

    async fn macvlan(&self, name: &str, extra: Value) -> danm_api::Network {
        let mut opts = json!({"host_device": "ens1", "cidr": "10.10.0.0/24"});
        for (k, v) in extra.as_object().unwrap() {
            opts[k] = v.clone();
        }
        self.danmnet(
            name,
            json!({"NetworkID": name, "NetworkType": "macvlan", "Options": opts}),
        )
        .await
    }

    async fn pod_links(&self) -> Vec<String> {
        self.fake
            .links(&self.pod_ns)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n != "lo")
            .collect()
    }

    /// Nothing of the pod is left: no DanmEps, no pod links, every network's bitmaps are as created and its blocks
    /// record no owner.
    async fn assert_nothing_left(&self, networks: &[&danm_api::Network]) {
        assert_eq!(self.lab.eps(NS).await.len(), 0, "DanmEps left behind");
        assert_eq!(self.pod_links().await, Vec::<String>::new(), "links left behind");
        for net in networks {
            let (alloc, alloc6, owners) = self.lab.holdings(net).await;
            assert_eq!(
                alloc,
                net.spec.options.alloc,
                "IPv4 left allocated in {}",
                net.name()
            );
            assert_eq!(
                alloc6,
                net.spec.options.alloc6,
                "IPv6 left allocated in {}",
                net.name()
            );
            assert_eq!(owners, 0, "addresses left in the blocks of {}", net.name());
        }
    }
}

fn code_of(r: Result<Option<String>, Error>) -> (u32, String) {
    let e = r.expect_err("the invocation should fail").to_cni();
    (e.code, format!("{} {}", e.msg, e.details))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_connects_two_macvlan_networks_in_annotation_order_and_del_leaves_nothing() {
    let Some(w) = world().await else { return };
    let mgmt = w.macvlan("mgmt", json!({})).await;
    let ext = w
        .danmnet(
            "ext",
            json!({"NetworkID":"ext","NetworkType":"macvlan","Options":{"host_device":"ens1","cidr":"10.20.0.0/24",
                   "net6":"fd20::/64","container_prefix":"ext","routes":{"10.30.0.0/24":"10.20.0.1"},"rt_tables":10}}),
        )
        .await;
    w.lab
        .pod(
            NS,
            "p1",
            Some(json!([{"network":"mgmt","ip":"dynamic"},
                        {"network":"ext","ip":"dynamic","ip6":"dynamic","proutes":{"10.40.0.0/24":"10.20.0.1"}}])),
            &[("app", "web")],
        )
        .await;
    let out = w.run(&w.call("ADD", "p1", "c1")).await.unwrap().unwrap();
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["interfaces"][1]["name"], "ext1");
    assert_eq!(result["ips"][0]["address"], "10.10.0.1/24");
    assert_eq!(result["ips"][0]["interface"], 0);
    assert_eq!(
        result["ips"][1]["address"], "10.20.0.2/24",
        "the gateway .1 is reserved"
    );
    assert_eq!(result["ips"][1]["interface"], 1);
    assert_eq!(result["ips"][2]["address"], "fd20::1/64");

    // Links: macvlan directly in the pod netns on ens1, bridge mode, addresses, up.
    let eth0 = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert_eq!(
        eth0.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Bridge
        }
    );
    assert!(eth0.up);
    let creates: Vec<_> = w
        .fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, NlCall::CreateLink { .. }))
        .collect();
    assert!(
        creates
            .iter()
            .all(|c| matches!(c, NlCall::CreateLink { link, .. } if link.netns == Some(w.pod_ns.clone())))
    );
    assert!(
        !w.fake
            .calls()
            .iter()
            .any(|c| matches!(c, NlCall::MoveLink { .. })),
        "no create-then-move"
    );
    let addrs: Vec<String> = w
        .fake
        .addresses(&w.pod_ns, "ext1")
        .await
        .unwrap()
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    assert!(
        addrs.contains(&"10.20.0.2/24".to_owned()) && addrs.contains(&"fd20::1/64".to_owned()),
        "{addrs:?}"
    );
    assert!(
        w.fake
            .addresses(&w.pod_ns, "ext1")
            .await
            .unwrap()
            .iter()
            .filter(|a| a.addr.is_ipv6())
            .all(|a| a.nodad)
    );
    // Post-processing: sysctls, network routes in main, proutes in table 10 with the source rule.
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/all/disable_ipv6")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/eth0/disable_ipv6")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/ext1/accept_ra")
            .as_deref(),
        Some("0")
    );
    // Neighbours learn the IPv6 address at once (unsolicited neighbour advertisements when it comes up).
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/ext1/ndisc_notify")
            .as_deref(),
        Some("1")
    );
    let main = w.fake.routes(&w.pod_ns, TABLE_MAIN).await.unwrap();
    assert!(
        main.iter()
            .any(|r| r.dst.to_string() == "10.30.0.0/24" && r.dev.as_deref() == Some("ext1")),
        "{main:?}"
    );
    let t10 = w.fake.routes(&w.pod_ns, 10).await.unwrap();
    assert!(t10.iter().any(|r| r.dst.to_string() == "10.40.0.0/24"), "{t10:?}");
    let rules = w.fake.rules(&w.pod_ns).await.unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r.table == 10 && r.from.map(|f| f.to_string()) == Some("10.20.0.0/24".into())),
        "{rules:?}"
    );

    // DanmEps: one per interface, labelled, recording pod, CID, netns, host, apiType.
    let eps = w.lab.eps(NS).await;
    assert_eq!(eps.len(), 2);
    for ep in &eps {
        let l = ep.metadata.labels.clone().unwrap();
        assert_eq!(l.get("app").map(String::as_str), Some("web"));
        assert_eq!(l.get(labels::CONTAINER_ID).map(String::as_str), Some("c1"));
        assert_eq!(ep.spec.cid, "c1");
        assert_eq!(ep.spec.pod, "p1");
        assert_eq!(ep.spec.netns, w.netns_path);
        assert_eq!(ep.spec.host, "node1");
        assert_eq!(ep.spec.api_type, "DanmNet");
        assert_eq!(ep.metadata.name.as_deref(), Some(ep.spec.endpoint_id.as_str()));
    }
    // network-status annotation.
    let pod = w.lab.get_pod(NS, "p1").await;
    let status: Value =
        serde_json::from_str(&pod.metadata.annotations.unwrap()[danm_api::NETWORK_STATUS_ANNOTATION])
            .unwrap();
    assert_eq!(status[0]["interface"], "eth0");
    assert_eq!(status[0]["default"], true);
    assert_eq!(status[1]["name"], "default/ext");

    // CHECK passes, then notices a missing interface.
    w.run(&w.call("CHECK", "p1", "c1")).await.unwrap();
    // The native links carry danm's link group, so DEL deletes them with its first kernel request, before it has
    // listed the DanmEps (and before any address is released).
    for ifname in ["eth0", "ext1"] {
        let link = w.fake.link(&w.pod_ns, ifname).await.unwrap();
        assert_eq!(link.group, danm_cni::native::NATIVE_LINK_GROUP, "{ifname}");
    }
    w.fake.clear_calls();
    // DEL removes everything, and again (idempotent).
    w.run(&w.call("DEL", "p1", "c1")).await.unwrap();
    assert_eq!(
        w.fake.mutations().first(),
        Some(&NlCall::DeleteLinkGroup {
            ns: w.pod_ns.clone(),
            group: danm_cni::native::NATIVE_LINK_GROUP
        }),
        "{:?}",
        w.fake.mutations()
    );
    assert!(
        !w.fake
            .mutations()
            .iter()
            .any(|c| matches!(c, NlCall::DeleteLink { .. } | NlCall::SetLink { .. })),
        "the group covered every link: none is deleted again by name {:?}",
        w.fake.mutations()
    );
    w.run(&w.call("DEL", "p1", "c1")).await.unwrap();
    w.assert_nothing_left(&[&mgmt, &ext]).await;
    assert!(
        !w.fake
            .rules(&w.pod_ns)
            .await
            .unwrap()
            .iter()
            .any(|r| r.table == 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_still_deletes_native_links_by_name_when_they_are_not_in_danms_link_group() {
    let Some(w) = world().await else { return };
    let net = w.macvlan("mgmt", json!({})).await;
    w.pod("old1", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    w.run(&w.call("ADD", "old1", "c-old")).await.unwrap().unwrap();
    // As a danm without link groups (or DANM itself) left it: the same link, group 0.
    w.fake.delete_link(&w.pod_ns, "eth0").await.unwrap();
    let plain =
        danm_netlink::NewLink::macvlan("eth0", "ens1", MacvlanMode::Bridge).in_netns(w.pod_ns.clone());
    assert_eq!(w.fake.create_link(&Netns::Host, &plain).await.unwrap().group, 0);
    w.fake.clear_calls();
    w.run(&w.call("DEL", "old1", "c-old")).await.unwrap();
    assert!(
        w.fake
            .mutations()
            .iter()
            .any(|c| matches!(c, NlCall::DeleteLink { name, .. } if name == "eth0")),
        "{:?}",
        w.fake.mutations()
    );
    w.assert_nothing_left(&[&net]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_converted_to_every_supported_version() {
    let Some(w) = world().await else { return };
    w.macvlan("default", json!({})).await;
    w.lab.pod(NS, "pv", None, &[]).await;
    for (i, v) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let cid = format!("cv{i}");
        let mut call = w.call("ADD", "pv", &cid);
        call.config = json!({"cniVersion": v, "name": "danm", "type": "danm"});
        let out: Value = serde_json::from_str(&w.run(&call).await.unwrap().unwrap()).unwrap();
        assert_eq!(out["cniVersion"], *v);
        assert_eq!(
            out["ips"][0]["version"].as_str(),
            v.starts_with("0.").then_some("4"),
            "{v}: {out}"
        );
        let mut del = w.call("DEL", "pv", &cid);
        del.config = call.config.clone();
        w.run(&del).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_annotation_the_namespace_default_danmnet_wins_over_the_clusternetwork() {
    let Some(w) = world().await else { return };
    w.macvlan("default", json!({})).await;
    w.lab
        .network(NetworkKind::ClusterNetwork, NS, "default",
                 json!({"NetworkID":"cdef","NetworkType":"macvlan","Options":{"host_device":"ens1","cidr":"10.99.0.0/24"}}))
        .await;
    w.pod("p2", json!([])).await;
    let out: Value =
        serde_json::from_str(&w.run(&w.call("ADD", "p2", "c2")).await.unwrap().unwrap()).unwrap();
    assert_eq!(out["ips"][0]["address"], "10.10.0.1/24");
    assert_eq!(w.lab.eps(NS).await[0].spec.api_type, "DanmNet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_annotation_and_no_default_network_is_refused() {
    let Some(w) = world().await else { return };
    w.lab.pod(NS, "p3", None, &[]).await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p3", "c3")).await);
    assert_eq!(code, codes::NETWORK_UNAVAILABLE);
    assert!(msg.contains("no suitable default network"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_tenants_refusal_and_unknown_networks_fail_before_anything_is_done() {
    let Some(w) = world().await else { return };
    let mgmt = w.macvlan("mgmt", json!({})).await;
    let cn = w
        .lab
        .network(
            NetworkKind::ClusterNetwork,
            NS,
            "only-a",
            json!({"NetworkID":"onlya","NetworkType":"macvlan","AllowedTenants":["a"],
                        "Options":{"host_device":"ens1","cidr":"10.50.0.0/24"}}),
        )
        .await;
    w.pod(
        "p4",
        json!([{"network":"mgmt","ip":"dynamic"},{"clusterNetwork":"only-a","ip":"dynamic"},
                {"network":"nope"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p4", "c4")).await);
    assert_eq!(code, codes::NETWORK_UNAVAILABLE);
    assert!(msg.contains("not in the AllowedTenants whitelist"), "{msg}");
    assert!(
        msg.contains("requested network:nope of type:DanmNet in namespace:default does not exist"),
        "{msg}"
    );
    w.assert_nothing_left(&[&mgmt, &cn]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_annotation_is_an_invalid_pod_request() {
    let Some(w) = world().await else { return };
    w.pod("p5", json!([{"network":"a","clusterNetwork":"b"}])).await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p5", "c5")).await);
    assert_eq!(code, codes::INVALID_POD_REQUEST);
    assert!(msg.contains("invalid number of network references:2"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_fails_its_interface_and_rolls_back_the_others() {
    let Some(w) = world().await else { return };
    let mgmt = w.macvlan("mgmt", json!({})).await;
    let tiny = w.macvlan("tiny", json!({"cidr": "10.60.0.0/30"})).await;
    w.pod(
        "p6",
        json!([{"network":"mgmt","ip":"dynamic"},{"network":"tiny","ip":"dynamic"},
                {"network":"tiny","ip":"dynamic"},{"network":"tiny","ip":"dynamic"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p6", "c6")).await);
    assert_eq!(code, codes::IPAM_EXHAUSTED, "{msg}");
    assert!(msg.contains("all addresses are reserved"), "{msg}");
    assert!(msg.contains("CNI operation for network:DanmNet:tiny"), "{msg}");
    w.assert_nothing_left(&[&mgmt, &tiny]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_conflicts_are_retried_and_exhausted_retries_are_try_again() {
    let Some(mut w) = world().await else { return };
    let net = w.macvlan("mgmt", json!({})).await;
    w.pod("p7", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    // Where allocations are written: the network (bitmap) or its blocks.
    let written = if common::lab::ipam_mode() == "blocks" {
        "danmipblocks"
    } else {
        "danmnets"
    };
    w.lab.handle.inject(Fault::fail_writes(written, 3, 409));
    w.run(&w.call("ADD", "p7", "c7")).await.unwrap();
    w.run(&w.call("DEL", "p7", "c7")).await.unwrap();
    w.lab.handle.inject(Fault::fail_writes(written, 50, 409));
    w.svc.retry = Retry {
        attempts: 3,
        ..Retry::default()
    };
    let (code, msg) = code_of(w.run(&w.call("ADD", "p7", "c8")).await);
    assert_eq!(code, codes::TRY_AGAIN_LATER, "{msg}");
    w.lab.handle.clear_faults();
    w.assert_nothing_left(&[&net]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_on_one_network_get_distinct_addresses() {
    let Some(w) = world().await else { return };
    w.macvlan("mgmt", json!({})).await;
    let w = Arc::new(w);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let pod = format!("cp{i}");
        w.pod(&pod, json!([{"network":"mgmt","ip":"dynamic"}])).await;
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let ns_path = format!("/var/run/netns/fake{i}");
            w.fake.add_netns(Netns::path(&ns_path));
            let cid = format!("cc{i}");
            let call = Call::new("ADD", NS, &pod, &cid, &ns_path);
            let out: Value = serde_json::from_str(&w.run(&call).await.unwrap().unwrap()).unwrap();
            out["ips"][0]["address"].as_str().unwrap().to_owned()
        }));
    }
    let mut addrs = Vec::new();
    for t in tasks {
        addrs.push(t.await.unwrap());
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 8, "{addrs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_backend_plugin_fails_the_add_with_the_plugin_code() {
    let Some(w) = world().await else { return };
    if !w.svc.translator.serves("trap") {
        common::skip_without_plugins();
        return;
    }
    let mgmt = w.macvlan("mgmt", json!({})).await;
    let trap = w
        .danmnet(
            "trapnet",
            json!({"NetworkID":"trapnet","NetworkType":"trap","Options":{"cidr":"10.70.0.0/24"}}),
        )
        .await;
    w.pod(
        "p9",
        json!([{"network":"mgmt","ip":"dynamic"},{"network":"trapnet","ip":"dynamic"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p9", "c9")).await);
    assert_eq!(code, codes::PLUGIN, "{msg}");
    assert!(msg.contains("trap"), "{msg}");
    w.assert_nothing_left(&[&mgmt, &trap]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_failure_on_one_of_three_interfaces_rolls_back_everything() {
    let Some(w) = world().await else { return };
    let a = w.macvlan("a", json!({})).await;
    let b = w.macvlan("b", json!({"cidr": "10.11.0.0/24"})).await;
    let c = w.macvlan("c", json!({"cidr": "10.12.0.0/24"})).await;
    w.fake.fail_when(
        |c| matches!(c, NlCall::AddAddress { link, .. } if link == "eth1"),
        22,
        None,
    );
    w.pod(
        "p10",
        json!([{"network":"a","ip":"dynamic"},{"network":"b","ip":"dynamic"},
                {"network":"c","ip":"dynamic"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p10", "c10")).await);
    assert_eq!(code, codes::KERNEL, "{msg}");
    assert!(msg.contains("interface:eth1"), "{msg}");
    w.assert_nothing_left(&[&a, &b, &c]).await;
}

/// What the test delegates answer to VERSION.
const VERSIONS: &str = r#"{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]}"#;

/// A delegate plugin script: answers VERSION, logs every other call, then behaves per `add` (shell) on ADD.
fn script_plugin(dir: &std::path::Path, name: &str, log: &std::path::Path, add: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\ncat > /dev/null\nif [ \"$CNI_COMMAND\" = VERSION ]; then\necho '{VERSIONS}'\nexit 0\nfi\necho \"$CNI_COMMAND $CNI_IFNAME\" >> {}\nif [ \"$CNI_COMMAND\" = ADD ]; then\n{add}\nfi\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Delegates {
    dir: tempfile::TempDir,
    log: PathBuf,
}

fn delegates() -> Delegates {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    script_plugin(dir.path(), "slow", &log, "sleep 30");
    script_plugin(
        dir.path(),
        "failing",
        &log,
        "echo '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"deliberate delegate failure\"}'\nexit 1",
    );
    script_plugin(
        dir.path(),
        "okplugin",
        &log,
        "echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.88.0.9/24\"}]}'",
    );
    for name in ["slow", "failing", "okplugin"] {
        std::fs::write(
            dir.path().join(format!("{name}.conf")),
            format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"{name}"}}"#),
        )
        .unwrap();
    }
    Delegates { dir, log }
}

impl Delegates {
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
    fn call<'a>(
        &'a self,
        w: &'a World,
        command: &'a str,
        pod: &'a str,
        cid: &'a str,
        timeout: u64,
    ) -> Call<'a> {
        let mut call = w.call(command, pod, cid);
        call.cni_path = vec![self.dir.path().display().to_string()];
        call.config = json!({"cniVersion":"1.0.0","name":"danm","type":"danm","cniDir": self.dir.path(),
                             "resultDir": self.dir.path().join("results"), "timeoutSeconds": timeout});
        call
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_gets_its_own_add_result_as_prev_result_for_check_and_del() {
    use std::os::unix::fs::PermissionsExt;
    let Some(w) = world().await else { return };
    let d = delegates();
    let dir = d.dir.path();
    // Keeps the stdin of every CHECK and DEL; fails CHECK while `fail-check` exists.
    let added = json!({"cniVersion":"1.0.0","interfaces":[{"name":"br-rec"},{"name":"eth0","sandbox":"/x"}],
                       "ips":[{"address":"10.88.0.9/24","interface":1}]});
    std::fs::write(
        dir.join("recorder"),
        format!(
            r#"#!/bin/sh
input=$(cat)
if [ "$CNI_COMMAND" = VERSION ]; then echo '{VERSIONS}'; exit 0; fi
printf '%s' "$input" > {dir}/$CNI_COMMAND.$CNI_IFNAME.stdin
case "$CNI_COMMAND" in
ADD) echo '{added}' ;;
CHECK) if [ -e {dir}/fail-check ]; then echo '{{"cniVersion":"1.0.0","code":11,"msg":"deliberate check failure"}}'; exit 1; fi ;;
esac
exit 0
"#,
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(dir.join("recorder"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("recorder.conf"),
        r#"{"cniVersion":"1.0.0","name":"recorder","type":"recorder"}"#,
    )
    .unwrap();
    let net = w
        .danmnet(
            "recorder",
            json!({"NetworkID":"recorder","NetworkType":"recorder"}),
        )
        .await;
    w.pod("p30", json!([{"network":"recorder"}])).await;
    let stdin = |cmd: &str| -> Value {
        serde_json::from_slice(&std::fs::read(dir.join(format!("{cmd}.eth0.stdin"))).unwrap()).unwrap()
    };
    let kept = dir.join("results/c30/eth0.json");

    w.run(&d.call(&w, "ADD", "p30", "c30", 10)).await.unwrap();
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(
        on_disk, added,
        "the delegate's own result is kept, as it printed it"
    );
    // The delegate would have made the interface; the fake kernel gets it here.
    let link = danm_netlink::NewLink::macvlan("eth0", "ens1", MacvlanMode::Bridge)
        .in_netns(w.pod_ns.clone())
        .up();
    w.fake.create_link(&Netns::Host, &link).await.unwrap();
    let addr = danm_netlink::NewAddress::new("10.88.0.9/24".parse().unwrap());
    w.fake.add_address(&w.pod_ns, "eth0", &addr).await.unwrap();

    w.run(&d.call(&w, "CHECK", "p30", "c30", 10)).await.unwrap();
    let check = stdin("CHECK");
    assert_eq!(
        check["prevResult"], added,
        "CHECK gets the delegate's ADD result: {check}"
    );
    assert_eq!(check["type"], "recorder");
    std::fs::write(dir.join("fail-check"), "").unwrap();
    let (code, msg) = code_of(w.run(&d.call(&w, "CHECK", "p30", "c30", 10)).await);
    assert_eq!(code, codes::DANM_FAILURE, "{msg}");
    assert!(
        msg.contains("deliberate check failure") && msg.contains("eth0"),
        "{msg}"
    );

    w.run(&d.call(&w, "DEL", "p30", "c30", 10)).await.unwrap();
    assert_eq!(stdin("DEL")["prevResult"], added, "DEL gets it too");
    assert!(
        !kept.exists() && !dir.join("results/c30").exists(),
        "DEL forgets the result"
    );
    w.assert_nothing_left(&[&net]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_delegate_gets_its_result_and_it_is_not_kept() {
    let Some(w) = world().await else { return };
    let d = delegates();
    let ok = w
        .danmnet(
            "okplugin",
            json!({"NetworkID":"okplugin","NetworkType":"okplugin"}),
        )
        .await;
    let f = w
        .danmnet("failing", json!({"NetworkID":"failing","NetworkType":"failing"}))
        .await;
    w.pod("p31", json!([{"network":"okplugin"},{"network":"failing"}]))
        .await;
    let (code, msg) = code_of(w.run(&d.call(&w, "ADD", "p31", "c31", 10)).await);
    assert_eq!(code, codes::DELEGATE, "{msg}");
    assert!(d.calls().contains(&"DEL eth0".to_owned()), "{:?}", d.calls());
    assert!(
        !d.dir.path().join("results/c31").exists(),
        "no result is kept for a failed ADD"
    );
    w.assert_nothing_left(&[&ok, &f]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_delegate_in_the_middle_of_three_gets_its_del_and_everything_is_rolled_back() {
    let Some(w) = world().await else { return };
    let d = delegates();
    let a = w.macvlan("a", json!({})).await;
    let f = w
        .danmnet(
            "failing",
            json!({"NetworkID":"failing","NetworkType":"failing",
                                                                       "Options":{"cidr":"10.13.0.0/24"}}),
        )
        .await;
    let ok = w
        .danmnet(
            "okplugin",
            json!({"NetworkID":"okplugin","NetworkType":"okplugin"}),
        )
        .await;
    w.pod(
        "p11",
        json!([{"network":"a","ip":"dynamic"},{"network":"failing","ip":"dynamic"},
                {"network":"okplugin"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&d.call(&w, "ADD", "p11", "c11", 10)).await);
    assert_eq!(code, codes::DELEGATE, "{msg}");
    assert!(msg.contains("deliberate delegate failure"), "{msg}");
    let calls = d.calls();
    assert!(
        calls.contains(&"ADD eth1".to_owned()) && calls.contains(&"DEL eth1".to_owned()),
        "B16: {calls:?}"
    );
    assert!(
        calls.contains(&"DEL eth2".to_owned()),
        "the successful delegate is rolled back too: {calls:?}"
    );
    w.assert_nothing_left(&[&a, &f, &ok]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_past_the_deadline_is_cancelled_and_rolled_back() {
    let Some(w) = world().await else { return };
    let d = delegates();
    let a = w.macvlan("a", json!({})).await;
    let s = w
        .danmnet(
            "slow",
            json!({"NetworkID":"slow","NetworkType":"slow",
                                                                   "Options":{"cidr":"10.14.0.0/24"}}),
        )
        .await;
    w.pod(
        "p12",
        json!([{"network":"a","ip":"dynamic"},{"network":"slow","ip":"dynamic"}]),
    )
    .await;
    let started = std::time::Instant::now();
    let (code, msg) = code_of(w.run(&d.call(&w, "ADD", "p12", "c12", 1)).await);
    assert_eq!(code, codes::DEADLINE_EXCEEDED, "{msg}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the slow delegate was not cancelled"
    );
    assert!(d.calls().contains(&"DEL eth1".to_owned()), "{:?}", d.calls());
    w.assert_nothing_left(&[&a, &s]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegates_address_is_recorded_in_its_danmep_and_del_runs_the_delegate() {
    let Some(w) = world().await else { return };
    let d = delegates();
    w.danmnet(
        "okplugin",
        json!({"NetworkID":"okplugin","NetworkType":"okplugin"}),
    )
    .await;
    w.pod("p13", json!([{"network":"okplugin"}])).await;
    let out: Value = serde_json::from_str(
        &w.run(&d.call(&w, "ADD", "p13", "c13", 10))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out["ips"][0]["address"], "10.88.0.9/24");
    assert_eq!(w.lab.eps(NS).await[0].spec.interface.address, "10.88.0.9/24");
    w.run(&d.call(&w, "DEL", "p13", "c13", 10)).await.unwrap();
    assert_eq!(d.calls(), ["ADD eth0", "DEL eth0"]);
    assert!(w.lab.eps(NS).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_danmeps_of_the_same_pod_uid_are_removed_before_a_new_add() {
    let Some(w) = world().await else { return };
    let net = w.macvlan("mgmt", json!({})).await;
    w.pod("p14", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    w.run(&w.call("ADD", "p14", "old")).await.unwrap();
    // The old sandbox's netns is gone; a new sandbox of the same pod asks again.
    w.fake.remove_netns(&w.pod_ns);
    w.fake.add_netns(w.pod_ns.clone());
    let out: Value =
        serde_json::from_str(&w.run(&w.call("ADD", "p14", "new")).await.unwrap().unwrap()).unwrap();
    // The stale address was freed first: the bitmap hands the lowest free address out again; the blocks hold
    // only the new DanmEp's address (their round robin moves on to the next address).
    let want = if common::lab::ipam_mode() == "blocks" {
        "10.10.0.2/24"
    } else {
        "10.10.0.1/24"
    };
    assert_eq!(
        out["ips"][0]["address"], want,
        "the stale address was freed first"
    );
    assert_eq!(
        w.lab.holdings(&net).await.2,
        usize::from(common::lab::ipam_mode() == "blocks")
    );
    let eps = w.lab.eps(NS).await;
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].spec.cid, "new");
    w.run(&w.call("DEL", "p14", "new")).await.unwrap();
    w.assert_nothing_left(&[&net]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_succeeds_when_the_network_and_the_netns_are_gone() {
    let Some(w) = world().await else { return };
    w.macvlan("mgmt", json!({})).await;
    w.pod("p15", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    w.run(&w.call("ADD", "p15", "c15")).await.unwrap();
    let api: kube::Api<danm_api::Network> =
        kube::Api::namespaced_with(w.lab.client.clone(), NS, &NetworkKind::DanmNet);
    api.delete("mgmt", &Default::default()).await.unwrap();
    w.fake.remove_netns(&w.pod_ns);
    w.run(&w.call("DEL", "p15", "c15")).await.unwrap();
    assert!(
        w.lab.eps(NS).await.is_empty(),
        "B6: the DanmEp of a deleted network is cleaned up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_missing_interface() {
    let Some(w) = world().await else { return };
    w.macvlan("mgmt", json!({})).await;
    w.pod("p16", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    w.run(&w.call("ADD", "p16", "c16")).await.unwrap();
    w.run(&w.call("CHECK", "p16", "c16")).await.unwrap();
    w.fake.delete_link(&w.pod_ns, "eth0").await.unwrap();
    let (code, msg) = code_of(w.run(&w.call("CHECK", "p16", "c16")).await);
    assert_eq!(code, codes::DANM_FAILURE);
    assert!(msg.contains("eth0: interface is missing"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_releases_the_attachments_that_are_not_valid_any_more() {
    let Some(w) = world().await else { return };
    let net = w.macvlan("mgmt", json!({})).await;
    for (pod, cid, netns) in [
        ("g1", "keep", w.netns_path.clone()),
        ("g2", "drop", "/var/run/netns/fake-g2".to_owned()),
    ] {
        w.fake.add_netns(Netns::path(&netns));
        w.pod(pod, json!([{"network":"mgmt","ip":"dynamic"}])).await;
        w.run(&Call::new("ADD", NS, pod, cid, &netns)).await.unwrap();
    }
    // A GC without the list is refused: every attachment would look stale.
    let mut bare = w.call("GC", "", "");
    bare.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm"});
    let (code, msg) = code_of(w.run(&bare).await);
    assert_eq!(code, codes::INVALID_NETWORK_CONFIG, "{msg}");
    assert!(msg.contains("cni.dev/valid-attachments"), "{msg}");
    assert_eq!(w.lab.eps(NS).await.len(), 2, "nothing was torn down");
    // Delegate results kept for both containers (and one left behind by a container that is long gone).
    let results = tempfile::tempdir().unwrap();
    let cache = danm_cni::results::ResultCache::new(results.path());
    for cid in ["keep", "drop", "ghost"] {
        cache.save(cid, "eth1", &json!({"cniVersion":"1.0.0"})).unwrap();
    }
    let mut gc = w.call("GC", "", "");
    gc.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","resultDir": results.path(),
                       "cni.dev/valid-attachments":[{"containerID":"keep","ifname":"eth0"}]});
    w.run(&gc).await.unwrap();
    let eps = w.lab.eps(NS).await;
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].spec.cid, "keep");
    assert!(cache.load("keep", "eth1").is_some());
    assert!(cache.load("drop", "eth1").is_none() && cache.load("ghost", "eth1").is_none());
    w.run(&w.call("DEL", "g1", "keep")).await.unwrap();
    w.assert_nothing_left(&[&net]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_fails_with_code_50_when_the_api_server_is_down() {
    let Some(w) = world().await else { return };
    let netns = w.netns_path.clone();
    let mut call = Call::new("STATUS", NS, "", "", &netns);
    call.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm"});
    w.run(&call).await.unwrap();
    // A plugin directory that cannot be loaded.
    let broken =
        CniConfig::parse(br#"{"cniVersion":"1.1.0","name":"danm","pluginDir":"/nonexistent/danm"}"#).unwrap();
    let Err(load_error) = danm_cni::run::load_plugins(&broken) else {
        panic!("a missing plugin directory loads");
    };
    let (code, msg) = code_of(dispatch(ctx(&w.svc, &call), Err(load_error)).await);
    assert_eq!(code, codes::STATUS_NOT_AVAILABLE);
    assert!(msg.contains("/nonexistent/danm"), "{msg}");
    let World { lab, svc, .. } = w;
    lab.handle.shutdown().await;
    let (code, msg) = code_of(dispatch(ctx(&svc, &call), Ok(())).await);
    assert_eq!(code, codes::STATUS_NOT_AVAILABLE, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipvlan_uses_l2_mode_on_the_host_device_vlan_or_vxlan_link() {
    let Some(w) = world().await else { return };
    w.fake.add_device(&Netns::Host, "ext.500", 1500);
    w.fake.add_device(&Netns::Host, "vx_ext2", 1450);
    for (name, id, opts) in [
        (
            "plain",
            "plain",
            json!({"host_device":"ens1","cidr":"10.21.0.0/24"}),
        ),
        (
            "vlan",
            "ext",
            json!({"host_device":"ens1","vlan":500,"cidr":"10.22.0.0/24"}),
        ),
        (
            "vxlan",
            "ext2",
            json!({"host_device":"ens1","vxlan":50,"cidr":"10.23.0.0/24"}),
        ),
    ] {
        w.danmnet(
            name,
            json!({"NetworkID":id,"NetworkType":"ipvlan","Options":opts}),
        )
        .await;
    }
    w.pod(
        "p17",
        json!([{"network":"plain","ip":"dynamic"},{"network":"vlan","ip":"dynamic"},
                {"network":"vxlan","ip":"dynamic"}]),
    )
    .await;
    w.run(&w.call("ADD", "p17", "c17")).await.unwrap();
    let parents: Vec<String> = w
        .fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            NlCall::CreateLink { link, .. } => match link.kind {
                danm_netlink::NewLinkKind::Ipvlan { parent, mode } => {
                    assert_eq!(mode, IpvlanMode::L2);
                    Some(format!("{}@{parent}", link.name))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut parents = parents;
    parents.sort();
    assert_eq!(parents, ["eth0@ens1", "eth1@ext.500", "eth2@vx_ext2"]);
    w.run(&w.call("DEL", "p17", "c17")).await.unwrap();
    assert!(w.pod_links().await.is_empty());
}

/// A fake sysfs with PF 0000:03:00.0 (`ens2f0`, 4 VFs) and VFs 0000:03:00.1 and .2 (netdevs ens2f0v0/ens2f0v1),
/// and the PF and VF netdevs on the fake host.
async fn fake_sriov(w: &World) {
    fake_sriov_on(&w.fake, &w.svc.sysfs.root).await;
}

async fn fake_sriov_on(fake: &FakeNetlink, root: &std::path::Path) {
    let root = root.to_owned();
    fake.add_sriov_pf(&Netns::Host, "ens2f0", 1500, 4);
    // A fake sysfs: PF 0000:03:00.0 with VFs .1 and .2, whose netdevs are ens2f0v0 / ens2f0v1.
    let devs = root.join("bus/pci/devices");
    std::fs::create_dir_all(devs.join("0000:03:00.0/net/ens2f0")).unwrap();
    for (i, pci) in ["0000:03:00.1", "0000:03:00.2"].iter().enumerate() {
        let name = format!("ens2f0v{i}");
        std::fs::create_dir_all(devs.join(pci).join("net").join(&name)).unwrap();
        std::os::unix::fs::symlink(devs.join("0000:03:00.0"), devs.join(pci).join("physfn")).unwrap();
        std::os::unix::fs::symlink(
            format!("../{pci}"),
            devs.join("0000:03:00.0").join(format!("virtfn{i}")),
        )
        .unwrap();
        if fake.find_link(&Netns::Host, &name).await.unwrap().is_none() {
            fake.add_device(&Netns::Host, &name, 1500);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sriov_takes_the_last_device_of_the_pool_sets_the_vf_vlan_and_moves_it_into_the_pod() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    // No pod-resources socket under the kubelet root: the checkpoint is read.
    assert!(!danm_cni::podresources::socket_path(&w.svc.kubelet_root).exists());
    w.danmnet(
        "sriov",
        json!({"NetworkID":"sriov","NetworkType":"sriov",
        "Options":{"device_pool":"nokia.k8s.io/sriov_ens2f0","vlan":300,"cidr":"10.24.0.0/24"}}),
    )
    .await;
    let pod = w.pod("p18", json!([{"network":"sriov","ip":"dynamic"}])).await;
    let uid = pod.metadata.uid.unwrap();
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":uid,"ResourceName":"nokia.k8s.io/sriov_ens2f0",
        "DeviceIDs":["0000:03:00.1","0000:03:00.2"]}]}})
        .to_string(),
    )
    .unwrap();
    w.run(&w.call("ADD", "p18", "c18")).await.unwrap();
    let vf = w.fake.vf(&Netns::Host, "ens2f0", 1).expect("VF 1 configured");
    assert_eq!(vf.vlan, Some(300));
    assert!(w.fake.find_link(&w.pod_ns, "eth0").await.unwrap().is_some());
    assert!(
        w.fake
            .find_link(&Netns::Host, "ens2f0v1")
            .await
            .unwrap()
            .is_none()
    );
    let ep = &w.lab.eps(NS).await[0];
    assert_eq!(ep.spec.interface.device_id, "0000:03:00.2");
    // The DanmEp records the VF's MAC address, as the pod sees it.
    let link = w.fake.find_link(&w.pod_ns, "eth0").await.unwrap().unwrap();
    assert!(!ep.spec.interface.mac_address.is_empty());
    assert_eq!(
        ep.spec.interface.mac_address,
        link.mac.map(|m| m.to_string()).unwrap_or_default()
    );
    w.run(&w.call("DEL", "p18", "c18")).await.unwrap();
    assert!(
        w.fake
            .find_link(&Netns::Host, "ens2f0v1")
            .await
            .unwrap()
            .is_some(),
        "the VF is back on the host"
    );
}

/// A delegate that supports `versions`, logs `<command> <ifname> <cniVersion it was given>` (VERSION included) and
/// answers ADD with a 0.4.0-shaped result for `address`.
fn versioned_plugin(dir: &std::path::Path, name: &str, versions: &[&str], address: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join(format!("{name}.log"));
    let list = serde_json::to_string(versions).unwrap();
    std::fs::write(
        dir.join(name),
        format!(
            r#"#!/bin/sh
cfg=$(cat)
v=$(echo "$cfg" | sed -n 's/.*"cniVersion":"\([^"]*\)".*/\1/p')
echo "$CNI_COMMAND $CNI_IFNAME $v" >> {log}
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"'"$v"'","supportedVersions":{list}}}' ;;
ADD) echo '{{"cniVersion":"'"$v"'","ips":[{{"version":"4","address":"{address}"}}]}}' ;;
esac
exit 0
"#,
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_runs_at_the_highest_version_it_shares_with_danm_and_its_result_is_converted() {
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = versioned_plugin(
        dir.path(),
        "upto100",
        &["0.3.1", "0.4.0", "1.0.0"],
        "10.89.0.7/24",
    );
    for id in ["va", "vb"] {
        std::fs::write(
            dir.path().join(format!("{id}.conf")),
            format!(r#"{{"cniVersion":"1.1.0","name":"{id}","type":"upto100"}}"#),
        )
        .unwrap();
        w.danmnet(id, json!({"NetworkID": id, "NetworkType": "upto100"}))
            .await;
    }
    w.pod("pv2", json!([{"network":"va"},{"network":"vb"}])).await;
    let config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","cniDir": dir.path()});
    let mut add = w.call("ADD", "pv2", "cv2");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = config.clone();
    let out: Value = serde_json::from_str(&w.run(&add).await.unwrap().unwrap()).unwrap();
    assert_eq!(out["cniVersion"], "1.1.0", "{out}");
    assert_eq!(out["ips"][0]["address"], "10.89.0.7/24", "{out}");
    assert!(
        out["ips"][0].get("version").is_none(),
        "converted to the 1.x shape: {out}"
    );
    let mut del = w.call("DEL", "pv2", "cv2");
    del.cni_path = add.cni_path.clone();
    del.config = config;
    w.run(&del).await.unwrap();
    let mut calls: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    calls.sort();
    assert_eq!(
        calls,
        [
            "ADD eth0 1.0.0",
            "ADD eth1 1.0.0",
            "DEL eth0 1.0.0",
            "DEL eth1 1.0.0",
            "VERSION  1.1.0"
        ],
        "VERSION is asked once for the binary, then ADD and DEL run at 1.0.0"
    );
    assert!(w.lab.eps(NS).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_that_shares_no_version_with_danm_fails_with_code_7_naming_both_lists() {
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = versioned_plugin(dir.path(), "future", &["1.2.0", "2.0.0"], "10.89.0.8/24");
    std::fs::write(
        dir.path().join("fut.conf"),
        r#"{"cniVersion":"1.1.0","name":"fut","type":"future"}"#,
    )
    .unwrap();
    let a = w.macvlan("a", json!({})).await;
    let fut = w
        .danmnet(
            "fut",
            json!({"NetworkID":"fut","NetworkType":"future","Options":{"cidr":"10.15.0.0/24"}}),
        )
        .await;
    w.pod(
        "pv3",
        json!([{"network":"a","ip":"dynamic"},{"network":"fut","ip":"dynamic"}]),
    )
    .await;
    let mut add = w.call("ADD", "pv3", "cv3");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","cniDir": dir.path()});
    let (code, msg) = code_of(w.run(&add).await);
    assert_eq!(code, codes::INVALID_NETWORK_CONFIG, "{msg}");
    assert!(msg.contains("incompatible CNI version"), "{msg}");
    assert!(
        msg.contains(r#"plugin future supports ["1.2.0", "2.0.0"]"#),
        "{msg}"
    );
    assert!(
        msg.contains("danm asked for 1.1.0") && msg.contains(r#""1.0.0", "1.1.0"]"#),
        "{msg}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        !calls.contains("ADD"),
        "never run at a version it does not speak: {calls}"
    );
    w.assert_nothing_left(&[&a, &fut]).await;
}

mod kubelet {
    //! A fake kubelet serving PodResources `List` on a unix socket.
    use std::convert::Infallible;
    use std::path::Path;
    use std::sync::Arc;

    use danm_cni::podresources::{LIST_PATH, ListPodResourcesRequest, ListPodResourcesResponse};
    use tonic::body::Body;
    use tonic::codegen::{BoxFuture, Context, Poll, Service, http};

    type Answer = Arc<dyn Fn() -> Result<ListPodResourcesResponse, tonic::Status> + Send + Sync>;

    #[derive(Clone)]
    struct Lister(Answer);

    impl tonic::server::NamedService for Lister {
        const NAME: &'static str = "v1.PodResourcesLister";
    }

    struct List(Answer);

    impl tonic::server::UnaryService<ListPodResourcesRequest> for List {
        type Response = ListPodResourcesResponse;
        type Future = BoxFuture<tonic::Response<ListPodResourcesResponse>, tonic::Status>;
        fn call(&mut self, _: tonic::Request<ListPodResourcesRequest>) -> Self::Future {
            let answer = (self.0)();
            Box::pin(async move { answer.map(tonic::Response::new) })
        }
    }

    impl Service<http::Request<Body>> for Lister {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<http::Response<Body>, Infallible>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<Body>) -> Self::Future {
            let answer = self.0.clone();
            Box::pin(async move {
                if req.uri().path() != LIST_PATH {
                    return Ok(tonic::Status::unimplemented(req.uri().path().to_owned()).into_http());
                }
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(List(answer), req).await)
            })
        }
    }

    /// Serves `answer` on `socket` until the returned task is aborted.
    pub fn serve(
        socket: &Path,
        answer: impl Fn() -> Result<ListPodResourcesResponse, tonic::Status> + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
        let listener = tokio::net::UnixListener::bind(socket).unwrap();
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(stream, _)| stream);
            Some((conn, l))
        });
        let service = Lister(Arc::new(answer));
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        })
    }
}

/// A pod's entry for [`pod_resources`]: namespace, name, and per container one resource with its device ids.
type PodEntry<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [&'a str])]);

fn pod_resources(pods: &[PodEntry<'_>]) -> danm_cni::podresources::ListPodResourcesResponse {
    use danm_cni::podresources::{ContainerDevices, ContainerResources, PodResources};
    danm_cni::podresources::ListPodResourcesResponse {
        pod_resources: pods
            .iter()
            .map(|(ns, name, containers)| PodResources {
                name: (*name).to_owned(),
                namespace: (*ns).to_owned(),
                containers: containers
                    .iter()
                    .enumerate()
                    .map(|(i, (resource, ids))| ContainerResources {
                        name: format!("c{i}"),
                        devices: vec![ContainerDevices {
                            resource_name: (*resource).to_owned(),
                            device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                        }],
                    })
                    .collect(),
            })
            .collect(),
    }
}

async fn sriov_network(w: &World) {
    w.danmnet(
        "sriov",
        json!({"NetworkID":"sriov","NetworkType":"sriov",
        "Options":{"device_pool":"nokia.k8s.io/sriov_ens2f0","vlan":300,"cidr":"10.24.0.0/24"}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sriov_takes_its_device_from_kubelets_pod_resources_api_when_the_socket_exists() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    sriov_network(&w).await;
    let pod = w.pod("p19", json!([{"network":"sriov","ip":"dynamic"}])).await;
    // A checkpoint that would give another device: the socket wins.
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":pod.metadata.uid.unwrap(),
            "ResourceName":"nokia.k8s.io/sriov_ens2f0","DeviceIDs":["0000:03:00.2","0000:03:00.1"]}]}})
        .to_string(),
    )
    .unwrap();
    // Two containers of the pod hold one device each; a same-named pod elsewhere holds others.
    let pool = "nokia.k8s.io/sriov_ens2f0";
    let answer = pod_resources(&[
        (NS, "p19", &[(pool, &["0000:03:00.1"]), (pool, &["0000:03:00.2"])]),
        ("elsewhere", "p19", &[(pool, &["0000:03:00.9"])]),
    ]);
    let socket = danm_cni::podresources::socket_path(&w.svc.kubelet_root);
    let server = kubelet::serve(&socket, move || Ok(answer.clone()));
    w.run(&w.call("ADD", "p19", "c19")).await.unwrap();
    assert_eq!(w.lab.eps(NS).await[0].spec.interface.device_id, "0000:03:00.2");
    let vf = w.fake.vf(&Netns::Host, "ens2f0", 1).expect("VF 1 configured");
    assert_eq!(vf.vlan, Some(300));
    assert!(w.fake.find_link(&w.pod_ns, "eth0").await.unwrap().is_some());
    w.run(&w.call("DEL", "p19", "c19")).await.unwrap();
    assert!(w.lab.eps(NS).await.is_empty());
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pod_resources_socket_fails_the_add_naming_the_socket_and_leaves_nothing() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    sriov_network(&w).await;
    let a = w.macvlan("a", json!({})).await;
    w.pod(
        "p20",
        json!([{"network":"a","ip":"dynamic"},{"network":"sriov","ip":"dynamic"}]),
    )
    .await;
    let socket = danm_cni::podresources::socket_path(&w.svc.kubelet_root);
    let server = kubelet::serve(&socket, || {
        Err(tonic::Status::unavailable("kubelet is restarting"))
    });
    let (code, msg) = code_of(w.run(&w.call("ADD", "p20", "c20")).await);
    assert_eq!(code, codes::KERNEL, "{msg}");
    assert!(
        msg.contains(&format!("unix://{}", socket.display())) && msg.contains("kubelet is restarting"),
        "{msg}"
    );
    assert!(
        msg.contains("failed to retrieve resources of DevicePool"),
        "{msg}"
    );
    server.abort();
    // A stale socket nobody listens on.
    let _ = server.await;
    let (_, msg) = code_of(w.run(&w.call("ADD", "p20", "c21")).await);
    assert!(
        msg.contains(&format!("unix://{}", socket.display())) && msg.contains("could not connect"),
        "{msg}"
    );
    w.assert_nothing_left(&[&a]).await;
}

/// Binds VF `pci` of the fake sysfs to the user-space driver `driver`: `<pci>/driver` points at it and the VF has
/// no netdev any more.
fn bind_to(root: &std::path::Path, pci: &str, driver: &str) {
    let drivers = root.join("bus/pci/drivers").join(driver);
    std::fs::create_dir_all(&drivers).unwrap();
    let dev = root.join("bus/pci/devices").join(pci);
    std::fs::remove_dir_all(dev.join("net")).unwrap();
    std::os::unix::fs::symlink(&drivers, dev.join("driver")).unwrap();
}

fn sriov_config(
    device_id: &str,
    vlan: u16,
    mac: Option<&str>,
    ips: &[&str],
) -> danm_cni::native::NativeConfig {
    danm_cni::native::NativeConfig::Sriov {
        device_id: device_id.to_owned(),
        vlan,
        mac: mac.map(|m| m.parse().unwrap()),
        mtu: None,
        ips: ips.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

#[tokio::test]
async fn a_dpdk_vf_without_vlan_is_replaced_by_a_dummy_named_as_the_interface_with_the_vf_mac_and_pci_alias()
{
    use danm_netlink::{LinkChange, NewAddress, NewLink, VfConfig};
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeNetlink::new();
    let pod = Netns::path("/var/run/netns/dpdk0");
    fake.add_netns(pod.clone());
    fake_sriov_on(&fake, tmp.path()).await;
    bind_to(tmp.path(), "0000:03:00.1", "vfio-pci");
    let sysfs = Sysfs {
        root: tmp.path().to_owned(),
    };
    assert_eq!(sysfs.dpdk_driver("0000:03:00.1").as_deref(), Some("vfio-pci"));
    assert_eq!(sysfs.dpdk_driver("0000:03:00.2"), None, "a kernel-bound VF");
    let cfg = sriov_config(
        "0000:03:00.1",
        0,
        Some("02:00:00:00:03:01"),
        &["10.24.0.5/24", "fd24::5/64"],
    );
    let mac = "02:00:00:00:03:01".parse().unwrap();
    let journal = danm_cni::journal::Journal::default();
    fake.clear_calls();
    let result = danm_cni::native::add(&fake, &sysfs, &pod, "eth1", &cfg, &journal, "3f2c1d9e-aaaa-bbbb")
        .await
        .unwrap();
    assert_eq!(
        fake.mutations(),
        [
            NlCall::SetVf {
                ns: Netns::Host,
                pf: "ens2f0".into(),
                vf: VfConfig {
                    vf: 0,
                    mac: Some(mac),
                    vlan: Some(0),
                    qos: 0
                }
            },
            NlCall::CreateLink {
                ns: pod.clone(),
                link: NewLink::dummy("eth1").alias("0000:03:00.1").mac(mac)
            },
            NlCall::AddAddress {
                ns: pod.clone(),
                link: "eth1".into(),
                addr: NewAddress::new("10.24.0.5/24".parse().unwrap())
            },
            NlCall::AddAddress {
                ns: pod.clone(),
                link: "eth1".into(),
                addr: NewAddress::new("fd24::5/64".parse().unwrap()).nodad(true)
            },
            NlCall::SetLink {
                ns: pod.clone(),
                name: "eth1".into(),
                change: LinkChange::new().up(true)
            },
        ]
    );
    let link = fake.link(&pod, "eth1").await.unwrap();
    assert_eq!(link.kind, LinkKind::Dummy);
    assert_eq!(link.alias.as_deref(), Some("0000:03:00.1"));
    assert_eq!(link.mac, Some(mac));
    assert!(link.up);
    assert_eq!(result.interfaces[0].mac, "02:00:00:00:03:01");
    // DEL (a VF removal) deletes the dummy instead of moving anything to the host.
    fake.clear_calls();
    danm_cni::native::remove(&fake, &pod, "eth1", true, None)
        .await
        .unwrap();
    assert!(
        fake.mutations()
            == [NlCall::DeleteLink {
                ns: pod.clone(),
                name: "eth1".into()
            }],
        "{:?}",
        fake.mutations()
    );
    assert!(fake.find_link(&pod, "eth1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_dpdk_vf_with_a_vlan_gets_a_vlan_link_on_a_dummy_named_after_the_danmep_and_both_are_undone() {
    use danm_netlink::{LinkChange, NewAddress, NewLink, VfConfig};
    let tmp = tempfile::tempdir().unwrap();
    let fake = FakeNetlink::new();
    let pod = Netns::path("/var/run/netns/dpdk1");
    fake.add_netns(pod.clone());
    fake_sriov_on(&fake, tmp.path()).await;
    bind_to(tmp.path(), "0000:03:00.2", "igb_uio");
    let sysfs = Sysfs {
        root: tmp.path().to_owned(),
    };
    // An all-zero MAC is not given to the link.
    let cfg = sriov_config("0000:03:00.2", 300, Some("00:00:00:00:00:00"), &["10.24.0.6/24"]);
    let journal = danm_cni::journal::Journal::default();
    fake.clear_calls();
    danm_cni::native::add(
        &fake,
        &sysfs,
        &pod,
        "eth2",
        &cfg,
        &journal,
        "3f2c1d9e-aaaa-bbbb-cccc-0123456789ab",
    )
    .await
    .unwrap();
    let dummy = "3f2c1d9e-aaaa-";
    assert_eq!(
        danm_cni::native::dpdk_dummy_name("3f2c1d9e-aaaa-bbbb-cccc-0123456789ab"),
        dummy
    );
    assert_eq!(
        fake.mutations(),
        [
            NlCall::SetVf {
                ns: Netns::Host,
                pf: "ens2f0".into(),
                vf: VfConfig {
                    vf: 1,
                    mac: Some(danm_netlink::MacAddr([0; 6])),
                    vlan: Some(300),
                    qos: 0
                }
            },
            NlCall::CreateLink {
                ns: pod.clone(),
                link: NewLink::dummy(dummy).up()
            },
            NlCall::SetSysctls {
                ns: pod.clone(),
                values: danm_cni::post::ipv6_sysctls(dummy, "")
            },
            NlCall::CreateLink {
                ns: pod.clone(),
                link: NewLink::vlan("eth2", dummy, 300).alias("0000:03:00.2")
            },
            NlCall::AddAddress {
                ns: pod.clone(),
                link: "eth2".into(),
                addr: NewAddress::new("10.24.0.6/24".parse().unwrap())
            },
            NlCall::SetLink {
                ns: pod.clone(),
                name: "eth2".into(),
                change: LinkChange::new().up(true)
            },
        ]
    );
    let vlan = fake.link(&pod, "eth2").await.unwrap();
    assert_eq!(vlan.kind, LinkKind::Vlan { id: 300 });
    assert_eq!(
        vlan.parent_index,
        Some(fake.link(&pod, dummy).await.unwrap().index)
    );
    assert_eq!(
        fake.sysctl_value(&pod, &format!("net/ipv6/conf/{dummy}/disable_ipv6"))
            .as_deref(),
        Some("1")
    );
    // The journal undoes the VLAN link, then the dummy.
    let undo: Vec<String> = journal
        .take_reversed()
        .into_iter()
        .map(|u| match u {
            danm_cni::journal::Undo::Link { name, .. } => name,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(undo, ["eth2", dummy]);
    // DEL of the VF removes the VLAN link and its dummy.
    danm_cni::native::remove(&fake, &pod, "eth2", true, None)
        .await
        .unwrap();
    assert!(fake.links(&pod).await.unwrap().iter().all(|l| l.name == "lo"));
    assert!(!fake.calls().iter().any(|c| matches!(c, NlCall::MoveLink { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpdk_sriov_interface_is_set_up_through_add_and_rolled_back_when_the_vlan_cannot_be_made() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    bind_to(&w.svc.sysfs.root, "0000:03:00.2", "uio_pci_generic");
    sriov_network(&w).await;
    let pod = w.pod("p21", json!([{"network":"sriov","ip":"dynamic"}])).await;
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":pod.metadata.uid.unwrap(),"ResourceName":"nokia.k8s.io/sriov_ens2f0",
        "DeviceIDs":["0000:03:00.1","0000:03:00.2"]}]}})
        .to_string(),
    )
    .unwrap();
    let net = w.lab.get_network(NetworkKind::DanmNet, NS, "sriov").await;
    // This kernel has no 802.1q: the VLAN link fails, the dummy is rolled back, nothing is left.
    w.fake.without_kind("vlan");
    let (code, msg) = code_of(w.run(&w.call("ADD", "p21", "c21")).await);
    assert_eq!(code, codes::KERNEL, "{msg}");
    assert!(
        msg.contains("cannot create the vlan eth0 for DPDK device 0000:03:00.2"),
        "{msg}"
    );
    w.assert_nothing_left(&[&net]).await;

    // With VLAN support: eth0 is a VLAN 300 link on a dummy named after the DanmEp, with the address.
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    bind_to(&w.svc.sysfs.root, "0000:03:00.2", "uio_pci_generic");
    sriov_network(&w).await;
    let net = w.lab.get_network(NetworkKind::DanmNet, NS, "sriov").await;
    let pod = w.pod("p21", json!([{"network":"sriov","ip":"dynamic"}])).await;
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":pod.metadata.uid.unwrap(),"ResourceName":"nokia.k8s.io/sriov_ens2f0",
        "DeviceIDs":["0000:03:00.2"]}]}})
        .to_string(),
    )
    .unwrap();
    // The translated config has no MAC: the stand-in gets the one the PF reports for the VF.
    let vf_mac: danm_netlink::MacAddr = "02:00:00:00:03:02".parse().unwrap();
    w.fake
        .set_vf(
            &Netns::Host,
            "ens2f0",
            &danm_netlink::VfConfig {
                vf: 1,
                mac: Some(vf_mac),
                vlan: None,
                qos: 0,
            },
        )
        .await
        .unwrap();
    let out: Value =
        serde_json::from_str(&w.run(&w.call("ADD", "p21", "c22")).await.unwrap().unwrap()).unwrap();
    let ep = &w.lab.eps(NS).await[0];
    let dummy: String = ep.metadata.name.clone().unwrap().chars().take(14).collect();
    let eth0 = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert_eq!(eth0.kind, LinkKind::Vlan { id: 300 });
    assert_eq!(eth0.alias.as_deref(), Some("0000:03:00.2"));
    assert_eq!(eth0.mac, Some(vf_mac));
    assert!(eth0.up);
    assert_eq!(
        eth0.parent_index,
        Some(w.fake.link(&w.pod_ns, &dummy).await.unwrap().index)
    );
    assert_eq!(out["ips"][0]["address"], "10.24.0.1/24", "{out}");
    assert_eq!(w.fake.vf(&Netns::Host, "ens2f0", 1).unwrap().vlan, Some(300));
    w.run(&w.call("CHECK", "p21", "c22")).await.unwrap();
    w.run(&w.call("DEL", "p21", "c22")).await.unwrap();
    w.assert_nothing_left(&[&net]).await;
}

/// A delegate whose VERSION behaviour is the shell `on_version`; it logs `<command> <cniVersion>` and answers ADD
/// with an empty result.
fn plugin_answering_version(dir: &std::path::Path, name: &str, on_version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join(format!("{name}.log"));
    std::fs::write(
        dir.join(name),
        format!(
            r#"#!/bin/sh
cfg=$(cat)
v=$(echo "$cfg" | sed -n 's/.*"cniVersion":"\([^"]*\)".*/\1/p')
echo "$CNI_COMMAND $v" >> {log}
if [ "$CNI_COMMAND" = VERSION ]; then
{on_version}
fi
exit 0
"#,
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join(format!("{name}.conf")),
        format!(r#"{{"cniVersion":"1.0.0","name":"{name}","type":"{name}"}}"#),
    )
    .unwrap();
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_without_a_usable_version_answer_runs_at_the_requested_version_and_an_old_one_at_0_1_0() {
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // Prints nothing for VERSION: run at the requested version; it would refuse by itself if it could not.
    let silent = plugin_answering_version(dir.path(), "silent", "exit 0");
    // libcni's rule: "unknown CNI_COMMAND: VERSION" means the plugin only knows 0.1.0.
    let ancient = plugin_answering_version(
        dir.path(),
        "ancient",
        r#"echo '{"code":4,"msg":"unknown CNI_COMMAND: VERSION"}'; exit 1"#,
    );
    for name in ["silent", "ancient"] {
        w.danmnet(name, json!({"NetworkID": name, "NetworkType": name}))
            .await;
    }
    w.pod("pv4", json!([{"network":"silent"},{"network":"ancient"}]))
        .await;
    let mut add = w.call("ADD", "pv4", "cv4");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","cniDir": dir.path()});
    w.run(&add).await.unwrap();
    let log = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    assert_eq!(log(&silent), "VERSION 1.0.0\nADD 1.0.0\n");
    assert_eq!(log(&ancient), "VERSION 1.0.0\nADD 0.1.0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_that_breaks_its_backends_rules_fails_add_with_the_violations_and_leaves_nothing() {
    let Some(w) = world().await else { return };
    // Created without the webhook, which would have refused it: an MTU no link can have.
    let bad = w.macvlan("badmtu", json!({"mtu": 10})).await;
    let good = w.macvlan("mgmt", json!({"cidr": "10.11.0.0/24"})).await;
    w.pod(
        "p-bad",
        json!([{"network":"mgmt","ip":"dynamic"},{"network":"badmtu","ip":"dynamic"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p-bad", "c-bad")).await);
    assert_eq!(code, codes::INVALID_NETWORK_CONFIG, "{msg}");
    assert!(
        msg.contains("badmtu") && msg.contains("mtu"),
        "the violation is listed: {msg}"
    );
    w.assert_nothing_left(&[&bad, &good]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_stays_ready_when_a_pool_is_exhausted() {
    // containerd 2 polls STATUS every 5 s: one full pool must not make the whole node NotReady.
    let Some(w) = world().await else { return };
    w.macvlan("tiny", json!({"cidr": "10.12.0.0/30"})).await;
    for (pod, cid) in [("t1", "ct1"), ("t2", "ct2"), ("t3", "ct3")] {
        let netns = format!("/var/run/netns/fake-{pod}");
        w.fake.add_netns(Netns::path(&netns));
        w.pod(pod, json!([{"network":"tiny","ip":"dynamic"}])).await;
        let outcome = w.run(&Call::new("ADD", NS, pod, cid, &netns)).await;
        if pod == "t3" {
            assert_eq!(
                code_of(outcome).0,
                codes::IPAM_EXHAUSTED,
                "a /30 has two addresses"
            );
        } else {
            outcome.unwrap();
        }
    }
    let mut call = Call::new("STATUS", NS, "", "", &w.netns_path);
    call.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm"});
    w.run(&call).await.expect("STATUS succeeds with a full pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_without_an_address_gets_no_routes_and_proutes_need_rt_tables() {
    let Some(w) = world().await else { return };
    // `ip: none` on a network with routes: nothing to route from, so no route is added (behaviour §4.10).
    w.macvlan(
        "routed",
        json!({"routes": {"10.70.0.0/24": "10.10.0.254"}, "rt_tables": 30}),
    )
    .await;
    // Policy routes on a network without rt_tables are ignored (DANM's rule).
    w.danmnet(
        "notable",
        json!({"NetworkID":"notable","NetworkType":"macvlan","Options":{"host_device":"ens1","cidr":"10.13.0.0/24"}}),
    )
    .await;
    w.pod(
        "p-none",
        json!([{"network":"routed","ip":"none"},
               {"network":"notable","ip":"dynamic","proutes":{"10.71.0.0/24":"10.13.0.1"}}]),
    )
    .await;
    w.run(&w.call("ADD", "p-none", "c-none")).await.unwrap();
    let routes = w.fake.routes(&w.pod_ns, danm_netlink::TABLE_MAIN).await.unwrap();
    assert!(
        !routes.iter().any(|r| r.dst.to_string() == "10.70.0.0/24"),
        "no route for an interface without an address: {routes:?}"
    );
    assert!(w.fake.routes(&w.pod_ns, 30).await.unwrap().is_empty());
    let rules = w.fake.rules(&w.pod_ns).await.unwrap();
    assert!(
        !rules
            .iter()
            .any(|r| r.from.is_some_and(|f| f.to_string().starts_with("10.13."))),
        "no policy rule without rt_tables: {rules:?}"
    );
    w.run(&w.call("DEL", "p-none", "c-none")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_danmep_records_the_pod_uid_and_the_infra_container_and_native_results_their_sandbox_and_mac() {
    let Some(w) = world().await else { return };
    w.macvlan("mgmt", json!({})).await;
    let pod = w.pod("p-ids", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    let out: Value = serde_json::from_str(
        &w.run(&w.call("ADD", "p-ids", "sandbox-7"))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let ep = &w.lab.eps(NS).await[0];
    let uid = pod.metadata.uid.clone().unwrap();
    assert_ne!(uid, "sandbox-7");
    assert_eq!(ep.spec.pod_uid, uid, "PodUID is the pod's UID");
    assert_eq!(ep.spec.cid, "sandbox-7", "CID is the infra container's id");
    let ep_labels = ep.metadata.labels.clone().unwrap();
    assert_eq!(ep_labels[labels::POD_UID], uid);
    assert_eq!(ep_labels[labels::CONTAINER_ID], "sandbox-7");
    // The result of a host-made interface names its sandbox and the MAC the pod sees.
    let link = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert_eq!(out["interfaces"][0]["sandbox"], w.netns_path.as_str());
    assert_eq!(
        out["interfaces"][0]["mac"],
        link.mac.map(|m| m.to_string()).unwrap_or_default()
    );
    w.run(&w.call("DEL", "p-ids", "sandbox-7")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_types_are_case_insensitive_and_an_empty_one_is_ipvlan() {
    let Some(w) = world().await else { return };
    w.danmnet(
        "upper",
        json!({"NetworkID":"upper","NetworkType":"MacVlan","Options":{"host_device":"ens1","cidr":"10.14.0.0/24"}}),
    )
    .await;
    w.danmnet(
        "plain",
        json!({"NetworkID":"plain","Options":{"host_device":"ens1","cidr":"10.15.0.0/24"}}),
    )
    .await;
    w.pod(
        "p-types",
        json!([{"network":"upper","ip":"dynamic"},{"network":"plain","ip":"dynamic"}]),
    )
    .await;
    w.run(&w.call("ADD", "p-types", "c-types")).await.unwrap();
    let eth0 = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert!(matches!(eth0.kind, LinkKind::Macvlan { .. }), "{:?}", eth0.kind);
    let second = w
        .fake
        .links(&w.pod_ns)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name != "lo" && l.name != "eth0")
        .unwrap();
    assert!(
        matches!(second.kind, LinkKind::Ipvlan { .. }),
        "{:?}",
        second.kind
    );
    w.run(&w.call("DEL", "p-types", "c-types")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_delegate_gets_fakeipam_with_the_address_danm_allocated_in_place_of_its_own_ipam() {
    use std::os::unix::fs::PermissionsExt;
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // A delegate that keeps the config it was given on stdin and answers with the address fakeipam would echo.
    let seen = dir.path().join("seen.json");
    std::fs::write(
        dir.path().join("recorder"),
        format!(
            "#!/bin/sh\ncfg=$(cat)\ncase \"$CNI_COMMAND\" in\nVERSION) echo '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}}' ;;\nADD) echo \"$cfg\" > {seen}\n echo '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.16.0.1/24\"}}]}}' ;;\nesac\nexit 0\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("recorder"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rec.conf"),
        r#"{"cniVersion":"1.0.0","name":"rec","type":"recorder","ipam":{"type":"host-local","subnet":"192.168.0.0/24"}}"#,
    )
    .unwrap();
    w.danmnet(
        "rec",
        json!({"NetworkID":"rec","NetworkType":"recorder","Options":{"cidr":"10.16.0.0/24"}}),
    )
    .await;
    w.pod("p-rec", json!([{"network":"rec","ip":"dynamic"}])).await;
    let mut add = w.call("ADD", "p-rec", "c-rec");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = json!({"cniVersion":"1.0.0","name":"danm","type":"danm","cniDir": dir.path()});
    w.run(&add).await.unwrap();
    let given: Value = serde_json::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
    assert_eq!(given["type"], "recorder");
    assert_eq!(
        given["ipam"],
        json!({"type":"fakeipam","ips":[{"ipcidr":"10.16.0.1/24","version":4}]}),
        "its own IPAM is replaced by fakeipam carrying danm's address: {given}"
    );
    let mut del = w.call("DEL", "p-rec", "c-rec");
    del.cni_path = add.cni_path.clone();
    del.config = add.config.clone();
    w.run(&del).await.unwrap();
}
