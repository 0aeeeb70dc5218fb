use std::sync::Arc;

use danm_api::NetworkKind;
use danm_netlink::{Call, FakeNetlink, LinkKind, Netlink, Netns, NewAddress};

use super::*;
use crate::desired::desired_links;
use crate::source::{LinkSource, SourceKind, SourceRef};

fn src(name: &str, nid: &str, dev: &str, vlan: u32, vxlan: u32) -> LinkSource {
    LinkSource {
        owner: SourceRef::new(SourceKind::Network(NetworkKind::TenantNetwork), Some("ns"), name),
        network_id: nid.to_owned(),
        host_device: dev.to_owned(),
        vlan,
        vxlan,
    }
}

async fn host() -> FakeNetlink {
    let fake = FakeNetlink::new();
    fake.add_device(&Netns::Host, "ens3", 1500);
    fake.add_device(&Netns::Host, "ens4", 9000);
    fake.add_address(
        &Netns::Host,
        "ens3",
        &NewAddress::new("192.168.1.10/24".parse().unwrap()),
    )
    .await
    .unwrap();
    fake
}

fn reconciler(fake: &FakeNetlink) -> LinkReconciler {
    LinkReconciler::new(Arc::new(fake.clone()), Netns::Host, Metrics::default())
}

/// A reconciler that has made the links of `sources`, with the fake's call log cleared.
async fn reconciled(fake: &FakeNetlink, sources: &[LinkSource]) -> LinkReconciler {
    let r = reconciler(fake);
    r.reconcile(&desired_links(sources)).await.unwrap();
    fake.clear_calls();
    r
}

