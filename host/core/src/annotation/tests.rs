//! Unit tests of annotation parsing (behaviour §2, §11 [ANN] 7–10, §10 B18).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;

fn parse(value: &str) -> Result<Vec<InterfaceRequest>, AnnotationError> {
    parse_interfaces(danm_api::INTERFACES_ANNOTATION, value)
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn three_elements_parse_in_annotation_order_with_their_index() {
    let parsed = parse(
        r#"[{"network":"mgmt"},{"tenantNetwork":"ext","ip":"dynamic"},
            {"clusterNetwork":"int","ip":"10.0.0.5/24","ip6":"2001:db8::5","proutes":{"10.1.0.0/16":"10.0.0.1"}}]"#,
    )
    .unwrap();
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[0].index, 0);
    assert_eq!(parsed[0].network, NetworkRef::new(NetworkKind::DanmNet, "mgmt"));
    assert_eq!(parsed[0].ip, IpRequest::Absent);
    assert_eq!(parsed[0].ip6, IpRequest::Absent);
    assert_eq!(parsed[0].proutes, None);
    assert_eq!(parsed[1].index, 1);
    assert_eq!(
        parsed[1].network,
        NetworkRef::new(NetworkKind::TenantNetwork, "ext")
    );
    assert_eq!(parsed[1].ip, IpRequest::Dynamic);
    assert_eq!(parsed[2].index, 2);
    assert_eq!(
        parsed[2].network,
        NetworkRef::new(NetworkKind::ClusterNetwork, "int")
    );
    assert_eq!(parsed[2].ip, IpRequest::Static("10.0.0.5".parse().unwrap()));
    assert_eq!(parsed[2].ip6, IpRequest::Static("2001:db8::5".parse().unwrap()));
    assert_eq!(parsed[2].proutes.as_ref().unwrap()["10.1.0.0/16"], "10.0.0.1");
}

#[test]
fn both_network_and_cluster_network_is_two_references() {
    // behaviour §11 [ANN] 7
    let err = parse(r#"[{"network":"a"},{"network":"a","clusterNetwork":"b"}]"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "network connection no.:1 contains invalid number of network references:2"
    );
}

#[test]
fn all_three_references_are_counted() {
    let err = parse(r#"[{"network":"a","tenantNetwork":"b","clusterNetwork":"c"}]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::InvalidNetworkReferences { index: 0, count: 3 }
        ),
        "{err}"
    );
}

#[test]
fn an_element_without_a_network_key_has_zero_references() {
    // behaviour §11 [ANN] 8
    let err = parse(r#"[{"ip":"dynamic"}]"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "network connection no.:0 contains invalid number of network references:0"
    );
}

#[test]
fn empty_and_null_network_names_do_not_count_as_references() {
    let err = parse(r#"[{"network":"","clusterNetwork":null}]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::InvalidNetworkReferences { index: 0, count: 0 }
        ),
        "{err}"
    );
    let ok = parse(r#"[{"network":"","clusterNetwork":"c"}]"#).unwrap();
    assert_eq!(ok[0].network, NetworkRef::new(NetworkKind::ClusterNetwork, "c"));
}

