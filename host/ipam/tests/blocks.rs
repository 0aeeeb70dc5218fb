//! The block mode against the lab API server: node affinity, claiming and borrowing blocks, static addresses in
//! another node's block, release by owner only, idle blocks handed back, and the network object never written.

use std::collections::BTreeSet;
use std::time::Duration;

use danm_api::{DanmIpBlock, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::IpRequest;
use danm_ipam::{ApiError, Ipam, IpamConfig, IpamStore, Release, Request};
use danm_lab::LabHandle;
use kube::api::PostParams;
use serde_json::{Value, json};

struct Lab {
    _handle: LabHandle,
    /// The test's own client (set-up and checks).
    client: kube::Client,
    /// The node's IPAM runs in the CNI: its client names itself `danm/test`, so the lab's audit attributes its calls
    /// to the CNI (`make rbac`).
    cni: kube::Client,
}

async fn lab() -> Lab {
    let (handle, client) = danm_testkit::lab::with_crds().await;
    let cni = handle.client_as("danm/test").await.expect("lab client");
    Lab {
        _handle: handle,
        client,
        cni,
    }
}

impl Lab {
    /// A DanmNet as the webhook leaves it in blocks mode: pool defaults, no bitmap.
    async fn network(&self, name: &str, spec: Value) -> Network {
        let mut spec: NetworkSpec = serde_json::from_value(spec).unwrap();
        danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
        spec.options.alloc.clear();
        spec.options.alloc6.clear();
        let net = Network::new(NetworkKind::DanmNet, Some("default"), name, spec);
        let api: kube::Api<Network> =
            kube::Api::namespaced_with(self.client.clone(), "default", &NetworkKind::DanmNet);
        api.create(&PostParams::default(), &net)
            .await
            .expect("create network")
    }

    async fn blocks(&self) -> Vec<DanmIpBlock> {
        let mut blocks = self.client.list_blocks("").await.unwrap();
        blocks.sort_by(|a, b| a.spec.cidr.cmp(&b.spec.cidr));
        blocks
    }

    async fn reread(&self, net: &Network) -> Network {
        self.client
            .get_network(NetworkKind::DanmNet, "default", net.name())
            .await
            .unwrap()
            .unwrap()
    }
}

fn config() -> IpamConfig {
    IpamConfig::default()
}

async fn dynamic(ipam: &Ipam<'_>, net: &Network, owner: &str) -> String {
    let req = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Absent,
        owner,
    };
    ipam.reserve(net, &[req]).await.expect("reserve").0.remove(0).ip4
}

#[tokio::test]
async fn a_node_fills_its_own_block_then_claims_the_next_and_the_network_is_never_written() {
    let lab = lab().await;
    let net = lab
        .network("n1", json!({"Options": {"cidr": "10.1.0.0/24"}}))
        .await;
    let rv = net.metadata.resource_version.clone();
    let ipam = Ipam::new(&lab.cni, "node-a", config());
    let mut got = Vec::new();
    for i in 0..70 {
        got.push(dynamic(&ipam, &net, &format!("ep-{i}")).await);
    }
    assert_eq!(got[0], "10.1.0.1/24");
    assert_eq!(got[62], "10.1.0.63/24");
    assert_eq!(
        got[63], "10.1.0.64/24",
        "the second block starts after the first is full"
    );
    let blocks = lab.blocks().await;
    assert_eq!(blocks.len(), 2);
    assert!(blocks.iter().all(|b| b.spec.node == "node-a"));
    assert_eq!(blocks[0].spec.owners.len(), 63);
    assert_eq!(blocks[0].spec.owners[&1], "ep-0");
    assert_eq!(lab.reread(&net).await.metadata.resource_version, rv);
    // A full default block stays a few KB.
    let bytes = serde_json::to_vec(&blocks[0]).unwrap().len();
    assert!(bytes < 4096, "a full block is {bytes} bytes");
}

#[tokio::test]
async fn two_nodes_racing_for_the_last_free_block_get_distinct_addresses_and_one_borrows() {
    let lab = lab().await;
    // Two /26 blocks; node-c holds the first one already.
    let net = lab
        .network("race", json!({"Options": {"cidr": "10.2.0.0/25"}}))
        .await;
    let c = Ipam::new(&lab.cni, "node-c", config());
    dynamic(&c, &net, "ep-c").await;
    let client = lab.cni.clone();
    let tasks: Vec<_> = ["node-a", "node-b"]
        .into_iter()
        .map(|node| {
            let (client, net) = (client.clone(), net.clone());
            tokio::spawn(async move {
                let ipam = Ipam::new(&client, node, IpamConfig::default());
                dynamic(&ipam, &net, &format!("ep-{node}")).await
            })
        })
        .collect();
    let mut got = BTreeSet::new();
    for t in tasks {
        assert!(got.insert(t.await.unwrap()), "duplicate address");
    }
    let blocks = lab.blocks().await;
    assert_eq!(blocks.len(), 2, "one of them claimed the last block");
    let holders: BTreeSet<&str> = blocks.iter().map(|b| b.spec.node.as_str()).collect();
    assert!(holders.contains("node-c"));
    let owners: usize = blocks.iter().map(|b| b.spec.owners.len()).sum();
    assert_eq!(owners, 3);
}

