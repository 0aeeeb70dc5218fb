//! The backend trait a plugin implements, its static facts, and the checks several backends share.

use danm_api::NetworkSpec;

use crate::{Attachment, Operation, TranslateError, Violation};

/// Mirrors `danm:plugin/backend.info`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub description: String,
    pub needs_ipam: bool,
    pub needs_device_pool: bool,
    pub needs_host_device: bool,
    pub max_network_id_length: Option<u32>,
}

/// A backend plugin, exported with [`crate::backend_plugin!`].
pub trait Backend {
    fn network_types() -> Vec<String>;
    fn describe() -> Info;
    fn validate(op: Operation, network_json: &str, old_network_json: Option<&str>) -> Vec<Violation>;
    fn translate(att: Attachment) -> Result<String, TranslateError>;
}

/// The facts of a backend whose interface hangs off `host_device` or off the VLAN/VxLAN link netwatcher makes for it
/// (ipvlan, macvlan): addresses from danm's IPAM, a host device, and a NetworkID of at most 10 characters.
pub fn link_backend_info(description: &str) -> Info {
    Info {
        description: description.to_owned(),
        needs_ipam: true,
        needs_device_pool: false,
        needs_host_device: true,
        max_network_id_length: Some(10),
    }
}

/// The checks of such a backend: V21 at 10 characters, V26, its `modes` (`kind` names it in the message), the MTU.
pub fn check_link_backend(spec: &NetworkSpec, kind: &str, modes: &[&str], out: &mut Vec<Violation>) {
    check_network_id_length(spec, 10, out);
    check_device_pool_vs_host_device(spec, out);
    check_mode(spec, kind, modes, out);
    check_mtu(spec, out);
}

/// V21 as DANM documents it (behaviour §10 B12): a dynamic network's NetworkID may not exceed `max`
/// characters, VNI or not, since netwatcher's `<NetworkID>.<vlan>` / `vx_<NetworkID>` links must fit in
/// IFNAMSIZ.
pub fn check_network_id_length(spec: &NetworkSpec, max: usize, out: &mut Vec<Violation>) {
    if spec.network_id.chars().count() > max {
        out.push(Violation::new(
            "V21",
            "spec.NetworkID",
            format!(
                "Spec.NetworkID cannot be longer than {max} characters (otherwise VLAN and VxLAN host interface creation might fail)!"
            ),
        ));
    }
}

/// V26: host_device and device_pool exclude each other (every backend except sriov, which has V25).
pub fn check_device_pool_vs_host_device(spec: &NetworkSpec, out: &mut Vec<Violation>) {
    if !spec.options.host_device.is_empty() && !spec.options.device_pool.is_empty() {
        out.push(Violation::new(
            "V26",
            "spec.Options.device_pool",
            "Spec.Options.device_pool and Spec.Options.host_device cannot be provided together!",
        ));
    }
}

/// `MODE`: an empty mode (the backend's default) or one of the backend's `modes`; `kind` names the backend in the message.
pub fn check_mode(spec: &NetworkSpec, kind: &str, modes: &[&str], out: &mut Vec<Violation>) {
    let mode = spec.options.mode.as_str();
    if !mode.is_empty() && !modes.contains(&mode) {
        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        out.push(Violation::new(
            "MODE",
            "spec.Options.mode",
            format!(
                "Spec.Options.mode:{mode} is not {article} {kind} mode (one of {})!",
                modes.join(", ")
            ),
        ));
    }
}

/// `MTU`: 0 (the backend's default) or 68..=65535, the range Linux accepts for an Ethernet-like link.
pub fn check_mtu(spec: &NetworkSpec, out: &mut Vec<Violation>) {
    let mtu = spec.options.mtu;
    if mtu != 0 && !(68..=65535).contains(&mtu) {
        out.push(Violation::new(
            "MTU",
            "spec.Options.mtu",
            format!("Spec.Options.mtu:{mtu} is invalid, it must be 0 (the default) or between 68 and 65535!"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> NetworkSpec {
        NetworkSpec {
            network_id: id.into(),
            ..Default::default()
        }
    }

    #[test]
    fn network_id_of_ten_characters_is_accepted_and_eleven_rejected() {
        let mut v = Vec::new();
        check_network_id_length(&spec("abcdefghij"), 10, &mut v);
        assert!(v.is_empty());
        check_network_id_length(&spec("abcdefghijk"), 10, &mut v);
        assert_eq!(v[0].rule, "V21");
        assert_eq!(v[0].field, "spec.NetworkID");
    }

    #[test]
    fn host_device_and_device_pool_together_are_rejected() {
        let mut s = spec("a");
        s.options.host_device = "ens3".into();
        let mut v = Vec::new();
        check_device_pool_vs_host_device(&s, &mut v);
        assert!(v.is_empty());
        s.options.device_pool = "nokia.k8s.io/sriov_ens1f0".into();
        check_device_pool_vs_host_device(&s, &mut v);
        assert_eq!(v[0].rule, "V26");
    }

    #[test]
    fn mtu_must_be_zero_or_a_linux_link_mtu() {
        for (mtu, ok) in [
            (0, true),
            (68, true),
            (9000, true),
            (65535, true),
            (67, false),
            (65536, false),
        ] {
            let mut s = spec("a");
            s.options.mtu = mtu;
            let mut v = Vec::new();
            check_mtu(&s, &mut v);
            assert_eq!(v.is_empty(), ok, "mtu {mtu}");
        }
    }
}
