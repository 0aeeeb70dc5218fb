//! The bridge backend: a NetworkType danm's host has no code for. It translates a network object into a config for
//! the reference `bridge` CNI plugin, which danm executes from `CNI_PATH`, with danm's IPAM passed through `fakeipam`.
//!
//! Mapping: bridge name = `spec.Options.host_device` if set, else `br_<NetworkID>`; `spec.Options.mode` selects the
//! gateway behaviour: `l2` (default: the bridge gets no address), `gateway` (`isGateway`: the bridge gets the subnet's
//! gateway address), `masquerade` (`isGateway` + `ipMasq`). `mtu` defaults to 1500. Routes are not part of the config:
//! danm's own post-processing adds `routes`/`routes6` in the pod for every backend (behaviour §4.10).

use danm_guest_sdk::{
    Attachment, Backend, CniConfig, Info, Operation, TranslateError, Violation,
    check_device_pool_vs_host_device, check_mtu, check_network_id_length, network_to_translate,
    validate_network,
};

pub const MODES: [&str; 3] = ["l2", "gateway", "masquerade"];
pub const DEFAULT_MTU: u32 = 1500;
/// `br_` + NetworkID must fit in IFNAMSIZ (15); 10 keeps DANM's documented limit for every dynamic type.
pub const MAX_NETWORK_ID: usize = 10;

pub struct Bridge;

/// The Linux bridge a network's pods are attached to.
pub fn bridge_name(network_id: &str, host_device: &str) -> String {
    if host_device.is_empty() {
        format!("br_{network_id}")
    } else {
        host_device.to_owned()
    }
}

/// In `gateway` and `masquerade` mode the reference bridge plugin gives the bridge the first address of each subnet
/// (danm's IPAM result names no gateway): no pod may be given that address. It must lie outside the allocation pool,
/// or be a gateway of `routes`/`routes6`, which danm's IPAM never hands out.
fn check_gateway_kept_from_pods(spec: &danm_api::NetworkSpec, out: &mut Vec<Violation>) {
    let o = &spec.options;
    let routed = |routes: &Option<std::collections::BTreeMap<String, String>>, gw: &str| {
        routes.iter().flat_map(|r| r.values()).any(|g| g == gw)
    };
    if let Some(gw) = first_host_v4(&o.cidr)
        && pool_holds_v4(&o.allocation_pool.start, &o.allocation_pool.end, gw)
        && !routed(&o.routes, &gw.to_string())
    {
        out.push(Violation::new(
            "BRIDGE-GATEWAY",
            "spec.Options.allocation_pool",
            format!(
                "bridge network:{} in {} mode: the bridge takes {gw}, the first address of cidr {}, as the pods' \
                 gateway, and allocation_pool {}-{} would give it to a pod: start the pool after it, or name it as a \
                 routes gateway",
                spec.network_id, o.mode, o.cidr, o.allocation_pool.start, o.allocation_pool.end
            ),
        ));
    }
    if let Some(gw) = first_host_v6(&o.net6)
        && pool_holds_v6(&o.allocation_pool_v6.start, &o.allocation_pool_v6.end, gw)
        && !routed(&o.routes6, &gw.to_string())
    {
        out.push(Violation::new(
            "BRIDGE-GATEWAY",
            "spec.Options.allocation_pool_v6",
            format!(
                "bridge network:{} in {} mode: the bridge takes {gw}, the first address of net6 {}, as the pods' \
                 gateway, and allocation_pool_v6 would give it to a pod: start the pool after it, or name it as a \
                 routes6 gateway",
                spec.network_id, o.mode, o.net6
            ),
        ));
    }
}

fn split_cidr(cidr: &str) -> Option<(&str, u32)> {
    let (addr, len) = cidr.split_once('/')?;
    Some((addr, len.parse().ok()?))
}

fn first_host_v4(cidr: &str) -> Option<std::net::Ipv4Addr> {
    let (addr, len) = split_cidr(cidr)?;
    let addr: std::net::Ipv4Addr = addr.parse().ok()?;
    let mask = u32::MAX.checked_shl(32u32.checked_sub(len)?).unwrap_or(0);
    Some((u32::from(addr) & mask).checked_add(1)?.into())
}

