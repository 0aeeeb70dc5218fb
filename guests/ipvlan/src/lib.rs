//! The ipvlan backend (DANM's built-in, behaviour §4.9): validates ipvlan networks and translates them into
//! configs for the reference ipvlan plugin. Mode defaults to DANM's `l2`; MTU 0 (the default) inherits the
//! parent's MTU, as DANM did.

use danm_guest_sdk::{
    Attachment, Backend, CniConfig, Info, Operation, TranslateError, Violation, attachment_parent,
    check_link_backend, link_backend_info, network_to_translate, validate_network,
};

/// ipvlan modes the kernel and the reference plugin know.
pub const MODES: [&str; 3] = ["l2", "l3", "l3s"];
pub const DEFAULT_MODE: &str = "l2";

pub struct Ipvlan;

impl Backend for Ipvlan {
    fn network_types() -> Vec<String> {
        vec!["ipvlan".into()]
    }

    fn describe() -> Info {
        link_backend_info(
            "ipvlan interface on host_device or on its VLAN/VxLAN link (DANM's built-in backend)",
        )
    }

    fn validate(op: Operation, network_json: &str, _old: Option<&str>) -> Vec<Violation> {
        validate_network(op, network_json, |spec, out| {
            check_link_backend(spec, "ipvlan", &MODES, out)
        })
    }

    fn translate(att: Attachment) -> Result<String, TranslateError> {
        let net = network_to_translate(&att)?;
        let spec = &net.spec;
        let parent = attachment_parent("ipvlan", &net, &att)?;
        let mode = if spec.options.mode.is_empty() {
            DEFAULT_MODE
        } else {
            &spec.options.mode
        };
        let mut cfg = CniConfig::new(&att, &spec.network_id, "ipvlan");
        cfg.set("master", parent).set("mode", mode);
        // The reference plugin reads an absent or zero mtu as "inherit the master's MTU" (DANM's behaviour).
        if spec.options.mtu != 0 {
            cfg.set("mtu", spec.options.mtu);
        }
        Ok(cfg.finish(&att))
    }
}

danm_guest_sdk::backend_plugin!(Ipvlan, "../../wit/v0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn network(options: Value) -> String {
        json!({"apiVersion":"danm.k8s.io/v1","kind":"ClusterNetwork","metadata":{"name":"int"},
               "spec":{"NetworkID":"int","NetworkType":"ipvlan","Options":options}})
        .to_string()
    }

    fn attach(options: Value, ip4: Option<&str>, ip6: Option<&str>) -> Attachment {
        Attachment {
            network_json: network(options),
            interface_name: "int2".into(),
            ip4: ip4.map(str::to_owned),
            ip6: ip6.map(str::to_owned),
            cni_version: "1.0.0".into(),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            ..Default::default()
        }
    }

    #[test]
    fn translation_is_an_l2_ipvlan_inheriting_the_parent_mtu() {
        let out = Ipvlan::translate(attach(
            json!({"host_device":"ens4"}),
            Some("10.1.0.9/16"),
            Some("fd00::9/64"),
        ));
        let cfg: Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert_eq!(
            cfg,
            json!({"cniVersion":"1.0.0","name":"int","type":"ipvlan","master":"ens4","mode":"l2",
                   "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.1.0.9/16","version":4},{"ipcidr":"fd00::9/64","version":6}]}})
        );
    }

    #[test]
    fn mode_mtu_and_vxlan_parent_come_from_the_network() {
        let out = Ipvlan::translate(attach(
            json!({"host_device":"ens4","vxlan":77,"mode":"l3","mtu":1400}),
            None,
            None,
        ));
        let cfg: Value = serde_json::from_str(&out.unwrap()).unwrap();
        assert_eq!(
            (cfg["master"].as_str(), cfg["mode"].as_str(), cfg["mtu"].as_u64()),
            (Some("vx_int"), Some("l3"), Some(1400))
        );
    }

    #[test]
    fn validation_accepts_l3s_and_rejects_bridge_mode() {
        assert!(Ipvlan::validate(Operation::Create, &network(json!({"mode":"l3s"})), None).is_empty());
        assert_eq!(
            Ipvlan::validate(Operation::Create, &network(json!({"mode":"bridge"})), None)[0].rule,
            "MODE"
        );
    }

    #[test]
    fn validation_reports_malformed_json() {
        assert_eq!(Ipvlan::validate(Operation::Create, "{", None)[0].rule, "D1");
    }
}
