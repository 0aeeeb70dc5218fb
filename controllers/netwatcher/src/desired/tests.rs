use danm_api::NetworkKind;

use super::*;
use crate::source::SourceKind;

fn src(name: &str, nid: &str, dev: &str, vlan: u32, vxlan: u32) -> LinkSource {
    LinkSource {
        owner: SourceRef::new(SourceKind::Network(NetworkKind::DanmNet), Some("ns"), name),
        network_id: nid.to_owned(),
        host_device: dev.to_owned(),
        vlan,
        vxlan,
    }
}

#[test]
fn a_vlan_network_wants_nid_dot_vlan_on_its_host_device() {
    let d = desired_links(&[src("ext", "ext", "ens4", 700, 0)]);
    assert_eq!(d.links.len(), 1);
    let link = &d.links["ext.700"];
    assert_eq!(
        link.spec,
        LinkSpec::Vlan {
            parent: "ens4".into(),
            id: 700
        }
    );
    assert_eq!(link.owners.len(), 1);
    assert!(d.problems.is_empty());
}

#[test]
fn a_vxlan_network_wants_vx_nid_with_its_vni() {
    let d = desired_links(&[src("int", "internal", "ens3", 0, 600)]);
    assert_eq!(
        d.links["vx_internal"].spec,
        LinkSpec::Vxlan {
            underlay: "ens3".into(),
            vni: 600
        }
    );
}

#[test]
fn a_network_with_both_vlan_and_vxlan_wants_both_links() {
    let d = desired_links(&[src("a", "a", "ens4", 10, 20)]);
    assert_eq!(d.links.keys().cloned().collect::<Vec<_>>(), vec!["a.10", "vx_a"]);
}

#[test]
fn no_host_device_means_no_links() {
    let d = desired_links(&[src("a", "a", "", 10, 20), src("b", "b", "ens4", 0, 0)]);
    assert!(d.links.is_empty());
    assert!(d.problems.is_empty());
}

#[test]
fn networks_sharing_a_link_are_all_its_owners() {
    // The scenario's two `external` networks (two namespaces, same NetworkID and vlan) share `external.300`.
    let mut a = src("external", "external", "ens4", 300, 0);
    a.owner.namespace = Some("external-client".into());
    let mut b = src("external", "external", "ens4", 300, 0);
    b.owner.namespace = Some("example-vnf".into());
    let d = desired_links(&[a.clone(), b.clone()]);
    assert_eq!(d.links.len(), 1);
    let owners: Vec<&SourceRef> = d.links["external.300"].owners.iter().collect();
    assert_eq!(owners, vec![&b.owner, &a.owner]);
    let only_a = desired_links(&[a]);
    assert_eq!(only_a.links["external.300"].owners.len(), 1);
}

#[test]
fn a_name_wanted_with_two_configurations_goes_to_the_owner_that_sorts_first_whatever_the_input_order() {
    let a = src("a", "x", "ens3", 0, 50);
    let b = src("b", "x", "ens3", 0, 51);
    for input in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
        let d = desired_links(&input);
        assert_eq!(
            d.links["vx_x"].spec,
            LinkSpec::Vxlan {
                underlay: "ens3".into(),
                vni: 50
            }
        );
        assert_eq!(d.problems.len(), 1);
        let msg = d.problems[0].to_string();
        assert!(
            msg.contains("DanmNet/ns/b") && msg.contains("DanmNet/ns/a"),
            "{msg}"
        );
    }
}

#[test]
fn names_longer_than_ifnamsiz_and_out_of_range_ids_are_reported_not_wanted() {
    let d = desired_links(&[
        src("long", "abcdefghijk", "ens4", 4000, 0),
        src("v", "v", "ens4", 4095, 0),
        src("x", "x", "ens4", 0, 16_777_215),
    ]);
    assert!(d.links.is_empty());
    assert_eq!(d.problems.len(), 3);
    assert!(
        matches!(d.problems[0], SourceProblem::NameTooLong { .. }),
        "{:?}",
        d.problems
    );
    assert!(
        d.problems
            .iter()
            .any(|p| matches!(p, SourceProblem::BadVlan { vlan: 4095, .. }))
    );
    assert!(d.problems.iter().any(|p| matches!(
        p,
        SourceProblem::BadVxlan {
            vxlan: 16_777_215,
            ..
        }
    )));
}

#[test]
fn a_ten_character_network_id_fits_both_link_names() {
    let d = desired_links(&[src("a", "abcdefghij", "ens4", 4094, 16_777_214)]);
    assert_eq!(d.links.len(), 2, "{:?}", d.problems);
}

#[test]
fn changing_fields_other_than_the_four_link_facts_changes_nothing() {
    // LinkSource holds only NetworkID, host_device, vlan and vxlan; a network's other fields never reach it.
    let mut net = danm_api::Network::new(
        NetworkKind::DanmNet,
        Some("ns"),
        "n",
        danm_api::NetworkSpec {
            network_id: "n".into(),
            ..Default::default()
        },
    );
    net.spec.options.host_device = "ens4".into();
    net.spec.options.vlan = 700;
    let before = desired_links(&[crate::source::network_source(NetworkKind::DanmNet, &net)]);
    net.spec.options.container_prefix = "ext".into();
    net.spec.options.cidr = "10.0.0.0/24".into();
    net.spec.options.rt_tables = 10;
    let after = desired_links(&[crate::source::network_source(NetworkKind::DanmNet, &net)]);
    assert_eq!(before, after);
}
