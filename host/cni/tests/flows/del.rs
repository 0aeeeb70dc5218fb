//! DEL: what it removes, and that it always lets a pod go.

use super::*;

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
async fn a_teardown_that_finds_its_danmep_gone_leaves_the_addresses_to_whoever_deleted_it() {
    // Found by `danm-lab chaos` in bitmap mode: two removers of one DanmEp (a DEL and the reconciler, GC or a
    // second DEL) both released its address; the one whose deletion found the DanmEp gone did so after a new pod had
    // got the address, and cleared that pod's bit (a bitmap records no owner).
    let Some(w) = world().await else { return };
    let net = w.macvlan("mgmt", json!({})).await;
    w.pod("p40", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    w.run(&w.call("ADD", "p40", "c40")).await.unwrap();
    // A second remover read the DanmEps before the first one deleted them.
    let stale = w.lab.eps(NS).await;
    let addr = stale[0].spec.interface.address.clone();
    w.run(&w.call("DEL", "p40", "c40")).await.unwrap();
    // The address goes to a new pod.
    w.pod("p41", json!([{"network":"mgmt","ip": addr}])).await;
    w.run(&w.call("ADD", "p41", "c41")).await.unwrap();
    let held = w.lab.holdings(&net).await;
    let errors = danm_cni::teardown::cleanup_eps(&ctx(&w.svc, &w.call("DEL", "p40", "c40")), &stale).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        w.lab.holdings(&net).await,
        held,
        "p41's address {addr} is still held"
    );
    w.run(&w.call("DEL", "p41", "c41")).await.unwrap();
    w.assert_nothing_left(&[&net]).await;
}