fn first_host_v6(cidr: &str) -> Option<std::net::Ipv6Addr> {
    let (addr, len) = split_cidr(cidr)?;
    let addr: std::net::Ipv6Addr = addr.parse().ok()?;
    let mask = u128::MAX.checked_shl(128u32.checked_sub(len)?).unwrap_or(0);
    Some((u128::from(addr) & mask).checked_add(1)?.into())
}

/// Whether a pool (empty bounds: the whole subnet, as the webhook's defaults make it) holds `ip`.
fn pool_holds_v4(start: &str, end: &str, ip: std::net::Ipv4Addr) -> bool {
    let start = start.parse::<std::net::Ipv4Addr>().map_or(0, u32::from);
    let end = end.parse::<std::net::Ipv4Addr>().map_or(u32::MAX, u32::from);
    (start..=end).contains(&u32::from(ip))
}

fn pool_holds_v6(start: &str, end: &str, ip: std::net::Ipv6Addr) -> bool {
    let start = start.parse::<std::net::Ipv6Addr>().map_or(0, u128::from);
    let end = end.parse::<std::net::Ipv6Addr>().map_or(u128::MAX, u128::from);
    (start..=end).contains(&u128::from(ip))
}

impl Backend for Bridge {
    fn network_types() -> Vec<String> {
        vec!["bridge".into()]
    }

    fn describe() -> Info {
        Info {
            description: "veth pair into a Linux bridge via the reference bridge CNI plugin, addresses from danm's IPAM"
                .into(),
            needs_ipam: true,
            needs_device_pool: false,
            needs_host_device: false,
            max_network_id_length: Some(MAX_NETWORK_ID as u32),
        }
    }

    fn validate(op: Operation, network_json: &str, _old: Option<&str>) -> Vec<Violation> {
        validate_network(op, network_json, |spec, out| {
            check_network_id_length(spec, MAX_NETWORK_ID, out);
            check_device_pool_vs_host_device(spec, out);
            if !spec.options.mode.is_empty() && !MODES.contains(&spec.options.mode.as_str()) {
                out.push(Violation::new(
                    "MODE",
                    "spec.Options.mode",
                    format!(
                        "Spec.Options.mode:{} is not a bridge mode (one of {})!",
                        spec.options.mode,
                        MODES.join(", ")
                    ),
                ));
            }
            if spec.options.host_device.chars().count() > 15 {
                out.push(Violation::new(
                    "BRIDGE-NAME",
                    "spec.Options.host_device",
                    format!(
                        "Spec.Options.host_device:{} is too long for a bridge name (15 characters)!",
                        spec.options.host_device
                    ),
                ));
            }
            check_mtu(spec, out);
            if matches!(spec.options.mode.as_str(), "gateway" | "masquerade") {
                check_gateway_kept_from_pods(spec, out);
            }
        })
    }

    fn translate(att: Attachment) -> Result<String, TranslateError> {
        let net = network_to_translate(&att)?;
        let pod = format!("{}/{}", att.pod_namespace, att.pod_name);
        let spec = &net.spec;
        if spec.network_id.is_empty() {
            return Err(TranslateError::new(
                "T-NO-ID",
                format!(
                    "bridge network:{} has no NetworkID (interface {} of pod {pod})",
                    net.name(),
                    att.interface_name
                ),
            ));
        }
        let mode = spec.options.mode.as_str();
        let mtu = if spec.options.mtu == 0 {
            DEFAULT_MTU
        } else {
            spec.options.mtu
        };
        let mut cfg = CniConfig::new(&att, &spec.network_id, "bridge");
        cfg.set("bridge", bridge_name(&spec.network_id, &spec.options.host_device))
            .set("isGateway", matches!(mode, "gateway" | "masquerade"))
            .set("ipMasq", mode == "masquerade")
            .set("mtu", mtu);
        Ok(cfg.finish(&att))
    }
}

