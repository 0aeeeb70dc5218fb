//! IPAM writes per ADD and DEL: one conditional write per network however many of the pod's interfaces are on it,
//! all-or-nothing batches, and a reservation cut off by the deadline that the rollback still releases. Runs the
//! flows on the recording netlink fake against the in-process lab API server, through an [`Api`] wrapper that
//! counts and delays network writes.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::lab::{Call, Lab, Services, ctx, lab, plugins};
use danm_api::{DanmEp, DanmIpBlock, Network, NetworkKind};
use danm_cni::api::{Api, ApiError, IpamStore};
use danm_cni::error::Error;
use danm_cni::ipam::Retry;
use danm_cni::native::Sysfs;
use danm_cni::run::dispatch;
use danm_core::cni::codes;
use danm_netlink::{FakeNetlink, Netlink, Netns};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

const NS: &str = "default";
const NETNS: &str = "/var/run/netns/batchpod";

/// An [`Api`] that counts network writes per network name and can hold every write's answer back for a while
/// (the write itself is done at once, as a slow network path would leave it).
struct Counting {
    inner: Arc<dyn Api>,
    writes: Mutex<BTreeMap<String, usize>>,
    answer_delay: Mutex<Duration>,
    /// The next this-many DanmEp deletes fail (as a dropped connection would).
    failing_ep_deletes: Mutex<u32>,
}

impl Counting {
    fn writes(&self, network: &str) -> usize {
        self.writes.lock().unwrap().get(network).copied().unwrap_or(0)
    }

    fn reset(&self) {
        self.writes.lock().unwrap().clear();
    }
}

#[async_trait]
impl IpamStore for Counting {
    async fn get_network(
        &self,
        kind: NetworkKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Network>, ApiError> {
        self.inner.get_network(kind, namespace, name).await
    }
    async fn replace_network(&self, network: &Network) -> Result<Network, ApiError> {
        let written = self.inner.replace_network(network).await;
        if written.is_ok() {
            *self
                .writes
                .lock()
                .unwrap()
                .entry(network.name().to_owned())
                .or_default() += 1;
        }
        let delay = *self.answer_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        written
    }
    async fn list_blocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ApiError> {
        self.inner.list_blocks(selector).await
    }
    async fn get_block(&self, name: &str) -> Result<Option<DanmIpBlock>, ApiError> {
        self.inner.get_block(name).await
    }
    async fn create_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.inner.create_block(block).await
    }
    async fn replace_block(&self, block: &DanmIpBlock) -> Result<DanmIpBlock, ApiError> {
        self.inner.replace_block(block).await
    }
    async fn delete_block(&self, name: &str, resource_version: &str) -> Result<bool, ApiError> {
        self.inner.delete_block(name, resource_version).await
    }
}

#[async_trait]
impl Api for Counting {
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, ApiError> {
        self.inner.get_pod(namespace, name).await
    }
    async fn create_ep(&self, ep: &DanmEp) -> Result<DanmEp, ApiError> {
        self.inner.create_ep(ep).await
    }
    async fn replace_ep(&self, ep: &DanmEp) -> Result<DanmEp, ApiError> {
        self.inner.replace_ep(ep).await
    }
    async fn delete_ep(&self, namespace: &str, name: &str) -> Result<bool, ApiError> {
        {
            let mut failing = self.failing_ep_deletes.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(ApiError::Request {
                    object: format!("DanmEp {namespace}/{name}"),
                    reason: "deliberate failure".into(),
                });
            }
        }
        self.inner.delete_ep(namespace, name).await
    }
    async fn list_eps(&self, namespace: Option<&str>, selector: &str) -> Result<Vec<DanmEp>, ApiError> {
        self.inner.list_eps(namespace, selector).await
    }
    async fn annotate_pod(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), ApiError> {
        self.inner.annotate_pod(namespace, name, key, value).await
    }
    async fn ping(&self) -> Result<(), ApiError> {
        self.inner.ping().await
    }
    async fn get_nad(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<danm_api::NetworkAttachmentDefinition>, ApiError> {
        self.inner.get_nad(namespace, name).await
    }
    async fn get_claim(&self, namespace: &str, name: &str) -> Result<Option<danm_api::IpamClaim>, ApiError> {
        self.inner.get_claim(namespace, name).await
    }
    async fn replace_claim_status(
        &self,
        claim: &danm_api::IpamClaim,
    ) -> Result<danm_api::IpamClaim, ApiError> {
        self.inner.replace_claim_status(claim).await
    }
    async fn create_event(&self, event: &k8s_openapi::api::core::v1::Event) -> Result<(), ApiError> {
        self.inner.create_event(event).await
    }
}

