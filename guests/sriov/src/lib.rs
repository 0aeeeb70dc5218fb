//! The sriov backend: validates SR-IOV networks (V25) and translates them into configs for sriov-cni
//! (`deviceID` = the VF's PCI address from the device pool, `vlan`, `master` = the PF name the host resolved).

use danm_guest_sdk::{
    Attachment, Backend, CniConfig, Info, Operation, TranslateError, Violation, check_mtu,
    check_network_id_length, network_to_translate, validate_network,
};

pub struct Sriov;

impl Backend for Sriov {
    fn network_types() -> Vec<String> {
        vec!["sriov".into()]
    }

    fn describe() -> Info {
        Info {
            description: "SR-IOV VF from the network's device pool (sriov-cni semantics)".into(),
            needs_ipam: true,
            needs_device_pool: true,
            needs_host_device: false,
            max_network_id_length: Some(10),
        }
    }

    fn validate(op: Operation, network_json: &str, _old: Option<&str>) -> Vec<Violation> {
        validate_network(op, network_json, |spec, out| {
            check_network_id_length(spec, 10, out);
            if spec.options.device_pool.is_empty() || !spec.options.host_device.is_empty() {
                let field = if spec.options.device_pool.is_empty() {
                    "spec.Options.device_pool"
                } else {
                    "spec.Options.host_device"
                };
                out.push(Violation::new(
                "V25",
                field,
                "Spec.Options.device_pool must, and Spec.Options.host_device cannot be provided for SR-IOV networks!",
            ));
            }
            if !spec.options.mode.is_empty() {
                out.push(Violation::new(
                    "MODE",
                    "spec.Options.mode",
                    "Spec.Options.mode is not supported by SR-IOV networks!",
                ));
            }
            check_mtu(spec, out);
        })
    }

    fn translate(att: Attachment) -> Result<String, TranslateError> {
        let net = network_to_translate(&att)?;
        let pod = format!("{}/{}", att.pod_namespace, att.pod_name);
        let spec = &net.spec;
        let Some(device) = att.device_id.clone().filter(|d| !d.is_empty()) else {
            return Err(TranslateError::new(
                "T-NO-DEVICE",
                format!(
                    "sriov network:{} (NetworkID {}) needs a device from pool {} for interface {} of pod {pod}, none was given",
                    net.name(),
                    spec.network_id,
                    spec.options.device_pool,
                    att.interface_name
                ),
            ));
        };
        let mut cfg = CniConfig::new(&att, &spec.network_id, "sriov");
        cfg.set("deviceID", device).set("vlan", spec.options.vlan);
        if let Some(pf) = att.parent.as_ref().filter(|p| !p.is_empty()) {
            cfg.set("master", pf.as_str());
        }
        if spec.options.mtu != 0 {
            cfg.set("mtu", spec.options.mtu);
        }
        Ok(cfg.finish(&att))
    }
}

danm_guest_sdk::backend_plugin!(Sriov, "../../wit/v0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn network(options: Value) -> String {
        json!({"kind":"DanmNet","metadata":{"name":"sriov-a","namespace":"default"},
               "spec":{"NetworkID":"sriov-a","NetworkType":"sriov","Options":options}})
        .to_string()
    }

    #[test]
    fn translation_carries_the_vf_vlan_and_pf() {
        let att = Attachment {
            network_json: network(json!({"device_pool":"nokia.k8s.io/sriov_ens1f0","vlan":500})),
            interface_name: "eth1".into(),
            ip4: Some("192.168.10.2/24".into()),
            parent: Some("ens1f0".into()),
            device_id: Some("0000:af:06.1".into()),
            cni_version: "0.3.1".into(),
            ..Default::default()
        };
        let cfg: Value = serde_json::from_str(&Sriov::translate(att).unwrap()).unwrap();
        assert_eq!(
            cfg,
            json!({"cniVersion":"0.3.1","name":"sriov-a","type":"sriov","deviceID":"0000:af:06.1","vlan":500,"master":"ens1f0",
                   "ipam":{"type":"fakeipam","ips":[{"ipcidr":"192.168.10.2/24","version":4}]}})
        );
    }

    #[test]
    fn translation_without_a_device_names_the_pool_and_pod() {
        let att = Attachment {
            network_json: network(json!({"device_pool":"nokia.k8s.io/sriov_ens1f0"})),
            pod_namespace: "ns".into(),
            pod_name: "p".into(),
            ..Default::default()
        };
        let err = Sriov::translate(att).unwrap_err();
        assert_eq!(err.code, "T-NO-DEVICE");
        assert!(
            err.message.contains("nokia.k8s.io/sriov_ens1f0") && err.message.contains("ns/p"),
            "{}",
            err.message
        );
    }

    #[test]
    fn v25_requires_a_device_pool_and_forbids_a_host_device() {
        assert!(Sriov::validate(Operation::Create, &network(json!({"device_pool":"a/b"})), None).is_empty());
        assert_eq!(
            Sriov::validate(Operation::Create, &network(json!({})), None)[0].rule,
            "V25"
        );
        let v = Sriov::validate(
            Operation::Create,
            &network(json!({"device_pool":"a/b","host_device":"ens1"})),
            None,
        );
        assert_eq!(
            (v[0].rule.as_str(), v[0].field.as_str()),
            ("V25", "spec.Options.host_device")
        );
    }

    #[test]
    fn v21_rejects_a_long_network_id() {
        let json = json!({"spec":{"NetworkID":"sriov-abcdef","Options":{"device_pool":"a/b"}}}).to_string();
        assert_eq!(Sriov::validate(Operation::Create, &json, None)[0].rule, "V21");
    }
}
