use std::collections::BTreeMap;

use danm_api::{NadSpec, NetworkAttachmentDefinition, NetworkKind, NetworkSpec, ObjectMeta};
use serde_json::Value;

use super::*;

fn nad(config: &str, annotations: &[(&str, &str)]) -> NetworkAttachmentDefinition {
    NetworkAttachmentDefinition {
        metadata: ObjectMeta {
            name: Some("vlantest".into()),
            namespace: Some("default".into()),
            annotations: if annotations.is_empty() {
                None
            } else {
                Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                )
            },
            ..Default::default()
        },
        spec: NadSpec {
            config: config.to_owned(),
        },
        ..Default::default()
    }
}

const VLAN_NAD: &str = r#"{"cniVersion":"0.3.1","name":"vlantest","type":"macvlan","master":"tenant-bond","vlan":500,"ipam":{"type":"static"}}"#;

#[test]
fn a_nad_with_a_vlan_wants_name_dot_vlan_and_points_master_at_it() {
    let view = nad_view(&nad(VLAN_NAD, &[])).unwrap();
    let source = view.source.unwrap();
    assert_eq!(source.network_id, "vlantest");
    assert_eq!(source.host_device, "tenant-bond");
    assert_eq!(source.vlan, 500);
    assert_eq!(
        source.owner.to_string(),
        "NetworkAttachmentDefinition/default/vlantest"
    );
    let update = view.update.expect("master must be rewritten");
    let config: Value = serde_json::from_str(&update.config).unwrap();
    assert_eq!(config["master"], "vlantest.500");
    assert_eq!(config["ipam"]["type"], "static");
    assert_eq!(
        update.annotations.get(ORIGINAL_MASTER_ANNOTATION),
        Some(&Some("tenant-bond".to_owned()))
    );
    assert_eq!(
        update.annotations.get(REWRITTEN_MASTER_ANNOTATION),
        Some(&Some("vlantest.500".to_owned()))
    );
}

#[test]
fn the_rewritten_config_has_sorted_keys() {
    let update = nad_view(&nad(VLAN_NAD, &[])).unwrap().update.unwrap();
    assert_eq!(
        update.config,
        r#"{"cniVersion":"0.3.1","ipam":{"type":"static"},"master":"vlantest.500","name":"vlantest","type":"macvlan","vlan":500}"#
    );
}

#[test]
fn the_rewrite_of_a_nad_does_not_move_its_link_onto_itself_b15() {
    let original = nad(VLAN_NAD, &[]);
    let first = nad_view(&original).unwrap();
    let rewritten = first.update.as_ref().unwrap().apply(&original);
    let second = nad_view(&rewritten).unwrap();
    assert_eq!(second.source, first.source, "the link's parent must stay the NIC");
    assert_eq!(second.update, None, "a rewritten NAD needs no further write");
}

#[test]
fn a_user_changing_master_of_a_rewritten_nad_moves_the_link_to_the_new_nic() {
    let original = nad(VLAN_NAD, &[]);
    let mut stored = nad_view(&original).unwrap().update.unwrap().apply(&original);
    stored.spec.config = stored.spec.config.replace("vlantest.500", "ens5");
    let view = nad_view(&stored).unwrap();
    assert_eq!(view.source.unwrap().host_device, "ens5");
    let update = view.update.unwrap();
    assert!(
        update.config.contains(r#""master":"vlantest.500""#),
        "{}",
        update.config
    );
    assert_eq!(
        update.annotations.get(ORIGINAL_MASTER_ANNOTATION),
        Some(&Some("ens5".to_owned()))
    );
}

#[test]
fn renaming_a_rewritten_nad_keeps_the_nic_and_points_master_at_the_new_link() {
    let original = nad(VLAN_NAD, &[]);
    let mut stored = nad_view(&original).unwrap().update.unwrap().apply(&original);
    stored.spec.config = stored
        .spec
        .config
        .replace(r#""name":"vlantest""#, r#""name":"other""#);
    let view = nad_view(&stored).unwrap();
    let source = view.source.unwrap();
    assert_eq!(
        (source.network_id.as_str(), source.host_device.as_str()),
        ("other", "tenant-bond")
    );
    assert!(view.update.unwrap().config.contains(r#""master":"other.500""#));
}

#[test]
fn dropping_the_vlan_restores_the_original_master_and_removes_the_annotations() {
    let original = nad(VLAN_NAD, &[]);
    let mut stored = nad_view(&original).unwrap().update.unwrap().apply(&original);
    stored.spec.config = stored.spec.config.replace(r#","vlan":500"#, "");
    let view = nad_view(&stored).unwrap();
    let update = view.update.unwrap();
    assert!(
        update.config.contains(r#""master":"tenant-bond""#),
        "{}",
        update.config
    );
    assert_eq!(update.annotations.get(ORIGINAL_MASTER_ANNOTATION), Some(&None));
    let restored = update.apply(&stored);
    assert_eq!(restored.metadata.annotations, None);
    assert_eq!(nad_view(&restored).unwrap().update, None);
}

#[test]
fn a_vxlan_nad_points_master_at_vx_name() {
    let view = nad_view(&nad(
        r#"{"name":"vxt","type":"ipvlan","master":"ens3","vxlan":42}"#,
        &[],
    ))
    .unwrap();
    assert_eq!(view.source.unwrap().vxlan, 42);
    assert!(view.update.unwrap().config.contains(r#""master":"vx_vxt""#));
}

#[test]
fn a_conflist_nad_without_a_top_level_type_is_ignored() {
    let view = nad_view(&nad(
        r#"{"cniVersion":"0.4.0","name":"l","plugins":[{"type":"bridge","vlan":5}]}"#,
        &[],
    ))
    .unwrap();
    assert_eq!(
        view,
        NadView {
            source: None,
            update: None
        }
    );
}

#[test]
fn a_nad_without_vlan_or_vxlan_is_left_as_it_is() {
    let view = nad_view(&nad(r#"{"name":"plain","type":"macvlan","master":"ens3"}"#, &[])).unwrap();
    assert_eq!(view.update, None);
    assert_eq!(view.source.unwrap().host_device, "ens3");
}

#[test]
fn malformed_nad_configs_are_errors_naming_the_nad() {
    let err = nad_view(&nad("{not json", &[])).unwrap_err();
    assert!(
        err.to_string()
            .contains("NetworkAttachmentDefinition/default/vlantest"),
        "{err}"
    );
    let err = nad_view(&nad(r#"{"type":"macvlan","vlan":"500"}"#, &[])).unwrap_err();
    assert!(
        matches!(err, SourceError::BadNadField { field: "vlan", .. }),
        "{err}"
    );
}

#[test]
fn a_network_source_takes_the_kind_it_was_watched_as() {
    let mut net = danm_api::Network::new(
        NetworkKind::ClusterNetwork,
        None,
        "cn",
        NetworkSpec {
            network_id: "cnid".into(),
            ..Default::default()
        },
    );
    net.kind.clear();
    net.spec.options.host_device = "ens4".into();
    net.spec.options.vxlan = 7;
    let s = network_source(NetworkKind::ClusterNetwork, &net);
    assert_eq!(s.owner.to_string(), "ClusterNetwork/cn");
    assert_eq!(
        (s.network_id.as_str(), s.host_device.as_str(), s.vxlan),
        ("cnid", "ens4", 7)
    );
}
