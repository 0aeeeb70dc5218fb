//! End-to-end in the lab: DANM's svcwatcher demo (docs/demo.md) with svcwatcher running against the lab API
//! server; each service's EndpointSlices and Endpoints are checked through readiness flips, label changes, pod
//! deletion, service deletion, and a leader fail-over between two svcwatcher instances.

mod common;

use std::time::Duration;

use common::*;
use danm_api::DanmEp;
use danm_lab::LabHandle;
use danm_svcwatcher::controller::{Metrics, run};
use danm_svcwatcher::leader::{LeaderElector, LeaseConfig};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::Api;
use kube::api::DeleteParams;

const T: Duration = Duration::from_secs(10);

/// svcwatcher's controller on a client of its own, named `svcwatcher/test` (the lab's audit attributes its calls).
async fn spawn_controller(lab: &LabHandle) -> tokio::task::JoinHandle<()> {
    let client = svcwatcher_client(lab).await;
    tokio::spawn(run(client, Metrics::default(), std::future::pending()))
}

async fn svcwatcher_client(lab: &LabHandle) -> kube::Client {
    lab.client_as("svcwatcher/test").await.expect("lab client")
}

async fn expect_demo(client: &kube::Client) {
    wait_slices(
        client,
        VNF,
        "vnf-internal-processor",
        &ready(&range("10.240.1.", 110, 6)),
        T,
    )
    .await;
    wait_slices(
        client,
        VNF,
        "vnf-internal-lb",
        &ready(&range("10.240.1.", 100, 2)),
        T,
    )
    .await;
    wait_slices(
        client,
        VNF,
        "vnf-external-svc",
        &ready(&range("10.100.20.", 10, 2)),
        T,
    )
    .await;
}

