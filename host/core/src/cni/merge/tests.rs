//! Merge and network-status tests (behaviour §4.11, §10 B4/B5).

use serde_json::json;

use super::*;
use crate::cni::result::{IpConfig, Route};
use crate::cni::status::{network_status, network_status_json, npwg_name};
use crate::cni::version::CniVersion;
use danm_api::NetworkKind;

const NS: &str = "/var/run/netns/pod1";

fn ip(addr: &str, interface: Option<usize>) -> IpConfig {
    IpConfig {
        address: addr.parse().unwrap(),
        gateway: None,
        interface,
    }
}

fn iface(name: &str, mac: &str, sandbox: &str) -> Interface {
    Interface {
        name: name.into(),
        mac: mac.into(),
        sandbox: sandbox.into(),
        ..Interface::default()
    }
}

fn attachment(network: &str, ifname: &str, result: CniResult) -> AttachmentResult {
    AttachmentResult {
        network: network.into(),
        ifname: ifname.into(),
        sandbox: NS.into(),
        result,
    }
}

/// A native (macvlan-like) result: one pod interface with its IPs.
fn native(ifname: &str, mac: &str, ips: &[&str]) -> CniResult {
    CniResult {
        interfaces: vec![iface(ifname, mac, NS)],
        ips: ips.iter().map(|a| ip(a, Some(0))).collect(),
        ..CniResult::default()
    }
}

/// A bridge-plugin-like result: bridge, host veth, then the pod interface at index 2.
fn bridge(ifname: &str, address: &str) -> CniResult {
    CniResult {
        interfaces: vec![
            iface("cni0", "00:00:00:00:00:01", ""),
            iface("veth1234", "00:00:00:00:00:02", ""),
            iface(ifname, "00:00:00:00:00:03", NS),
        ],
        ips: vec![IpConfig {
            address: address.parse().unwrap(),
            gateway: Some("10.244.0.1".parse().unwrap()),
            interface: Some(2),
        }],
        routes: vec![Route::new(
            "0.0.0.0/0".parse().unwrap(),
            Some("10.244.0.1".parse().unwrap()),
        )],
        dns: Dns {
            nameservers: vec!["10.96.0.10".into()],
            ..Dns::default()
        },
    }
}

#[test]
fn interface_indices_are_remapped_into_the_merged_list() {
    // B4: the second attachment's IP pointed at index 2 of its own result; merged it must point at its interface
    let merged = merge_results(&[
        attachment(
            "ns/mgmt",
            "eth0",
            native("eth0", "aa:00:00:00:00:01", &["10.0.0.5/24", "2001:db8::5/64"]),
        ),
        attachment("ns/ext", "ext1", bridge("ext1", "10.244.0.7/24")),
        attachment(
            "int",
            "int2",
            native("int2", "aa:00:00:00:00:02", &["192.168.1.65/26"]),
        ),
    ]);
    let names: Vec<&str> = merged.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "cni0", "veth1234", "ext1", "int2"]);
    for ip in &merged.ips {
        let target = &merged.interfaces[ip.interface.unwrap()];
        let expected = match ip.address.to_string().as_str() {
            "10.0.0.5/24" | "2001:db8::5/64" => "eth0",
            "10.244.0.7/24" => "ext1",
            "192.168.1.65/26" => "int2",
            other => panic!("unexpected {other}"),
        };
        assert_eq!(target.name, expected, "{}", ip.address);
    }
    let addresses: Vec<String> = merged.ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(
        addresses,
        [
            "10.0.0.5/24",
            "2001:db8::5/64",
            "10.244.0.7/24",
            "192.168.1.65/26"
        ]
    );
}

