//! Result conversion tests: every pair of supported versions round-trips, legacy results convert.

use serde_json::json;

use super::*;

/// A result using every field, 1.1-only ones included.
fn full() -> CniResult {
    CniResult {
        interfaces: vec![
            Interface {
                name: "br0".into(),
                mac: "00:11:22:33:44:55".into(),
                ..Interface::default()
            },
            Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:00:00:05".into(),
                mtu: Some(1450),
                sandbox: "/var/run/netns/p1".into(),
                socket_path: Some("/run/vhost.sock".into()),
                pci_id: Some("0000:00:1f.6".into()),
            },
        ],
        ips: vec![
            IpConfig {
                address: "10.0.0.5/24".parse().unwrap(),
                gateway: Some("10.0.0.1".parse().unwrap()),
                interface: Some(1),
            },
            IpConfig {
                address: "2001:db8::5/64".parse().unwrap(),
                gateway: None,
                interface: Some(1),
            },
        ],
        routes: vec![
            Route::new("0.0.0.0/0".parse().unwrap(), Some("10.0.0.1".parse().unwrap())),
            Route {
                dst: "10.9.0.0/16".parse().unwrap(),
                gw: None,
                mtu: Some(1400),
                advmss: Some(1360),
                priority: Some(10),
                table: Some(100),
                scope: Some(253),
            },
        ],
        dns: Dns {
            nameservers: vec!["10.0.0.2".into()],
            domain: "cluster.local".into(),
            search: vec!["ns.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        },
    }
}

#[test]
fn every_version_pair_round_trips_what_both_can_carry() {
    for from in CniVersion::SUPPORTED {
        let written = full().to_json(from);
        let read = CniResult::parse(written.as_bytes()).unwrap();
        assert_eq!(read.cni_version, from.as_str());
        assert_eq!(read.result, full().restricted_to(from), "{from}");
        for to in CniVersion::SUPPORTED {
            let converted = read.result.to_json(to);
            let back = CniResult::parse(converted.as_bytes()).unwrap();
            assert_eq!(back.cni_version, to.as_str());
            let both = if from < to { from } else { to };
            assert_eq!(back.result, full().restricted_to(both), "{from} -> {to}");
        }
    }
}

#[test]
fn old_versions_tag_ips_with_their_family_and_1_x_does_not() {
    for v in [CniVersion::V0_3_1, CniVersion::V0_4_0] {
        let value = full().to_value(v);
        assert_eq!(value["ips"][0]["version"], "4", "{v}");
        assert_eq!(value["ips"][1]["version"], "6", "{v}");
    }
    for v in [CniVersion::V1_0_0, CniVersion::V1_1_0] {
        let value = full().to_value(v);
        assert!(value["ips"][0].get("version").is_none(), "{v}");
    }
}

#[test]
fn the_1_1_fields_are_only_written_for_1_1_0() {
    let v11 = full().to_value(CniVersion::V1_1_0);
    assert_eq!(v11["interfaces"][1]["mtu"], 1450);
    assert_eq!(v11["interfaces"][1]["socketPath"], "/run/vhost.sock");
    assert_eq!(v11["interfaces"][1]["pciID"], "0000:00:1f.6");
    assert_eq!(
        v11["routes"][1],
        json!({"dst":"10.9.0.0/16","mtu":1400,"advmss":1360,"priority":10,"table":100,"scope":253})
    );
    let v10 = full().to_value(CniVersion::V1_0_0);
    assert_eq!(
        v10["interfaces"][1],
        json!({"name":"eth0","mac":"0a:58:0a:00:00:05","sandbox":"/var/run/netns/p1"})
    );
    assert_eq!(v10["routes"][1], json!({"dst":"10.9.0.0/16"}));
}

#[test]
fn a_0_3_1_result_is_written_exactly_in_libcnis_shape() {
    let r = CniResult {
        interfaces: vec![Interface {
            name: "eth0".into(),
            sandbox: "/ns".into(),
            ..Interface::default()
        }],
        ips: vec![IpConfig {
            address: "10.0.0.5/24".parse().unwrap(),
            gateway: None,
            interface: Some(0),
        }],
        ..CniResult::default()
    };
    assert_eq!(
        r.to_value(CniVersion::V0_3_1),
        json!({"cniVersion":"0.3.1","interfaces":[{"name":"eth0","sandbox":"/ns"}],
               "ips":[{"version":"4","interface":0,"address":"10.0.0.5/24"}],"dns":{}})
    );
    assert_eq!(
        CniResult::default().to_value(CniVersion::V1_0_0),
        json!({"cniVersion":"1.0.0","dns":{}})
    );
}

#[test]
fn a_0_2_0_result_converts_ip4_and_ip6_with_their_routes() {
    let legacy = br#"{"cniVersion":"0.2.0",
        "ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},
        "ip6":{"ip":"2001:db8::5/64","routes":[{"dst":"::/0","gw":"2001:db8::1"}]},
        "dns":{"nameservers":["10.1.0.1"]}}"#;
    let read = CniResult::parse(legacy).unwrap();
    assert_eq!(read.cni_version, "0.2.0");
    let r = read.result;
    assert!(r.interfaces.is_empty());
    assert_eq!(
        r.ips,
        vec![
            IpConfig {
                address: "10.1.0.5/16".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                interface: None
            },
            IpConfig {
                address: "2001:db8::5/64".parse().unwrap(),
                gateway: None,
                interface: None
            },
        ]
    );
    assert_eq!(
        r.routes,
        vec![
            Route::new("0.0.0.0/0".parse().unwrap(), None),
            Route::new("::/0".parse().unwrap(), Some("2001:db8::1".parse().unwrap())),
        ]
    );
    assert_eq!(r.dns.nameservers, ["10.1.0.1"]);
    // and it is written in a supported version
    let out = r.to_value(CniVersion::V0_3_1);
    assert_eq!(
        out["ips"][0],
        json!({"version":"4","address":"10.1.0.5/16","gateway":"10.1.0.1"})
    );
}