#[tokio::test]
async fn a_static_address_goes_to_its_block_whoever_holds_it_and_only_its_owner_frees_it() {
    let lab = lab().await;
    let net = lab
        .network("st", json!({"Options": {"cidr": "10.3.0.0/24"}}))
        .await;
    let a = Ipam::new(&lab.cni, "node-a", config());
    let b = Ipam::new(&lab.cni, "node-b", config());
    dynamic(&a, &net, "ep-a1").await;
    let req = Request {
        ip4: IpRequest::Static("10.3.0.10".parse().unwrap()),
        ip6: IpRequest::Absent,
        owner: "ep-b1",
    };
    let (got, _) = b.reserve(&net, &[req]).await.unwrap();
    assert_eq!(got[0].ip4, "10.3.0.10/24");
    let blocks = lab.blocks().await;
    assert_eq!(
        blocks.len(),
        1,
        "no block of its own for a static address in node-a's block"
    );
    assert_eq!(blocks[0].spec.node, "node-a");
    assert_eq!(blocks[0].spec.owners[&10], "ep-b1");
    // The same address again: in use.
    let again = Request {
        owner: "ep-b2",
        ..req
    };
    let err = b.reserve(&net, &[again]).await.unwrap_err();
    assert_eq!(err.index, Some(0));
    assert!(err.to_string().contains("already in use"), "{err}");
    // A release by someone else frees nothing.
    let wrong = Release {
        ip4: "10.3.0.10/24",
        ip6: "",
        owner: "ep-a1",
    };
    assert!(!a.release(&net, &[wrong]).await.unwrap());
    assert_eq!(lab.blocks().await[0].spec.owners[&10], "ep-b1");
    let right = Release {
        owner: "ep-b1",
        ..wrong
    };
    assert!(b.release(&net, &[right]).await.unwrap());
    assert!(
        !b.release(&net, &[right]).await.unwrap(),
        "a second release frees nothing"
    );
    // A static address in a block nobody holds creates it for the asking node.
    let far = Request {
        ip4: IpRequest::Static("10.3.0.200".parse().unwrap()),
        ip6: IpRequest::Absent,
        owner: "ep-b3",
    };
    b.reserve(&net, &[far]).await.unwrap();
    let blocks = lab.blocks().await;
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[1].spec.cidr, "10.3.0.192/26");
    assert_eq!(blocks[1].spec.node, "node-b");
}

#[tokio::test]
async fn when_no_block_is_free_a_node_borrows_from_another_and_then_the_pool_is_exhausted() {
    let lab = lab().await;
    // A /28 is one block of 14 usable addresses.
    let net = lab
        .network("tiny", json!({"Options": {"cidr": "10.4.0.0/28"}}))
        .await;
    let a = Ipam::new(&lab.cni, "node-a", config());
    let b = Ipam::new(&lab.cni, "node-b", config());
    let mut got = BTreeSet::new();
    for i in 0..7 {
        got.insert(dynamic(&a, &net, &format!("a{i}")).await);
        got.insert(dynamic(&b, &net, &format!("b{i}")).await);
    }
    assert_eq!(got.len(), 14);
    let blocks = lab.blocks().await;
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].spec.node, "node-a");
    let req = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Absent,
        owner: "b-late",
    };
    let err = b.reserve(&net, &[req]).await.unwrap_err();
    assert!(err.to_string().contains("all addresses are reserved"), "{err}");
}