#[tokio::test]
async fn lab_demo_services_hold_exactly_the_right_addresses_through_changes() {
    let (lab, client) = lab().await;
    demo(&client).await;
    // The first EndpointSlice write meets a conflict: the controller reads what is there and recovers.
    lab.inject(danm_lab::Fault::fail_writes("endpointslices", 1, 409));
    let controller = spawn_controller(&lab).await;
    expect_demo(&client).await;

    // Legacy Endpoints: same name, the service's annotations, ports, Pod targetRefs.
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), VNF);
    let e = eps.get("vnf-external-svc").await.unwrap();
    let svc: Api<Service> = Api::namespaced(client.clone(), VNF);
    assert_eq!(
        e.metadata.annotations,
        svc.get("vnf-external-svc").await.unwrap().metadata.annotations
    );
    let subset = &e.subsets.as_ref().unwrap()[0];
    let mut ips: Vec<String> = subset.addresses.iter().flatten().map(|a| a.ip.clone()).collect();
    ips.sort();
    assert_eq!(ips, range("10.100.20.", 10, 2));
    let port = &subset.ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("diameter"), 3868));
    let target = subset.addresses.as_ref().unwrap()[0].target_ref.as_ref().unwrap();
    assert_eq!(target.kind.as_deref(), Some("Pod"));
    // The client namespace's external address is never exposed by a VNF service.
    assert!(
        !slice_addresses(&client, VNF, "vnf-external-svc")
            .await
            .contains_key("10.100.20.50")
    );

    // Readiness flip.
    set_ready(&client, VNF, "internal-processor-0", false).await;
    let mut want = ready(&range("10.240.1.", 110, 6));
    want.insert("10.240.1.110".into(), false);
    wait_slices(&client, VNF, "vnf-internal-processor", &want, T).await;
    let e = eps.get("vnf-internal-processor").await.unwrap();
    let not_ready: Vec<String> = e.subsets.unwrap()[0]
        .not_ready_addresses
        .iter()
        .flatten()
        .map(|a| a.ip.clone())
        .collect();
    assert_eq!(not_ready, vec!["10.240.1.110"]);
    set_ready(&client, VNF, "internal-processor-0", true).await;
    wait_slices(
        &client,
        VNF,
        "vnf-internal-processor",
        &ready(&range("10.240.1.", 110, 6)),
        T,
    )
    .await;

    // Label change: loadbalancer-1 leaves vnf-internal-lb (app) but stays in vnf-external-svc (vnf-type).
    set_labels(
        &client,
        VNF,
        "loadbalancer-1",
        serde_json::json!({"app": "retired"}),
    )
    .await;
    wait_slices(
        &client,
        VNF,
        "vnf-internal-lb",
        &ready(&range("10.240.1.", 100, 1)),
        T,
    )
    .await;
    wait_slices(
        &client,
        VNF,
        "vnf-external-svc",
        &ready(&range("10.100.20.", 10, 2)),
        T,
    )
    .await;
    // ...and its DanmEps get the pod's new labels.
    let danmeps: Api<DanmEp> = Api::namespaced(client.clone(), VNF);
    let start = std::time::Instant::now();
    loop {
        let ep = danmeps.get("loadbalancer-1-int2").await.unwrap();
        if ep
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .map(String::as_str)
            == Some("retired")
        {
            break;
        }
        assert!(
            start.elapsed() < T,
            "DanmEp labels not synced: {:?}",
            ep.metadata.labels
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Pod deletion: the CNI deletes the DanmEps, the API the pod.
    for iface in ["eth0", "int1"] {
        danmeps
            .delete(&format!("internal-processor-5-{iface}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), VNF);
    pods.delete("internal-processor-5", &DeleteParams::default())
        .await
        .unwrap();
    wait_slices(
        &client,
        VNF,
        "vnf-internal-processor",
        &ready(&range("10.240.1.", 110, 5)),
        T,
    )
    .await;

    // A new pod with a dual-stack DanmEp appears in an IPv4 and an IPv6 slice.
    create_pod(
        &client,
        VNF,
        "internal-processor-9",
        &[("app", "internal-processor")],
        true,
    )
    .await;
    create_ep(
        &client,
        VNF,
        "internal-processor-9",
        "internal",
        "int1",
        "10.240.1.119/24",
        "fd00::119/64",
    )
    .await;
    let mut want = ready(&range("10.240.1.", 110, 5));
    want.insert("10.240.1.119".into(), true);
    want.insert("fd00::119".into(), true);
    wait_slices(&client, VNF, "vnf-internal-processor", &want, T).await;

    // Service deletion removes svcwatcher's objects.
    svc.delete("vnf-internal-lb", &DeleteParams::default())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    while !slice_addresses(&client, VNF, "vnf-internal-lb").await.is_empty()
        || eps.get_opt("vnf-internal-lb").await.unwrap().is_some()
    {
        assert!(start.elapsed() < T, "objects of a deleted service remain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    controller.abort();
}

#[tokio::test]
async fn lab_only_annotated_services_are_managed_foreign_endpoints_are_left_alone_and_legacy_ones_adopted() {
    let (lab, client) = lab().await;
    demo(&client).await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), VNF);
    let mut plain = service_obj(VNF, "no-network", r#"{"app":"loadbalancer"}"#, "x", "p", 1);
    plain
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove("danm.k8s.io/network");
    svcs.create(&Default::default(), &plain).await.unwrap();
    // A managed service whose Endpoints someone else made: svcwatcher writes its slices but leaves the Endpoints.
    let foreign = service_obj(VNF, "foreign", r#"{"app":"loadbalancer"}"#, "internal", "p", 1);
    svcs.create(&Default::default(), &foreign).await.unwrap();
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), VNF);
    let theirs = Endpoints {
        metadata: kube::api::ObjectMeta {
            name: Some("foreign".into()),
            labels: Some([("owner".to_owned(), "someone".to_owned())].into()),
            ..Default::default()
        },
        subsets: None,
    };
    eps.create(&Default::default(), &theirs).await.unwrap();
    // An Endpoints DANM's Go svcwatcher wrote (no label, the service's annotations copied) is taken over.
    let legacy_svc = service_obj(VNF, "legacy", r#"{"app":"loadbalancer"}"#, "external", "p", 1);
    svcs.create(&Default::default(), &legacy_svc).await.unwrap();
    let legacy = Endpoints {
        metadata: kube::api::ObjectMeta {
            name: Some("legacy".into()),
            annotations: legacy_svc.metadata.annotations.clone(),
            ..Default::default()
        },
        subsets: None,
    };
    eps.create(&Default::default(), &legacy).await.unwrap();
    let controller = spawn_controller(&lab).await;
    expect_demo(&client).await;
    wait_slices(&client, VNF, "foreign", &ready(&range("10.240.1.", 100, 2)), T).await;
    assert!(slice_addresses(&client, VNF, "no-network").await.is_empty());
    assert!(eps.get_opt("no-network").await.unwrap().is_none());
    let after = eps.get("foreign").await.unwrap();
    assert_eq!(after.subsets, None);
    assert_eq!(after.metadata.labels, theirs.metadata.labels);
    let start = std::time::Instant::now();
    loop {
        let e = eps.get("legacy").await.unwrap();
        let ips: Vec<String> = e
            .subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
            .collect();
        if ips.len() == 2 {
            assert_eq!(
                e.metadata
                    .labels
                    .unwrap()
                    .get(danm_svcwatcher::desired::ENDPOINTS_MANAGED_BY_LABEL)
                    .map(String::as_str),
                Some(danm_svcwatcher::desired::MANAGER)
            );
            break;
        }
        assert!(start.elapsed() < T, "legacy Endpoints not taken over: {e:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    controller.abort();
}

fn elector(client: &kube::Client, id: &str) -> LeaderElector {
    let mut cfg = LeaseConfig::new("kube-system", "danm-svc-controller", id);
    cfg.lease_duration = Duration::from_millis(1500);
    cfg.renew_deadline = Duration::from_millis(1000);
    cfg.retry_period = Duration::from_millis(200);
    LeaderElector::new(client.clone(), cfg)
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    leases
        .get_opt("danm-svc-controller")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn lab_a_second_svcwatcher_takes_over_when_the_leader_dies() {
    let (lab, client) = lab().await;
    demo(&client).await;
    let a = {
        let client = svcwatcher_client(&lab).await;
        tokio::spawn(async move {
            elector(&client, "a")
                .run(run(client.clone(), Metrics::default(), std::future::pending()))
                .await
        })
    };
    expect_demo(&client).await;
    assert_eq!(holder(&client).await.as_deref(), Some("a"));
    let b = {
        let client = svcwatcher_client(&lab).await;
        tokio::spawn(async move {
            elector(&client, "b")
                .run(run(client.clone(), Metrics::default(), std::future::pending()))
                .await
        })
    };
    // b stays a candidate while a renews.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(holder(&client).await.as_deref(), Some("a"));

    // a crashes without releasing the lease; a change made meanwhile is picked up once b leads.
    a.abort();
    set_ready(&client, VNF, "loadbalancer-0", false).await;
    let mut want = ready(&range("10.100.20.", 10, 2));
    want.insert("10.100.20.10".into(), false);
    wait_slices(&client, VNF, "vnf-external-svc", &want, Duration::from_secs(15)).await;
    assert_eq!(holder(&client).await.as_deref(), Some("b"));
    b.abort();
}

#[tokio::test]
async fn lab_a_released_lease_is_taken_at_once() {
    let (lab, client) = lab().await;
    let svc = svcwatcher_client(&lab).await;
    let a = elector(&svc, "a");
    assert!(a.try_acquire_or_renew().await.unwrap());
    let b = elector(&svc, "b");
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.try_acquire_or_renew().await.unwrap(), "the holder renews");
    a.release().await.unwrap();
    assert!(b.try_acquire_or_renew().await.unwrap());
    assert_eq!(holder(&client).await.as_deref(), Some("b"));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let spec = leases.get("danm-svc-controller").await.unwrap().spec.unwrap();
    assert_eq!(spec.lease_transitions, Some(1));
}
