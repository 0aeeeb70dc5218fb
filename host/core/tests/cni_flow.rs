//! The pure steps of a danm ADD, chained as the CNI binary chains them: environment, CNI_ARGS, config and version,
//! annotation, default network, AllowedTenants, naming, merge, printing and network-status.

use std::collections::BTreeMap;

use danm_api::{NetworkKind, NetworkOptions, NetworkSpec};
use danm_core::annotation::{IpRequest, NetworkRef, parse_pod_annotations};
use danm_core::cni::{
    AttachmentResult, CniArgs, CniCommand, CniConfig, CniEnv, CniError, CniResult, CniVersion, Interface,
    IpConfig, check_command_version, codes, merge_results, network_status, npwg_name,
};
use danm_core::naming::{NamingInput, assign_names};
use danm_core::resolve::{check_allowed_tenants, requested_or_default};

const NETNS: &str = "/var/run/netns/cni-1234";

fn env(command: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_owned()),
        ("CNI_CONTAINERID", "c0ffee".to_owned()),
        ("CNI_NETNS", NETNS.to_owned()),
        ("CNI_IFNAME", "eth0".to_owned()),
        ("CNI_PATH", "/opt/cni/bin".to_owned()),
        (
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=tenant-a;K8S_POD_NAME=web-0;K8S_POD_UID=u1".to_owned(),
        ),
    ]
}

/// The networks of the test cluster: (ref, spec).
fn cluster() -> BTreeMap<NetworkRef, NetworkSpec> {
    let spec = |prefix: &str, tenants: Option<Vec<&str>>| NetworkSpec {
        allowed_tenants: tenants.map(|t| t.into_iter().map(str::to_owned).collect()),
        options: NetworkOptions {
            container_prefix: prefix.to_owned(),
            ..NetworkOptions::default()
        },
        ..NetworkSpec::default()
    };
    BTreeMap::from([
        (NetworkRef::new(NetworkKind::DanmNet, "mgmt"), spec("mg", None)),
        (
            NetworkRef::new(NetworkKind::ClusterNetwork, "external"),
            spec("ext", Some(vec!["tenant-a"])),
        ),
        (
            NetworkRef::new(NetworkKind::ClusterNetwork, "secret"),
            spec("", Some(vec!["tenant-b"])),
        ),
        (
            NetworkRef::new(NetworkKind::TenantNetwork, "internal"),
            spec("int", None),
        ),
        (
            NetworkRef::new(NetworkKind::ClusterNetwork, "default"),
            spec("", None),
        ),
    ])
}

/// Everything up to the names: what the binary does before it touches IPAM or the kernel.
fn plan(annotation: Option<&str>) -> Result<Vec<(NetworkRef, IpRequest, String)>, CniError> {
    let env = CniEnv::from_pairs(env("ADD"))?;
    let args = CniArgs::parse(
        env.args.as_deref().unwrap_or_default(),
        env.container_id.as_deref(),
    )?;
    let pod = args.pod()?;
    let config = CniConfig::parse(br#"{"cniVersion":"1.0.0","name":"danm","type":"danm"}"#)?;
    check_command_version(env.command, config.version()?)?;

    let networks = cluster();
    let annotations: BTreeMap<String, String> = annotation
        .map(|a| BTreeMap::from([("danm.k8s.io/interfaces".to_owned(), a.to_owned())]))
        .unwrap_or_default();
    let requests = requested_or_default(parse_pod_annotations(&annotations)?, |kind| {
        networks.contains_key(&NetworkRef::new(kind, "default"))
    })?;
    for request in &requests {
        let spec = networks
            .get(&request.network)
            .ok_or_else(|| danm_core::resolve::ResolveError::not_found(&request.network, &pod.namespace))?;
        check_allowed_tenants(&request.network, spec, &pod.name, &pod.namespace)?;
    }
    let inputs: Vec<NamingInput<'_>> = requests
        .iter()
        .map(|r| NamingInput {
            seq: r.index,
            network: &r.network,
            container_prefix: &networks[&r.network].options.container_prefix,
        })
        .collect();
    let names = assign_names(&inputs, config.naming_scheme())?;
    Ok(requests
        .into_iter()
        .zip(names)
        .map(|(r, name)| (r.network, r.ip, name))
        .collect())
}

#[test]
fn a_three_interface_pod_is_planned_named_merged_and_reported() {
    let plan = plan(Some(
        r#"[{"network":"mgmt","ip":"dynamic"},{"clusterNetwork":"external","ip":"10.20.0.9/24"},
            {"tenantNetwork":"internal","ip":"none"}]"#,
    ))
    .unwrap();
    let names: Vec<&str> = plan.iter().map(|(_, _, n)| n.as_str()).collect();
    assert_eq!(names, ["eth0", "ext1", "int2"]);
    assert_eq!(plan[1].1, IpRequest::Static("10.20.0.9".parse().unwrap()));

    // Per-interface results as backends return them, in completion order.
    let result_for = |i: usize, address: &str| AttachmentResult {
        network: npwg_name(&plan[i].0, "tenant-a"),
        ifname: plan[i].2.clone(),
        sandbox: NETNS.to_owned(),
        result: CniResult {
            interfaces: vec![Interface {
                name: plan[i].2.clone(),
                mac: format!("0a:00:00:00:00:0{i}"),
                sandbox: NETNS.to_owned(),
                ..Interface::default()
            }],
            ips: vec![IpConfig {
                address: address.parse().unwrap(),
                gateway: None,
                interface: Some(0),
            }],
            ..CniResult::default()
        },
    };
    let mut attachments = vec![
        result_for(1, "10.20.0.9/24"),
        result_for(0, "192.168.1.65/26"),
        result_for(2, "10.30.0.2/24"),
    ];
    // The caller puts them back in annotation (sequence) order before merging (B4).
    attachments.sort_by_key(|a| names.iter().position(|n| *n == a.ifname));
    let merged = merge_results(&attachments);

    for version in CniVersion::SUPPORTED {
        let printed = merged.to_json(version);
        let back = CniResult::parse(printed.as_bytes()).unwrap();
        assert_eq!(back.cni_version, version.as_str());
        assert_eq!(
            back.result.ips[0].address.to_string(),
            "192.168.1.65/26",
            "the PodIP is eth0's ({version})"
        );
        let ifnames: Vec<&str> = back
            .result
            .ips
            .iter()
            .map(|ip| back.result.interfaces[ip.interface.unwrap()].name.as_str())
            .collect();
        assert_eq!(ifnames, ["eth0", "ext1", "int2"], "{version}");
    }

    let status = network_status(&attachments);
    let summary: Vec<(&str, &str, bool)> = status
        .iter()
        .map(|s| (s.name.as_str(), s.interface.as_str(), s.default))
        .collect();
    assert_eq!(
        summary,
        [
            ("tenant-a/mgmt", "eth0", true),
            ("external", "ext1", false),
            ("tenant-a/internal", "int2", false)
        ]
    );
}

