//! netwatcher's 802.1q VLAN links on a real kernel, for the kernel lane (lane/README.md): this build machine's
//! kernel has no 8021q, so here each test prints a skip; with `DANM_KERNEL_LANE=1` (inside the lane's VM) a missing
//! VLAN kind is a failure. Each test uses a fresh namespace whose host device is a veth.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use danm_api::NetworkKind;
use danm_netlink::{LinkKind, Netlink, Netns, RtNetlink};
use danm_netwatcher::desired::desired_links;
use danm_netwatcher::source::{LinkSource, SourceKind, SourceRef};
use danm_netwatcher::{LinkReconciler, Metrics, Outcome};

static COUNTER: AtomicU32 = AtomicU32::new(0);

struct TestNs(String);

impl TestNs {
    fn netns(&self) -> Netns {
        Netns::named(&self.0)
    }
    fn ip(&self, args: &str) {
        let ok = Command::new("ip")
            .arg("-n")
            .arg(&self.0)
            .args(args.split_whitespace())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip -n {} {args} failed", self.0);
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn in_lane() -> bool {
    std::env::var("DANM_KERNEL_LANE").is_ok_and(|v| v == "1")
}

fn setup() -> Option<TestNs> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    if !root {
        assert!(!in_lane(), "the kernel lane runs as root");
        eprintln!("skipping: needs root to create network namespaces");
        return None;
    }
    let name = format!(
        "nwv-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    if !Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(!in_lane(), "cannot create a network namespace in the lane");
        eprintln!("skipping: cannot create a network namespace (is `ip` installed?)");
        return None;
    }
    let ns = TestNs(name);
    ns.ip("link add hd0 type veth peer name hd1");
    ns.ip("link set hd0 up");
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
        assert!(
            !in_lane(),
            "the lane's kernel must create VLAN links: {:?}",
            out.errors
        );
        eprintln!(
            "skipping: this kernel lacks a link kind (802.1q vlan): {:?}",
            out.errors
        );
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
    let Some(ns) = setup() else { return };
    let nl = Arc::new(RtNetlink::new());
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
async fn vm_shared_vlan_link_survives_until_the_last_network_and_drift_is_repaired() {
    let Some(ns) = setup() else { return };
    let nl = Arc::new(RtNetlink::new());
    let r = LinkReconciler::new(nl.clone(), ns.netns(), Metrics::default());
    let both = desired_links(&[src("a", "external", 300), src("b", "external", 300)]);
    let out = r.reconcile(&both).await.unwrap();
    if !vlan_supported(&out) {
        return;
    }
    ns.ip("link del external.300");
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