async fn names(fake: &FakeNetlink) -> Vec<String> {
    let mut names: Vec<String> = fake
        .links(&Netns::Host)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .filter(|n| !["lo", "ens3", "ens4"].contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn vlan_links_are_created_up_on_the_host_device_and_marked() {
    let fake = host().await;
    let r = reconciler(&fake);
    let out = r
        .reconcile(&desired_links(&[src("ext", "ext", "ens4", 700, 0)]))
        .await
        .unwrap();
    assert_eq!(out.created, vec!["ext.700"]);
    let link = fake.link(&Netns::Host, "ext.700").await.unwrap();
    let parent = fake.link(&Netns::Host, "ens4").await.unwrap();
    assert_eq!(link.kind, LinkKind::Vlan { id: 700 });
    assert_eq!(link.parent_index, Some(parent.index));
    assert!(link.up);
    assert_eq!(
        link.alias.as_deref(),
        Some("danm-netwatcher: TenantNetwork/ns/ext")
    );
    assert_eq!(r.metrics().links_created.get(), 1);
}

#[tokio::test]
async fn changing_the_vlan_replaces_the_link_and_unrelated_changes_touch_nothing() {
    let fake = host().await;
    let r = reconciled(&fake, &[src("ext", "ext", "ens4", 700, 0)]).await;
    let again = r
        .reconcile(&desired_links(&[src("ext", "ext", "ens4", 700, 0)]))
        .await
        .unwrap();
    assert_eq!(again, Outcome::default());
    assert!(fake.mutations().is_empty(), "{:?}", fake.mutations());
    let out = r
        .reconcile(&desired_links(&[src("ext", "ext", "ens4", 701, 0)]))
        .await
        .unwrap();
    assert_eq!(
        (out.deleted, out.created),
        (vec!["ext.700".to_owned()], vec!["ext.701".to_owned()])
    );
    assert_eq!(names(&fake).await, vec!["ext.701"]);
    assert!(out.drift_repaired.is_empty());
}

#[tokio::test]
async fn changing_the_network_id_or_host_device_replaces_the_link() {
    let fake = host().await;
    fake.add_address(
        &Netns::Host,
        "ens4",
        &NewAddress::new("10.1.1.1/24".parse().unwrap()),
    )
    .await
    .unwrap();
    let r = reconciler(&fake);
    r.reconcile(&desired_links(&[src("n", "old", "ens3", 0, 50)]))
        .await
        .unwrap();
    r.reconcile(&desired_links(&[src("n", "new", "ens3", 0, 50)]))
        .await
        .unwrap();
    assert_eq!(names(&fake).await, vec!["vx_new"]);
    let out = r
        .reconcile(&desired_links(&[src("n", "new", "ens4", 0, 50)]))
        .await
        .unwrap();
    assert_eq!(out.deleted, vec!["vx_new"]);
    let link = fake.link(&Netns::Host, "vx_new").await.unwrap();
    let LinkKind::Vxlan(info) = link.kind else {
        panic!()
    };
    assert_eq!(info.local, Some("10.1.1.1".parse().unwrap()));
    assert_eq!(
        info.underlay_index,
        Some(fake.link(&Netns::Host, "ens4").await.unwrap().index)
    );
}

#[tokio::test]
async fn a_shared_link_lives_until_its_last_network_is_gone() {
    let fake = host().await;
    let r = reconciler(&fake);
    let a = src("a", "shared", "ens4", 300, 0);
    let b = src("b", "shared", "ens4", 300, 0);
    r.reconcile(&desired_links(&[a.clone(), b.clone()]))
        .await
        .unwrap();
    let out = r.reconcile(&desired_links(&[b])).await.unwrap();
    assert!(out.deleted.is_empty());
    assert_eq!(names(&fake).await, vec!["shared.300"]);
    assert_eq!(
        fake.link(&Netns::Host, "shared.300")
            .await
            .unwrap()
            .alias
            .as_deref(),
        Some("danm-netwatcher: TenantNetwork/ns/b")
    );
    let out = r.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(out.deleted, vec!["shared.300"]);
    assert!(names(&fake).await.is_empty());
}

#[tokio::test]
async fn a_link_deleted_by_hand_is_recreated_and_counted_as_drift() {
    let fake = host().await;
    let r = reconciler(&fake);
    let d = desired_links(&[
        src("ext", "ext", "ens4", 700, 0),
        src("int", "int", "ens3", 0, 600),
    ]);
    r.reconcile(&d).await.unwrap();
    fake.delete_link(&Netns::Host, "ext.700").await.unwrap();
    fake.set_link(&Netns::Host, "vx_int", &danm_netlink::LinkChange::new().up(false))
        .await
        .unwrap();
    let out = r.reconcile(&d).await.unwrap();
    assert_eq!(out.created, vec!["ext.700"]);
    assert_eq!(out.drift_repaired, vec!["ext.700", "vx_int"]);
    assert!(fake.link(&Netns::Host, "vx_int").await.unwrap().up);
    assert_eq!(r.metrics().drift_repaired.get(), 2);
}

#[tokio::test]
async fn a_new_reconciler_after_a_restart_adopts_its_marked_links_and_removes_unwanted_ones() {
    let fake = host().await;
    reconciled(
        &fake,
        &[src("a", "a", "ens4", 10, 0), src("b", "b", "ens4", 11, 0)],
    )
    .await;
    let restarted = reconciler(&fake);
    let out = restarted
        .reconcile(&desired_links(&[src("a", "a", "ens4", 10, 0)]))
        .await
        .unwrap();
    assert_eq!(out.deleted, vec!["b.11"]);
    assert!(out.created.is_empty());
    assert_eq!(names(&fake).await, vec!["a.10"]);
}

#[tokio::test]
async fn a_failing_link_does_not_stop_the_others_and_is_counted() {
    let fake = host().await;
    fake.fail_when(
        |c| matches!(c, Call::CreateLink { link, .. } if link.name == "bad.5"),
        libc::EPERM,
        None,
    );
    let r = reconciler(&fake);
    let out = r
        .reconcile(&desired_links(&[
            src("bad", "bad", "ens4", 5, 0),
            src("good", "good", "ens4", 6, 0),
            src("gone", "gone", "ens9", 7, 0),
        ]))
        .await
        .unwrap();
    assert_eq!(out.created, vec!["good.6"]);
    assert_eq!(out.errors.len(), 2, "{:?}", out.errors);
    assert!(out.errors.iter().any(|e| e.contains("creating host link bad.5")));
    assert!(
        out.errors
            .iter()
            .any(|e| e.contains("host device:ens9 is not present"))
    );
    assert_eq!(r.metrics().reconcile_errors.get(), 2);
}

#[tokio::test]
async fn a_kernel_without_8021q_reports_vlan_links_as_unsupported() {
    let fake = host().await;
    fake.without_kind("vlan");
    let out = reconciler(&fake)
        .reconcile(&desired_links(&[src("ext", "ext", "ens4", 700, 0)]))
        .await
        .unwrap();
    assert!(out.created.is_empty());
    assert!(out.errors[0].contains("ext.700"), "{:?}", out.errors);
}

#[tokio::test]
async fn a_listing_failure_fails_the_whole_pass() {
    let fake = host().await;
    fake.fail_when(|c| matches!(c, Call::ListLinks { .. }), libc::EIO, Some(1));
    let r = reconciler(&fake);
    let err = r.reconcile(&desired_links(&[])).await.unwrap_err();
    assert!(err.to_string().contains("cannot list the links"), "{err}");
    assert_eq!(r.metrics().reconcile_errors.get(), 1);
}

#[tokio::test]
async fn links_no_network_wants_are_deleted_in_one_request() {
    let fake = host().await;
    let r = reconciled(
        &fake,
        &[
            src("a", "a", "ens4", 10, 0),
            src("b", "b", "ens4", 11, 0),
            src("c", "c", "ens3", 0, 600),
        ],
    )
    .await;
    let out = r.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(out.deleted, vec!["a.10", "b.11", "vx_c"]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(names(&fake).await.is_empty());
    assert_eq!(
        fake.mutations(),
        vec![Call::DeleteLinks {
            ns: Netns::Host,
            names: vec!["a.10".into(), "b.11".into(), "vx_c".into()],
        }]
    );
}

#[tokio::test]
async fn when_the_joint_delete_fails_the_links_are_deleted_one_by_one_and_each_error_names_its_link() {
    let fake = host().await;
    let r = reconciled(
        &fake,
        &[
            src("a", "a", "ens4", 10, 0),
            src("b", "b", "ens4", 11, 0),
            src("c", "c", "ens4", 12, 0),
        ],
    )
    .await;
    fake.fail_when(|c| matches!(c, Call::DeleteLinks { .. }), 16, None);
    fake.fail_when(
        |c| matches!(c, Call::DeleteLink { name, .. } if name == "b.11"),
        16,
        Some(1),
    );
    let out = r.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(out.deleted, vec!["a.10", "c.12"]);
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(out.errors[0].contains("b.11"), "{:?}", out.errors);
    assert_eq!(names(&fake).await, vec!["b.11"]);
    let deletes: Vec<String> = fake
        .mutations()
        .into_iter()
        .filter_map(|c| match c {
            Call::DeleteLink { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(deletes, vec!["a.10", "b.11", "c.12"]);
    // The next round deletes what is left.
    let out = r.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(out.deleted, vec!["b.11"]);
    assert!(names(&fake).await.is_empty());
}