#[test]
fn a_pod_without_annotation_gets_the_cluster_default_as_eth0() {
    let plan = plan(None).unwrap();
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].0, NetworkRef::new(NetworkKind::ClusterNetwork, "default"));
    assert_eq!((plan[0].1, plan[0].2.as_str()), (IpRequest::Dynamic, "eth0"));
}

#[test]
fn each_refusal_surfaces_as_a_cni_error_with_its_code() {
    let cases = [
        (
            r#"[{"clusterNetwork":"secret"}]"#,
            codes::NETWORK_UNAVAILABLE,
            "AllowedTenants whitelist of network:secret",
        ),
        (
            r#"[{"network":"nope"}]"#,
            codes::NETWORK_UNAVAILABLE,
            "requested network:nope of type:DanmNet",
        ),
        (
            r#"[{"network":"mgmt","clusterNetwork":"external"}]"#,
            codes::INVALID_POD_REQUEST,
            "references:2",
        ),
        (
            r#"[{"network":"mgmt","ipv4":"dynamic"}]"#,
            codes::INVALID_POD_REQUEST,
            "ipv4",
        ),
        (
            r#"[{"network":"mgmt"},{"network":"mgmt","ip":"x"}]"#,
            codes::INVALID_POD_REQUEST,
            "no.:1",
        ),
    ];
    for (annotation, code, needle) in cases {
        let e = plan(Some(annotation)).unwrap_err();
        assert_eq!(e.code, code, "{annotation}: {e}");
        assert!(e.to_string().contains(needle), "{annotation}: {e}");
        // it prints as the spec's error object
        let printed: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(printed["code"], code);
    }
}

#[test]
fn check_with_an_old_config_is_refused_before_any_work() {
    let env = CniEnv::from_pairs(env("CHECK")).unwrap();
    assert_eq!(env.command, CniCommand::Check);
    let config = CniConfig::parse(br#"{"cniVersion":"0.3.1","name":"danm","type":"danm"}"#).unwrap();
    let e = check_command_version(env.command, config.version().unwrap()).unwrap_err();
    assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
}

#[test]
fn annotation_requests_feed_ipam_without_conversion() {
    use danm_core::ipam::{apply_network_defaults, reserve};
    let mut spec = NetworkSpec {
        options: NetworkOptions {
            cidr: "192.168.1.64/26".into(),
            net6: "2a00:8a00:a000:1193::/64".into(),
            ..NetworkOptions::default()
        },
        ..NetworkSpec::default()
    };
    apply_network_defaults(&mut spec.options).unwrap();
    let annotations = BTreeMap::from([(
        "danm.k8s.io/interfaces".to_owned(),
        r#"[{"network":"a","ip":"dynamic","ip6":"dynamic"},{"network":"a","ip":"192.168.1.126/32","ip6":"none"}]"#
            .to_owned(),
    )]);
    let requests = parse_pod_annotations(&annotations).unwrap();
    let first = reserve(&spec, &requests[0].ip, &requests[0].ip6).unwrap();
    assert_eq!(
        (first.ip4.as_str(), first.ip6.as_str()),
        ("192.168.1.65/26", "2a00:8a00:a000:1193::1/64")
    );
    let second = reserve(&first.spec, &requests[1].ip, &requests[1].ip6).unwrap();
    assert_eq!(
        (second.ip4.as_str(), second.ip6.as_str()),
        ("192.168.1.126/26", "none")
    );
}
