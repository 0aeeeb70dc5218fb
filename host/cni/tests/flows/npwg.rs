//! NPWG attachments: the `k8s.v1.cni.cncf.io/networks` annotation resolved to NetworkAttachmentDefinitions,
//! delegated next to danm's own interfaces, danm's IPAM in a NAD, IPAMClaims, and the errors (behaviour §2.1).

use std::collections::BTreeMap;

use danm_api::{IpamClaim, IpamClaimSpec, NetworkAttachmentDefinition};
use danm_ipam::IpamConfig;
use danm_ipam::reconcile::Reconciler;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;

use super::*;

/// A pod in `NS` with exactly these annotations.
async fn npwg_pod(w: &World, name: &str, annotations: &[(&str, &str)]) -> Pod {
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "pause"}]}
    }))
    .unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(w.lab.client.clone(), NS);
    pods.create(&PostParams::default(), &pod).await.unwrap()
}

async fn nad(w: &World, ns: &str, name: &str, config: Value) {
    let nad: NetworkAttachmentDefinition = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"config": config.to_string()}
    }))
    .unwrap();
    let api: kube::Api<NetworkAttachmentDefinition> = kube::Api::namespaced(w.lab.client.clone(), ns);
    api.create(&PostParams::default(), &nad).await.unwrap();
}

/// A DanmNet in the blocks IPAM mode, whatever mode the run creates networks in.
async fn blocks_net(w: &World, name: &str, cidr: &str) -> danm_api::Network {
    pool_net(w, name, cidr, "blocks").await
}

/// A DanmNet in IPAM mode `mode` (`bitmap` or `blocks`, named by its annotation), whatever mode the run creates
/// networks in.
async fn pool_net(w: &World, name: &str, cidr: &str, mode: &str) -> danm_api::Network {
    let mut spec: danm_api::NetworkSpec =
        serde_json::from_value(json!({"NetworkID": name, "NetworkType": "macvlan",
                                      "Options": {"host_device": "ens1", "cidr": cidr}}))
        .unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    if mode == "blocks" {
        spec.options.alloc.clear();
    }
    let mut net = danm_api::Network::new(NetworkKind::DanmNet, Some(NS), name, spec);
    net.metadata.annotations = Some(BTreeMap::from([(
        danm_api::annotations::IPAM_MODE.to_owned(),
        mode.to_owned(),
    )]));
    let api: kube::Api<danm_api::Network> =
        kube::Api::namespaced_with(w.lab.client.clone(), NS, &NetworkKind::DanmNet);
    api.create(&PostParams::default(), &net).await.unwrap()
}

/// A delegate that answers ADD with `address` on the interface it was asked for.
fn answering(w: &World, plugin: &str, address: &str) {
    w.plugins.add(
        plugin,
        FakePlugin::adding(Answer::Print(
            json!({"cniVersion":"1.0.0","ips":[{"address": address}]}),
        )),
    );
}

