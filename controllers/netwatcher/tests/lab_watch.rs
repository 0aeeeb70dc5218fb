//! netwatcher's API side against the lab server, with the recording netlink fake as the host: start-up without
//! any CRD, networks and a NAD driving host links, the NAD master rewrite without B15, and deletes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use danm_api::{NadSpec, Network, NetworkAttachmentDefinition, NetworkKind, NetworkSpec, ObjectMeta};
use danm_controller_kit::Readiness;
use danm_lab::{LabOptions, LabServer};
use danm_netlink::{FakeNetlink, LinkKind, Netlink, Netns};
use danm_netwatcher::source::ORIGINAL_MASTER_ANNOTATION;
use danm_netwatcher::watch::{LoopTiming, NO_APIS_MESSAGE, WatchError, installed_kinds, run, start_caches};
use danm_netwatcher::{LinkReconciler, Metrics};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

async fn install_crds(client: &Client) {
    danm_testkit::lab::install_crds(client).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some("lab".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let _ = nss.create(&PostParams::default(), &ns).await;
}

async fn links(fake: &FakeNetlink) -> BTreeMap<String, LinkKind> {
    fake.links(&Netns::Host)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| matches!(l.kind, LinkKind::Vlan { .. } | LinkKind::Vxlan(_)))
        .map(|l| (l.name, l.kind))
        .collect()
}

async fn wait_links(fake: &FakeNetlink, want: &[&str]) {
    let start = Instant::now();
    loop {
        let have = links(fake).await;
        if have.keys().map(String::as_str).collect::<Vec<_>>() == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "links {have:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn lab_netwatcher_refuses_to_start_without_any_network_api() {
    let lab = LabServer::start(LabOptions::default()).await.unwrap();
    let client = lab.client().await.unwrap();
    let err = installed_kinds(&client, 2, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(matches!(err, WatchError::NoApis));
    assert_eq!(err.to_string(), NO_APIS_MESSAGE);
}

#[tokio::test]
async fn lab_networks_and_nads_drive_host_links_and_the_nad_rewrite_keeps_its_link() {
    let lab = LabServer::start(LabOptions::default()).await.unwrap();
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    // netwatcher's own calls go through a client named as it is, so the lab's audit attributes them (`make rbac`).
    let nw = lab.client_as("netwatcher/test").await.unwrap();
    let kinds = installed_kinds(&nw, 5, Duration::from_millis(100)).await.unwrap();
    assert_eq!(kinds.len(), 4);

    let fake = FakeNetlink::new();
    fake.add_device(&Netns::Host, "ens4", 1500);
    fake.add_device(&Netns::Host, "tenant-bond", 1500);
    let metrics = Metrics::default();
    let reconciler = Arc::new(LinkReconciler::new(
        Arc::new(fake.clone()),
        Netns::Host,
        metrics.clone(),
    ));
    let (caches, changed) = start_caches(&nw, &kinds);
    let timing = LoopTiming {
        resync: Duration::from_millis(300),
        debounce: Duration::from_millis(10),
    };
    let ready = Readiness::default();
    let task = tokio::spawn(run(
        nw.clone(),
        caches,
        changed,
        reconciler,
        metrics.clone(),
        timing,
        ready.clone(),
    ));

    let nets: Api<Network> = Api::namespaced_with(client.clone(), "lab", &NetworkKind::DanmNet);
    let mut spec = NetworkSpec {
        network_id: "ext".into(),
        ..Default::default()
    };
    spec.options.host_device = "ens4".into();
    spec.options.vlan = 700;
    nets.create(
        &PostParams::default(),
        &Network::new(NetworkKind::DanmNet, Some("lab"), "ext", spec),
    )
    .await
    .unwrap();
    let nads: Api<NetworkAttachmentDefinition> = Api::namespaced(client.clone(), "lab");
    let nad = NetworkAttachmentDefinition {
        api_version: "k8s.cni.cncf.io/v1".into(),
        kind: "NetworkAttachmentDefinition".into(),
        metadata: ObjectMeta {
            name: Some("vlantest".into()),
            namespace: Some("lab".into()),
            ..Default::default()
        },
        spec: NadSpec {
            config: r#"{"cniVersion":"0.3.1","name":"vlantest","type":"macvlan","master":"tenant-bond","vlan":500}"#
                .into(),
        },
    };
    nads.create(&PostParams::default(), &nad).await.unwrap();
    wait_links(&fake, &["ext.700", "vlantest.500"]).await;
    assert!(ready.is_ready());

    // The NAD's master now names the VLAN link; the NIC is remembered; the link survives the rewrite's own
    // update event and the following resyncs (B15).
    let start = Instant::now();
    let stored = loop {
        let stored = nads.get("vlantest").await.unwrap();
        if stored.spec.config.contains(r#""master":"vlantest.500""#) {
            break stored;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "master not rewritten: {}",
            stored.spec.config
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        stored
            .metadata
            .annotations
            .unwrap()
            .get(ORIGINAL_MASTER_ANNOTATION)
            .map(String::as_str),
        Some("tenant-bond")
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let vlan = fake.link(&Netns::Host, "vlantest.500").await.unwrap();
    assert_eq!(
        vlan.parent_index,
        Some(fake.link(&Netns::Host, "tenant-bond").await.unwrap().index)
    );
    assert_eq!(metrics.links_deleted.get(), 0);

    // vlan 700 -> 701 replaces the link; deleting objects removes their links.
    let mut net = nets.get("ext").await.unwrap();
    net.spec.options.vlan = 701;
    nets.replace("ext", &PostParams::default(), &net).await.unwrap();
    wait_links(&fake, &["ext.701", "vlantest.500"]).await;
    nets.delete("ext", &DeleteParams::default()).await.unwrap();
    nads.delete("vlantest", &DeleteParams::default()).await.unwrap();
    wait_links(&fake, &[]).await;
    task.abort();
}