#[test]
fn a_0_1_0_result_and_one_without_cni_version_are_read_by_shape() {
    let r = CniResult::parse(br#"{"cniVersion":"0.1.0","ip4":{"ip":"10.1.0.5/16"}}"#)
        .unwrap()
        .result;
    assert_eq!(r.ips[0].address, "10.1.0.5/16".parse::<IpNetwork>().unwrap());
    let r = CniResult::parse(br#"{"ip4":{"ip":"10.1.0.6/16"}}"#).unwrap();
    assert_eq!((r.cni_version.as_str(), r.result.ips.len()), ("", 1));
    let r = CniResult::parse(br#"{"ips":[{"address":"10.1.0.7/16"}]}"#).unwrap();
    assert_eq!(
        r.result.ips[0].address,
        "10.1.0.7/16".parse::<IpNetwork>().unwrap()
    );
}

#[test]
fn fakeipam_style_output_is_read() {
    // behaviour §4.7: fakeipam prints 0.3.1 ips with "version" and no interfaces
    let r = CniResult::parse(br#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.5/24"}]}"#)
        .unwrap()
        .result;
    assert_eq!(
        r.ips,
        vec![IpConfig {
            address: "10.0.0.5/24".parse().unwrap(),
            gateway: None,
            interface: None
        }]
    );
}

#[test]
fn nulls_and_empty_gateways_read_as_absent() {
    let r = CniResult::parse(
        br#"{"cniVersion":"1.0.0","interfaces":null,"ips":[{"address":"10.0.0.5/24","gateway":""}],
             "routes":null,"dns":{"nameservers":null,"domain":null}}"#,
    )
    .unwrap()
    .result;
    assert_eq!(r.ips[0].gateway, None);
    assert!(r.interfaces.is_empty() && r.routes.is_empty() && r.dns.is_empty());
}

#[test]
fn undecodable_results_are_decoding_errors() {
    use crate::cni::codes::DECODING_FAILURE;
    for bad in [
        &b"not json"[..],
        br#"[1]"#,
        br#"{"cniVersion":"9.9.9"}"#,
        br#"{"cniVersion":1}"#,
        br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.300/24"}]}"#,
        br#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.3/24","gateway":"x"}]}"#,
        br#"{"cniVersion":"0.2.0","ip4":{"ip":"nope"}}"#,
    ] {
        let e = CniResult::parse(bad).unwrap_err();
        assert_eq!(e.code, DECODING_FAILURE, "{}", String::from_utf8_lossy(bad));
    }
}

/// Outputs of Debian's containernetworking-plugins 1.1.1 `static` IPAM plugin for one config (two addresses, a
/// route, a nameserver), captured with `CNI_COMMAND=ADD /usr/lib/cni/static` at each cniVersion.
const STATIC_PLUGIN_OUTPUTS: [(&str, &str); 4] = [
    (
        "0.2.0",
        r#"{"cniVersion":"0.2.0","ip4":{"ip":"10.10.0.1/24","gateway":"10.10.0.254","routes":[{"dst":"0.0.0.0/0"}]},
            "ip6":{"ip":"3ffe:ffff:0:1ff::1/64"},"dns":{"nameservers":["8.8.8.8"]}}"#,
    ),
    (
        "0.3.1",
        r#"{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.10.0.1/24","gateway":"10.10.0.254"},
            {"version":"6","address":"3ffe:ffff:0:1ff::1/64"}],"routes":[{"dst":"0.0.0.0/0"}],
            "dns":{"nameservers":["8.8.8.8"]}}"#,
    ),
    (
        "0.4.0",
        r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.10.0.1/24","gateway":"10.10.0.254"},
            {"version":"6","address":"3ffe:ffff:0:1ff::1/64"}],"routes":[{"dst":"0.0.0.0/0"}],
            "dns":{"nameservers":["8.8.8.8"]}}"#,
    ),
    (
        "1.0.0",
        r#"{"cniVersion":"1.0.0","ips":[{"address":"10.10.0.1/24","gateway":"10.10.0.254"},
            {"address":"3ffe:ffff:0:1ff::1/64"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{"nameservers":["8.8.8.8"]}}"#,
    ),
];

