//! DANM's svcwatcher demo (docs/demo.md) as API objects in the lab: namespaces, networks, pods with
//! their DanmEps (written directly, as the CNI would), and the three services.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec, Network, NetworkKind, NetworkSpec};
use danm_lab::LabHandle;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

pub const VNF: &str = "example-vnf";
pub const CLIENT_NS: &str = "external-client";

pub async fn lab() -> (LabHandle, Client) {
    let (lab, client) = danm_testkit::lab::with_crds().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in [VNF, CLIENT_NS, "kube-system"] {
        let obj = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                labels: Some(BTreeMap::from([("name".to_owned(), ns.to_owned())])),
                ..Default::default()
            },
            ..Default::default()
        };
        let _ = nss.create(&PostParams::default(), &obj).await;
    }
    (lab, client)
}

#[allow(clippy::too_many_arguments)]
fn network(
    ns: &str,
    name: &str,
    nid: &str,
    ntype: &str,
    dev: &str,
    vlan: u32,
    vxlan: u32,
    cidr: &str,
) -> Network {
    let mut spec = NetworkSpec {
        network_id: nid.into(),
        network_type: ntype.into(),
        ..Default::default()
    };
    spec.options.host_device = dev.into();
    spec.options.vlan = vlan;
    spec.options.vxlan = vxlan;
    spec.options.cidr = cidr.into();
    Network::new(NetworkKind::DanmNet, Some(ns), name, spec)
}

pub async fn create_pod(client: &Client, ns: &str, name: &str, labels: &[(&str, &str)], ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node1".into()),
            hostname: Some(name.into()),
            containers: vec![k8s_openapi::api::core::v1::Container {
                name: "main".into(),
                image: Some("busybox".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    set_ready(client, ns, name, ready).await;
}

pub async fn set_ready(client: &Client, ns: &str, name: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": status}, {"type": "ContainersReady", "status": status}
    ]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("pod status patched");
}

pub async fn set_labels(client: &Client, ns: &str, name: &str, labels: serde_json::Value) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": labels}})),
    )
    .await
    .expect("pod labels patched");
}

/// A DanmEp as the CNI writes it: labels = pod labels, the pod's name and UID.
pub async fn create_ep(
    client: &Client,
    ns: &str,
    pod: &str,
    network: &str,
    iface: &str,
    v4: &str,
    v6: &str,
) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let p = pods.get(pod).await.expect("pod exists");
    let name = format!("{pod}-{iface}");
    let mut ep = DanmEp::new(
        ns,
        &name,
        DanmEpSpec {
            network_name: network.into(),
            network_type: "ipvlan".into(),
            endpoint_id: name.clone(),
            interface: DanmEpInterface {
                name: iface.into(),
                address: v4.into(),
                address_ipv6: v6.into(),
                ..Default::default()
            },
            host: "node1".into(),
            pod: pod.into(),
            pod_uid: p.metadata.uid.clone().unwrap_or_default(),
            api_type: "DanmNet".into(),
            ..Default::default()
        },
    );
    ep.metadata.labels = p.metadata.labels.clone();
    let eps: Api<DanmEp> = Api::namespaced(client.clone(), ns);
    eps.create(&PostParams::default(), &ep)
        .await
        .expect("danmep created");
    name
}

