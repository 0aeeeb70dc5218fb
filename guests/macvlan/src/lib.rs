//! The macvlan backend: validates macvlan networks and translates them into configs for the reference macvlan plugin
//! (DANM's shape, behaviour §4.6, with B17 fixed: `type` is set, mode and MTU come from `spec.Options`; without an MTU
//! the interface inherits its parent's).

use danm_guest_sdk::{
    Attachment, Backend, CniConfig, Info, Operation, TranslateError, Violation, attachment_parent,
    check_link_backend, link_backend_info, network_to_translate, validate_network,
};

/// macvlan modes the kernel and the reference plugin know.
pub const MODES: [&str; 4] = ["bridge", "vepa", "private", "passthru"];
/// DANM's hard-coded mode, now the default. (DANM also fixed the MTU at 1500, which fails on a VxLAN parent; without
/// `mtu` the interface inherits its parent's MTU, as the reference plugin does.)
pub const DEFAULT_MODE: &str = "bridge";

pub struct Macvlan;

impl Backend for Macvlan {
    fn network_types() -> Vec<String> {
        vec!["macvlan".into()]
    }

    fn describe() -> Info {
        link_backend_info(
            "macvlan interface on host_device or on its VLAN/VxLAN link (reference macvlan plugin semantics)",
        )
    }

    fn validate(op: Operation, network_json: &str, _old: Option<&str>) -> Vec<Violation> {
        validate_network(op, network_json, |spec, out| {
            check_link_backend(spec, "macvlan", &MODES, out)
        })
    }

    fn translate(att: Attachment) -> Result<String, TranslateError> {
        let net = network_to_translate(&att)?;
        let spec = &net.spec;
        let parent = attachment_parent("macvlan", &net, &att)?;
        let mode = if spec.options.mode.is_empty() {
            DEFAULT_MODE
        } else {
            &spec.options.mode
        };
        let mut cfg = CniConfig::new(&att, &spec.network_id, "macvlan");
        cfg.set("master", parent).set("mode", mode);
        if spec.options.mtu != 0 {
            cfg.set("mtu", spec.options.mtu);
        }
        Ok(cfg.finish(&att))
    }
}

danm_guest_sdk::backend_plugin!(Macvlan, "../../wit/v0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn network(options: Value) -> String {
        json!({"apiVersion":"danm.k8s.io/v1","kind":"DanmNet","metadata":{"name":"ext","namespace":"default"},
               "spec":{"NetworkID":"ext","NetworkType":"macvlan","Options":options}})
        .to_string()
    }

    fn attach(options: Value, ip4: Option<&str>) -> Attachment {
        Attachment {
            network_json: network(options),
            interface_name: "ext1".into(),
            ip4: ip4.map(str::to_owned),
            cni_version: "0.3.1".into(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            ..Default::default()
        }
    }

    fn translate(att: Attachment) -> Value {
        serde_json::from_str(&Macvlan::translate(att).unwrap()).unwrap()
    }

    #[test]
    fn translation_keeps_danms_defaults_and_sets_the_type() {
        let cfg = translate(attach(
            json!({"host_device":"ens3","cidr":"10.0.0.0/24"}),
            Some("10.0.0.5/24"),
        ));
        assert_eq!(
            cfg,
            json!({"cniVersion":"0.3.1","name":"ext","type":"macvlan","master":"ens3","mode":"bridge",
                   "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4}]}})
        );
    }

    #[test]
    fn mode_and_mtu_come_from_the_network_options() {
        let cfg = translate(attach(
            json!({"host_device":"ens3","mode":"vepa","mtu":9000}),
            None,
        ));
        assert_eq!(cfg["mode"], "vepa");
        assert_eq!(cfg["mtu"], 9000);
        assert!(cfg.get("ipam").is_none(), "no addresses, no ipam block");
    }

    #[test]
    fn the_parent_is_the_vlan_link_netwatcher_creates() {
        let cfg = translate(attach(json!({"host_device":"ens3","vlan":200}), None));
        assert_eq!(cfg["master"], "ext.200");
    }

    #[test]
    fn a_parent_resolved_by_the_host_wins() {
        let mut att = attach(json!({"host_device":"ens3"}), None);
        att.parent = Some("veth0".into());
        assert_eq!(translate(att)["master"], "veth0");
    }

    #[test]
    fn a_network_without_any_parent_cannot_be_translated() {
        let err = Macvlan::translate(attach(json!({}), None)).unwrap_err();
        assert_eq!(err.code, "T-NO-PARENT");
        assert!(err.message.contains("default/p"), "{}", err.message);
    }

    #[test]
    fn validation_accepts_known_modes_and_rejects_others() {
        assert!(Macvlan::validate(Operation::Create, &network(json!({"mode":"private"})), None).is_empty());
        let v = Macvlan::validate(Operation::Create, &network(json!({"mode":"l3"})), None);
        assert_eq!(v[0].rule, "MODE");
    }

    #[test]
    fn validation_rejects_host_device_with_device_pool_and_bad_mtu() {
        let v = Macvlan::validate(
            Operation::Update,
            &network(json!({"host_device":"a","device_pool":"x/y","mtu":10})),
            None,
        );
        let rules: Vec<_> = v.iter().map(|v| v.rule.as_str()).collect();
        assert_eq!(rules, ["V26", "MTU"]);
    }
}