#[test]
fn eth0_comes_first_and_the_rest_keep_annotation_order() {
    // behaviour §11 [CNI] 3: eth0's IPs first; B4: the others in the given (annotation) order, not completion
    // order
    let merged = merge_results(&[
        attachment("b", "eth2", native("eth2", "", &["10.2.0.1/24"])),
        attachment("a", "eth1", native("eth1", "", &["10.1.0.1/24"])),
        attachment("d", "eth0", native("eth0", "", &["10.0.0.1/24"])),
    ]);
    let names: Vec<&str> = merged.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["eth0", "eth2", "eth1"]);
    assert_eq!(merged.ips[0].address.to_string(), "10.0.0.1/24");
    assert_eq!(merged.ips[0].interface, Some(0));
    assert_eq!(
        merged
            .ips
            .iter()
            .map(|i| i.interface.unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn ips_without_an_interface_index_point_at_the_pod_interface() {
    // a delegate whose IPAM-only style result has no interfaces (e.g. a 0.2.0 plugin)
    let legacy = CniResult {
        ips: vec![ip("10.5.0.9/16", None)],
        ..CniResult::default()
    };
    let merged = merge_results(&[
        attachment("a", "eth0", native("eth0", "", &["10.0.0.1/24"])),
        attachment("b", "eth1", legacy),
    ]);
    assert_eq!(
        merged.interfaces[1],
        iface("eth1", "", NS),
        "the pod interface is added with the netns as sandbox"
    );
    assert_eq!(merged.ips[1].interface, Some(1));
}

#[test]
fn an_out_of_range_index_is_repaired_and_a_missing_sandbox_is_filled() {
    // B5: DANM's ipvlan result used the container id as sandbox and had no MAC; ours fills the netns path
    let odd = CniResult {
        interfaces: vec![iface("eth0", "aa:bb:cc:dd:ee:ff", "")],
        ips: vec![ip("10.0.0.1/24", Some(7))],
        ..CniResult::default()
    };
    let normalised = normalise(&attachment("a", "eth0", odd));
    assert_eq!(
        normalised.interfaces,
        vec![iface("eth0", "aa:bb:cc:dd:ee:ff", NS)]
    );
    assert_eq!(normalised.ips[0].interface, Some(0));
}

#[test]
fn routes_are_concatenated_without_exact_duplicates_and_dns_is_merged() {
    let mut a = bridge("eth0", "10.244.0.7/24");
    a.dns = Dns {
        nameservers: vec!["10.96.0.10".into()],
        domain: "".into(),
        search: vec!["a.svc".into()],
        options: vec!["ndots:5".into()],
    };
    let mut b = bridge("eth1", "10.244.1.7/24");
    b.routes.push(Route::new("10.9.0.0/16".parse().unwrap(), None));
    b.dns = Dns {
        nameservers: vec!["10.96.0.10".into(), "8.8.8.8".into()],
        domain: "cluster.local".into(),
        search: vec!["a.svc".into(), "b.svc".into()],
        options: vec!["ndots:5".into()],
    };
    let merged = merge_results(&[attachment("a", "eth0", a), attachment("b", "eth1", b)]);
    assert_eq!(
        merged.routes,
        vec![
            Route::new("0.0.0.0/0".parse().unwrap(), Some("10.244.0.1".parse().unwrap())),
            Route::new("10.9.0.0/16".parse().unwrap(), None),
        ]
    );
    assert_eq!(merged.dns.nameservers, ["10.96.0.10", "8.8.8.8"]);
    assert_eq!(merged.dns.domain, "cluster.local");
    assert_eq!(merged.dns.search, ["a.svc", "b.svc"]);
    assert_eq!(merged.dns.options, ["ndots:5"]);
}

#[test]
fn merged_results_print_in_every_version_with_consistent_indices() {
    let merged = merge_results(&[
        attachment("a", "eth0", native("eth0", "aa:00:00:00:00:01", &["10.0.0.5/24"])),
        attachment("b", "ext1", bridge("ext1", "10.244.0.7/24")),
    ]);
    for v in CniVersion::SUPPORTED {
        let value = merged.to_value(v);
        let count = value["interfaces"].as_array().unwrap().len();
        for ip in value["ips"].as_array().unwrap() {
            let i = ip["interface"].as_u64().unwrap() as usize;
            assert!(i < count, "{v}: {ip}");
        }
    }
}

#[test]
fn merging_nothing_gives_an_empty_result() {
    assert_eq!(merge_results(&[]), CniResult::default());
}

#[test]
fn npwg_names_are_namespaced_except_for_cluster_networks() {
    assert_eq!(
        npwg_name(&NetworkRef::new(NetworkKind::DanmNet, "mgmt"), "ns1"),
        "ns1/mgmt"
    );
    assert_eq!(
        npwg_name(&NetworkRef::new(NetworkKind::TenantNetwork, "t"), "ns1"),
        "ns1/t"
    );
    assert_eq!(
        npwg_name(&NetworkRef::new(NetworkKind::ClusterNetwork, "ext"), "ns1"),
        "ext"
    );
}

use crate::annotation::NetworkRef;

#[test]
fn network_status_lists_each_interface_with_ips_mac_and_default() {
    let mut eth0 = native("eth0", "aa:00:00:00:00:01", &["10.0.0.5/24", "2001:db8::5/64"]);
    eth0.ips[0].gateway = Some("10.0.0.1".parse().unwrap());
    eth0.interfaces[0].mtu = Some(1450);
    let attachments = [
        attachment("ns1/mgmt", "eth0", eth0),
        attachment("ext", "ext1", bridge("ext1", "10.244.0.7/24")),
    ];
    let value: serde_json::Value = serde_json::from_str(&network_status_json(&attachments)).unwrap();
    assert_eq!(
        value,
        json!([
            {"name":"ns1/mgmt","interface":"eth0","ips":["10.0.0.5","2001:db8::5"],"mac":"aa:00:00:00:00:01",
             "mtu":1450,"default":true,"dns":{},"gateway":["10.0.0.1"]},
            {"name":"ext","interface":"ext1","ips":["10.244.0.7"],"mac":"00:00:00:00:00:03",
             "dns":{"nameservers":["10.96.0.10"]},"gateway":["10.244.0.1"]}
        ])
    );
}

#[test]
fn network_status_follows_the_merged_order_and_handles_interfaceless_results() {
    let attachments = [
        attachment(
            "ns/b",
            "eth1",
            CniResult {
                ips: vec![ip("10.5.0.9/16", None)],
                ..CniResult::default()
            },
        ),
        attachment("ns/a", "eth0", native("eth0", "", &[])),
    ];
    let status = network_status(&attachments);
    assert_eq!(
        status.iter().map(|s| s.interface.as_str()).collect::<Vec<_>>(),
        ["eth0", "eth1"]
    );
    assert!(status[0].default && !status[1].default);
    assert!(status[0].ips.is_empty());
    assert_eq!(status[1].ips, ["10.5.0.9"]);
    assert_eq!(status[1].mac, "");
}