fn status_of(pod: &Pod) -> Vec<Value> {
    serde_json::from_str(&pod.metadata.annotations.as_ref().unwrap()[danm_api::NETWORK_STATUS_ANNOTATION])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npwg_attachments_come_after_danms_own_get_their_element_and_are_torn_down_by_del() {
    let Some(w) = world().await else { return };
    let mgmt = w.macvlan("mgmt", json!({})).await;
    w.lab.namespace("other").await;
    // A single plugin NAD declaring the ips and mac capabilities, and a conflist NAD in another namespace.
    answering(&w, "npwg-a", "10.77.0.5/24");
    answering(&w, "npwg-b", "10.78.0.6/24");
    w.plugins.add("tuning", FakePlugin::adding(Answer::Nothing));
    nad(
        &w,
        NS,
        "net-a",
        json!({"cniVersion":"1.0.0","name":"net-a","type":"npwg-a",
               "capabilities":{"ips":true,"mac":true,"bandwidth":false},"ipam":{"type":"static"}}),
    )
    .await;
    nad(
        &w,
        "other",
        "net-b",
        json!({"cniVersion":"1.0.0","name":"net-b",
               "plugins":[{"type":"npwg-b","capabilities":{"portMappings":true}},{"type":"tuning"}]}),
    )
    .await;
    npwg_pod(
        &w,
        "n1",
        &[
            ("danm.k8s.io/interfaces", r#"[{"network":"mgmt","ip":"dynamic"}]"#),
            (
                "k8s.v1.cni.cncf.io/networks",
                r#"[{"name":"net-a","interface":"data0","ips":["10.77.0.5/24"],"mac":"02:AA:00:00:00:05",
                     "bandwidth":{"ingressRate":1},"cni-args":{"foo":"bar"}},
                    {"name":"net-b","namespace":"other","portMappings":[{"hostPort":80,"containerPort":8080}]}]"#,
            ),
        ],
    )
    .await;
    let out = w.run(&w.call("ADD", "n1", "cn1")).await.unwrap().unwrap();
    let result: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["eth0", "data0", "net2"],
        "danm's first, then the NPWG ones: {result}"
    );
    assert_eq!(result["ips"][0]["address"], "10.10.0.1/24");
    assert_eq!(result["ips"][1]["address"], "10.77.0.5/24");
    assert_eq!(result["ips"][2]["address"], "10.78.0.6/24");

    // What the plugins read: runtimeConfig only for declared capabilities, args.cni, the chosen interface names.
    let a = w
        .plugins
        .stdin("npwg-a", "ADD", "data0")
        .expect("net-a ran as data0");
    assert_eq!(
        a["runtimeConfig"],
        json!({"ips":["10.77.0.5/24"],"mac":"02:aa:00:00:00:05"}),
        "{a}"
    );
    assert_eq!(
        a["args"]["cni"],
        json!({"foo":"bar","ips":["10.77.0.5/24"],"mac":"02:aa:00:00:00:05"})
    );
    assert_eq!(a["ipam"], json!({"type":"static"}), "a NAD's own IPAM is kept");
    let b = w
        .plugins
        .stdin("npwg-b", "ADD", "net2")
        .expect("net-b ran as net2");
    assert_eq!(
        b["runtimeConfig"],
        json!({"portMappings":[{"hostPort":80,"containerPort":8080}]})
    );
    assert_eq!(b["name"], "net-b");
    let tuning = w
        .plugins
        .stdin("tuning", "ADD", "net2")
        .expect("the chain went on");
    assert_eq!(tuning["prevResult"]["ips"][0]["address"], "10.78.0.6/24");
    assert!(tuning.get("runtimeConfig").is_none(), "tuning declares nothing");

    // network-status lists them like danm's own.
    let status = status_of(&w.lab.get_pod(NS, "n1").await);
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
            ("default/mgmt".to_owned(), "eth0".to_owned(), json!(["10.10.0.1"])),
            (
                "default/net-a".to_owned(),
                "data0".to_owned(),
                json!(["10.77.0.5"])
            ),
            ("other/net-b".to_owned(), "net2".to_owned(), json!(["10.78.0.6"])),
        ]
    );
    assert_eq!(status[0]["default"], true);
    assert!(status[1].get("default").is_none());

    // DanmEps record the attachments, so DEL finds them.
    let eps = w.lab.eps(NS).await;
    let mut recorded: Vec<(String, String, String, String)> = eps
        .iter()
        .map(|e| {
            (
                e.spec.api_type.clone(),
                e.spec.network_name.clone(),
                e.spec.interface.name.clone(),
                e.spec.interface.address.clone(),
            )
        })
        .collect();
    recorded.sort();
    assert_eq!(
        recorded,
        [
            (
                "DanmNet".into(),
                "mgmt".into(),
                "eth0".into(),
                "10.10.0.1/24".into()
            ),
            (
                "NetworkAttachmentDefinition".into(),
                "default/net-a".into(),
                "data0".into(),
                "10.77.0.5/24".into()
            ),
            (
                "NetworkAttachmentDefinition".into(),
                "other/net-b".into(),
                "net2".into(),
                "10.78.0.6/24".into()
            ),
        ]
    );

    w.run(&w.call("DEL", "n1", "cn1")).await.unwrap();
    let mut dels: Vec<String> = w
        .plugins
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("DEL"))
        .collect();
    dels.sort();
    assert_eq!(
        dels,
        ["DEL data0", "DEL net2", "DEL net2"],
        "a chain's DEL runs for each plugin"
    );
    let prev = w.plugins.stdin("npwg-b", "DEL", "net2").unwrap();
    assert_eq!(
        prev["prevResult"]["ips"][0]["address"], "10.78.0.6/24",
        "DEL gets the kept result"
    );
    w.assert_nothing_left(&[&mgmt]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nad_asking_for_danms_ipam_gets_a_pool_address_through_fakeipam_and_del_releases_it() {
    let Some(w) = world().await else { return };
    let dflt = w.macvlan("default", json!({})).await;
    let pool = blocks_net(&w, "pool", "10.90.0.0/24").await;
    answering(&w, "bridgelike", "10.90.0.1/24");
    nad(
        &w,
        NS,
        "br",
        json!({"cniVersion":"1.0.0","name":"br","type":"bridgelike","ipam":{"type":"danm","network":"pool"}}),
    )
    .await;
    npwg_pod(&w, "n2", &[("k8s.v1.cni.cncf.io/networks", "br, br@second")]).await;
    w.run(&w.call("ADD", "n2", "cn2")).await.unwrap();
    let first = w.plugins.stdin("bridgelike", "ADD", "net1").unwrap();
    let second = w.plugins.stdin("bridgelike", "ADD", "second").unwrap();
    let mut given = [first["ipam"].clone(), second["ipam"].clone()];
    given.sort_by_key(|v| v.to_string());
    assert_eq!(
        given,
        [
            json!({"type":"fakeipam","ips":[{"ipcidr":"10.90.0.1/24","version":4}]}),
            json!({"type":"fakeipam","ips":[{"ipcidr":"10.90.0.2/24","version":4}]}),
        ]
    );
    let (_, _, owners) = w.lab.holdings(&pool).await;
    assert_eq!(owners, 2, "two addresses held in the pool's blocks");
    let ep = w
        .lab
        .eps(NS)
        .await
        .into_iter()
        .find(|e| e.spec.interface.name == "second")
        .unwrap();
    assert_eq!(
        ep.metadata.annotations.unwrap()["danm.k8s.io/ipam-network"],
        "DanmNet/default/pool"
    );

    w.run(&w.call("DEL", "n2", "cn2")).await.unwrap();
    w.assert_nothing_left(&[&dflt, &pool]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npwg_mistakes_fail_clearly_and_leave_nothing() {
    let Some(w) = world().await else { return };
    let dflt = w.macvlan("default", json!({})).await;
    answering(&w, "npwg-a", "10.77.0.5/24");
    nad(
        &w,
        NS,
        "net-a",
        json!({"cniVersion":"1.0.0","name":"net-a","type":"npwg-a"}),
    )
    .await;
    /// The pod, its annotations, the CNI error code and a text the message must contain.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u32, &'a str);
    let cases: [Case<'_>; 6] = [
        (
            "collide",
            &[("k8s.v1.cni.cncf.io/networks", "net-a@eth0")],
            codes::INVALID_POD_REQUEST,
            "interface name:\"eth0\" of network:NetworkAttachmentDefinition:default/net-a is already used by \
             network:DanmNet:default",
        ),
        (
            "unknown",
            &[("k8s.v1.cni.cncf.io/networks", "net-a, nope")],
            codes::NETWORK_UNAVAILABLE,
            "NetworkAttachmentDefinition nope in namespace default requested by pod default/unknown does not exist",
        ),
        (
            "nons",
            &[("k8s.v1.cni.cncf.io/networks", "ghost-ns/net-a")],
            codes::NETWORK_UNAVAILABLE,
            "NetworkAttachmentDefinition net-a in namespace ghost-ns",
        ),
        (
            "multusdefault",
            &[("v1.multus-cni.io/default-network", "calico")],
            codes::INVALID_POD_REQUEST,
            "annotation v1.multus-cni.io/default-network is not supported",
        ),
        (
            "badjson",
            &[("k8s.v1.cni.cncf.io/networks", r#"[{"name":"net-a","mac":"zz"}]"#)],
            codes::INVALID_POD_REQUEST,
            "pod default/badjson: annotation k8s.v1.cni.cncf.io/networks: element 0 field mac",
        ),
        (
            "twodefaults",
            &[(
                "k8s.v1.cni.cncf.io/networks",
                r#"[{"name":"net-a","default-route":["10.77.0.1"]},
                    {"name":"net-a","interface":"x1","default-route":["fd00::1","10.77.0.2"]}]"#,
            )],
            codes::INVALID_POD_REQUEST,
            "pod default/twodefaults: annotation k8s.v1.cni.cncf.io/networks: elements 0 and 1 both ask for the \
             default IPv4 route (field default-route); only one element may",
        ),
    ];
    for (pod, annotations, want, text) in cases {
        npwg_pod(&w, pod, annotations).await;
        let (code, msg) = code_of(w.run(&w.call("ADD", pod, &format!("c-{pod}"))).await);
        assert_eq!(code, want, "{pod}: {msg}");
        assert!(msg.contains(text), "{pod}: {msg}");
        w.assert_nothing_left(&[&dflt]).await;
    }
    assert!(
        !w.plugins.calls().iter().any(|c| c.starts_with("ADD")),
        "nothing was delegated: {:?}",
        w.plugins.calls()
    );
}

async fn claim(w: &World, name: &str) -> IpamClaim {
    let api: kube::Api<IpamClaim> = kube::Api::namespaced(w.lab.client.clone(), NS);
    let claim = IpamClaim::new(
        NS,
        name,
        IpamClaimSpec {
            network: "br".into(),
            interface: "net1".into(),
        },
    );
    api.create(&PostParams::default(), &claim).await.unwrap()
}

async fn get_claim(w: &World, name: &str) -> Option<IpamClaim> {
    let api: kube::Api<IpamClaim> = kube::Api::namespaced(w.lab.client.clone(), NS);
    api.get_opt(name).await.unwrap()
}

/// The addresses a pool network's IPAM holds beyond what it held when created: owners in its blocks, or bits set
/// in its bitmap.
async fn held(w: &World, pool: &danm_api::Network) -> usize {
    let (alloc, _, owners) = w.lab.holdings(pool).await;
    let bits = |alloc: &str| {
        let mut spec = pool.spec.clone();
        spec.options.alloc = alloc.to_owned();
        danm_core::ipam::usage(&spec)
            .ok()
            .and_then(|u| u.v4)
            .map_or(0, |u| u.allocated_count as usize)
    };
    owners + bits(&alloc) - bits(&pool.spec.options.alloc)
}

/// The StatefulSet sequence on a pool in the blocks mode (the claim owns its addresses in the blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_address_survives_its_pod_goes_to_the_next_one_and_is_released_with_the_claim_in_blocks_mode()
 {
    claim_sequence("blocks").await;
}

/// The StatefulSet sequence on a pool in DANM's bitmap mode (the claim's bit stays set between its pods).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_address_survives_its_pod_goes_to_the_next_one_and_is_released_with_the_claim_in_bitmap_mode()
 {
    claim_sequence("bitmap").await;
}

/// A pod with a claim ADD → a second pod on the claim refused with nothing leaked → DEL (the address stays the
/// claim's, the reconciler leaves it alone) → a new pod with the same claim gets the same address → the claim is
/// deleted and the reconciler releases the address; on a pool in IPAM mode `mode`.
async fn claim_sequence(mode: &str) {
    let Some(w) = world().await else { return };
    let dflt = w.macvlan("default", json!({})).await;
    let pool = pool_net(&w, "pool", "10.91.0.0/24", mode).await;
    answering(&w, "bridgelike", "10.91.0.1/24");
    nad(
        &w,
        NS,
        "br",
        json!({"cniVersion":"1.0.0","name":"br","type":"bridgelike","ipam":{"type":"danm","network":"pool"}}),
    )
    .await;
    claim(&w, "web-0.br").await;
    let sel = r#"[{"name":"br","ipam-claim-reference":"web-0.br"}]"#;
    let pods: kube::Api<Pod> = kube::Api::namespaced(w.lab.client.clone(), NS);

    // web-0, first life.
    npwg_pod(&w, "web-0", &[("k8s.v1.cni.cncf.io/networks", sel)]).await;
    w.run(&w.call("ADD", "web-0", "s1")).await.unwrap();
    let given = || w.plugins.stdin("bridgelike", "ADD", "net1").unwrap()["ipam"]["ips"][0]["ipcidr"].clone();
    let first = given();
    let c = get_claim(&w, "web-0.br").await.unwrap();
    assert_eq!(c.status.ips, [first.as_str().unwrap()]);
    assert_eq!(c.status.owner_pod.unwrap().name, "web-0");
    let ep = w
        .lab
        .eps(NS)
        .await
        .into_iter()
        .find(|e| e.spec.interface.name == "net1")
        .unwrap();
    assert_eq!(
        ep.metadata.annotations.unwrap()["danm.k8s.io/ipam-claim"],
        "web-0.br"
    );
    // CHECK: the claim (not the DanmEp) holds the address, the plugin's CHECK gets the config and result of ADD.
    // The delegate would have made the interface; the fake kernel gets it here.
    let link = danm_netlink::NewLink::macvlan("net1", "ens1", MacvlanMode::Bridge)
        .in_netns(w.pod_ns.clone())
        .up();
    w.fake.create_link(&Netns::Host, &link).await.unwrap();
    let addr = danm_netlink::NewAddress::new(first.as_str().unwrap().parse().unwrap());
    w.fake.add_address(&w.pod_ns, "net1", &addr).await.unwrap();
    w.run(&w.call("CHECK", "web-0", "s1")).await.unwrap();
    let check = w
        .plugins
        .stdin("bridgelike", "CHECK", "net1")
        .expect("the NAD's plugin checked");
    assert_eq!(check["ipam"]["ips"][0]["ipcidr"], first);
    assert_eq!(check["prevResult"]["ips"][0]["address"], "10.91.0.1/24");

    // A second pod on the same claim while web-0 runs: refused, nothing of it left.
    npwg_pod(&w, "intruder", &[("k8s.v1.cni.cncf.io/networks", sel)]).await;
    let elsewhere = Netns::path("/var/run/netns/intruder");
    w.fake.add_netns(elsewhere.clone());
    let call = Call::new("ADD", NS, "intruder", "s9", "/var/run/netns/intruder");
    let (code, msg) = code_of(w.run(&call).await);
    assert_eq!(code, codes::IPAM, "{msg}");
    assert!(
        msg.contains("IPAMClaim default/web-0.br requested by pod intruder is in use by pod web-0"),
        "{msg}"
    );
    assert_eq!(w.lab.eps(NS).await.len(), 2, "only web-0's DanmEps");
    assert!(
        w.fake
            .links(&elsewhere)
            .await
            .unwrap()
            .iter()
            .all(|l| l.name == "lo"),
        "rolled back"
    );
    assert_eq!(held(&w, &pool).await, 1, "no address leaked");
    pods.delete("intruder", &Default::default()).await.unwrap();

    // web-0 goes away: its DanmEps go, the address stays the claim's.
    w.run(&w.call("DEL", "web-0", "s1")).await.unwrap();
    pods.delete("web-0", &Default::default()).await.unwrap();
    assert_eq!(w.lab.eps(NS).await.len(), 0);
    assert_eq!(held(&w, &pool).await, 1, "the claim still holds its address");
    assert!(
        get_claim(&w, "web-0.br")
            .await
            .unwrap()
            .status
            .owner_pod
            .is_none()
    );
    // The reconciler leaves the address alone while its claim exists, though no DanmEp holds it.
    // It runs in svcwatcher: its client names itself so, for the lab's audit (`make rbac`).
    let svcwatcher = w.lab.handle.client_as("svcwatcher/test").await.unwrap();
    let mut reconciler = Reconciler::new(IpamConfig::default(), std::time::Duration::ZERO);
    let start = k8s_openapi::jiff::Timestamp::now();
    for seconds in [0, 1] {
        let at = k8s_openapi::jiff::Timestamp::from_second(start.as_second() + seconds).unwrap();
        let report = reconciler.scan(&svcwatcher, at).await;
        assert_eq!(report.addresses_released, 0, "{report:?}");
        assert!(report.errors.is_empty(), "{report:?}");
    }
    assert_eq!(held(&w, &pool).await, 1, "the claim's address survived two scans");

    // web-0 again (a new pod of the same name, a new sandbox): the same address.
    npwg_pod(&w, "web-0", &[("k8s.v1.cni.cncf.io/networks", sel)]).await;
    w.run(&w.call("ADD", "web-0", "s2")).await.unwrap();
    assert_eq!(given(), first, "the claim gives the same address to the next pod");
    w.run(&w.call("DEL", "web-0", "s2")).await.unwrap();

    // The claim is deleted: the reconciler releases its address (after its grace period: two scans).
    let api: kube::Api<IpamClaim> = kube::Api::namespaced(w.lab.client.clone(), NS);
    api.delete("web-0.br", &Default::default()).await.unwrap();
    let mut reconciler = Reconciler::new(IpamConfig::default(), std::time::Duration::ZERO);
    let now = k8s_openapi::jiff::Timestamp::now();
    reconciler.scan(&svcwatcher, now).await;
    let later = k8s_openapi::jiff::Timestamp::from_second(now.as_second() + 1).unwrap();
    let report = reconciler.scan(&svcwatcher, later).await;
    assert_eq!(report.addresses_released, 1, "{report:?}");
    w.assert_nothing_left(&[&dflt, &pool]).await;
}

/// A NAD whose plugin fails after both NPWG interfaces got their addresses from one blocks pool: the ADD fails naming
/// it, and the rollback releases both addresses (journaled by the batched reservation), deletes both DanmEps and runs
/// both delegates' DEL. Then GC tears down a stale sandbox's NPWG attachment as DEL does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_npwg_interface_rolls_back_its_pool_addresses_and_gc_tears_npwg_attachments_down() {
    let Some(w) = world().await else { return };
    let dflt = w.macvlan("default", json!({})).await;
    let pool = blocks_net(&w, "pool", "10.92.0.0/24").await;
    answering(&w, "bridgelike", "10.92.0.1/24");
    w.plugins.add(
        "broken",
        FakePlugin::adding(Answer::Fail(11, "deliberate NAD failure".into())),
    );
    for (name, plugin) in [("good", "bridgelike"), ("bad", "broken")] {
        nad(
            &w,
            NS,
            name,
            json!({"cniVersion":"1.0.0","name":name,"type":plugin,"ipam":{"type":"danm","network":"pool"}}),
        )
        .await;
    }
    npwg_pod(&w, "rb", &[("k8s.v1.cni.cncf.io/networks", "good, bad")]).await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "rb", "crb")).await);
    assert_eq!(code, codes::DELEGATE, "{msg}");
    assert!(
        msg.contains("NetworkAttachmentDefinition:default/bad") && msg.contains("deliberate NAD failure"),
        "{msg}"
    );
    let broken = w
        .plugins
        .stdin("broken", "ADD", "net2")
        .expect("the failing NAD ran");
    assert_eq!(
        broken["ipam"]["type"], "fakeipam",
        "it had its pool address: {broken}"
    );
    let mut dels: Vec<String> = w
        .plugins
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("DEL"))
        .collect();
    dels.sort();
    assert_eq!(dels, ["DEL net1", "DEL net2"], "both delegates' DEL ran");
    w.assert_nothing_left(&[&dflt, &pool]).await;

    // GC of a sandbox the runtime no longer lists.
    npwg_pod(&w, "stale", &[("k8s.v1.cni.cncf.io/networks", "good")]).await;
    w.run(&w.call("ADD", "stale", "cstale")).await.unwrap();
    assert_eq!(w.lab.holdings(&pool).await.2, 1);
    let deletes = |w: &World| {
        w.plugins
            .calls_of("bridgelike")
            .iter()
            .filter(|c| c.starts_with("DEL"))
            .count()
    };
    assert_eq!(deletes(&w), 1, "the rollback's");
    let mut gc = w.call("GC", "", "");
    gc.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","cni.dev/valid-attachments":[]});
    w.run(&gc).await.unwrap();
    assert_eq!(
        deletes(&w),
        2,
        "GC ran the NAD's DEL (once more than the rollback did): {:?}",
        w.plugins.calls()
    );
    w.assert_nothing_left(&[&dflt, &pool]).await;
}

