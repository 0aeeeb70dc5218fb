//! netwatcher's 802.1q VLAN links on a real kernel, for the kernel lane (lane/README.md): this build machine's
//! kernel has no 8021q, so here each test prints a skip; with `DANM_KERNEL_LANE=1` (inside the lane's VM) a missing
//! VLAN kind is a failure. Each test uses a fresh namespace whose host device is a veth.

use std::sync::Arc;

use danm_api::NetworkKind;
use danm_netlink::{LinkChange, LinkKind, Netlink, Netns, NewLink, RtNetlink};
use danm_netwatcher::desired::desired_links;
use danm_netwatcher::source::{LinkSource, SourceKind, SourceRef};
use danm_netwatcher::{LinkReconciler, Metrics, Outcome};

/// A namespace made without the `ip` tool (the lane's VM has only busybox), removed on drop.
struct TestNs(danm_testkit::netns::TestNs);

impl TestNs {
    fn netns(&self) -> Netns {
        self.0.ns.clone()
    }
}

/// A fresh namespace with veth `hd0`/`hd1` up, or a printed skip (a failure in the lane and under CI).
async fn setup(nl: &RtNetlink) -> Option<TestNs> {
    let ns = match danm_testkit::netns::TestNs::new("nwv") {
        Ok(ns) => TestNs(ns),
        Err(reason) => {
            danm_testkit::fixtures::skip(&reason);
            return None;
        }
    };
    nl.create_link(&ns.netns(), &NewLink::veth("hd0", "hd1").up())
        .await
        .expect("veth created");
    nl.set_link(&ns.netns(), "hd1", &LinkChange::new().up(true))
        .await
        .expect("veth peer up");
    Some(ns)
}

fn src(name: &str, nid: &str, vlan: u32) -> LinkSource {
    LinkSource {
        owner: SourceRef::new(SourceKind::Network(NetworkKind::DanmNet), Some("lab"), name),
        network_id: nid.to_owned(),
        host_device: "hd0".to_owned(),
        vlan,
        vxlan: 0,
    }
}

/// `false` (skip printed) when the first pass shows the kernel lacks 8021q outside the lane.
fn vlan_supported(out: &Outcome) -> bool {
    if out.errors.iter().any(|e| e.contains("not supported")) {
        danm_testkit::fixtures::skip_kernel_feature(&format!(
            "this kernel lacks a link kind (802.1q vlan): {:?}",
            out.errors
        ));
        return false;
    }
    true
}

async fn vlans(nl: &RtNetlink, ns: &TestNs) -> Vec<(String, u16)> {
    let mut out: Vec<_> = nl
        .links(&ns.netns())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|l| match l.kind {
            LinkKind::Vlan { id } => Some((l.name, id)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn vm_vlan_link_is_created_on_the_host_device_replaced_on_change_and_deleted() {
    let nl = Arc::new(RtNetlink::new());
    let Some(ns) = setup(&nl).await else { return };
    let r = LinkReconciler::new(nl.clone(), ns.netns(), Metrics::default());
    let out = r
        .reconcile(&desired_links(&[src("ext", "ext", 700)]))
        .await
        .unwrap();
    if !vlan_supported(&out) {
        return;
    }
    assert_eq!(out.created, vec!["ext.700"]);
    let link = nl.link(&ns.netns(), "ext.700").await.unwrap();
    let parent = nl.link(&ns.netns(), "hd0").await.unwrap();
    assert_eq!(link.kind, LinkKind::Vlan { id: 700 });
    assert_eq!(link.parent_index, Some(parent.index));
    assert!(link.up);
    assert_eq!(link.alias.as_deref(), Some("danm-netwatcher: DanmNet/lab/ext"));

    let out = r
        .reconcile(&desired_links(&[src("ext", "ext", 701)]))
        .await
        .unwrap();
    assert_eq!(
        (out.deleted, out.created),
        (vec!["ext.700".to_owned()], vec!["ext.701".to_owned()])
    );
    assert_eq!(vlans(&nl, &ns).await, vec![("ext.701".to_owned(), 701)]);
    r.reconcile(&desired_links(&[])).await.unwrap();
    assert!(vlans(&nl, &ns).await.is_empty());
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn vm_vlan_links_of_removed_networks_go_together_and_a_vlan_danm_does_not_own_stays() {
    let nl = Arc::new(RtNetlink::new());
    let Some(ns) = setup(&nl).await else { return };
    let r = LinkReconciler::new(nl.clone(), ns.netns(), Metrics::default());
    let out = r
        .reconcile(&desired_links(&[
            src("a", "a", 801),
            src("b", "b", 802),
            src("c", "c", 803),
        ]))
        .await
        .unwrap();
    if !vlan_supported(&out) {
        return;
    }
    assert_eq!(out.created, vec!["a.801", "b.802", "c.803"]);
    // Someone else's VLAN on the same device, in a link group of its own.
    let foreign = danm_netlink::NewLink::vlan("other.900", "hd0", 900).group(9);
    nl.create_link(&ns.netns(), &foreign).await.unwrap();
    let out = r.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(out.deleted, vec!["a.801", "b.802", "c.803"], "{:?}", out.errors);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(vlans(&nl, &ns).await, vec![("other.900".to_owned(), 900)]);
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn vm_shared_vlan_link_survives_until_the_last_network_and_drift_is_repaired() {
    let nl = Arc::new(RtNetlink::new());
    let Some(ns) = setup(&nl).await else { return };
    let r = LinkReconciler::new(nl.clone(), ns.netns(), Metrics::default());
    let both = desired_links(&[src("a", "external", 300), src("b", "external", 300)]);
    let out = r.reconcile(&both).await.unwrap();
    if !vlan_supported(&out) {
        return;
    }
    nl.delete_link(&ns.netns(), "external.300").await.unwrap();
    let out = r.reconcile(&both).await.unwrap();
    assert_eq!(out.drift_repaired, vec!["external.300"]);
    let out = r
        .reconcile(&desired_links(&[src("b", "external", 300)]))
        .await
        .unwrap();
    assert!(out.deleted.is_empty());
    // A restarted netwatcher (new reconciler) removes what nothing wants any more.
    let restarted = LinkReconciler::new(nl.clone(), ns.netns(), Metrics::default());
    let out = restarted.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(out.deleted, vec!["external.300"]);
    nl.forget_netns(&ns.netns());
}
