//! Addresses: exhaustion, conflicts, concurrency and stale DanmEps.

use super::*;

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
    // The failure is recorded on the pod, for `kubectl describe pod` and `kubectl danm why`.
    let events: kube::Api<k8s_openapi::api::core::v1::Event> =
        kube::Api::namespaced(w.lab.client.clone(), NS);
    let events = events.list(&Default::default()).await.unwrap().items;
    let event = events
        .iter()
        .find(|e| e.reason.as_deref() == Some(danm_cni::events::ADD_FAILED))
        .unwrap_or_else(|| panic!("no {} event in {events:?}", danm_cni::events::ADD_FAILED));
    assert_eq!(event.involved_object.name.as_deref(), Some("p6"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let text = event.message.as_deref().unwrap_or_default();
    assert!(
        text.contains("all addresses are reserved") && text.contains("tiny"),
        "{text}"
    );
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