struct World {
    lab: Lab,
    api: Arc<Counting>,
    fake: Arc<FakeNetlink>,
    svc: Services,
    _tmp: tempfile::TempDir,
}

async fn world() -> Option<World> {
    let Some(translator) = plugins() else {
        common::skip_without_plugins();
        return None;
    };
    let lab = lab().await;
    let api = Arc::new(Counting {
        inner: lab.cni.clone(),
        writes: Mutex::default(),
        answer_delay: Mutex::new(Duration::ZERO),
        failing_ep_deletes: Mutex::new(0),
    });
    let fake = Arc::new(FakeNetlink::new());
    fake.add_device(&Netns::Host, "ens1", 1500);
    fake.add_netns(Netns::path(NETNS));
    let tmp = tempfile::tempdir().unwrap();
    let svc = Services {
        api: api.clone(),
        netlink: fake.clone(),
        translator,
        sysfs: Sysfs {
            root: tmp.path().join("sys"),
        },
        kubelet_root: tmp.path().join("kubelet"),
        retry: Retry::default(),
        delegates: Arc::new(danm_cni::delegate::ProcessRunner),
    };
    Some(World {
        lab,
        api,
        fake,
        svc,
        _tmp: tmp,
    })
}

impl World {
    async fn macvlan(&self, name: &str, cidr: &str, pool: Option<(&str, &str)>) -> Network {
        let mut opts = json!({"host_device": "ens1", "cidr": cidr});
        if let Some((start, end)) = pool {
            opts["allocation_pool"] = json!({"start": start, "end": end});
        }
        self.lab
            .network(
                NetworkKind::DanmNet,
                NS,
                name,
                json!({"NetworkID": name, "NetworkType": "macvlan", "Options": opts}),
            )
            .await
    }

    async fn run(
        &self,
        command: &str,
        pod: &str,
        timeout_seconds: Option<u64>,
    ) -> Result<Option<String>, Error> {
        let mut call = Call::new(command, NS, pod, pod, NETNS);
        if let Some(t) = timeout_seconds {
            call.config["timeoutSeconds"] = json!(t);
        }
        dispatch(ctx(&self.svc, &call), Ok(())).await
    }

    async fn alloc(&self, name: &str) -> String {
        self.lab
            .get_network(NetworkKind::DanmNet, NS, name)
            .await
            .spec
            .options
            .alloc
    }

    async fn pod_links(&self) -> usize {
        self.fake
            .links(&Netns::path(NETNS))
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.name != "lo")
            .count()
    }
}

fn dynamic(networks: &[&str]) -> Value {
    Value::Array(
        networks
            .iter()
            .map(|n| json!({"network": n, "ip": "dynamic"}))
            .collect(),
    )
}

fn addresses(result: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(result).unwrap();
    v["ips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn add_and_del_write_each_network_once_however_many_interfaces_it_serves() {
    let Some(w) = world().await else { return };
    let (a, b) = (
        w.macvlan("alpha", "10.40.0.0/24", None).await,
        w.macvlan("beta", "10.41.0.0/24", None).await,
    );
    w.lab
        .pod(
            NS,
            "many",
            Some(dynamic(&["alpha", "alpha", "beta", "alpha", "alpha"])),
            &[],
        )
        .await;

    let result = w.run("ADD", "many", None).await.expect("ADD").unwrap();
    let ips = addresses(&result);
    assert_eq!(ips.len(), 5, "{result}");
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "an address was handed out twice: {ips:?}");
    assert_eq!(ips.iter().filter(|ip| ip.starts_with("10.40.0.")).count(), 4);
    assert_eq!(w.api.writes("alpha"), 1, "four interfaces on alpha, one write");
    assert_eq!(w.api.writes("beta"), 1);
    assert_eq!(w.lab.eps(NS).await.len(), 5);

    w.api.reset();
    w.run("DEL", "many", None).await.expect("DEL");
    assert_eq!(w.api.writes("alpha"), 1, "four addresses released with one write");
    assert_eq!(w.api.writes("beta"), 1);
    assert_eq!(
        w.alloc("alpha").await,
        a.spec.options.alloc,
        "alpha's bitmap is as created"
    );
    assert_eq!(w.alloc("beta").await, b.spec.options.alloc);
    assert!(w.lab.eps(NS).await.is_empty());
    assert_eq!(w.pod_links().await, 0);
}

