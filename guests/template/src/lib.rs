//! The host-device backend: NetworkType `host-device`, a host interface moved whole into the pod. It translates a
//! network object into a config for the reference `host-device` CNI plugin (Debian's containernetworking-plugins),
//! which danm executes from `CNI_PATH`, with danm's IPAM passed through `fakeipam`. It is also the template for a
//! backend written outside danm's repository: it uses only the WIT package and the guest SDK
//! (docs/writing-a-backend.md).
//!
//! Mapping: the device is `spec.Options.host_device`, the field a DANM network already uses to name the host
//! interface it works on; the plugin moves it into the pod under the interface name danm computed and gives it
//! back, under its own name, on DEL. `cidr`/`net6` addresses come from danm's IPAM (`fakeipam`); without them the
//! interface gets no address. Routes are danm's post-processing, as for every backend.
//!
//! Rules (the webhook runs them, and the CNI before it translates): a device is required (`HOST-DEVICE`) and must be a
//! Linux interface name (`HOST-DEVICE-NAME`); `vlan`/`vxlan` are refused (`HOST-DEVICE-VNI`: netwatcher's host links
//! are parents for ipvlan/macvlan, a host-device network takes the device itself); `mode` and `mtu` are refused (the
//! plugin keeps the device's own settings); `device_pool` and `host_device` exclude each other (V26).

use danm_guest_sdk::{
    Attachment, Backend, CniConfig, Info, NetworkSpec, Operation, TranslateError, Violation,
    check_device_pool_vs_host_device, network_to_translate, network_to_validate,
};

/// The NetworkType this plugin serves.
pub const NETWORK_TYPE: &str = "host-device";
/// The reference CNI plugin danm executes with the translated config.
pub const CNI_PLUGIN: &str = "host-device";
/// The longest Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

pub struct HostDevice;

/// Why `name` is not a Linux interface name, if it is not one.
pub fn bad_ifname(name: &str) -> Option<&'static str> {
    if name.len() > MAX_IFNAME {
        Some("is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("is not a link name")
    } else if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        Some("contains '/', ':' or white space")
    } else {
        None
    }
}

/// Every rule of a host-device network; `name` is the network's `metadata.name` for the messages.
pub fn check(name: &str, spec: &NetworkSpec, out: &mut Vec<Violation>) {
    let o = &spec.options;
    if o.host_device.is_empty() {
        out.push(Violation::new(
            "HOST-DEVICE",
            "spec.Options.host_device",
            format!(
                "host-device network:{name} names no device: spec.Options.host_device must name the host interface \
                 to move into the pod!"
            ),
        ));
    } else if let Some(why) = bad_ifname(&o.host_device) {
        out.push(Violation::new(
            "HOST-DEVICE-NAME",
            "spec.Options.host_device",
            format!(
                "host-device network:{name}: spec.Options.host_device:{} {why}, it is not a Linux interface name!",
                o.host_device
            ),
        ));
    }
    check_device_pool_vs_host_device(spec, out);
    for (field, value) in [("spec.Options.vlan", o.vlan), ("spec.Options.vxlan", o.vxlan)] {
        if value != 0 {
            out.push(Violation::new(
                "HOST-DEVICE-VNI",
                field,
                format!(
                    "host-device network:{name}: {field}:{value} is not supported, the pod takes the host device \
                     itself (VLAN and VxLAN host links are parents for ipvlan and macvlan networks)!"
                ),
            ));
        }
    }
    if !o.mode.is_empty() {
        out.push(Violation::new(
            "MODE",
            "spec.Options.mode",
            format!(
                "host-device network:{name}: spec.Options.mode:{} is not supported, host-device has no modes!",
                o.mode
            ),
        ));
    }
    if o.mtu != 0 {
        out.push(Violation::new(
            "MTU",
            "spec.Options.mtu",
            format!(
                "host-device network:{name}: spec.Options.mtu:{} is not supported, the device keeps its own MTU!",
                o.mtu
            ),
        ));
    }
}

impl Backend for HostDevice {
    fn network_types() -> Vec<String> {
        vec![NETWORK_TYPE.into()]
    }

    fn describe() -> Info {
        Info {
            description: "a host interface (spec.Options.host_device) moved into the pod via the reference \
                          host-device CNI plugin, addresses from danm's IPAM"
                .into(),
            needs_ipam: true,
            needs_device_pool: false,
            needs_host_device: true,
            // No link is named after the NetworkID.
            max_network_id_length: None,
        }
    }

    fn validate(op: Operation, network_json: &str, _old: Option<&str>) -> Vec<Violation> {
        match network_to_validate(op, network_json) {
            Ok(net) => {
                let mut out = Vec::new();
                check(net.name(), &net.spec, &mut out);
                out
            }
            Err(answer) => answer,
        }
    }