danm_guest_sdk::backend_plugin!(Bridge, "../../wit/v0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn network(options: Value) -> String {
        json!({"kind":"DanmNet","metadata":{"name":"lan","namespace":"default"},
               "spec":{"NetworkID":"lan","NetworkType":"bridge","Options":options}})
        .to_string()
    }

    fn attach(options: Value) -> Attachment {
        Attachment {
            network_json: network(options),
            interface_name: "eth1".into(),
            ip4: Some("10.20.0.3/24".into()),
            cni_version: "1.0.0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn translation_targets_the_reference_bridge_plugin() {
        let cfg: Value =
            serde_json::from_str(&Bridge::translate(attach(json!({"cidr":"10.20.0.0/24"}))).unwrap())
                .unwrap();
        assert_eq!(
            cfg,
            json!({"cniVersion":"1.0.0","name":"lan","type":"bridge","bridge":"br_lan","isGateway":false,"ipMasq":false,
                   "mtu":1500,"ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.20.0.3/24","version":4}]}})
        );
    }

    #[test]
    fn host_device_names_the_bridge_and_masquerade_mode_enables_gateway_and_nat() {
        let cfg: Value = serde_json::from_str(
            &Bridge::translate(attach(
                json!({"host_device":"cbr0","mode":"masquerade","mtu":1450}),
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(cfg["bridge"], "cbr0");
        assert_eq!(
            (
                cfg["isGateway"].as_bool(),
                cfg["ipMasq"].as_bool(),
                cfg["mtu"].as_u64()
            ),
            (Some(true), Some(true), Some(1450))
        );
    }

    #[test]
    fn gateway_mode_keeps_the_bridges_address_from_pods() {
        let rules = |options: Value| -> Vec<(String, String)> {
            Bridge::validate(Operation::Create, &network(options), None)
                .into_iter()
                .map(|v| (v.rule, v.field))
                .collect()
        };
        let refused = vec![(
            "BRIDGE-GATEWAY".to_owned(),
            "spec.Options.allocation_pool".to_owned(),
        )];
        // The webhook's default pool starts at the subnet's first address: the bridge's.
        let pool = json!({"start":"10.0.0.1","end":"10.0.0.254"});
        assert_eq!(
            rules(json!({"cidr":"10.0.0.0/24","mode":"gateway","allocation_pool":pool})),
            refused
        );
        assert_eq!(rules(json!({"cidr":"10.0.0.0/24","mode":"masquerade"})), refused);
        let msg = Bridge::validate(
            Operation::Create,
            &network(json!({"cidr":"10.0.0.0/24","mode":"gateway","allocation_pool":pool})),
            None,
        )[0]
        .message
        .clone();
        assert!(msg.contains("10.0.0.1") && msg.contains("network:lan"), "{msg}");
        // A pool after it, or the address named as a route's gateway (never handed out), is fine; so is l2 mode.
        let after = json!({"start":"10.0.0.2","end":"10.0.0.254"});
        assert!(rules(json!({"cidr":"10.0.0.0/24","mode":"gateway","allocation_pool":after})).is_empty());
        assert!(
            rules(
                json!({"cidr":"10.0.0.0/24","mode":"gateway","allocation_pool":pool,
                         "routes":{"0.0.0.0/0":"10.0.0.1"}})
            )
            .is_empty()
        );
        assert!(rules(json!({"cidr":"10.0.0.0/24","mode":"l2","allocation_pool":pool})).is_empty());
        // IPv6: the first address of net6.
        assert_eq!(
            rules(json!({"net6":"fd00::/120","mode":"gateway"})),
            vec![(
                "BRIDGE-GATEWAY".to_owned(),
                "spec.Options.allocation_pool_v6".to_owned()
            )]
        );
        assert!(
            rules(json!({"net6":"fd00::/120","mode":"gateway","allocation_pool_v6":{"start":"fd00::10","end":"fd00::ff"}}))
                .is_empty()
        );
    }

    #[test]
    fn validation_accepts_gateway_mode_and_rejects_vepa() {
        assert!(Bridge::validate(Operation::Create, &network(json!({"mode":"gateway"})), None).is_empty());
        assert_eq!(
            Bridge::validate(Operation::Create, &network(json!({"mode":"vepa"})), None)[0].rule,
            "MODE"
        );
    }

    #[test]
    fn validation_rejects_a_bridge_name_longer_than_ifnamsiz() {
        let v = Bridge::validate(
            Operation::Create,
            &network(json!({"host_device":"a-very-long-bridge0"})),
            None,
        );
        assert_eq!(v[0].rule, "BRIDGE-NAME");
    }
}
