use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn svc(annotations: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("s".into()),
            namespace: Some("ns".into()),
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
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_selector_and_a_network_make_a_service_managed() {
    let sel = selection(&svc(&[
        ("danm.k8s.io/selector", r#"{"app":"lb"}"#),
        ("danm.k8s.io/network", "internal"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(sel.selector, BTreeMap::from([("app".into(), "lb".into())]));
    assert!(sel.selects_network(NetworkKind::DanmNet, "internal"));
    assert!(!sel.selects_network(NetworkKind::ClusterNetwork, "internal"));
    assert!(!sel.publish_not_ready);
}

#[test]
fn a_service_with_a_selector_but_no_network_key_is_ignored() {
    assert_eq!(
        selection(&svc(&[("danm.k8s.io/selector", r#"{"app":"lb"}"#)])).unwrap(),
        None
    );
    assert_eq!(
        selection(&svc(&[
            ("danm.k8s.io/selector", "{}"),
            ("danm.k8s.io/network", "x")
        ]))
        .unwrap(),
        None
    );
    assert_eq!(selection(&svc(&[])).unwrap(), None);
}

#[test]
fn the_danm_io_prefix_and_every_network_kind_are_accepted_and_ored() {
    let sel = selection(&svc(&[
        ("danm.io/selector", r#"{"a":"b"}"#),
        ("danm.io/tenantNetwork", "t"),
        ("danm.k8s.io/clusterNetwork", "c"),
    ]))
    .unwrap()
    .unwrap();
    assert!(sel.selects_network(NetworkKind::TenantNetwork, "t"));
    assert!(sel.selects_network(NetworkKind::ClusterNetwork, "c"));
    assert_eq!(sel.networks.len(), 2);
}

#[test]
fn tolerate_unready_and_publish_not_ready_addresses_publish_unready_pods() {
    let base = [
        ("danm.k8s.io/selector", r#"{"a":"b"}"#),
        ("danm.k8s.io/network", "n"),
    ];
    let mut with_annotation = base.to_vec();
    with_annotation.push((TOLERATE_UNREADY_ANNOTATION, "true"));
    assert!(
        selection(&svc(&with_annotation))
            .unwrap()
            .unwrap()
            .publish_not_ready
    );
    let mut s = svc(&base);
    s.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
    assert!(selection(&s).unwrap().unwrap().publish_not_ready);
}

#[test]
fn a_service_with_a_kubernetes_selector_is_left_to_kubernetes() {
    let mut s = svc(&[
        ("danm.k8s.io/selector", r#"{"a":"b"}"#),
        ("danm.k8s.io/network", "n"),
    ]);
    s.spec.as_mut().unwrap().selector = Some(BTreeMap::from([("a".into(), "b".into())]));
    assert_eq!(selection(&s).unwrap(), None);
}

#[test]
fn a_malformed_selector_is_an_error_naming_the_service() {
    let err = selection(&svc(&[
        ("danm.k8s.io/selector", r#"{"a":1}"#),
        ("danm.k8s.io/network", "n"),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("service ns/s"), "{err}");
    assert!(
        selection(&svc(&[
            ("danm.k8s.io/selector", "[1]"),
            ("danm.k8s.io/network", "n")
        ]))
        .is_err()
    );
}
