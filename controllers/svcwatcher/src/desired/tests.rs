use std::collections::BTreeMap;

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;
use crate::selection::{TOLERATE_UNREADY_ANNOTATION, selection};

fn service(name: &str, annotations: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("example-vnf".into()),
            uid: Some(format!("uid-{name}")),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            ports: Some(vec![ServicePort {
                name: Some("zeromq".into()),
                port: 5555,
                protocol: Some("TCP".into()),
                target_port: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(
                    9999,
                )),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn internal_lb() -> Service {
    service(
        "vnf-internal-lb",
        &[
            ("danm.k8s.io/selector", r#"{"app":"loadbalancer"}"#),
            ("danm.k8s.io/network", "internal"),
        ],
    )
}

fn pod(name: &str, labels: &[(&str, &str)], ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("example-vnf".into()),
            uid: Some(format!("uid-{name}")),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            hostname: Some(format!("h-{name}")),
            node_name: Some("node1".into()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn ep(pod: &str, network: &str, api_type: &str, v4: &str, v6: &str) -> DanmEp {
    let mut ep = DanmEp::new(
        "example-vnf",
        &format!("ep-{pod}-{network}-{api_type}"),
        DanmEpSpec {
            network_name: network.into(),
            api_type: api_type.into(),
            pod: pod.into(),
            pod_uid: format!("uid-{pod}"),
            interface: DanmEpInterface {
                address: v4.into(),
                address_ipv6: v6.into(),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    ep.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "stale".to_owned())]));
    ep
}

fn run(svc: &Service, eps: &[DanmEp], pods: &[Pod]) -> DesiredEndpoints {
    let sel = selection(svc).unwrap().expect("managed");
    let eps: Vec<&DanmEp> = eps.iter().collect();
    let pods: Vec<&Pod> = pods.iter().collect();
    desired_endpoints(svc, &sel, &eps, &pods)
}

fn slice_ips(d: &DesiredEndpoints, family: &str) -> Vec<String> {
    d.slices
        .iter()
        .filter(|s| s.address_type == family)
        .flat_map(|s| s.endpoints.iter().map(|e| e.addresses[0].clone()))
        .collect()
}

fn ready_ips(d: &DesiredEndpoints) -> Vec<String> {
    d.endpoints
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten().map(|a| a.ip.clone()))
        .collect()
}

fn not_ready_ips(d: &DesiredEndpoints) -> Vec<String> {
    d.endpoints
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()))
        .collect()
}

#[test]
fn matching_pods_internal_addresses_fill_the_slice_and_the_endpoints() {
    let pods = [
        pod("lb-0", &[("app", "loadbalancer")], true),
        pod("lb-1", &[("app", "loadbalancer")], true),
        pod("proc-0", &[("app", "internal-processor")], true),
    ];
    let eps = [
        ep("lb-0", "internal", "DanmNet", "10.240.1.100/24", ""),
        ep("lb-0", "external", "DanmNet", "10.100.20.10/24", ""),
        ep("lb-0", "management", "DanmNet", "10.0.0.5/16", ""),
        ep("lb-1", "internal", "", "10.240.1.101/24", ""),
        ep("proc-0", "internal", "DanmNet", "10.240.1.102/24", ""),
    ];
    let d = run(&internal_lb(), &eps, &pods);
    assert_eq!(d.slices.len(), 1);
    let slice = &d.slices[0];
    assert_eq!(slice.metadata.name.as_deref(), Some("vnf-internal-lb-danm-ipv4"));
    let labels = slice.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[SERVICE_NAME_LABEL], "vnf-internal-lb");
    assert_eq!(labels[SLICE_MANAGED_BY_LABEL], MANAGER);
    assert_eq!(slice_ips(&d, "IPv4"), vec!["10.240.1.100", "10.240.1.101"]);
    assert_eq!(ready_ips(&d), vec!["10.240.1.100", "10.240.1.101"]);
    let e = &slice.endpoints[0];
    assert_eq!(e.hostname.as_deref(), Some("h-lb-0"));
    assert_eq!(e.node_name.as_deref(), Some("node1"));
    let target = e.target_ref.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_deref(),
            target.name.as_deref(),
            target.uid.as_deref()
        ),
        (Some("Pod"), Some("lb-0"), Some("uid-lb-0"))
    );
    assert_eq!(d.endpoints.metadata.name.as_deref(), Some("vnf-internal-lb"));
    let owner = &slice.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Service", "uid-vnf-internal-lb")
    );
}

