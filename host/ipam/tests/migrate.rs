//! Online migration from the bitmap mode to the block mode against the lab API server: a network with 1 000
//! allocations, interrupted in the middle and re-run; and a network whose bitmap and DanmEps disagree, refused.

use std::collections::BTreeSet;

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::IpRequest;
use danm_ipam::migrate::{MigrateError, migrate};
use danm_ipam::{Ipam, IpamConfig, IpamStore, Request};
use danm_lab::LabHandle;
use kube::api::{ListParams, PostParams};
use serde_json::json;

async fn lab() -> (LabHandle, kube::Client) {
    let (handle, client) = danm_testkit::lab::with_crds().await;
    (handle, client)
}

/// A bitmap network (as DANM's webhook leaves it) with `n` dual-stack allocations, each with its DanmEp on one of
/// three nodes; returns the network and the addresses.
async fn populated(client: &kube::Client, name: &str, n: usize) -> (Network, Vec<(String, String)>) {
    let mut spec: NetworkSpec = serde_json::from_value(json!({
        "NetworkID": name, "NetworkType": "macvlan",
        "Options": {"host_device": "eth1", "cidr": "10.20.0.0/22", "net6": "2001:db8:20::/64"}
    }))
    .unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    let net = Network::new(NetworkKind::DanmNet, Some("default"), name, spec);
    let api: kube::Api<Network> =
        kube::Api::namespaced_with(client.clone(), "default", &NetworkKind::DanmNet);
    let net = api.create(&PostParams::default(), &net).await.unwrap();
    let owners: Vec<String> = (0..n).map(|i| format!("{name}-ep-{i}")).collect();
    let requests: Vec<Request<'_>> = owners
        .iter()
        .map(|o| Request {
            ip4: IpRequest::Dynamic,
            ip6: IpRequest::Dynamic,
            owner: o,
        })
        .collect();
    let ipam = Ipam::new(client, "node-0", IpamConfig::default());
    let (reserved, net) = ipam.reserve(&net, &requests).await.unwrap();
    let eps: kube::Api<DanmEp> = kube::Api::namespaced(client.clone(), "default");
    for (i, (r, owner)) in reserved.iter().zip(&owners).enumerate() {
        let ep = DanmEp::new(
            "default",
            owner,
            DanmEpSpec {
                network_name: name.to_owned(),
                api_type: "DanmNet".into(),
                host: format!("node-{}", i % 3),
                interface: DanmEpInterface {
                    name: "eth1".into(),
                    address: r.ip4.clone(),
                    address_ipv6: r.ip6.clone(),
                    ..DanmEpInterface::default()
                },
                ..DanmEpSpec::default()
            },
        );
        eps.create(&PostParams::default(), &ep).await.unwrap();
    }
    let addrs = reserved.into_iter().map(|r| (r.ip4, r.ip6)).collect();
    (net, addrs)
}

async fn all_eps(client: &kube::Client) -> Result<Vec<DanmEp>, danm_ipam::ApiError> {
    let api: kube::Api<DanmEp> = kube::Api::all(client.clone());
    Ok(api.list(&ListParams::default()).await.unwrap().items)
}