    fn translate(att: Attachment) -> Result<String, TranslateError> {
        let net = network_to_translate(&att)?;
        let device = net.spec.options.host_device.as_str();
        if device.is_empty() {
            return Err(TranslateError::new(
                "T-NO-DEVICE",
                format!(
                    "host-device network:{} has no spec.Options.host_device to move in as interface {} of pod {}/{}",
                    net.name(),
                    att.interface_name,
                    att.pod_namespace,
                    att.pod_name
                ),
            ));
        }
        // `name` is the NetworkID as for danm's other backends; a network without one falls back to its own name.
        let id = if net.spec.network_id.is_empty() {
            net.name()
        } else {
            net.spec.network_id.as_str()
        };
        let mut cfg = CniConfig::new(&att, id, CNI_PLUGIN);
        cfg.set("device", device);
        Ok(cfg.finish(&att))
    }
}

danm_guest_sdk::backend_plugin!(HostDevice, "../../wit/v0.1.0");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn network(options: Value) -> String {
        json!({"apiVersion":"danm.k8s.io/v1","kind":"DanmNet","metadata":{"name":"hd","namespace":"default"},
               "spec":{"NetworkID":"hd","NetworkType":"host-device","Options":options}})
        .to_string()
    }

    fn attach(options: Value, ip4: Option<&str>) -> Attachment {
        Attachment {
            network_json: network(options),
            interface_name: "eth1".into(),
            ip4: ip4.map(Into::into),
            cni_version: "1.0.0".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            ..Default::default()
        }
    }

    fn violations(options: Value) -> Vec<Violation> {
        HostDevice::validate(Operation::Create, &network(options), None)
    }

    #[test]
    fn it_serves_only_host_device_and_asks_for_danms_ipam() {
        assert_eq!(HostDevice::network_types(), ["host-device"]);
        let info = HostDevice::describe();
        assert!(info.needs_ipam && info.needs_host_device && !info.needs_device_pool);
    }

    #[test]
    fn translation_targets_the_reference_host_device_plugin_with_danms_addresses() {
        let cfg: Value = serde_json::from_str(
            &HostDevice::translate(attach(
                json!({"host_device":"ens5f1","cidr":"10.40.0.0/24"}),
                Some("10.40.0.7/24"),
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            cfg,
            json!({"cniVersion":"1.0.0","name":"hd","type":"host-device","device":"ens5f1",
                   "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.40.0.7/24","version":4}]}})
        );
    }

    #[test]
    fn without_addresses_the_config_has_no_ipam() {
        let cfg = HostDevice::translate(attach(json!({"host_device":"ens5f1"}), None)).unwrap();
        assert!(!cfg.contains("ipam"), "{cfg}");
    }

    #[test]
    fn translation_without_a_device_names_the_network_the_field_and_the_pod() {
        let e = HostDevice::translate(attach(json!({}), None)).unwrap_err();
        assert_eq!(e.code, "T-NO-DEVICE");
        for part in ["network:hd", "spec.Options.host_device", "eth1", "default/web-0"] {
            assert!(e.message.contains(part), "{part} missing: {}", e.message);
        }
    }

    #[test]
    fn a_network_with_a_device_is_valid() {
        assert_eq!(
            violations(json!({"host_device":"ens5f1","cidr":"10.40.0.0/24"})),
            []
        );
    }

    #[test]
    fn a_network_without_a_device_is_refused_naming_the_network_and_the_field() {
        let v = violations(json!({"cidr":"10.40.0.0/24"}));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(
            (v[0].rule.as_str(), v[0].field.as_str()),
            ("HOST-DEVICE", "spec.Options.host_device")
        );
        assert!(
            v[0].message.contains("network:hd") && v[0].message.contains("spec.Options.host_device"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn a_device_that_is_no_interface_name_is_refused() {
        for bad in ["a-very-long-device0", "ens/5", "ens 5", ".."] {
            let v = violations(json!({ "host_device": bad }));
            assert_eq!(v[0].rule, "HOST-DEVICE-NAME", "{bad}");
        }
    }

    #[test]
    fn vnis_modes_mtus_and_device_pools_are_refused_each_naming_its_field() {
        let options = json!({"host_device":"ens5f1","vlan":200,"vxlan":600,"mode":"l2","mtu":9000,
                             "device_pool":"nokia.k8s.io/sriov_ens1f0"});
        let v = violations(options);
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.Options.device_pool",
                "spec.Options.vlan",
                "spec.Options.vxlan",
                "spec.Options.mode",
                "spec.Options.mtu"
            ]
        );
    }

    #[test]
    fn delete_is_never_refused_and_bad_json_is_d1() {
        assert_eq!(
            HostDevice::validate(Operation::Delete, &network(json!({})), None),
            []
        );
        assert_eq!(HostDevice::validate(Operation::Create, "{", None)[0].rule, "D1");
    }
}
