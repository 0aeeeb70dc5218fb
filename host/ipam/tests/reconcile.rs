//! The IPAM reconciler against the lab API server: a pod deleted while its node was down (no DEL ever) gets its
//! addresses back after the grace period, in both modes; an ADD in flight is never touched; a failed list makes a
//! scan do nothing; a DanmEp whose pod exists is never deleted.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec, DanmIpBlock, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::IpRequest;
use danm_ipam::reconcile::{Inventory, Reconciler};
use danm_ipam::{ApiError, Ipam, IpamConfig, IpamStore, Release, Request};
use danm_lab::LabHandle;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const GRACE: Duration = Duration::from_secs(300);

async fn lab() -> (LabHandle, kube::Client) {
    let (handle, client) = danm_testkit::lab::with_crds().await;
    (handle, client)
}

async fn network(client: &kube::Client, name: &str, blocks: bool) -> Network {
    let mut spec: NetworkSpec =
        serde_json::from_value(json!({"NetworkID": name, "Options": {"cidr": "10.50.0.0/24"}})).unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    let mut net = Network::new(NetworkKind::DanmNet, Some("default"), name, spec);
    if blocks {
        net.spec.options.alloc.clear();
        net.metadata.annotations = Some(BTreeMap::from([(
            danm_api::annotations::IPAM_MODE.to_owned(),
            "blocks".to_owned(),
        )]));
    }
    let api: kube::Api<Network> =
        kube::Api::namespaced_with(client.clone(), "default", &NetworkKind::DanmNet);
    api.create(&PostParams::default(), &net).await.unwrap()
}

async fn pod(client: &kube::Client, name: &str) -> String {
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "pause"}]}}))
    .unwrap();
    let api: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &pod)
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

/// Reserves a dynamic address for `ep` on `net` (as ADD does first).
async fn reserve(client: &kube::Client, net: &Network, ep: &str) -> String {
    let ipam = Ipam::new(client, "node-a", IpamConfig::default());
    let net = client
        .get_network(NetworkKind::DanmNet, "default", net.name())
        .await
        .unwrap()
        .unwrap();
    let req = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Absent,
        owner: ep,
    };
    ipam.reserve(&net, &[req]).await.unwrap().0.remove(0).ip4
}

/// Writes the DanmEp (as ADD does second).
async fn danmep(client: &kube::Client, net: &str, name: &str, pod_uid: &str, addr: &str) {
    let ep = DanmEp::new(
        "default",
        name,
        DanmEpSpec {
            network_name: net.into(),
            api_type: "DanmNet".into(),
            pod_uid: pod_uid.into(),
            interface: DanmEpInterface {
                address: addr.into(),
                ..DanmEpInterface::default()
            },
            ..DanmEpSpec::default()
        },
    );
    let api: kube::Api<DanmEp> = kube::Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &ep).await.unwrap();
}

/// The addresses a network's IPAM holds: set bits (bitmap) or owners (blocks).
async fn held(client: &kube::Client, name: &str) -> usize {
    let net = client
        .get_network(NetworkKind::DanmNet, "default", name)
        .await
        .unwrap()
        .unwrap();
    let bits = danm_core::ipam::usage(&net.spec)
        .unwrap()
        .v4
        .map_or(0, |u| u.allocated_count as usize);
    let owners: usize = client
        .list_blocks("")
        .await
        .unwrap()
        .iter()
        .filter(|b| b.spec.network == format!("DanmNet default/{name}"))
        .map(|b| b.spec.owners.len())
        .sum();
    bits + owners
}

/// The reconciler runs in svcwatcher: its client names itself `svcwatcher/test`, so the lab's audit attributes its
/// calls to svcwatcher (`make rbac`).
async fn svcwatcher(lab: &LabHandle) -> kube::Client {
    lab.client_as("svcwatcher/test").await.expect("lab client")
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap()).unwrap()
}

