//! `danmctl ipam show --network` and `danmctl ipam migrate` against the lab API server, through the real binary.

use std::process::Command;

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec, Network, NetworkKind, NetworkSpec};
use danm_core::ipam::IpRequest;
use danm_ipam::{Ipam, IpamConfig, Request};
use kube::api::PostParams;
use serde_json::json;

fn danmctl(args: &[&str], kubeconfig: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_danmctl"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .expect("danmctl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn show_and_migrate_work_on_a_cluster_in_both_modes() {
    let (lab, client) = danm_testkit::lab::with_crds().await;
    let mut spec: NetworkSpec =
        serde_json::from_value(json!({"NetworkID": "m", "Options": {"cidr": "10.30.0.0/24"}})).unwrap();
    danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
    let api: kube::Api<Network> =
        kube::Api::namespaced_with(client.clone(), "default", &NetworkKind::DanmNet);
    let net = api
        .create(
            &PostParams::default(),
            &Network::new(NetworkKind::DanmNet, Some("default"), "m", spec),
        )
        .await
        .unwrap();
    let ipam = Ipam::new(&client, "worker-1", IpamConfig::default());
    let req = Request {
        ip4: IpRequest::Dynamic,
        ip6: IpRequest::Absent,
        owner: "ep-1",
    };
    let (got, _) = ipam.reserve(&net, &[req]).await.unwrap();
    let eps: kube::Api<DanmEp> = kube::Api::namespaced(client.clone(), "default");
    let ep = DanmEp::new(
        "default",
        "ep-1",
        DanmEpSpec {
            network_name: "m".into(),
            api_type: "DanmNet".into(),
            host: "worker-1".into(),
            interface: DanmEpInterface {
                address: got[0].ip4.clone(),
                ..DanmEpInterface::default()
            },
            ..DanmEpSpec::default()
        },
    );
    eps.create(&PostParams::default(), &ep).await.unwrap();
    let kc = lab.kubeconfig_path().to_owned();

    let (ok, out) = danmctl(&["ipam", "show", "--network", "m"], &kc);
    assert!(ok, "{out}");
    assert!(
        out.contains("IPAM mode: bitmap") && out.contains("allocated (1): 10.30.0.1"),
        "{out}"
    );

    let (ok, out) = danmctl(&["ipam", "migrate", "m"], &kc);
    assert!(ok, "{out}");
    assert!(out.contains("1 addresses moved into 1 blocks"), "{out}");

    let (ok, out) = danmctl(&["ipam", "show", "--network", "m"], &kc);
    assert!(ok, "{out}");
    assert!(out.contains("IPAM mode: blocks"), "{out}");
    assert!(
        out.contains("10.30.0.0/26") && out.contains("worker-1") && out.contains("used 1/63"),
        "{out}"
    );

    let (ok, out) = danmctl(&["ipam", "migrate", "nosuch"], &kc);
    assert!(!ok);
    assert!(out.contains("DanmNet default/nosuch does not exist"), "{out}");
    lab.shutdown().await;
}
