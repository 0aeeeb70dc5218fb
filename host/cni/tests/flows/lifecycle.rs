//! CHECK, GC and STATUS.

use super::*;

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
    // disableGC: the network opted out, nothing goes.
    let mut off = w.call("GC", "", "");
    off.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","disableGC":true,
                        "cni.dev/valid-attachments":[]});
    w.run(&off).await.unwrap();
    assert_eq!(w.lab.eps(NS).await.len(), 2, "disableGC: nothing was torn down");
    // The runtime names only the primary interface of "keep" (libcni's older key); all of its interfaces stay.
    let mut gc = w.call("GC", "", "");
    gc.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","resultDir": results.path(),
                       "cni.dev/attachments":[{"containerID":"keep","ifname":"eth0"}]});
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