#[tokio::test]
async fn a_pool_too_small_for_the_pod_fails_the_interface_it_cannot_serve_and_reserves_nothing() {
    let Some(w) = world().await else { return };
    let net = w
        .macvlan("small", "10.42.0.0/24", Some(("10.42.0.10", "10.42.0.11")))
        .await;
    w.lab
        .pod(NS, "greedy", Some(dynamic(&["small", "small", "small"])), &[])
        .await;

    let err = w
        .run("ADD", "greedy", None)
        .await
        .expect_err("the pool has two addresses");
    assert_eq!(err.code(), codes::IPAM_EXHAUSTED, "{err}");
    let Error::Interfaces(failures) = &err else {
        panic!("expected per-interface failures, got {err}");
    };
    assert_eq!(failures.len(), 1, "{err}");
    assert_eq!(failures[0].interface, "eth2", "{err}");
    assert_eq!(w.api.writes("small"), 0, "nothing was written");
    assert_eq!(w.alloc("small").await, net.spec.options.alloc);
    assert!(w.lab.eps(NS).await.is_empty());
    assert_eq!(w.pod_links().await, 0);
}

#[tokio::test]
async fn a_reservation_whose_answer_arrives_after_the_deadline_is_released_by_the_rollback() {
    let Some(w) = world().await else { return };
    let net = w.macvlan("slow", "10.43.0.0/24", None).await;
    w.lab.pod(NS, "late", Some(dynamic(&["slow", "slow"])), &[]).await;
    // The write lands at once; its answer comes 1.5 s later, after the 1 s deadline.
    *w.api.answer_delay.lock().unwrap() = Duration::from_millis(1500);

    let err = w
        .run("ADD", "late", Some(1))
        .await
        .expect_err("the deadline passes");
    assert_eq!(err.code(), codes::DEADLINE_EXCEEDED, "{err}");
    assert_eq!(
        w.api.writes("slow"),
        3,
        "the reservation, then the rollback's release of each interface's address"
    );
    assert_eq!(
        w.alloc("slow").await,
        net.spec.options.alloc,
        "the addresses reserved by the late write were released"
    );
    assert!(w.lab.eps(NS).await.is_empty());
    assert_eq!(w.pod_links().await, 0);
}

#[tokio::test]
async fn a_danmep_whose_delete_fails_is_deleted_on_a_retry_and_its_addresses_released() {
    let Some(w) = world().await else { return };
    let net = w.macvlan("gamma", "10.42.0.0/24", None).await;
    w.lab
        .pod(NS, "flaky", Some(dynamic(&["gamma", "gamma"])), &[])
        .await;
    w.run("ADD", "flaky", None).await.expect("ADD");
    assert_eq!(w.lab.eps(NS).await.len(), 2);
    // Two failures among the two DanmEps' deletes: each is retried, and the addresses are released.
    *w.api.failing_ep_deletes.lock().unwrap() = 2;
    w.run("DEL", "flaky", None).await.expect("DEL");
    assert_eq!(
        *w.api.failing_ep_deletes.lock().unwrap(),
        0,
        "the failures were met"
    );
    assert!(
        w.lab.eps(NS).await.is_empty(),
        "no DanmEp outlives its released addresses"
    );
    assert_eq!(w.alloc("gamma").await, net.spec.options.alloc);
}