#[tokio::test]
async fn a_pod_deleted_while_its_node_was_down_gets_its_addresses_back_after_the_grace_period() {
    let (h, client) = lab().await;
    for (name, blocks) in [("bm", false), ("bl", true)] {
        let net = network(&client, name, blocks).await;
        let uid = pod(&client, &format!("p-{name}")).await;
        let addr = reserve(&client, &net, &format!("ep-{name}")).await;
        danmep(&client, name, &format!("ep-{name}"), &uid, &addr).await;
        // The pod goes; its node never runs DEL.
        let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
        pods.delete(&format!("p-{name}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    // The DanmEps are new: created now, so even a long-known orphan waits for the grace period of its own age.
    let mut rec = Reconciler::new(IpamConfig::default(), GRACE);
    let t0 = later(Timestamp::now(), GRACE);
    let first = rec.scan(&svcwatcher(&h).await, t0).await;
    assert_eq!(
        (first.danmeps_deleted, first.addresses_released),
        (0, 0),
        "{first:?}"
    );
    assert_eq!(first.waiting, 2);
    assert_eq!(held(&client, "bm").await + held(&client, "bl").await, 2);
    let second = rec.scan(&svcwatcher(&h).await, later(t0, GRACE)).await;
    assert_eq!(second.skipped, None);
    assert_eq!(second.danmeps_deleted, 2, "{second:?}");
    assert_eq!(second.addresses_released, 2, "{second:?}");
    assert_eq!(held(&client, "bm").await, 0);
    assert_eq!(held(&client, "bl").await, 0);
    let eps: kube::Api<DanmEp> = kube::Api::all(client.clone());
    assert!(eps.list(&Default::default()).await.unwrap().items.is_empty());
    // Each deletion is recorded on its network, for `kubectl describe`.
    let events: kube::Api<Event> = kube::Api::namespaced(client.clone(), "default");
    let events = events.list(&Default::default()).await.unwrap().items;
    for name in ["bm", "bl"] {
        let e = events
            .iter()
            .find(|e| e.involved_object.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no Event on DanmNet {name}: {events:?}"));
        assert_eq!(e.reason.as_deref(), Some(danm_ipam::reconcile::DANMEP_DELETED));
        assert_eq!(e.involved_object.kind.as_deref(), Some("DanmNet"));
        let text = e.message.as_deref().unwrap_or_default();
        assert!(
            text.contains(&format!("ep-{name}")) && text.contains("10.50.0."),
            "{text}"
        );
    }
    // Pool metrics: size and use per network and family.
    let pool = second
        .pools
        .iter()
        .find(|p| p.network == "DanmNet default/bl")
        .unwrap();
    assert_eq!((pool.size, pool.used), (254, 0));
}

#[tokio::test]
async fn an_add_in_flight_is_never_touched() {
    let (h, client) = lab().await;
    let mut rec = Reconciler::new(IpamConfig::default(), GRACE);
    let t0 = Timestamp::now();
    for (name, blocks) in [("bm", false), ("bl", true)] {
        let net = network(&client, name, blocks).await;
        let uid = pod(&client, &format!("p-{name}")).await;
        // ADD has reserved but not yet written its DanmEp when the reconciler looks.
        let addr = reserve(&client, &net, &format!("ep-{name}")).await;
        let first = rec.scan(&svcwatcher(&h).await, t0).await;
        assert_eq!(first.addresses_released, 0);
        // The ADD completes.
        danmep(&client, name, &format!("ep-{name}"), &uid, &addr).await;
    }
    let later_scan = rec.scan(&svcwatcher(&h).await, later(t0, GRACE * 2)).await;
    assert_eq!(
        (later_scan.danmeps_deleted, later_scan.addresses_released),
        (0, 0),
        "{later_scan:?}"
    );
    assert_eq!(held(&client, "bm").await, 1);
    assert_eq!(held(&client, "bl").await, 1);
    // And a DanmEp whose pod exists is never deleted, however old.
    let much_later = rec.scan(&svcwatcher(&h).await, later(t0, GRACE * 100)).await;
    assert_eq!(much_later.danmeps_deleted, 0);
}

/// Bitmap mode records no owner. A bit is leaked (its ADD died before writing the DanmEp) when the reconciler first
/// sees it; before the grace period is over it is released and reserved again by another pod whose ADD is still in
/// flight (no DanmEp yet) when the reconciler looks again. That bit is the new pod's: it must not be freed.
#[tokio::test]
async fn a_bit_that_changed_hands_between_scans_is_not_taken_for_a_leak() {
    let (h, client) = lab().await;
    let mut rec = Reconciler::new(IpamConfig::default(), GRACE);
    let t0 = Timestamp::now();
    let net = network(&client, "hand", false).await;
    let addr = reserve(&client, &net, "ep-dead").await;
    let first = rec.scan(&svcwatcher(&h).await, t0).await;
    assert_eq!((first.addresses_released, first.waiting), (0, 1), "{first:?}");
    // The leaked bit is freed (a DEL or rollback of the dead ADD) and the next ADD takes the lowest free address:
    // the same one.
    let ipam = Ipam::new(&client, "node-a", IpamConfig::default());
    let release = Release {
        ip4: &addr,
        ip6: "",
        owner: "",
    };
    assert!(
        ipam.release_on(NetworkKind::DanmNet, "default", "hand", &[release])
            .await
            .unwrap()
    );
    let uid = pod(&client, "p-new").await;
    assert_eq!(reserve(&client, &net, "ep-new").await, addr, "the same address");
    // The reconciler looks after the grace period, while the new ADD has not written its DanmEp yet.
    let second = rec.scan(&svcwatcher(&h).await, later(t0, GRACE * 2)).await;
    assert_eq!(second.addresses_released, 0, "{second:?}");
    danmep(&client, "hand", "ep-new", &uid, &addr).await;
    let third = rec.scan(&svcwatcher(&h).await, later(t0, GRACE * 4)).await;
    assert_eq!(third.addresses_released, 0, "{third:?}");
    assert_eq!(held(&client, "hand").await, 1, "the new pod keeps its address");
}

/// The lab through an inventory with a fault.
struct Faulty(kube::Client, Fault);

enum Fault {
    /// The pod list fails.
    PodsDown,
    /// Just before the reconciler deletes a DanmEp, a DEL of its pod deletes it and releases its address, and a new
    /// pod (`uid`) gets that address.
    DelFirst { network: &'static str, uid: String },
}

#[async_trait]
impl IpamStore for Faulty {
    async fn get_network(&self, k: NetworkKind, ns: &str, n: &str) -> Result<Option<Network>, ApiError> {
        self.0.get_network(k, ns, n).await
    }
    async fn replace_network(&self, n: &Network) -> Result<Network, ApiError> {
        self.0.replace_network(n).await
    }
    async fn list_blocks(&self, s: &str) -> Result<Vec<DanmIpBlock>, ApiError> {
        self.0.list_blocks(s).await
    }
    async fn get_block(&self, n: &str) -> Result<Option<DanmIpBlock>, ApiError> {
        self.0.get_block(n).await
    }
    async fn create_block(&self, b: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.0.create_block(b).await
    }
    async fn replace_block(&self, b: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.0.replace_block(b).await
    }
    async fn delete_block(&self, n: &str, rv: &str) -> Result<bool, ApiError> {
        self.0.delete_block(n, rv).await
    }
}

#[async_trait]
impl Inventory for Faulty {
    async fn pod_uids(&self) -> Result<HashSet<String>, ApiError> {
        match &self.1 {
            Fault::PodsDown => Err(ApiError::Request {
                object: "Pods".into(),
                reason: "connection refused".into(),
            }),
            Fault::DelFirst { .. } => self.0.pod_uids().await,
        }
    }
    async fn danmeps(&self) -> Result<Vec<DanmEp>, ApiError> {
        self.0.danmeps().await
    }
    async fn networks(&self) -> Result<Vec<Network>, ApiError> {
        self.0.networks().await
    }
    async fn ipam_claims(&self) -> Result<Option<danm_ipam::reconcile::Claims>, ApiError> {
        self.0.ipam_claims().await
    }
    async fn delete_danmep(&self, ns: &str, n: &str) -> Result<bool, ApiError> {
        if let Fault::DelFirst { network, uid } = &self.1 {
            let api: kube::Api<DanmEp> = kube::Api::namespaced(self.0.clone(), ns);
            let ep = api.get(n).await.unwrap();
            api.delete(n, &DeleteParams::default()).await.unwrap();
            let addr = ep.spec.interface.address.clone();
            let ipam = Ipam::new(&self.0, "node-a", IpamConfig::default());
            let release = Release {
                ip4: &addr,
                ip6: "",
                owner: n,
            };
            assert!(
                ipam.release_on(NetworkKind::DanmNet, ns, network, &[release])
                    .await
                    .unwrap()
            );
            let net = self
                .0
                .get_network(NetworkKind::DanmNet, ns, network)
                .await
                .unwrap()
                .unwrap();
            let req = Request {
                ip4: IpRequest::Static(addr.split('/').next().unwrap().parse().unwrap()),
                ip6: IpRequest::Absent,
                owner: "ep-new",
            };
            ipam.reserve(&net, &[req]).await.unwrap();
            danmep(&self.0, network, "ep-new", uid, &addr).await;
        }
        self.0.delete_danmep(ns, n).await
    }
    async fn create_event(&self, e: &Event) -> Result<(), ApiError> {
        self.0.create_event(e).await
    }
}

#[tokio::test]
async fn a_danmep_someone_else_deleted_first_has_its_addresses_released_by_them_only() {
    // Found by `danm-lab chaos` in bitmap mode: the reconciler and a DEL both removed one DanmEp; the one whose
    // deletion found it gone released its address as well, after a new pod had got it (a bitmap has no owners).
    for (name, blocks) in [("bm", false), ("bl", true)] {
        let (h, client) = lab().await;
        let net = network(&client, name, blocks).await;
        let uid = pod(&client, &format!("p-{name}")).await;
        let addr = reserve(&client, &net, &format!("ep-{name}")).await;
        danmep(&client, name, &format!("ep-{name}"), &uid, &addr).await;
        let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
        pods.delete(&format!("p-{name}"), &DeleteParams::default())
            .await
            .unwrap();
        let new_uid = pod(&client, &format!("new-{name}")).await;
        let mut rec = Reconciler::new(IpamConfig::default(), GRACE);
        let t0 = later(Timestamp::now(), GRACE);
        assert_eq!(rec.scan(&svcwatcher(&h).await, t0).await.waiting, 1);
        let racing = Faulty(
            client.clone(),
            Fault::DelFirst {
                network: name,
                uid: new_uid,
            },
        );
        let report = rec.scan(&racing, later(t0, GRACE)).await;
        assert_eq!(
            (report.danmeps_deleted, report.addresses_released),
            (0, 0),
            "{name}: {report:?}"
        );
        assert_eq!(
            held(&client, name).await,
            1,
            "{name}: the new pod's address {addr} is still held"
        );
    }
}

#[tokio::test]
async fn a_failed_list_makes_the_scan_do_nothing() {
    let (h, client) = lab().await;
    let net = network(&client, "bl", true).await;
    let uid = pod(&client, "gone").await;
    let addr = reserve(&client, &net, "ep-gone").await;
    danmep(&client, "bl", "ep-gone", &uid, &addr).await;
    let pods: kube::Api<Pod> = kube::Api::namespaced(client.clone(), "default");
    pods.delete("gone", &DeleteParams::default()).await.unwrap();
    let mut rec = Reconciler::new(IpamConfig::default(), GRACE);
    let t0 = later(Timestamp::now(), GRACE);
    assert_eq!(rec.scan(&svcwatcher(&h).await, t0).await.waiting, 1);
    // Due now, but the pod list fails: without it every DanmEp would look orphaned.
    let down = rec
        .scan(&Faulty(client.clone(), Fault::PodsDown), later(t0, GRACE))
        .await;
    assert!(
        down.skipped
            .as_deref()
            .unwrap_or_default()
            .contains("connection refused"),
        "{down:?}"
    );
    assert_eq!((down.danmeps_deleted, down.addresses_released), (0, 0));
    assert_eq!(held(&client, "bl").await, 1);
}

#[tokio::test]
async fn a_bit_no_danmep_holds_is_released_on_every_network_kind() {
    // A killed ADD reserved an address and never wrote its DanmEp: its bit is leaked, on any of the three kinds.
    let (h, client) = lab().await;
    let mut nets = Vec::new();
    for (i, kind) in NetworkKind::ALL.into_iter().enumerate() {
        let name = format!("leak{i}");
        let mut spec: NetworkSpec = serde_json::from_value(
            json!({"NetworkID": name, "Options": {"cidr": format!("10.7{i}.0.0/24")}}),
        )
        .unwrap();
        danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
        let ns = kind.namespaced().then_some("default");
        let api: kube::Api<Network> = match ns {
            Some(ns) => kube::Api::namespaced_with(client.clone(), ns, &kind),
            None => kube::Api::all_with(client.clone(), &kind),
        };
        let net = api
            .create(&PostParams::default(), &Network::new(kind, ns, &name, spec))
            .await
            .unwrap();
        let ipam = Ipam::new(&client, "node-a", IpamConfig::default());
        let req = Request {
            ip4: IpRequest::Dynamic,
            ip6: IpRequest::Absent,
            owner: "killed",
        };
        ipam.reserve(&net, &[req]).await.unwrap();
        nets.push((kind, ns.unwrap_or_default().to_owned(), name));
    }
    let used = |net: Network| {
        danm_core::ipam::usage(&net.spec)
            .unwrap()
            .v4
            .map_or(0, |u| u.allocated_count)
    };
    let mut rec = Reconciler::new(IpamConfig::default(), GRACE);
    let t0 = Timestamp::now();
    assert_eq!(rec.scan(&svcwatcher(&h).await, t0).await.waiting, 3);
    let report = rec.scan(&svcwatcher(&h).await, later(t0, GRACE)).await;
    assert_eq!(report.addresses_released, 3, "{report:?}");
    for (kind, ns, name) in &nets {
        let net = client.get_network(*kind, ns, name).await.unwrap().unwrap();
        assert_eq!(used(net), 0, "{kind:?} {name}: the leaked bit is free again");
    }
}

/// Bitmap mode, where no owner is recorded: a bit is held by the DanmEp of an NPWG attachment naming the network as
/// its pool (`danm.k8s.io/ipam-network`), and by an IPAMClaim's `status.ips` after its pod is gone ("the claim holds
/// it"); a bit neither holds is freed. Once the claim is deleted, its bit is freed too.
#[tokio::test]
async fn in_bitmap_mode_claims_and_npwg_danmeps_hold_their_bits_until_the_claim_is_deleted() {
    let (h, client) = lab().await;
    let net = network(&client, "bmc", false).await;
    let uid = pod(&client, "p-nad").await;
    // An NPWG attachment of a running pod, its address from this network.
    let nad_addr = reserve(&client, &net, "ep-nad").await;
    let mut ep = DanmEp::new(
        "default",
        "ep-nad",
        DanmEpSpec {
            network_name: "default/mynad".into(),
            api_type: "NetworkAttachmentDefinition".into(),
            pod_uid: uid,
            interface: DanmEpInterface {
                address: nad_addr.clone(),
                ..DanmEpInterface::default()
            },
            ..DanmEpSpec::default()
        },
    );
    ep.metadata.annotations = Some(BTreeMap::from([(
        danm_api::annotations::IPAM_NETWORK.to_owned(),
        "DanmNet/default/bmc".to_owned(),
    )]));
    let eps: kube::Api<DanmEp> = kube::Api::namespaced(client.clone(), "default");
    eps.create(&PostParams::default(), &ep).await.unwrap();
    // A claim whose pod is gone: no DanmEp, its address in its status.
    let claim_addr = reserve(&client, &net, "claim:default/web-0").await;
    let claims: kube::Api<danm_api::IpamClaim> = kube::Api::namespaced(client.clone(), "default");
    let claim = danm_api::IpamClaim::new(
        "default",
        "web-0",
        danm_api::IpamClaimSpec {
            network: "mynad".into(),
            interface: "net1".into(),
        },
    );
    claims.create(&PostParams::default(), &claim).await.unwrap();
    claims
        .patch_status(
            "web-0",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": {"ips": [claim_addr]}})),
        )
        .await
        .unwrap();
    // A leak: reserved, never recorded anywhere.
    reserve(&client, &net, "killed").await;
    assert_eq!(held(&client, "bmc").await, 3);

    let mut rec = Reconciler::new(IpamConfig::default(), GRACE);
    let t0 = Timestamp::now();
    let first = rec.scan(&svcwatcher(&h).await, t0).await;
    assert_eq!(first.waiting, 1, "only the leak is suspect: {first:?}");
    let second = rec.scan(&svcwatcher(&h).await, later(t0, GRACE)).await;
    assert_eq!(second.addresses_released, 1, "{second:?}");
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(
        held(&client, "bmc").await,
        2,
        "the NPWG DanmEp's and the claim's bits are kept"
    );
    let bit_set = |net: &Network, addr: &str| danm_core::ipam::release(&net.spec, addr, "").1;
    let now = client
        .get_network(NetworkKind::DanmNet, "default", "bmc")
        .await
        .unwrap()
        .unwrap();
    assert!(bit_set(&now, &nad_addr) && bit_set(&now, &claim_addr));

    // The claim is deleted: after the grace period its bit is free, the NPWG DanmEp's is not.
    claims.delete("web-0", &DeleteParams::default()).await.unwrap();
    let t1 = later(t0, GRACE * 2);
    assert_eq!(rec.scan(&svcwatcher(&h).await, t1).await.addresses_released, 0);
    let fourth = rec.scan(&svcwatcher(&h).await, later(t1, GRACE)).await;
    assert_eq!(fourth.addresses_released, 1, "{fourth:?}");
    let now = client
        .get_network(NetworkKind::DanmNet, "default", "bmc")
        .await
        .unwrap()
        .unwrap();
    assert!(!bit_set(&now, &claim_addr), "the deleted claim's address is free");
    assert!(
        bit_set(&now, &nad_addr),
        "the running NPWG attachment keeps its address"
    );
    assert_eq!(held(&client, "bmc").await, 1);
}
