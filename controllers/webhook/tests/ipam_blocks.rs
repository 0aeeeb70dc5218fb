//! `/netvalidation` in the `blocks` IPAM mode: pools are defaulted and validated as in DANM but no bitmap is
//! written, the mode is recorded on the network, bitmap networks stay bitmap, and an UPDATE may not move the address
//! ranges away from allocated addresses.

mod common;

use common::*;
use danm_core::ipam::blocks::{IpamMode, NetworkId};
use serde_json::{Value, json};

fn blocks_rig(objects: Vec<Value>) -> Rig {
    rig_with(objects, 7, IpamMode::Blocks)
}

/// A DanmIpBlock of DanmNet default/`network` holding `owners` (offset → DanmEp name).
fn block(network: &str, cidr: &str, owners: Value) -> Value {
    let id = NetworkId::new(danm_api::NetworkKind::DanmNet, "default", network);
    json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmIpBlock",
        "metadata": {"name": format!("b-{}", cidr.replace(['/', '.'], "-")),
                     "labels": {"danm.k8s.io/network-id": id.label(), "danm.k8s.io/family": "v4",
                                "danm.k8s.io/node": "n1"}},
        "spec": {"network": id.to_string(), "cidr": cidr, "node": "n1", "owners": owners}})
}

#[tokio::test]
async fn a_new_network_gets_its_pools_and_the_blocks_mode_but_no_bitmap() {
    let rig = blocks_rig(vec![]);
    let spec = json!({"NetworkID": "nid", "NetworkType": "ipvlan",
        "Options": {"cidr": "192.168.1.64/26", "net6": "2001:db8::/64"}});
    let out = create(&rig, danmnet("n", spec)).await;
    out.assert_allowed();
    let o = &out.patched["spec"]["Options"];
    assert!(o.get("alloc").is_none() && o.get("alloc6").is_none(), "{o}");
    assert_eq!(o["allocation_pool"]["start"], "192.168.1.65");
    // DANM's pool sizing: next to an IPv4 /26 the IPv6 pool is a /106.
    assert_eq!(o["allocation_pool_v6"]["cidr"], "2001:db8::/106");
    assert_eq!(
        out.patched["metadata"]["annotations"]["danm.k8s.io/ipam-mode"],
        "blocks"
    );
    // The pool rules still apply.
    let too_big = json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/8"}});
    create(&rig, danmnet("m", too_big))
        .await
        .assert_denied("maximum allowed /9");
}

#[tokio::test]
async fn a_network_that_names_bitmap_or_already_has_one_stays_bitmap() {
    let rig = blocks_rig(vec![]);
    let mut named = danmnet(
        "n",
        json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24"}}),
    );
    named["metadata"]["annotations"] = json!({"danm.k8s.io/ipam-mode": "bitmap"});
    let out = create(&rig, named).await;
    out.assert_allowed();
    assert!(out.patched["spec"]["Options"]["alloc"].is_string());
    // UPDATE of a network that carries a bitmap (made by DANM): it keeps it.
    let old = out.patched.clone();
    let mut new = old.clone();
    new["metadata"]["annotations"] = json!({});
    new["spec"]["Options"]["alloc"] = Value::Null;
    let out = update(&rig, old.clone(), new).await;
    out.assert_allowed();
    assert_eq!(
        out.patched["spec"]["Options"]["alloc"],
        old["spec"]["Options"]["alloc"]
    );
}

#[tokio::test]
async fn a_blocks_network_cannot_go_back_to_bitmap() {
    let rig = blocks_rig(vec![]);
    let out = create(
        &rig,
        danmnet(
            "n",
            json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24"}}),
        ),
    )
    .await;
    let old = out.patched.clone();
    let mut new = old.clone();
    new["metadata"]["annotations"]["danm.k8s.io/ipam-mode"] = json!("bitmap");
    update(&rig, old, new)
        .await
        .assert_denied("cannot go back to bitmap");
}

#[tokio::test]
async fn the_ranges_may_not_move_away_from_allocated_addresses() {
    let rig = blocks_rig(vec![block("n", "10.0.0.64/26", json!({"5": "ep-1"}))]);
    let out = create(
        &rig,
        danmnet(
            "n",
            json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24"}}),
        ),
    )
    .await;
    out.assert_allowed();
    let old = out.patched.clone();
    // 10.0.0.69 is allocated: a /26 at .0 would leave it out.
    let mut shrink = old.clone();
    shrink["spec"]["Options"]["cidr"] = json!("10.0.0.0/26");
    shrink["spec"]["Options"]["allocation_pool"] = json!({"start": "", "end": "", "lastIp": ""});
    update(&rig, old.clone(), shrink).await.assert_denied("10.0.0.69");
    // A larger network keeps it inside: allowed.
    let mut grow = old.clone();
    grow["spec"]["Options"]["cidr"] = json!("10.0.0.0/23");
    grow["spec"]["Options"]["allocation_pool"] = json!({"start": "", "end": "", "lastIp": ""});
    let out = update(&rig, old, grow).await;
    out.assert_allowed();
    assert_eq!(
        out.patched["spec"]["Options"]["allocation_pool"]["end"],
        "10.0.1.254"
    );
}

#[tokio::test]
async fn the_review_command_judges_as_danm_did_unless_told_blocks() {
    // The offline command's default is DANM's bitmap, so DANM's own test tables replay unchanged.
    let rig = rig(vec![]);
    let out = create(
        &rig,
        danmnet(
            "n",
            json!({"NetworkID": "nid", "Options": {"cidr": "10.0.0.0/24"}}),
        ),
    )
    .await;
    assert!(out.patched["spec"]["Options"]["alloc"].is_string());
    assert!(out.patched["metadata"].get("annotations").is_none());
}