#[test]
fn ports_are_the_services_name_port_and_protocol_and_target_port_is_ignored() {
    let d = run(&internal_lb(), &[], &[]);
    let p = &d.slices[0].ports.as_ref().unwrap()[0];
    assert_eq!(
        (p.name.as_deref(), p.port, p.protocol.as_deref()),
        (Some("zeromq"), Some(5555), Some("TCP"))
    );
    let mut svc = internal_lb();
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = None;
    let pods = [pod("lb-0", &[("app", "loadbalancer")], true)];
    let d = run(&svc, &[ep("lb-0", "internal", "", "10.240.1.100/24", "")], &pods);
    let core = &d.endpoints.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0];
    assert_eq!(
        (core.name.as_deref(), core.port, core.protocol.as_deref()),
        (Some("zeromq"), 5555, Some("TCP"))
    );
}

#[test]
fn an_unready_pod_is_not_ready_unless_unready_endpoints_are_tolerated() {
    let pods = [pod("lb-0", &[("app", "loadbalancer")], false)];
    let eps = [ep("lb-0", "internal", "", "10.240.1.100/24", "")];
    let d = run(&internal_lb(), &eps, &pods);
    assert_eq!(not_ready_ips(&d), vec!["10.240.1.100"]);
    assert!(ready_ips(&d).is_empty());
    let c = d.slices[0].endpoints[0].conditions.as_ref().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(false), Some(false))
    );

    let tolerant = service(
        "t",
        &[
            ("danm.k8s.io/selector", r#"{"app":"loadbalancer"}"#),
            ("danm.k8s.io/network", "internal"),
            (TOLERATE_UNREADY_ANNOTATION, "true"),
        ],
    );
    let d = run(&tolerant, &eps, &pods);
    assert_eq!(ready_ips(&d), vec!["10.240.1.100"]);
    assert_eq!(
        d.slices[0].endpoints[0].conditions.as_ref().unwrap().ready,
        Some(true)
    );
}

#[test]
fn a_pod_turning_ready_moves_to_the_ready_addresses() {
    let eps = [ep("lb-0", "internal", "", "10.240.1.100/24", "")];
    let before = run(
        &internal_lb(),
        &eps,
        &[pod("lb-0", &[("app", "loadbalancer")], false)],
    );
    let after = run(
        &internal_lb(),
        &eps,
        &[pod("lb-0", &[("app", "loadbalancer")], true)],
    );
    assert_eq!((ready_ips(&before), not_ready_ips(&before).len()), (vec![], 1));
    assert_eq!(
        (ready_ips(&after), not_ready_ips(&after).len()),
        (vec!["10.240.1.100".to_owned()], 0)
    );
}

#[test]
fn selection_uses_the_pods_current_labels_so_a_label_change_removes_the_address() {
    let eps = [ep("lb-0", "internal", "", "10.240.1.100/24", "")];
    let d = run(&internal_lb(), &eps, &[pod("lb-0", &[("app", "other")], true)]);
    assert!(slice_ips(&d, "IPv4").is_empty());
    assert_eq!(d.endpoints.subsets, None);
}

#[test]
fn a_deleted_pod_or_deleted_danmep_removes_the_address() {
    let eps = [ep("lb-0", "internal", "", "10.240.1.100/24", "")];
    assert!(slice_ips(&run(&internal_lb(), &eps, &[]), "IPv4").is_empty());
    let pods = [pod("lb-0", &[("app", "loadbalancer")], true)];
    assert!(slice_ips(&run(&internal_lb(), &[], &pods), "IPv4").is_empty());
}

