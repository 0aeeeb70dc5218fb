//! The parent link of an interface, named the way netwatcher names the host links it creates
//! (behaviour §4.9, §6).

use danm_api::NetworkSpec;

use crate::{Attachment, NetworkDoc, TranslateError};

/// `vx_<NetworkID>` if `vxlan` is set, else `<NetworkID>.<vlan>` if `vlan` is set, else `host_device`.
pub fn parent_link(spec: &NetworkSpec) -> String {
    if spec.options.vxlan != 0 {
        format!("vx_{}", spec.network_id)
    } else if spec.options.vlan != 0 {
        format!("{}.{}", spec.network_id, spec.options.vlan)
    } else {
        spec.options.host_device.clone()
    }
}

/// The link an interface of `kind` goes on: the host's resolution in the attachment if it made one, else
/// [`parent_link`]; an error naming the network and the pod when the network names no parent at all.
pub fn attachment_parent(kind: &str, net: &NetworkDoc, att: &Attachment) -> Result<String, TranslateError> {
    let parent = att.parent.clone().unwrap_or_else(|| parent_link(&net.spec));
    if parent.is_empty() {
        return Err(TranslateError::new(
            "T-NO-PARENT",
            format!(
                "{kind} network:{} (NetworkID {}) has no host_device, vlan or vxlan to put interface {} of pod {}/{} on",
                net.name(),
                net.spec.network_id,
                att.interface_name,
                att.pod_namespace,
                att.pod_name
            ),
        ));
    }
    Ok(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(vlan: u32, vxlan: u32) -> NetworkSpec {
        let mut s = NetworkSpec {
            network_id: "ext".into(),
            ..Default::default()
        };
        s.options.host_device = "ens3".into();
        s.options.vlan = vlan;
        s.options.vxlan = vxlan;
        s
    }

    #[test]
    fn vxlan_wins_over_vlan_and_host_device() {
        assert_eq!(parent_link(&spec(0, 50)), "vx_ext");
    }

    #[test]
    fn vlan_names_the_vlan_link_after_the_network_id() {
        assert_eq!(parent_link(&spec(200, 0)), "ext.200");
    }

    #[test]
    fn without_a_vni_the_host_device_is_the_parent() {
        assert_eq!(parent_link(&spec(0, 0)), "ens3");
    }
}
