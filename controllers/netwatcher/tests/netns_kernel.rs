//! netwatcher against the real kernel: VxLAN host links in a fresh network namespace whose host device is a veth
//! carrying an IPv4 (or only a global IPv6) address. Needs root and `ip`; prints why it skips otherwise
//! (and fails where fixtures are required).

use std::sync::Arc;

use danm_api::NetworkKind;
use danm_netlink::{LinkKind, Netlink, Netns, RtNetlink};
use danm_netwatcher::desired::desired_links;
use danm_netwatcher::source::{LinkSource, SourceKind, SourceRef};
use danm_netwatcher::{LinkReconciler, Metrics};

/// A test namespace (the shared kit's) with `ip -n` at hand.
struct TestNs(danm_testkit::netns::TestNs);

impl TestNs {
    fn netns(&self) -> Netns {
        self.0.ns.clone()
    }
    fn ip(&self, args: &str) {
        let mut argv = vec!["ip", "-n", &self.0.name];
        argv.extend(args.split_whitespace());
        danm_testkit::process::cmd_ok(&argv);
    }
}

/// A fresh namespace with veth `hd0` (peer `hd1`) up; `addr` goes on `hd0`. `None` (with the reason printed; a
/// failure where fixtures are required) when the test cannot run here.
fn setup(addr: &str) -> Option<TestNs> {
    let ns = match danm_testkit::netns::TestNs::new("nwt") {
        Ok(ns) => TestNs(ns),
        Err(reason) => {
            danm_testkit::fixtures::skip(&reason);
            return None;
        }
    };
    ns.ip("link add hd0 type veth peer name hd1");
    if addr.contains(':') {
        ns.ip(&format!("addr add {addr} dev hd0 nodad"));
    } else {
        ns.ip(&format!("addr add {addr} dev hd0"));
    }
    ns.ip("link set hd0 up");
    ns.ip("link set hd1 up");
    Some(ns)
}

fn src(name: &str, nid: &str, vlan: u32, vxlan: u32) -> LinkSource {
    LinkSource {
        owner: SourceRef::new(SourceKind::Network(NetworkKind::DanmNet), Some("lab"), name),
        network_id: nid.to_owned(),
        host_device: "hd0".to_owned(),
        vlan,
        vxlan,
    }
}

fn reconciler(ns: &TestNs, nl: &Arc<RtNetlink>) -> LinkReconciler {
    LinkReconciler::new(nl.clone(), ns.netns(), Metrics::default())
}

