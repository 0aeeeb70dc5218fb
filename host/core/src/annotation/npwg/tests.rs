//! Unit tests of the NPWG `k8s.v1.cni.cncf.io/networks` parser, with the spec's own examples.

use serde_json::json;

use super::*;

fn names(parsed: &[NetworkSelection]) -> Vec<(Option<&str>, &str, Option<&str>)> {
    parsed
        .iter()
        .map(|s| (s.namespace.as_deref(), s.name.as_str(), s.interface.as_deref()))
        .collect()
}

#[test]
fn the_specs_comma_list_examples_parse() {
    let parsed = parse_networks("net-a, net-b, other-ns/net-c").unwrap();
    assert_eq!(
        names(&parsed),
        [
            (None, "net-a", None),
            (None, "net-b", None),
            (Some("other-ns"), "net-c", None)
        ]
    );
    assert_eq!(parsed[2].index, 2);
    let parsed = parse_networks("net-a@eth1 , other-ns/net-b@eth2,net-c").unwrap();
    assert_eq!(
        names(&parsed),
        [
            (None, "net-a", Some("eth1")),
            (Some("other-ns"), "net-b", Some("eth2")),
            (None, "net-c", None)
        ]
    );
}

#[test]
fn the_specs_json_examples_parse_with_every_field() {
    let parsed = parse_networks(
        r#"[
          {"name":"net-a"},
          {"name":"net-b","interface":"eth1","mac":"02:23:45:67:89:01","ips":["10.2.2.42/24","2001:db8::42"]},
          {"name":"net-c","namespace":"other-ns","default-route":["10.2.2.254"],
           "cni-args":{"foo":"bar"},"bandwidth":{"ingressRate":2048,"ingressBurst":1600},
           "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
           "infiniband-guid":"c2:11:22:33:44:55:66:77","ipam-claim-reference":"vm-a.net-c",
           "x-future-key":{"kept":true}}
        ]"#,
    )
    .unwrap();
    assert_eq!(
        names(&parsed),
        [
            (None, "net-a", None),
            (None, "net-b", Some("eth1")),
            (Some("other-ns"), "net-c", None)
        ]
    );
    let b = &parsed[1];
    assert_eq!(b.mac.as_deref(), Some("02:23:45:67:89:01"));
    assert_eq!(b.ips, ["10.2.2.42/24", "2001:db8::42"]);
    let c = &parsed[2];
    assert_eq!(c.default_route, ["10.2.2.254".parse::<IpAddr>().unwrap()]);
    assert_eq!(c.ipam_claim_reference.as_deref(), Some("vm-a.net-c"));
    assert_eq!(c.unknown["x-future-key"], json!({"kept": true}));
    assert_eq!(
        Value::Object(c.runtime_config()),
        json!({"bandwidth":{"ingressRate":2048,"ingressBurst":1600},
               "portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],
               "infinibandGUID":"c2:11:22:33:44:55:66:77"})
    );
    assert_eq!(Value::Object(c.cni_args()), json!({"foo":"bar"}));
    assert_eq!(
        Value::Object(b.runtime_config()),
        json!({"ips":["10.2.2.42/24","2001:db8::42"],"mac":"02:23:45:67:89:01"})
    );
    assert_eq!(
        Value::Object(b.cni_args()),
        json!({"ips":["10.2.2.42/24","2001:db8::42"],"mac":"02:23:45:67:89:01"})
    );
    assert_eq!(c.qualified_name("pods"), "other-ns/net-c");
    assert_eq!(b.qualified_name("pods"), "pods/net-b");
}

#[test]
fn an_empty_annotation_selects_nothing_and_an_empty_list_too() {
    assert_eq!(parse_networks("  ").unwrap(), Vec::new());
    assert_eq!(parse_networks("[]").unwrap(), Vec::new());
}

#[test]
fn a_mac_is_normalised_and_interface_request_is_read_as_interface() {
    let parsed =
        parse_networks(r#"[{"name":"a","mac":"02-AB-cd-00-00-01","interfaceRequest":"data0"}]"#).unwrap();
    assert_eq!(parsed[0].mac.as_deref(), Some("02:ab:cd:00:00:01"));
    assert_eq!(parsed[0].interface.as_deref(), Some("data0"));
}

fn error(value: &str) -> String {
    parse_networks(value).unwrap_err().to_string()
}

#[test]
fn invalid_input_names_the_annotation_the_element_and_the_field() {
    assert!(error("[{").starts_with("annotation k8s.v1.cni.cncf.io/networks: not valid JSON"));
    assert_eq!(
        error("a, ,b"),
        "annotation k8s.v1.cni.cncf.io/networks: element 1 field name: is empty"
    );
    assert_eq!(
        error("ns/@eth1"),
        "annotation k8s.v1.cni.cncf.io/networks: element 0 field name: is empty"
    );
    assert_eq!(
        error(r#"[{"name":"a"},{"interface":"eth1"}]"#),
        "annotation k8s.v1.cni.cncf.io/networks: element 1 field name: is empty"
    );
    assert!(
        error("a@this-name-is-too-long0")
            .starts_with("annotation k8s.v1.cni.cncf.io/networks: element 0 field interface: \"this-name-is-too-long0\" is not a valid interface name")
    );
    assert_eq!(
        error(r#"[{"name":"a","ips":["10.0.0.300/24"]}]"#),
        "annotation k8s.v1.cni.cncf.io/networks: element 0 field ips: \"10.0.0.300/24\" is not an IP address or CIDR"
    );
    assert_eq!(
        error(r#"[{"name":"a","mac":"02:23:45:67:89"}]"#),
        "annotation k8s.v1.cni.cncf.io/networks: element 0 field mac: \"02:23:45:67:89\" is not a MAC address"
    );
    assert_eq!(
        error(r#"[{"name":"a","ips":"10.0.0.1"}]"#),
        "annotation k8s.v1.cni.cncf.io/networks: element 0 field ips: must be a list of strings, found a string"
    );
    assert_eq!(
        error(r#"[{"name":"a","default-route":["gw"]}]"#),
        "annotation k8s.v1.cni.cncf.io/networks: element 0 field default-route: \"gw\" is not an IP address"
    );
    assert_eq!(
        error(r#"["a"]"#),
        "annotation k8s.v1.cni.cncf.io/networks: element 0: must be a JSON object, found a string"
    );
    assert_eq!(
        error("Upper/net"),
        "annotation k8s.v1.cni.cncf.io/networks: element 0 field namespace: \"Upper\" is not a valid namespace name"
    );
    assert_eq!(
        error(r#"[{"name":"a","ipam-claim-reference":"No_Claim"}]"#),
        "annotation k8s.v1.cni.cncf.io/networks: element 0 field ipam-claim-reference: \"No_Claim\" is not a valid object name"
    );
}