#[test]
fn a_null_element_has_zero_references_as_in_danm() {
    let err = parse(r#"[{"network":"a"}, null]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::InvalidNetworkReferences { index: 1, count: 0 }
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_element_key_is_an_error_naming_index_and_key() {
    // behaviour §11 [ANN] 9
    let err = parse(r#"[{"network":"a"},{"network":"b","ipv4":"dynamic"}]"#).unwrap_err();
    assert!(
        matches!(&err, AnnotationError::UnknownKey { index: 1, key, .. } if key == "ipv4"),
        "{err}"
    );
    assert!(err.to_string().contains("no.:1"), "{err}");
    assert!(err.to_string().contains("ipv4"), "{err}");
}

#[test]
fn danm_internal_keys_are_rejected() {
    // behaviour §10 B18
    for key in ["DefaultIfaceName", "Device", "SequenceId", "device", "sequenceid"] {
        let err = parse(&format!(r#"[{{"network":"a","{key}":"x"}}]"#)).unwrap_err();
        assert!(
            matches!(&err, AnnotationError::InternalKey { index: 0, key: k } if k == key),
            "{key}: {err}"
        );
    }
}

#[test]
fn element_keys_match_case_insensitively_like_go() {
    let parsed = parse(r#"[{"Network":"a","IP":"dynamic","IP6":"none","ProUtes":{}}]"#).unwrap();
    assert_eq!(parsed[0].network, NetworkRef::new(NetworkKind::DanmNet, "a"));
    assert_eq!(parsed[0].ip, IpRequest::Dynamic);
    assert_eq!(parsed[0].ip6, IpRequest::None);
    assert_eq!(parsed[0].proutes, Some(BTreeMap::new()));
}

#[test]
fn keys_that_fold_to_the_same_name_are_a_duplicate() {
    let err = parse(r#"[{"network":"a","Network":"b"}]"#).unwrap_err();
    assert!(
        matches!(err, AnnotationError::DuplicateKey { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn an_empty_array_and_null_mean_no_interfaces() {
    // behaviour §11 [ANN] 10 (the default network is then resolved by `resolve`)
    assert!(parse("[]").unwrap().is_empty());
    assert!(parse(" null ").unwrap().is_empty());
    assert!(
        parse_pod_annotations(&annotations(&[(danm_api::INTERFACES_ANNOTATION, "[]")]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn no_annotation_means_no_interfaces() {
    assert!(
        parse_pod_annotations(&annotations(&[("other", "x")]))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_value_that_is_not_json_is_an_error_naming_the_key() {
    let err = parse("[{network:a}]").unwrap_err();
    assert!(matches!(err, AnnotationError::NotJson { .. }));
    assert!(err.to_string().contains(danm_api::INTERFACES_ANNOTATION), "{err}");
    assert!(matches!(parse(""), Err(AnnotationError::NotJson { .. })));
}

#[test]
fn a_value_that_is_not_an_array_is_an_error() {
    let err = parse(r#"{"network":"a"}"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::NotAnArray {
                found: "an object",
                ..
            }
        ),
        "{err}"
    );
    let err = parse(r#"["a"]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::NotAnObject {
                index: 0,
                found: "a string"
            }
        ),
        "{err}"
    );
}

#[test]
fn non_string_values_are_type_errors_naming_the_key() {
    let err = parse(r#"[{"network":5}]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::WrongType {
                index: 0,
                key: "network",
                ..
            }
        ),
        "{err}"
    );
    let err = parse(r#"[{"network":"a","ip":true}]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::WrongType {
                index: 0,
                key: "ip",
                ..
            }
        ),
        "{err}"
    );
    let err = parse(r#"[{"network":"a","proutes":["10.0.0.0/8"]}]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::WrongType {
                index: 0,
                key: "proutes",
                ..
            }
        ),
        "{err}"
    );
    let err = parse(r#"[{"network":"a","proutes6":{"::/0":1}}]"#).unwrap_err();
    assert!(
        matches!(
            err,
            AnnotationError::WrongType {
                index: 0,
                key: "proutes6",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn ip_values_are_absent_none_dynamic_or_static() {
    let parsed = parse(
        r#"[{"network":"a","ip":"","ip6":null},{"network":"a","ip":"none","ip6":"dynamic"},
            {"network":"a","ip":"192.168.1.126/32","ip6":"2a00::1/64"}]"#,
    )
    .unwrap();
    assert_eq!(
        (parsed[0].ip, parsed[0].ip6),
        (IpRequest::Absent, IpRequest::Absent)
    );
    assert_eq!(
        (parsed[1].ip, parsed[1].ip6),
        (IpRequest::None, IpRequest::Dynamic)
    );
    let v4: IpAddr = "192.168.1.126".parse().unwrap();
    let v6: IpAddr = "2a00::1".parse().unwrap();
    assert_eq!(
        (parsed[2].ip, parsed[2].ip6),
        (IpRequest::Static(v4), IpRequest::Static(v6))
    );
}

#[test]
fn a_bad_ip_value_is_an_error_naming_index_key_and_value() {
    for (element, key, value) in [
        (r#"{"network":"a","ip":"dynamik"}"#, "ip", "dynamik"),
        (r#"{"network":"a","ip":"10.0.0.256"}"#, "ip", "10.0.0.256"),
        (r#"{"network":"a","ip":"10.0.0.5/33"}"#, "ip", "10.0.0.5/33"),
        (r#"{"network":"a","ip":"10.0.0.5/"}"#, "ip", "10.0.0.5/"),
        (r#"{"network":"a","ip":"2001:db8::1"}"#, "ip", "2001:db8::1"),
        (r#"{"network":"a","ip6":"10.0.0.5"}"#, "ip6", "10.0.0.5"),
        (
            r#"{"network":"a","ip6":"2001:db8::1/129"}"#,
            "ip6",
            "2001:db8::1/129",
        ),
        (r#"{"network":"a","ip":"Dynamic"}"#, "ip", "Dynamic"),
    ] {
        let err = parse(&format!(r#"[{{"network":"x"}},{element}]"#)).unwrap_err();
        match &err {
            AnnotationError::InvalidIp {
                index: 1,
                key: k,
                value: v,
                ..
            } => {
                assert_eq!((*k, v.as_str()), (key, value));
                let text = err.to_string();
                assert!(
                    text.contains("no.:1") && text.contains(key) && text.contains(value),
                    "{text}"
                );
            }
            other => panic!("{element}: unexpected {other}"),
        }
    }
}

#[test]
fn ip_requests_render_danm_strings_for_ipam_and_the_danmep() {
    let parsed =
        parse(r#"[{"network":"a","ip":"none","ip6":"dynamic"},{"network":"a","ip":"10.1.2.3/8"}]"#).unwrap();
    assert_eq!(
        (parsed[0].ip.to_string(), parsed[0].ip6.to_string()),
        ("none".into(), "dynamic".into())
    );
    assert_eq!(
        (parsed[1].ip.to_string(), parsed[1].ip6.to_string()),
        ("10.1.2.3".into(), String::new())
    );
    assert!(parsed[0].ip6.needs_ipam() && parsed[1].ip.needs_ipam());
    assert!(!parsed[0].ip.needs_ipam() && !parsed[1].ip6.needs_ipam());
}

#[test]
fn the_danm_k8s_io_key_is_preferred_over_danm_io() {
    let both = annotations(&[
        (danm_api::INTERFACES_ANNOTATION_ALT, r#"[{"network":"alt"}]"#),
        (danm_api::INTERFACES_ANNOTATION, r#"[{"network":"main"}]"#),
    ]);
    assert_eq!(find_annotation(&both).unwrap().0, danm_api::INTERFACES_ANNOTATION);
    let parsed = parse_pod_annotations(&annotations(&[
        (danm_api::INTERFACES_ANNOTATION_ALT, r#"[{"network":"alt"}]"#),
        (danm_api::INTERFACES_ANNOTATION, r#"[{"network":"main"}]"#),
    ]))
    .unwrap();
    assert_eq!(parsed[0].network.name, "main");
}

#[test]
fn the_danm_io_key_is_accepted() {
    let parsed = parse_pod_annotations(&annotations(&[(
        danm_api::INTERFACES_ANNOTATION_ALT,
        r#"[{"network":"alt"}]"#,
    )]))
    .unwrap();
    assert_eq!(parsed[0].network.name, "alt");
}

#[test]
fn a_key_containing_the_annotation_name_case_insensitively_is_accepted_after_exact_keys() {
    let only_fuzzy = annotations(&[("X-DANM.K8S.IO/Interfaces", r#"[{"network":"fuzzy"}]"#)]);
    assert_eq!(
        parse_pod_annotations(&only_fuzzy).unwrap()[0].network.name,
        "fuzzy"
    );
    let both = annotations(&[
        ("a.danm.io/interfaces", r#"[{"network":"fuzzy"}]"#),
        (danm_api::INTERFACES_ANNOTATION_ALT, r#"[{"network":"exact"}]"#),
    ]);
    assert_eq!(parse_pod_annotations(&both).unwrap()[0].network.name, "exact");
}

#[test]
fn policy_routes_keep_only_valid_entries_of_the_family() {
    let parsed = parse(
        r#"[{"network":"a","proutes":{"10.1.0.0/16":"10.0.0.1","bad":"10.0.0.1","10.2.0.0/16":"nope",
              "2001:db8::/64":"10.0.0.1"},"proutes6":{"2001:db8:1::/48":"2001:db8::1","10.3.0.0/16":"2001:db8::1"}}]"#,
    )
    .unwrap();
    let v4 = parsed[0].policy_routes(false);
    assert_eq!(
        v4,
        vec![PolicyRoute {
            dst: "10.1.0.0/16".parse().unwrap(),
            gw: "10.0.0.1".parse().unwrap()
        }]
    );
    let v6 = parsed[0].policy_routes(true);
    assert_eq!(
        v6,
        vec![PolicyRoute {
            dst: "2001:db8:1::/48".parse().unwrap(),
            gw: "2001:db8::1".parse().unwrap()
        }]
    );
    // The raw map is kept verbatim for the DanmEp.
    assert_eq!(parsed[0].proutes.as_ref().unwrap().len(), 4);
}