async fn vxlan_links(nl: &RtNetlink, ns: &TestNs) -> Vec<(String, danm_netlink::VxlanInfo)> {
    let mut out: Vec<_> = nl
        .links(&ns.netns())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|l| match l.kind {
            LinkKind::Vxlan(info) => Some((l.name, info)),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn kernel_vxlan_link_is_created_with_danms_parameters_and_deleted_with_its_network() {
    let Some(ns) = setup("192.0.2.10/24") else { return };
    let nl = Arc::new(RtNetlink::new());
    let r = reconciler(&ns, &nl);
    let out = r
        .reconcile(&desired_links(&[src("int", "internal", 0, 300)]))
        .await
        .unwrap();
    assert_eq!(out.created, vec!["vx_internal"], "{:?}", out.errors);
    let link = nl.link(&ns.netns(), "vx_internal").await.unwrap();
    let hd0 = nl.link(&ns.netns(), "hd0").await.unwrap();
    assert!(link.up);
    assert!(link.alias.as_deref().unwrap().starts_with("danm-netwatcher"));
    let LinkKind::Vxlan(info) = link.kind else {
        panic!("{:?}", link.kind)
    };
    assert_eq!(info.vni, 300);
    assert_eq!(info.port, 4789);
    assert_eq!(info.group, Some("239.0.1.44".parse().unwrap()));
    assert_eq!(info.local, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(info.underlay_index, Some(hd0.index));
    assert!(info.learning && info.l2miss && info.l3miss);

    // Nothing to do the second time.
    let again = r
        .reconcile(&desired_links(&[src("int", "internal", 0, 300)]))
        .await
        .unwrap();
    assert!(again.created.is_empty() && again.deleted.is_empty(), "{again:?}");

    let out = r.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(out.deleted, vec!["vx_internal"]);
    assert!(vxlan_links(&nl, &ns).await.is_empty());
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn kernel_links_of_removed_networks_go_in_one_request_and_nothing_else_goes_with_them() {
    let Some(ns) = setup("192.0.2.16/24") else { return };
    let nl = Arc::new(RtNetlink::new());
    let r = reconciler(&ns, &nl);
    let keep = src("keep", "keep", 0, 400);
    let all = [
        keep.clone(),
        src("a", "a", 0, 401),
        src("b", "b", 0, 402),
        src("c", "c", 0, 403),
    ];
    let out = r.reconcile(&desired_links(&all)).await.unwrap();
    assert_eq!(out.created.len(), 4, "{:?}", out.errors);
    // A link of someone else's that sits in a non-default group must not go with danm's.
    ns.ip("link add foreign type veth peer name foreign1");
    ns.ip("link set foreign group 7");
    let out = r.reconcile(&desired_links(&[keep])).await.unwrap();
    assert_eq!(out.deleted, vec!["vx_a", "vx_b", "vx_c"], "{:?}", out.errors);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let names: Vec<String> = vxlan_links(&nl, &ns).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["vx_keep"]);
    for survivor in ["foreign", "foreign1", "hd0"] {
        assert!(
            nl.find_link(&ns.netns(), survivor).await.unwrap().is_some(),
            "{survivor} was deleted"
        );
    }
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn kernel_vxlan_link_is_replaced_when_the_vni_or_network_id_changes() {
    let Some(ns) = setup("192.0.2.11/24") else { return };
    let nl = Arc::new(RtNetlink::new());
    let r = reconciler(&ns, &nl);
    r.reconcile(&desired_links(&[src("n", "nid", 0, 50)]))
        .await
        .unwrap();
    let before = nl.link(&ns.netns(), "vx_nid").await.unwrap().index;
    let out = r
        .reconcile(&desired_links(&[src("n", "nid", 0, 51)]))
        .await
        .unwrap();
    assert_eq!(
        (out.deleted.clone(), out.created.clone()),
        (vec!["vx_nid".into()], vec!["vx_nid".into()])
    );
    let links = vxlan_links(&nl, &ns).await;
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].1.vni, 51);
    assert_eq!(links[0].1.group, Some("239.0.0.51".parse().unwrap()));
    assert_ne!(nl.link(&ns.netns(), "vx_nid").await.unwrap().index, before);
    r.reconcile(&desired_links(&[src("n", "renamed", 0, 51)]))
        .await
        .unwrap();
    let names: Vec<String> = vxlan_links(&nl, &ns).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["vx_renamed"]);
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn kernel_shared_vxlan_link_is_kept_until_the_last_network_goes() {
    let Some(ns) = setup("192.0.2.12/24") else { return };
    let nl = Arc::new(RtNetlink::new());
    let r = reconciler(&ns, &nl);
    let a = src("a", "shared", 0, 70);
    let b = src("b", "shared", 0, 70);
    r.reconcile(&desired_links(&[a.clone(), b.clone()]))
        .await
        .unwrap();
    let out = r.reconcile(&desired_links(&[a])).await.unwrap();
    assert!(out.deleted.is_empty() && out.created.is_empty(), "{out:?}");
    assert_eq!(vxlan_links(&nl, &ns).await.len(), 1);
    let alias = nl.link(&ns.netns(), "vx_shared").await.unwrap().alias.unwrap();
    assert_eq!(alias, "danm-netwatcher: DanmNet/lab/a");
    r.reconcile(&desired_links(&[])).await.unwrap();
    assert!(vxlan_links(&nl, &ns).await.is_empty());
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn kernel_drift_is_repaired_after_a_manual_delete_and_after_a_restart() {
    let Some(ns) = setup("192.0.2.13/24") else { return };
    let nl = Arc::new(RtNetlink::new());
    let d = desired_links(&[src("a", "a", 0, 80), src("b", "b", 0, 81)]);
    let r = reconciler(&ns, &nl);
    r.reconcile(&d).await.unwrap();
    ns.ip("link del vx_a");
    let out = r.reconcile(&d).await.unwrap();
    assert_eq!(out.created, vec!["vx_a"]);
    assert_eq!(out.drift_repaired, vec!["vx_a"]);
    assert_eq!(r.metrics().drift_repaired.get(), 1);

    // A managed link brought down by hand is drift too: it is brought back up.
    ns.ip("link set vx_b down");
    let out = r.reconcile(&d).await.unwrap();
    assert_eq!(out.drift_repaired, vec!["vx_b"]);
    assert!(nl.link(&ns.netns(), "vx_b").await.unwrap().up);

    // "Reboot": links gone, a new process (new reconciler) starts; it recreates them and removes what is unwanted.
    drop(r);
    ns.ip("link del vx_a");
    let restarted = reconciler(&ns, &nl);
    let out = restarted
        .reconcile(&desired_links(&[src("a", "a", 0, 80)]))
        .await
        .unwrap();
    assert_eq!(out.created, vec!["vx_a"]);
    assert_eq!(out.deleted, vec!["vx_b"]);
    let names: Vec<String> = vxlan_links(&nl, &ns).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["vx_a"]);
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn kernel_foreign_link_with_a_wanted_name_survives() {
    let Some(ns) = setup("192.0.2.14/24") else { return };
    ns.ip("link add vx_admin type vxlan id 9 dstport 4789 dev hd0");
    let nl = Arc::new(RtNetlink::new());
    let r = reconciler(&ns, &nl);
    let out = r
        .reconcile(&desired_links(&[src("x", "admin", 0, 10)]))
        .await
        .unwrap();
    assert!(out.deleted.is_empty() && out.created.is_empty());
    assert!(
        out.errors[0].contains("not created by netwatcher"),
        "{:?}",
        out.errors
    );
    r.reconcile(&desired_links(&[])).await.unwrap();
    assert_eq!(vxlan_links(&nl, &ns).await[0].1.vni, 9);
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn kernel_vxlan_over_an_ipv6_only_device_uses_ff02_plus_vni() {
    let Some(ns) = setup("2001:db8::10/64") else {
        return;
    };
    let nl = Arc::new(RtNetlink::new());
    let r = reconciler(&ns, &nl);
    let out = r
        .reconcile(&desired_links(&[src("v6", "v6", 0, 0x42)]))
        .await
        .unwrap();
    assert_eq!(out.created, vec!["vx_v6"], "{:?}", out.errors);
    let links = vxlan_links(&nl, &ns).await;
    assert_eq!(links[0].1.group, Some("ff02::42".parse().unwrap()));
    assert_eq!(links[0].1.local, Some("2001:db8::10".parse().unwrap()));
    nl.forget_netns(&ns.netns());
}

#[tokio::test]
async fn kernel_without_8021q_reports_the_vlan_link_and_still_makes_the_vxlan() {
    let Some(ns) = setup("192.0.2.15/24") else { return };
    let nl = Arc::new(RtNetlink::new());
    let r = reconciler(&ns, &nl);
    let out = r
        .reconcile(&desired_links(&[src("a", "a", 700, 90)]))
        .await
        .unwrap();
    assert_eq!(out.created.iter().filter(|n| *n == "vx_a").count(), 1);
    if out.created.contains(&"a.700".to_owned()) {
        eprintln!("note: this kernel has 802.1q; the VLAN link was created");
    } else {
        assert!(out.errors.iter().any(|e| e.contains("a.700")), "{:?}", out.errors);
    }
    nl.forget_netns(&ns.netns());
}