#[test]
fn a_danmep_of_a_previous_pod_with_the_same_name_is_ignored() {
    let mut stale = ep("lb-0", "internal", "", "10.240.1.100/24", "");
    stale.spec.pod_uid = "uid-of-an-older-pod".into();
    let d = run(
        &internal_lb(),
        &[stale],
        &[pod("lb-0", &[("app", "loadbalancer")], true)],
    );
    assert!(slice_ips(&d, "IPv4").is_empty());
}

#[test]
fn cluster_network_services_select_only_cluster_network_eps_of_their_own_namespace() {
    let svc = service(
        "c",
        &[
            ("danm.k8s.io/selector", r#"{"app":"loadbalancer"}"#),
            ("danm.k8s.io/clusterNetwork", "internal"),
        ],
    );
    let pods = [
        pod("lb-0", &[("app", "loadbalancer")], true),
        pod("lb-1", &[("app", "loadbalancer")], true),
    ];
    let mut foreign = ep("lb-1", "internal", "ClusterNetwork", "10.240.1.9/24", "");
    foreign.metadata.namespace = Some("elsewhere".into());
    let eps = [
        ep("lb-0", "internal", "ClusterNetwork", "10.240.1.100/24", ""),
        ep("lb-0", "internal", "DanmNet", "10.240.1.101/24", ""),
        ep("lb-1", "internal", "TenantNetwork", "10.240.1.102/24", ""),
        foreign,
    ];
    assert_eq!(slice_ips(&run(&svc, &eps, &pods), "IPv4"), vec!["10.240.1.100"]);
}

#[test]
fn dual_stack_eps_give_one_slice_per_family_and_both_addresses_in_endpoints_b14() {
    let pods = [
        pod("lb-0", &[("app", "loadbalancer")], true),
        pod("lb-1", &[("app", "loadbalancer")], true),
    ];
    let eps = [
        ep("lb-0", "internal", "", "10.240.1.100/24", "2001:db8::a/64"),
        ep("lb-1", "internal", "", "10.240.1.101/24", "2001:db8::b/64"),
    ];
    let d = run(&internal_lb(), &eps, &pods);
    assert_eq!(d.slices.len(), 2);
    assert_eq!(
        d.slices[1].metadata.name.as_deref(),
        Some("vnf-internal-lb-danm-ipv6")
    );
    assert_eq!(slice_ips(&d, "IPv4"), vec!["10.240.1.100", "10.240.1.101"]);
    assert_eq!(slice_ips(&d, "IPv6"), vec!["2001:db8::a", "2001:db8::b"]);
    assert_eq!(ready_ips(&d).len(), 4);
    // Removing one dual-stack EP removes exactly its two addresses.
    let d = run(&internal_lb(), &eps[1..], &pods);
    assert_eq!(ready_ips(&d), vec!["10.240.1.101", "2001:db8::b"]);
}

#[test]
fn none_empty_and_dynamic_addresses_are_skipped() {
    let pods = [pod("lb-0", &[("app", "loadbalancer")], true)];
    let eps = [
        ep("lb-0", "internal", "", "none", ""),
        ep("lb-0", "internal", "DanmNet", "dynamic", "bogus"),
    ];
    let d = run(&internal_lb(), &eps, &pods);
    assert!(slice_ips(&d, "IPv4").is_empty());
    assert_eq!(d.endpoints.subsets, None, "no empty subset is ever written (B14)");
    assert_eq!(ep_ip("10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
}

#[test]
fn the_endpoints_copy_the_service_annotations_and_carry_our_labels() {
    let d = run(&internal_lb(), &[], &[]);
    assert_eq!(
        d.endpoints.metadata.annotations,
        internal_lb().metadata.annotations
    );
    let labels = d.endpoints.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[ENDPOINTS_MANAGED_BY_LABEL], MANAGER);
    assert_eq!(labels[SKIP_MIRROR_LABEL], "true");
}

#[test]
fn terminating_and_finished_pods_are_handled_like_kubernetes() {
    let mut terminating = pod("lb-0", &[("app", "loadbalancer")], true);
    terminating.metadata.deletion_timestamp = Some(Time(Default::default()));
    let mut done = pod("lb-1", &[("app", "loadbalancer")], false);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let eps = [
        ep("lb-0", "internal", "", "10.240.1.100/24", ""),
        ep("lb-1", "internal", "", "10.240.1.101/24", ""),
    ];
    let d = run(&internal_lb(), &eps, &[terminating, done]);
    assert_eq!(slice_ips(&d, "IPv4"), vec!["10.240.1.100"]);
    let c = d.slices[0].endpoints[0].conditions.as_ref().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(true), Some(true))
    );
    assert_eq!(d.endpoints.subsets, None);
}

