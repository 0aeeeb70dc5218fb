//! End to end through the lab API server: the webhook serves HTTPS on loopback, the lab calls it for CREATE, UPDATE
//! and DELETE as registered by the real `deploy/webhook/webhook.yaml`, and the webhook reads and writes the lab's
//! TenantConfigs and DanmEps through a kube client.

mod common;

use std::sync::Arc;
use std::time::Duration;

use danm_api::{DanmEp, Network, NetworkKind, TenantConfig};
use danm_controller_kit::{CertFiles, MetricsRegistry, Readiness, ReloadingCert};
use danm_webhook::Webhook;
use danm_webhook::cluster::KubeCluster;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};

fn denial(e: kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message,
        other => panic!("expected an API denial, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_api_server_admits_networks_and_tenantconfigs_through_the_webhook() {
    let (lab, client) = danm_testkit::lab::with_crds().await;

    // The webhook over TLS on loopback, backed by the lab.
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec![
        "danm-webhook-svc.kube-system.svc".into(),
        "127.0.0.1".into(),
    ])
    .unwrap();
    let files = CertFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    std::fs::write(&files.cert, ck.cert.pem()).unwrap();
    std::fs::write(&files.key, ck.key_pair.serialize_pem()).unwrap();
    let tls = ReloadingCert::new(files).unwrap().server_config().unwrap();
    // The webhook's own client names itself, so the lab's audit attributes its calls to it (`make rbac`).
    let own = lab.client_as("danm-webhook/test").await.unwrap();
    let webhook = Webhook::new(Arc::new(KubeCluster::new(own)), common::validator()).with_seed(1);
    let router = danm_webhook::server::router(
        Arc::new(webhook),
        Readiness::default(),
        MetricsRegistry::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(danm_controller_kit::serve_tls(
        listener,
        router,
        tls,
        Duration::from_secs(5),
        async move {
            let _ = stop_rx.changed().await;
        },
    ));

    // Register it exactly as deployed.
    lab.map_webhook_service("kube-system/danm-webhook-svc", &format!("https://{addr}"));
    lab.set_webhook_insecure(true);
    let manifest =
        std::fs::read_to_string(danm_testkit::fixtures::workspace_dir().join("deploy/webhook/webhook.yaml"))
            .unwrap();
    for doc in serde_yaml::Deserializer::from_str(&manifest) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        match v["kind"].as_str() {
            Some("MutatingWebhookConfiguration") => {
                let c: MutatingWebhookConfiguration = serde_json::from_value(v).unwrap();
                Api::all(client.clone())
                    .create(&PostParams::default(), &c)
                    .await
                    .unwrap();
            }
            Some("ValidatingWebhookConfiguration") => {
                let c: ValidatingWebhookConfiguration = serde_json::from_value(v).unwrap();
                Api::all(client.clone())
                    .create(&PostParams::default(), &c)
                    .await
                    .unwrap();
            }
            other => panic!("unexpected {other:?} in webhook.yaml"),
        }
    }

    let pp = PostParams::default();
    let tcs: Api<TenantConfig> = Api::all(client.clone());
    let dnets: Api<Network> = Api::namespaced_with(client.clone(), "default", &NetworkKind::DanmNet);
    let tnets: Api<Network> = Api::namespaced_with(client.clone(), "default", &NetworkKind::TenantNetwork);
    let eps: Api<DanmEp> = Api::namespaced(client.clone(), "default");

    // /confvalidation: a fresh VNI map is added on CREATE; a bad range is refused.
    let tc: TenantConfig = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig",
        "metadata": {"name": "tconf"}, "hostDevices": [{"name": "ens4", "vniType": "vlan", "vniRange": "700-710"}],
        "networkIds": {"flannel": "flannel"}}))
    .unwrap();
    let stored = tcs.create(&pp, &tc).await.unwrap();
    assert_eq!(stored.host_devices[0].alloc.len(), 836);
    let mut bad = tc.clone();
    bad.metadata.name = Some("bad".into());
    bad.host_devices[0].vni_range = "700-71a0".into();
    assert!(denial(tcs.create(&pp, &bad).await.unwrap_err()).contains("71a0"));

    // /netvalidation CREATE: defaults patched in; every violation listed on a denial.
    let dn: Network = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
        "metadata": {"name": "internal", "namespace": "default"},
        "spec": {"NetworkID": "internal", "Options": {"host_device": "ens4", "cidr": "10.0.0.0/24", "vlan": 50}}}))
    .unwrap();
    let dn = dnets.create(&pp, &dn).await.unwrap();
    assert_eq!(dn.spec.network_type, "ipvlan");
    assert_eq!(dn.spec.options.allocation_pool.start, "10.0.0.1");
    assert!(!dn.spec.options.alloc.is_empty());
    let broken: Network = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
        "metadata": {"name": "broken", "namespace": "default"},
        "spec": {"Options": {"cidr": "10.0.0.0/7", "routes": {"1.0.0.0/8": "9.9.9.9"}}}}))
    .unwrap();
    let msg = denial(dnets.create(&pp, &broken).await.unwrap_err());
    assert!(msg.contains("[V10]") && msg.contains("[V20]"), "{msg}");

    // TenantNetwork CREATE: profile and VNI from the TenantConfig, written back to the lab.
    let tn: Network = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantNetwork",
        "metadata": {"name": "tn1", "namespace": "default"}, "spec": {"NetworkID": "tn1", "Options": {}}}))
    .unwrap();
    let tn1 = tnets.create(&pp, &tn).await.unwrap();
    assert_eq!(tn1.spec.options.host_device, "ens4");
    assert_eq!(tn1.spec.options.vlan, 700);
    let mut tn2 = tn.clone();
    tn2.metadata.name = Some("tn2".into());
    assert_eq!(tnets.create(&pp, &tn2).await.unwrap().spec.options.vlan, 701);

    // A pod on the DanmNet: UPDATE of its vlan and DELETE are refused, naming the pod.
    let ep: DanmEp = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
        "metadata": {"name": "ep1", "namespace": "default"},
        "spec": {"NetworkName": "internal", "Pod": "web-0", "apiType": "DanmNet", "Interface": {"Name": "eth0"}}}))
    .unwrap();
    eps.create(&pp, &ep).await.unwrap();
    let mut moved = dnets.get("internal").await.unwrap();
    moved.spec.options.vlan = 51;
    let msg = denial(dnets.replace("internal", &pp, &moved).await.unwrap_err());
    assert!(msg.contains("Pod:web-0 in namespace:default"), "{msg}");
    let msg = denial(
        dnets
            .delete("internal", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains("Network cannot be deleted because there are Pods still connected"),
        "{msg}"
    );
    eps.delete("ep1", &DeleteParams::default()).await.unwrap();
    dnets.delete("internal", &DeleteParams::default()).await.unwrap();

    // Deleting a TenantNetwork frees its VNI; the next one reuses it.
    tnets.delete("tn1", &DeleteParams::default()).await.unwrap();
    let mut tn3 = tn.clone();
    tn3.metadata.name = Some("tn3".into());
    assert_eq!(tnets.create(&pp, &tn3).await.unwrap().spec.options.vlan, 700);

    // A lost race for the TenantConfig (HTTP 409 on its write): the webhook reads it again and takes the next VNI.
    lab.inject(danm_lab::Fault::fail_writes("tenantconfigs", 1, 409));
    let mut tn4 = tn.clone();
    tn4.metadata.name = Some("tn4".into());
    assert_eq!(tnets.create(&pp, &tn4).await.unwrap().spec.options.vlan, 702);
    lab.clear_faults();

    // Blocks mode: a network's ranges may change only while its allocated addresses stay inside them.
    let pooled: Network = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet",
        "metadata": {"name": "pooled", "namespace": "default", "annotations": {"danm.k8s.io/ipam-mode": "blocks"}},
        "spec": {"NetworkID": "pooled", "NetworkType": "ipvlan", "Options": {"host_device": "ens4", "cidr": "10.30.0.0/24"}}}))
    .unwrap();
    dnets.create(&pp, &pooled).await.unwrap();
    let id = danm_core::ipam::blocks::NetworkId::new(NetworkKind::DanmNet, "default", "pooled");
    let mut block = json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmIpBlock", "metadata": {"name": "pooled-block"},
        "spec": {"network": id.to_string(), "cidr": "10.30.0.0/26", "node": "node-a", "owners": {"5": "ep-5"}}});
    block["metadata"]["labels"] = json!({ danm_api::labels::NETWORK_ID: id.label() });
    let block: danm_api::DanmIpBlock = serde_json::from_value(block).unwrap();
    Api::<danm_api::DanmIpBlock>::all(client.clone())
        .create(&pp, &block)
        .await
        .unwrap();
    let mut moved = dnets.get("pooled").await.unwrap();
    moved.spec.options.cidr = "10.31.0.0/24".into();
    let msg = denial(dnets.replace("pooled", &pp, &moved).await.unwrap_err());
    assert!(
        msg.contains("cannot change the address ranges") && msg.contains("10.30.0.5"),
        "{msg}"
    );

    // NPWG: a NAD an attachment's DanmEp names, and an IPAMClaim whose address a DanmEp holds, cannot be deleted.
    let nads: Api<danm_api::NetworkAttachmentDefinition> = Api::namespaced(client.clone(), "default");
    let nad: danm_api::NetworkAttachmentDefinition = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan-conf", "namespace": "default"},
        "spec": {"config": "{\"cniVersion\":\"1.0.0\",\"type\":\"macvlan\",\"master\":\"ens4\"}"}}))
    .unwrap();
    nads.create(&pp, &nad).await.unwrap();
    let claims: Api<danm_api::IpamClaim> = Api::namespaced(client.clone(), "default");
    let claim: danm_api::IpamClaim = serde_json::from_value(json!({
        "apiVersion": "k8s.cni.cncf.io/v1alpha1", "kind": "IPAMClaim",
        "metadata": {"name": "db-0", "namespace": "default"},
        "spec": {"network": "macvlan-conf", "interface": "net1"}}))
    .unwrap();
    claims.create(&pp, &claim).await.unwrap();
    // A pod in another namespace uses the NAD by `default/macvlan-conf`; the claim is in the NAD's namespace.
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap();
    Api::all(client.clone()).create(&pp, &ns).await.unwrap();
    let other: Api<DanmEp> = Api::namespaced(client.clone(), "other");
    let attached: DanmEp = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
        "metadata": {"name": "ep-npwg", "namespace": "other"},
        "spec": {"NetworkName": "default/macvlan-conf", "Pod": "db-x", "apiType": "NetworkAttachmentDefinition",
                 "Interface": {"Name": "net1"}}}))
    .unwrap();
    other.create(&pp, &attached).await.unwrap();
    let claimed: DanmEp = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
        "metadata": {"name": "ep-claim", "namespace": "default", "annotations": {"danm.k8s.io/ipam-claim": "db-0"}},
        "spec": {"NetworkName": "default/macvlan-conf", "Pod": "db-0", "apiType": "NetworkAttachmentDefinition",
                 "Interface": {"Name": "net1", "Address": "10.9.0.5/24"}}}))
    .unwrap();
    eps.create(&pp, &claimed).await.unwrap();
    let msg = denial(
        nads.delete("macvlan-conf", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains("NetworkAttachmentDefinition default/macvlan-conf cannot be deleted")
            && msg.contains("Pod:db-"),
        "{msg}"
    );
    let msg = denial(claims.delete("db-0", &DeleteParams::default()).await.unwrap_err());
    assert!(
        msg.contains("IPAMClaim default/db-0 cannot be deleted") && msg.contains("Pod:db-0"),
        "{msg}"
    );
    eps.delete("ep-claim", &DeleteParams::default()).await.unwrap();
    claims.delete("db-0", &DeleteParams::default()).await.unwrap();
    let msg = denial(
        nads.delete("macvlan-conf", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("Pod:db-x in namespace:other"), "{msg}");
    other.delete("ep-npwg", &DeleteParams::default()).await.unwrap();
    nads.delete("macvlan-conf", &DeleteParams::default())
        .await
        .unwrap();

    let _ = stop_tx.send(true);
}