#[tokio::test]
async fn a_network_with_a_thousand_allocations_migrates_after_an_interruption() {
    let (_h, client) = lab().await;
    let (_, addrs) = populated(&client, "big", 1000).await;
    let cfg = IpamConfig::default();
    let list = async || all_eps(&client).await;

    // Interrupted after 10 block writes: the network is still in bitmap mode.
    let partial = migrate(
        &client,
        &cfg,
        NetworkKind::DanmNet,
        "default",
        "big",
        list,
        Some(10),
    )
    .await
    .unwrap();
    assert_eq!(partial.blocks_written, 10);
    let net = client
        .get_network(NetworkKind::DanmNet, "default", "big")
        .await
        .unwrap()
        .unwrap();
    assert!(!net.spec.options.alloc.is_empty(), "still bitmap");
    assert_eq!(client.list_blocks("").await.unwrap().len(), 10);

    // The re-run completes.
    let done = migrate(&client, &cfg, NetworkKind::DanmNet, "default", "big", list, None)
        .await
        .unwrap();
    assert_eq!(done.addresses, 2000);
    let net = client
        .get_network(NetworkKind::DanmNet, "default", "big")
        .await
        .unwrap()
        .unwrap();
    assert!(net.spec.options.alloc.is_empty() && net.spec.options.alloc6.is_empty());
    assert_eq!(
        net.metadata.annotations.as_ref().unwrap()[danm_api::annotations::IPAM_MODE],
        "blocks"
    );
    let blocks = client.list_blocks("").await.unwrap();
    let owned: usize = blocks.iter().map(|b| b.spec.owners.len()).sum();
    assert_eq!(owned, 2000, "every address has its DanmEp as owner, once");
    // 1000 IPv4 addresses from .1 fill 16 /26 blocks; 1000 IPv6 from ::1 fill 16 /122 blocks.
    assert_eq!(blocks.len(), 32);
    let first = blocks.iter().find(|b| b.spec.cidr == "10.20.0.0/26").unwrap();
    assert_eq!(first.spec.owners[&1], "big-ep-0");
    assert_eq!(first.spec.node, "node-0");

    // Allocation goes on in blocks mode, without handing out a migrated address again.
    let ipam = Ipam::new(&client, "node-9", cfg);
    let req = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Dynamic,
        owner: "new-ep",
    };
    let (got, _) = ipam.reserve(&net, &[req]).await.unwrap();
    let old4: BTreeSet<&String> = addrs.iter().map(|(a, _)| a).collect();
    let old6: BTreeSet<&String> = addrs.iter().map(|(_, a)| a).collect();
    assert!(
        !old4.contains(&got[0].ip4) && !old6.contains(&got[0].ip6),
        "{got:?}"
    );

    // A third run has nothing to do.
    let again = migrate(&client, &cfg, NetworkKind::DanmNet, "default", "big", list, None)
        .await
        .unwrap();
    assert!(again.already_blocks);
}

#[tokio::test]
async fn a_network_whose_bitmap_and_danmeps_disagree_is_refused_with_a_report() {
    let (_h, client) = lab().await;
    let (net, _) = populated(&client, "odd", 5).await;
    // An address allocated without a DanmEp.
    let ipam = Ipam::new(&client, "node-0", IpamConfig::default());
    let stray = Request {
        ip4: IpRequest::Static("10.20.1.7".parse().unwrap()),
        ip6: IpRequest::Absent,
        owner: "nobody",
    };
    ipam.reserve(&net, &[stray]).await.unwrap();
    // And a DanmEp whose address the bitmap does not hold.
    let eps: kube::Api<DanmEp> = kube::Api::namespaced(client.clone(), "default");
    let ghost = DanmEp::new(
        "default",
        "ghost",
        DanmEpSpec {
            network_name: "odd".into(),
            api_type: "DanmNet".into(),
            interface: DanmEpInterface {
                address: "10.20.2.9/22".into(),
                ..DanmEpInterface::default()
            },
            ..DanmEpSpec::default()
        },
    );
    eps.create(&PostParams::default(), &ghost).await.unwrap();
    let list = async || all_eps(&client).await;
    let err = migrate(
        &client,
        &IpamConfig::default(),
        NetworkKind::DanmNet,
        "default",
        "odd",
        list,
        None,
    )
    .await
    .unwrap_err();
    match &err {
        MigrateError::Disagree {
            without_ep,
            without_bit,
            ..
        } => {
            assert_eq!(without_ep, &["10.20.1.7"]);
            assert_eq!(without_bit, &["10.20.2.9 (ghost)"]);
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("nothing was migrated"), "{err}");
    assert!(client.list_blocks("").await.unwrap().is_empty());
    let net = client
        .get_network(NetworkKind::DanmNet, "default", "odd")
        .await
        .unwrap()
        .unwrap();
    assert!(!net.spec.options.alloc.is_empty());
}