/// A NAD in `NS` naming the device-plugin resource `resource`.
async fn nad_with_resource(w: &World, name: &str, resource: &str, config: Value) {
    let nad: NetworkAttachmentDefinition = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": NS,
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}},
        "spec": {"config": config.to_string()}
    }))
    .unwrap();
    let api: kube::Api<NetworkAttachmentDefinition> = kube::Api::namespaced(w.lab.client.clone(), NS);
    api.create(&PostParams::default(), &nad).await.unwrap();
}

/// NADs naming a resource take devices of the pod's allocation after danm's own SR-IOV interface took its own: each
/// a different one, passed to the NAD's plugin (a conflist's first plugin) as `deviceID`, recorded in the DanmEp and
/// given again to DEL. A pod with no free device of the resource is refused naming the NAD, the pod and the
/// resource, and nothing is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nads_with_a_resource_name_take_distinct_devices_of_the_pod_and_pass_them_as_device_id() {
    let Some(w) = world().await else { return };
    fake_sriov(&w).await;
    sriov_network(&w).await;
    let pool = "nokia.k8s.io/sriov_ens2f0";
    answering(&w, "sriovlike", "10.79.0.5/24");
    answering(&w, "sriovchain", "10.79.1.5/24");
    w.plugins.add("tuning", FakePlugin::adding(Answer::Nothing));
    nad_with_resource(
        &w,
        "vf-a",
        pool,
        json!({"cniVersion":"1.0.0","name":"vf-a","type":"sriovlike","vlan":100}),
    )
    .await;
    nad_with_resource(
        &w,
        "vf-b",
        pool,
        json!({"cniVersion":"1.0.0","name":"vf-b","plugins":[{"type":"sriovchain"},{"type":"tuning"}]}),
    )
    .await;
    let interfaces = r#"[{"network":"sriov","ip":"dynamic"}]"#;
    npwg_pod(
        &w,
        "vfpod",
        &[
            ("danm.k8s.io/interfaces", interfaces),
            ("k8s.v1.cni.cncf.io/networks", "vf-a, vf-b"),
        ],
    )
    .await;
    // Kubelet allocated three devices of the pool to the pod (and one to a pod elsewhere); danm's own SR-IOV eth0
    // takes the last one, as DANM's device pools do.
    let answer = pod_resources(&[
        (
            NS,
            "vfpod",
            &[
                (pool, &["0000:03:00.5", "0000:03:00.4"][..]),
                (pool, &["0000:03:00.1"][..]),
            ],
        ),
        ("elsewhere", "vfpod", &[(pool, &["0000:03:00.9"])]),
    ]);
    let socket = danm_cni::podresources::socket_path(&w.svc.kubelet_root);
    let server = kubelet::serve(&socket, move || Ok(answer.clone()));
    w.run(&w.call("ADD", "vfpod", "cvf")).await.unwrap();

    let a = w
        .plugins
        .stdin("sriovlike", "ADD", "net1")
        .expect("vf-a ran as net1");
    assert_eq!(a["deviceID"], "0000:03:00.4", "{a}");
    assert_eq!(a["vlan"], 100, "the NAD's own keys are kept: {a}");
    let b = w
        .plugins
        .stdin("sriovchain", "ADD", "net2")
        .expect("vf-b ran as net2");
    assert_eq!(
        b["deviceID"], "0000:03:00.5",
        "a conflist's first plugin gets it: {b}"
    );
    let tuning = w.plugins.stdin("tuning", "ADD", "net2").unwrap();
    assert!(
        tuning.get("deviceID").is_none(),
        "only the first plugin: {tuning}"
    );
    let mut devices: Vec<(String, String)> = w
        .lab
        .eps(NS)
        .await
        .iter()
        .map(|e| (e.spec.interface.name.clone(), e.spec.interface.device_id.clone()))
        .collect();
    devices.sort();
    assert_eq!(
        devices,
        [
            ("eth0".to_owned(), "0000:03:00.1".to_owned()),
            ("net1".to_owned(), "0000:03:00.4".to_owned()),
            ("net2".to_owned(), "0000:03:00.5".to_owned()),
        ],
        "each interface its own device"
    );

    w.run(&w.call("DEL", "vfpod", "cvf")).await.unwrap();
    let del_a = w.plugins.stdin("sriovlike", "DEL", "net1").unwrap();
    assert_eq!(del_a["deviceID"], "0000:03:00.4", "DEL gets the device ADD got");
    let del_b = w.plugins.stdin("sriovchain", "DEL", "net2").unwrap();
    assert_eq!(del_b["deviceID"], "0000:03:00.5");
    assert!(w.lab.eps(NS).await.is_empty());
    server.abort();
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);

    // Two attachments of one resource and a single device allocated: refused, nothing delegated, nothing left.
    let dflt = w.macvlan("default", json!({})).await;
    let cp = danm_cni::devices::checkpoint_path(&w.svc.kubelet_root);
    std::fs::create_dir_all(cp.parent().unwrap()).unwrap();
    let short = npwg_pod(
        &w,
        "short",
        &[("k8s.v1.cni.cncf.io/networks", "vf-a, vf-a@data1")],
    )
    .await;
    std::fs::write(
        &cp,
        json!({"Data":{"PodDeviceEntries":[{"PodUID":short.metadata.uid.unwrap(),"ResourceName":pool,
            "DeviceIDs":["0000:03:00.4"]}]}})
        .to_string(),
    )
    .unwrap();
    let adds_before = w.plugins.calls().iter().filter(|c| c.starts_with("ADD")).count();
    let (code, msg) = code_of(w.run(&w.call("ADD", "short", "cshort")).await);
    assert_eq!(code, codes::INVALID_POD_REQUEST, "{msg}");
    assert!(
        msg.contains(&format!(
            "NetworkAttachmentDefinition default/vf-a (interface data1) needs a device of resource {pool}"
        )) && msg.contains("pod default/short has no free device of it"),
        "{msg}"
    );
    assert!(
        !msg.contains("interface net1)"),
        "the first got the device: {msg}"
    );
    // A pod with no device of the resource at all.
    npwg_pod(&w, "none", &[("k8s.v1.cni.cncf.io/networks", "vf-b")]).await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "none", "cnone")).await);
    assert_eq!(code, codes::INVALID_POD_REQUEST, "{msg}");
    assert!(
        msg.contains(&format!(
            "NetworkAttachmentDefinition default/vf-b (interface net1) needs a device of resource {pool}"
        )) && msg.contains("pod default/none has no free device of it")
            && msg.contains("there were no Devices allocated for the Pod"),
        "{msg}"
    );
    assert_eq!(
        w.plugins.calls().iter().filter(|c| c.starts_with("ADD")).count(),
        adds_before,
        "nothing was delegated"
    );
    w.assert_nothing_left(&[&dflt]).await;
}