#[test]
fn the_result_does_not_depend_on_input_order_and_matches_itself() {
    let pods = [
        pod("a", &[("app", "loadbalancer")], true),
        pod("b", &[("app", "loadbalancer")], false),
    ];
    let eps = [
        ep("a", "internal", "", "10.240.1.7/24", ""),
        ep("b", "internal", "", "10.240.1.3/24", ""),
    ];
    let one = run(&internal_lb(), &eps, &pods);
    let rev_eps = [eps[1].clone(), eps[0].clone()];
    let rev_pods = [pods[1].clone(), pods[0].clone()];
    let two = run(&internal_lb(), &rev_eps, &rev_pods);
    assert_eq!(one, two);
    assert!(slice_matches(&one.slices[0], &two.slices[0]));
    assert!(endpoints_match(&one.endpoints, &two.endpoints));
    let other = run(&internal_lb(), &eps[..1], &pods);
    assert!(!slice_matches(&one.slices[0], &other.slices[0]));
    assert!(!endpoints_match(&one.endpoints, &other.endpoints));
}

#[test]
fn danmep_labels_follow_the_pod_and_keep_danms_own_labels() {
    let p = pod("lb-0", &[("app", "loadbalancer"), ("tier", "front")], true);
    let mut e = ep("lb-0", "internal", "", "10.240.1.100/24", "");
    e.metadata.labels = Some(BTreeMap::from([
        ("app".to_owned(), "old".to_owned()),
        ("gone".to_owned(), "x".to_owned()),
        (danm_api::labels::POD_UID.to_owned(), "uid-lb-0".to_owned()),
    ]));
    let changes = danmep_label_changes(&p, &e).unwrap();
    assert_eq!(
        changes,
        BTreeMap::from([
            ("app".to_owned(), Some("loadbalancer".to_owned())),
            ("gone".to_owned(), None),
            ("tier".to_owned(), Some("front".to_owned())),
        ])
    );
    e.metadata.labels = Some(BTreeMap::from([
        ("app".to_owned(), "loadbalancer".to_owned()),
        ("tier".to_owned(), "front".to_owned()),
        (danm_api::labels::POD_UID.to_owned(), "uid-lb-0".to_owned()),
    ]));
    assert_eq!(danmep_label_changes(&p, &e), None);
}

#[test]
fn more_addresses_than_one_slice_may_hold_go_into_numbered_slices() {
    let n = MAX_ENDPOINTS_PER_SLICE + 5;
    let pods: Vec<Pod> = (0..n)
        .map(|i| pod(&format!("lb-{i}"), &[("app", "loadbalancer")], true))
        .collect();
    let eps: Vec<DanmEp> = (0..n)
        .map(|i| {
            ep(
                &format!("lb-{i}"),
                "internal",
                "",
                &format!("10.240.{}.{}/16", i / 250, i % 250),
                "",
            )
        })
        .collect();
    let d = run(&internal_lb(), &eps, &pods);
    let sizes: Vec<(String, usize)> = d
        .slices
        .iter()
        .map(|s| (s.metadata.name.clone().unwrap(), s.endpoints.len()))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("vnf-internal-lb-danm-ipv4".to_owned(), MAX_ENDPOINTS_PER_SLICE),
            ("vnf-internal-lb-danm-ipv4-2".to_owned(), 5)
        ]
    );
    assert_eq!(slice_ips(&d, "IPv4").len(), n);
}
