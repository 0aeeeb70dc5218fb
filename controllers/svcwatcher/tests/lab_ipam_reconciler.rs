//! The svcwatcher binary's leader runs the IPAM reconciler: a pod deleted without a DEL gets its DanmEp deleted and
//! its block address released after the grace period, and /metrics shows what it did and the pools' use.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use danm_api::{Network, NetworkKind, NetworkSpec};
use danm_core::ipam::IpRequest;
use danm_ipam::{Ipam, IpamConfig, IpamStore, Request};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn metrics(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_the_leader_releases_what_a_pod_deleted_without_del_held() {
    let (lab, client) = common::lab().await;
    let mut spec: NetworkSpec =
        serde_json::from_value(json!({"NetworkID": "rn", "Options": {"cidr": "10.60.0.0/24"}})).unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    spec.options.alloc.clear();
    let mut net = Network::new(NetworkKind::DanmNet, Some(common::VNF), "rn", spec);
    net.metadata.annotations = Some(BTreeMap::from([(
        danm_api::annotations::IPAM_MODE.to_owned(),
        "blocks".to_owned(),
    )]));
    let nets: Api<Network> = Api::namespaced_with(client.clone(), common::VNF, &NetworkKind::DanmNet);
    let net = nets.create(&PostParams::default(), &net).await.unwrap();
    common::create_pod(&client, common::VNF, "doomed", &[], true).await;
    let ipam = Ipam::new(&client, "node1", IpamConfig::default());
    let req = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Absent,
        owner: "doomed-eth0",
    };
    let (got, _) = ipam.reserve(&net, &[req]).await.unwrap();
    let ep = common::create_ep(&client, common::VNF, "doomed", "rn", "eth0", &got[0].ip4, "").await;
    assert_eq!(ep, "doomed-eth0");
    // The pod goes while its node is down: no DEL.
    let pods: Api<Pod> = Api::namespaced(client.clone(), common::VNF);
    pods.delete("doomed", &DeleteParams::default()).await.unwrap();

    let port = 19000 + (std::process::id() % 1000) as u16;
    let _svc = Killed(
        Command::new(env!("CARGO_BIN_EXE_svcwatcher"))
            .args(["--kubeconfig"])
            .arg(lab.kubeconfig_path())
            .args([
                "--identity",
                "t1",
                "--ipam-grace-seconds",
                "1",
                "--ipam-scan-seconds",
                "1",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("svcwatcher starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let owners: usize = client
            .list_blocks("")
            .await
            .unwrap()
            .iter()
            .map(|b| b.spec.owners.len())
            .sum();
        let eps: Api<danm_api::DanmEp> = Api::namespaced(client.clone(), common::VNF);
        let left = eps.get_opt("doomed-eth0").await.unwrap().is_some();
        if owners == 0 && !left {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reconciler did not release within 30 s (owners {owners}, DanmEp left {left})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(port).await;
        if text.contains("danm_svcwatcher_ipam_danmeps_deleted_total 1")
            && text.contains("danm_svcwatcher_ipam_addresses_released_total 1")
            && text.contains(r#"danm_svcwatcher_ipam_pool_size_addresses{network="DanmNet example-vnf/rn",family="IPv4",mode="blocks"} 254"#)
        {
            break;
        }
        assert!(Instant::now() < deadline, "metrics: {text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lab.shutdown().await;
}
