//! The attachment a backend translates, its error, the CNI config it builds, and the `fakeipam` block carrying
//! danm's addresses.

use serde_json::{Map, Value, json};

/// Mirrors `danm:plugin/backend.attachment`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attachment {
    pub network_json: String,
    pub interface_name: String,
    pub ip4: Option<String>,
    pub ip6: Option<String>,
    pub parent: Option<String>,
    pub device_id: Option<String>,
    pub cni_version: String,
    pub pod_namespace: String,
    pub pod_name: String,
}

/// Mirrors `danm:plugin/backend.translate-error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslateError {
    pub code: String,
    pub message: String,
}

impl TranslateError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        TranslateError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// `{"type":"fakeipam","ips":[{"ipcidr":..,"version":4},{"ipcidr":..,"version":6}]}`, or `None` when danm allocated
/// nothing (`""` and `none` are not addresses, behaviour §4.6).
pub fn fakeipam(ip4: Option<&str>, ip6: Option<&str>) -> Option<Value> {
    let real = |ip: Option<&str>| ip.filter(|s| !s.is_empty() && *s != "none").map(str::to_owned);
    let mut ips = Vec::new();
    if let Some(ip) = real(ip4) {
        ips.push(json!({"ipcidr": ip, "version": 4}));
    }
    if let Some(ip) = real(ip6) {
        ips.push(json!({"ipcidr": ip, "version": 6}));
    }
    if ips.is_empty() {
        None
    } else {
        Some(json!({"type": "fakeipam", "ips": ips}))
    }
}

/// The CNI config a backend translates an attachment into: `cniVersion` (the runtime's), `name` (the NetworkID) and
/// `type` (the CNI plugin danm runs), then the backend's own keys, and last danm's addresses as the `fakeipam` block.
#[derive(Clone, Debug, PartialEq)]
pub struct CniConfig(Map<String, Value>);

impl CniConfig {
    pub fn new(att: &Attachment, network_id: &str, plugin_type: &str) -> Self {
        let mut map = Map::new();
        map.insert("cniVersion".into(), att.cni_version.clone().into());
        map.insert("name".into(), network_id.into());
        map.insert("type".into(), plugin_type.into());
        CniConfig(map)
    }

    /// Sets a key of the plugin's config.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// The config as JSON, with the attachment's `fakeipam` block as `ipam`; with no addresses `ipam` stays absent
    /// (an L2 interface).
    pub fn finish(mut self, att: &Attachment) -> String {
        if let Some(ipam) = fakeipam(att.ip4.as_deref(), att.ip6.as_deref()) {
            self.0.insert("ipam".into(), ipam);
        }
        Value::Object(self.0).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fakeipam_lists_both_families_in_order() {
        let v = fakeipam(Some("10.0.0.5/24"), Some("2001:db8::5/64")).unwrap();
        assert_eq!(
            v,
            json!({"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4},{"ipcidr":"2001:db8::5/64","version":6}]})
        );
    }

    #[test]
    fn a_config_has_version_name_type_the_backend_keys_and_danms_addresses() {
        let att = Attachment {
            cni_version: "1.0.0".into(),
            ip4: Some("10.0.0.5/24".into()),
            ..Attachment::default()
        };
        let mut cfg = CniConfig::new(&att, "ext", "macvlan");
        cfg.set("master", "ens3").set("mtu", 9000);
        let v: Value = serde_json::from_str(&cfg.finish(&att)).unwrap();
        assert_eq!(
            v,
            json!({"cniVersion":"1.0.0","name":"ext","type":"macvlan","master":"ens3","mtu":9000,
                   "ipam":{"type":"fakeipam","ips":[{"ipcidr":"10.0.0.5/24","version":4}]}})
        );
        let l2 = CniConfig::new(&Attachment::default(), "ext", "macvlan").finish(&Attachment::default());
        assert!(!l2.contains("ipam"), "{l2}");
    }

    #[test]
    fn none_and_empty_are_not_addresses() {
        assert_eq!(fakeipam(Some("none"), Some("")), None);
        assert_eq!(fakeipam(None, Some("none")), None);
    }
}