#[tokio::test]
async fn in_blocks_mode_a_second_del_after_a_failed_danmep_delete_frees_nothing_of_the_next_owner() {
    let Some(w) = world().await else { return };
    // A blocks-mode network whatever mode the run creates networks in.
    let net = w.macvlan("delta", "10.43.0.0/24", None).await;
    let mut blocks_net = net.clone();
    blocks_net.spec.options.alloc.clear();
    blocks_net.spec.options.alloc6.clear();
    blocks_net.metadata.annotations =
        Some([(danm_api::annotations::IPAM_MODE.to_owned(), "blocks".to_owned())].into());
    w.lab.api.replace_network(&blocks_net).await.unwrap();
    w.lab.pod(NS, "first", Some(dynamic(&["delta"])), &[]).await;
    let got = addresses(&w.run("ADD", "first", None).await.unwrap().unwrap());
    assert_eq!(got, ["10.43.0.1/24"]);
    // The first DEL releases the address but cannot delete the DanmEp (1 try + 3 retries fail).
    *w.api.failing_ep_deletes.lock().unwrap() = 4;
    w.run("DEL", "first", None)
        .await
        .expect("DEL succeeds, logging the failure");
    assert_eq!(w.lab.eps(NS).await.len(), 1, "the DanmEp outlived its release");
    // Another pod gets that address.
    w.lab
        .pod(
            NS,
            "second",
            Some(json!([{"network": "delta", "ip": "10.43.0.1/24"}])),
            &[],
        )
        .await;
    w.run("ADD", "second", None).await.expect("ADD of the second pod");
    // The first pod's DEL again: its DanmEp goes, and the address stays the second pod's.
    w.run("DEL", "first", None).await.expect("DEL again");
    let eps = w.lab.eps(NS).await;
    assert_eq!(eps.len(), 1);
    assert_eq!(eps[0].spec.pod, "second");
    let blocks = w.lab.api.list_blocks("").await.unwrap();
    let owners: Vec<&String> = blocks.iter().flat_map(|b| b.spec.owners.values()).collect();
    assert_eq!(
        owners,
        [eps[0].metadata.name.as_ref().unwrap()],
        "the address is still the second pod's"
    );
    assert_eq!(w.api.writes("delta"), 0, "blocks mode never writes the network");
}

#[tokio::test]
async fn in_bitmap_mode_del_deletes_the_danmep_first_and_a_failed_delete_keeps_the_address() {
    let Some(w) = world().await else { return };
    // A bitmap network whatever mode the run creates networks in.
    let mut spec: danm_api::NetworkSpec = serde_json::from_value(
        json!({"NetworkID": "eps", "NetworkType": "macvlan", "Options": {"host_device": "ens1", "cidr": "10.44.0.0/24"}}),
    )
    .unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    let api: kube::Api<Network> = kube::Api::namespaced_with(w.lab.client.clone(), NS, &NetworkKind::DanmNet);
    let net = api
        .create(
            &kube::api::PostParams::default(),
            &Network::new(NetworkKind::DanmNet, Some(NS), "eps", spec),
        )
        .await
        .unwrap();
    w.lab.pod(NS, "keeper", Some(dynamic(&["eps"])), &[]).await;
    w.run("ADD", "keeper", None).await.expect("ADD");
    let held = w.alloc("eps").await;
    assert_ne!(held, net.spec.options.alloc);
    // The DanmEp cannot be deleted: its address stays allocated (a leak the reconciler recovers), not released
    // while a DanmEp still records it.
    *w.api.failing_ep_deletes.lock().unwrap() = 4;
    w.run("DEL", "keeper", None)
        .await
        .expect("DEL succeeds, logging the failure");
    assert_eq!(w.lab.eps(NS).await.len(), 1);
    assert_eq!(
        w.alloc("eps").await,
        held,
        "nothing released while the DanmEp exists"
    );
    // The next DEL deletes the DanmEp, then releases.
    w.run("DEL", "keeper", None).await.expect("DEL again");
    assert!(w.lab.eps(NS).await.is_empty());
    assert_eq!(w.alloc("eps").await, net.spec.options.alloc);
}

#[tokio::test]
async fn gc_reports_every_failure_not_only_the_first() {
    let Some(w) = world().await else { return };
    w.macvlan("epsilon", "10.45.0.0/24", None).await;
    w.lab
        .pod(NS, "gone", Some(dynamic(&["epsilon", "epsilon"])), &[])
        .await;
    w.run("ADD", "gone", None).await.expect("ADD");
    // The container is not valid any more, and neither of its DanmEps can be deleted (a try and three retries
    // each).
    *w.api.failing_ep_deletes.lock().unwrap() = 8;
    let mut gc = Call::new("GC", NS, "", "", NETNS);
    gc.config["cniVersion"] = json!("1.1.0");
    gc.config["cni.dev/valid-attachments"] = json!([]);
    let err = dispatch(ctx(&w.svc, &gc), Ok(())).await.expect_err("GC fails");
    let text = err.to_string();
    assert!(text.starts_with("2 failures"), "{text}");
    assert!(
        text.matches("deliberate failure").count() >= 2,
        "both DanmEps are named: {text}"
    );
}