#[test]
fn the_reference_static_plugins_outputs_read_the_same_in_every_version() {
    let expected = CniResult {
        interfaces: vec![],
        ips: vec![
            IpConfig {
                address: "10.10.0.1/24".parse().unwrap(),
                gateway: Some("10.10.0.254".parse().unwrap()),
                interface: None,
            },
            IpConfig {
                address: "3ffe:ffff:0:1ff::1/64".parse().unwrap(),
                gateway: None,
                interface: None,
            },
        ],
        routes: vec![Route::new("0.0.0.0/0".parse().unwrap(), None)],
        dns: Dns {
            nameservers: vec!["8.8.8.8".into()],
            ..Dns::default()
        },
    };
    for (version, output) in STATIC_PLUGIN_OUTPUTS {
        let read = CniResult::parse(output.as_bytes()).unwrap();
        assert_eq!(read.cni_version, version);
        assert_eq!(read.result, expected, "{version}");
    }
    // and written back at the plugin's own versions we get its output
    for (version, output) in &STATIC_PLUGIN_OUTPUTS[1..] {
        let ours = expected.to_value(version.parse().unwrap());
        assert_eq!(
            ours,
            serde_json::from_str::<serde_json::Value>(output).unwrap(),
            "{version}"
        );
    }
}

#[test]
fn the_last_address_of_each_family_is_what_the_danmep_records() {
    let mut r = full();
    r.ips.push(IpConfig {
        address: "10.0.0.6/24".parse().unwrap(),
        gateway: None,
        interface: Some(0),
    });
    assert_eq!(r.last_address(false, None), Some("10.0.0.6/24".parse().unwrap()));
    assert_eq!(
        r.last_address(false, Some(1)),
        Some("10.0.0.5/24".parse().unwrap())
    );
    assert_eq!(
        r.last_address(true, Some(1)),
        Some("2001:db8::5/64".parse().unwrap())
    );
    assert_eq!(CniResult::default().last_address(true, None), None);
}