pub fn service_obj(
    ns: &str,
    name: &str,
    selector: &str,
    network: &str,
    port_name: &str,
    port: i32,
) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: Some(BTreeMap::from([
                ("danm.k8s.io/selector".to_owned(), selector.to_owned()),
                ("danm.k8s.io/network".to_owned(), network.to_owned()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            ports: Some(vec![ServicePort {
                name: Some(port_name.into()),
                port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Loadbalancer i: external 10.100.20.(10+i), internal 10.240.1.(100+i); processor i: internal 10.240.1.(110+i);
/// every VNF pod also has a management (flannel) address 10.244.0.(10+n).
pub async fn demo(client: &Client) {
    let nets: Api<Network> = Api::namespaced_with(client.clone(), VNF, &NetworkKind::DanmNet);
    for n in [
        network(
            VNF,
            "external",
            "external",
            "ipvlan",
            "ens4",
            300,
            0,
            "10.100.20.0/24",
        ),
        network(
            VNF,
            "internal",
            "internal",
            "ipvlan",
            "ens3",
            0,
            600,
            "10.240.1.0/24",
        ),
        network(VNF, "management", "flannel", "flannel", "", 0, 0, ""),
    ] {
        nets.create(&PostParams::default(), &n)
            .await
            .expect("network created");
    }
    let client_nets: Api<Network> = Api::namespaced_with(client.clone(), CLIENT_NS, &NetworkKind::DanmNet);
    client_nets
        .create(
            &PostParams::default(),
            &network(
                CLIENT_NS,
                "external",
                "external",
                "ipvlan",
                "ens4",
                300,
                0,
                "10.100.20.0/24",
            ),
        )
        .await
        .expect("network created");

    for i in 0..2 {
        let pod = format!("loadbalancer-{i}");
        create_pod(
            client,
            VNF,
            &pod,
            &[("app", "loadbalancer"), ("vnf-type", "example-vnf")],
            true,
        )
        .await;
        create_ep(
            client,
            VNF,
            &pod,
            "management",
            "eth0",
            &format!("10.244.0.{}/24", 10 + i),
            "",
        )
        .await;
        create_ep(
            client,
            VNF,
            &pod,
            "external",
            "ext1",
            &format!("10.100.20.{}/24", 10 + i),
            "",
        )
        .await;
        create_ep(
            client,
            VNF,
            &pod,
            "internal",
            "int2",
            &format!("10.240.1.{}/24", 100 + i),
            "",
        )
        .await;
    }
    for i in 0..6 {
        let pod = format!("internal-processor-{i}");
        create_pod(client, VNF, &pod, &[("app", "internal-processor")], true).await;
        create_ep(
            client,
            VNF,
            &pod,
            "management",
            "eth0",
            &format!("10.244.0.{}/24", 20 + i),
            "",
        )
        .await;
        create_ep(
            client,
            VNF,
            &pod,
            "internal",
            "int1",
            &format!("10.240.1.{}/24", 110 + i),
            "",
        )
        .await;
    }
    create_pod(
        client,
        CLIENT_NS,
        "external-client",
        &[("app", "external-client")],
        true,
    )
    .await;
    create_ep(
        client,
        CLIENT_NS,
        "external-client",
        "external",
        "eth0",
        "10.100.20.50/24",
        "",
    )
    .await;

    let svcs: Api<Service> = Api::namespaced(client.clone(), VNF);
    for svc in [
        service_obj(
            VNF,
            "vnf-internal-processor",
            r#"{"app":"internal-processor"}"#,
            "internal",
            "zeromq",
            5555,
        ),
        service_obj(
            VNF,
            "vnf-internal-lb",
            r#"{"app":"loadbalancer"}"#,
            "internal",
            "zeromq",
            5555,
        ),
        service_obj(
            VNF,
            "vnf-external-svc",
            r#"{"vnf-type":"example-vnf"}"#,
            "external",
            "diameter",
            3868,
        ),
    ] {
        svcs.create(&PostParams::default(), &svc)
            .await
            .expect("service created");
    }
}

/// The addresses of a service's slices: address → ready.
pub async fn slice_addresses(client: &Client, ns: &str, svc: &str) -> BTreeMap<String, bool> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let list = slices
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .expect("slices listed");
    list.items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false),
            )
        })
        .collect()
}

pub fn ready(addrs: &[String]) -> BTreeMap<String, bool> {
    addrs.iter().map(|a| (a.clone(), true)).collect()
}

/// Polls until the service's slices hold exactly `want`; panics with the last state after `timeout`.
pub async fn wait_slices(
    client: &Client,
    ns: &str,
    svc: &str,
    want: &BTreeMap<String, bool>,
    timeout: Duration,
) {
    let start = Instant::now();
    loop {
        let have = slice_addresses(client, ns, svc).await;
        if &have == want {
            return;
        }
        if start.elapsed() > timeout {
            panic!("service {ns}/{svc}: slices hold {have:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn range(prefix: &str, from: u32, n: u32) -> Vec<String> {
    (from..from + n).map(|i| format!("{prefix}{i}")).collect()
}
