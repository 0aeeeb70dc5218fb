//! The attachment a backend translates, its error, and the `fakeipam` block carrying danm's addresses.

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
/// nothing (`""` and `none` are not addresses, spec §4.6).
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

/// Adds the fakeipam block of the attachment to `config`; with no addresses `ipam` stays absent (an L2 interface).
pub fn insert_ipam(config: &mut Map<String, Value>, att: &Attachment) {
    if let Some(ipam) = fakeipam(att.ip4.as_deref(), att.ip6.as_deref()) {
        config.insert("ipam".into(), ipam);
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
    fn none_and_empty_are_not_addresses() {
        assert_eq!(fakeipam(Some("none"), Some("")), None);
        assert_eq!(fakeipam(None, Some("none")), None);
    }
}