#[tokio::test]
async fn dual_stack_is_all_or_nothing_and_a_failed_batch_holds_nothing() {
    // IPv6: net6 /64 gets DANM's default pool (/105) and /122 blocks.
    let lab = lab().await;
    let net = lab
        .network(
            "ds",
            json!({"Options": {"cidr": "10.5.0.0/24", "net6": "2001:db8:5::/64"}}),
        )
        .await;
    let a = Ipam::new(&lab.cni, "node-a", config());
    let ok = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Dynamic,
        owner: "ep-1",
    };
    let (got, _) = a.reserve(&net, &[ok]).await.unwrap();
    assert_eq!(got[0].ip4, "10.5.0.1/24");
    assert_eq!(got[0].ip6, "2001:db8:5::1/64");
    // The second request's IPv6 address is taken: the whole batch fails and its IPv4 addresses are freed again.
    let taken = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Static("2001:db8:5::1".parse().unwrap()),
        owner: "ep-3",
    };
    let fine = Request { owner: "ep-2", ..ok };
    let err = a.reserve(&net, &[fine, taken]).await.unwrap_err();
    assert_eq!(err.index, Some(1));
    let held: usize = lab.blocks().await.iter().map(|b| b.spec.owners.len()).sum();
    assert_eq!(held, 2, "only ep-1's two addresses are held");
}

#[tokio::test]
async fn an_idle_empty_block_is_handed_back_and_a_bitmap_network_stays_in_its_bitmap() {
    let lab = lab().await;
    let net = lab
        .network("idle", json!({"Options": {"cidr": "10.6.0.0/25"}}))
        .await;
    let cfg = IpamConfig {
        idle: Duration::ZERO,
        ..config()
    };
    let a = Ipam::new(&lab.cni, "node-a", cfg);
    // 63 addresses fill the first block; the 64th claims the second.
    let mut owners = Vec::new();
    for i in 0..64 {
        owners.push((dynamic(&a, &net, &format!("x{i}")).await, format!("x{i}")));
    }
    assert_eq!(lab.blocks().await.len(), 2);
    // Empty the second block.
    let (addr, owner) = owners.pop().unwrap();
    assert!(
        a.release(
            &net,
            &[Release {
                ip4: &addr,
                ip6: "",
                owner: &owner
            }]
        )
        .await
        .unwrap()
    );
    let emptied = lab.blocks().await;
    assert!(!emptied[1].spec.empty_since.is_empty());
    // Free one address of the first block: the next allocation takes it there and hands the empty block back.
    let (addr, owner) = owners.remove(5);
    a.release(
        &net,
        &[Release {
            ip4: &addr,
            ip6: "",
            owner: &owner,
        }],
    )
    .await
    .unwrap();
    dynamic(&a, &net, "y").await;
    assert_eq!(lab.blocks().await.len(), 1);

    // Bitmap mode: a network carrying `alloc` keeps DANM's behaviour and gets no blocks.
    let mut spec: NetworkSpec = serde_json::from_value(json!({"Options": {"cidr": "10.7.0.0/24"}})).unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    let bm = Network::new(NetworkKind::DanmNet, Some("default"), "bm", spec);
    let api: kube::Api<Network> =
        kube::Api::namespaced_with(lab.client.clone(), "default", &NetworkKind::DanmNet);
    let bm = api.create(&PostParams::default(), &bm).await.unwrap();
    assert_eq!(dynamic(&a, &bm, "z").await, "10.7.0.1/24");
    assert_ne!(lab.reread(&bm).await.spec.options.alloc, bm.spec.options.alloc);
    assert_eq!(lab.blocks().await.len(), 1);
}

/// The lab, except that the first block list answers as it would have a moment earlier: empty.
struct ListedTooEarly(kube::Client, std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl IpamStore for ListedTooEarly {
    async fn get_network(&self, k: NetworkKind, ns: &str, n: &str) -> Result<Option<Network>, ApiError> {
        self.0.get_network(k, ns, n).await
    }
    async fn replace_network(&self, n: &Network) -> Result<Network, ApiError> {
        self.0.replace_network(n).await
    }
    async fn list_blocks(&self, s: &str) -> Result<Vec<DanmIpBlock>, ApiError> {
        if self.1.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Ok(Vec::new());
        }
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

/// ADDs running at once on one node: one lists the node's blocks before the others' claims land, and then finds
/// every block of the pool held, by this very node. It takes an address from them, not "all addresses reserved".
#[tokio::test]
async fn an_add_that_listed_before_its_nodes_claims_landed_takes_from_them_instead_of_failing() {
    let lab = lab().await;
    // One /26 block, claimed by node-a with room left.
    let net = lab
        .network("late", json!({"Options": {"cidr": "10.3.0.0/26"}}))
        .await;
    let a = Ipam::new(&lab.cni, "node-a", config());
    assert_eq!(dynamic(&a, &net, "ep-1").await, "10.3.0.1/26");
    let stale = ListedTooEarly(lab.cni.clone(), std::sync::atomic::AtomicBool::new(true));
    let late = Ipam::new(&stale, "node-a", config());
    assert_eq!(dynamic(&late, &net, "ep-2").await, "10.3.0.2/26");
    let blocks = lab.blocks().await;
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].spec.owners.len(), 2);
}
