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
