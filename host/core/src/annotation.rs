//! Parsing of the pod's `danm.k8s.io/interfaces` annotation (behaviour §2) into typed interface requests.
//!
//! Decisions (recorded here because the CNI is written against them):
//! - The annotation is looked up under the exact key `danm.k8s.io/interfaces`, then `danm.io/interfaces`, then, as
//!   DANM did, the first key (in sorted order) that contains `danm.k8s.io/interfaces` or `danm.io/interfaces`
//!   case-insensitively.
//! - Element keys are matched case-insensitively, as Go's `encoding/json` did, but two keys that fold to the same
//!   name are an error. Unknown keys are an error; so are DANM's internal keys `DefaultIfaceName`, `Device` and
//!   `SequenceId` (behaviour §10 B18).
//! - A `null` member means the same as an absent one (Go decoded it that way). A `null` annotation value or `[]`
//!   means "no interfaces requested" (the caller then resolves the default network, see [`crate::resolve`]).
//! - `ip`/`ip6` are validated here into IPAM's [`IpRequest`] (re-exported): `ip` must be IPv4 and `ip6` IPv6; the
//!   optional `/len` suffix must be a valid prefix length for the family but is otherwise ignored (the network's
//!   prefix is used, behaviour §2).
//! - `proutes`/`proutes6` are kept as the strings the user wrote (they are copied verbatim into the DanmEp); invalid
//!   entries are skipped at post-processing, as DANM did (behaviour §4.10).
//!   [`InterfaceRequest::policy_routes`] gives the valid ones, typed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

pub mod npwg;

use danm_api::NetworkKind;
use ipnetwork::IpNetwork;
use serde_json::Value;

/// The accepted annotation keys, preferred first.
pub const ANNOTATION_KEYS: [&str; 2] = [
    danm_api::INTERFACES_ANNOTATION,
    danm_api::INTERFACES_ANNOTATION_ALT,
];

/// Element keys DANM's Go struct accepted but that are internal; rejected (behaviour §10 B18).
pub const INTERNAL_KEYS: [&str; 3] = ["DefaultIfaceName", "Device", "SequenceId"];

/// A reference to one network object: its kind and name. The namespace is the pod's for DanmNet and
/// TenantNetwork; ClusterNetworks are cluster-scoped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkRef {
    pub kind: NetworkKind,
    pub name: String,
}

impl NetworkRef {
    pub fn new(kind: NetworkKind, name: impl Into<String>) -> Self {
        NetworkRef {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for NetworkRef {
    /// `DanmNet:mgmt`, `ClusterNetwork:external`: the kind and the name, as operators read them in errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// What the pod asked for one address family of one interface: IPAM's own request type, so the CNI passes it to
/// [`crate::ipam::reserve`] as is. Its `Display` gives DANM's string form (`""`, `none`, `dynamic`, the address).
pub use crate::ipam::IpRequest;

/// Parses one `ip`/`ip6` value. `v6` selects the family a static address must have; a `/len` suffix must be a
/// valid prefix length for that family and is then dropped (the network's prefix is used, behaviour §2).
pub fn parse_ip_request(value: &str, v6: bool) -> Result<IpRequest, String> {
    match value {
        "" => return Ok(IpRequest::Absent),
        "none" => return Ok(IpRequest::None),
        "dynamic" => return Ok(IpRequest::Dynamic),
        _ => {}
    }
    let (addr, prefix) = match value.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (value, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| "not \"dynamic\", \"none\" or an IP address (optionally with a /prefix)".to_owned())?;
    let (family, max) = if addr.is_ipv6() { (6, 128u8) } else { (4, 32u8) };
    if addr.is_ipv6() != v6 {
        return Err(format!(
            "an IPv{family} address where an IPv{} one is expected",
            if v6 { 6 } else { 4 }
        ));
    }
    if let Some(p) = prefix {
        match p.parse::<u8>() {
            Ok(len) if len <= max && !p.starts_with('+') => {}
            _ => return Err(format!("prefix length \"{p}\" is not between 0 and {max}")),
        }
    }
    Ok(IpRequest::Static(addr))
}

/// One element of the annotation: one interface the pod wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRequest {
    /// The element's position in the annotation; it is the interface's sequence id (behaviour §4.4).
    pub index: usize,
    pub network: NetworkRef,
    pub ip: IpRequest,
    pub ip6: IpRequest,
    /// IPv4 policy routes, destination CIDR → gateway, as written by the user.
    pub proutes: Option<BTreeMap<String, String>>,
    /// IPv6 policy routes.
    pub proutes6: Option<BTreeMap<String, String>>,
}

/// A policy route whose destination and gateway both parsed and belong to the requested family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyRoute {
    pub dst: IpNetwork,
    pub gw: IpAddr,
}

impl InterfaceRequest {
    /// The valid policy routes of one family (`v6` = false: `proutes`, true: `proutes6`), in destination order.
    /// Entries whose destination or gateway does not parse, or has the wrong family, are left out, as DANM's
    /// post-processing skipped them quietly (behaviour §4.10).
    pub fn policy_routes(&self, v6: bool) -> Vec<PolicyRoute> {
        let map = if v6 { &self.proutes6 } else { &self.proutes };
        valid_routes(map.iter().flatten(), v6)
    }
}

/// Parses `dst → gw` string pairs (network `routes`/`routes6`, annotation `proutes`/`proutes6`) and keeps the valid
/// ones of one family, in the given order.
pub fn valid_routes<'a>(
    entries: impl IntoIterator<Item = (&'a String, &'a String)>,
    v6: bool,
) -> Vec<PolicyRoute> {
    entries
        .into_iter()
        .filter_map(|(dst, gw)| {
            let dst: IpNetwork = dst.parse().ok()?;
            let gw: IpAddr = gw.parse().ok()?;
            (dst.is_ipv6() == v6 && gw.is_ipv6() == v6).then_some(PolicyRoute { dst, gw })
        })
        .collect()
}

/// Why the annotation could not be used. Every variant names the annotation key, or the element index and the
/// offending element key or value.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    #[error("annotation {key} is not valid JSON: {source}")]
    NotJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("annotation {key} must be a JSON array of network connections, found {found}")]
    NotAnArray { key: String, found: &'static str },
    #[error("network connection no.:{index} must be a JSON object, found {found}")]
    NotAnObject { index: usize, found: &'static str },
    #[error("network connection no.:{index} contains invalid number of network references:{count}")]
    InvalidNetworkReferences { index: usize, count: usize },
    #[error("network connection no.:{index} has unknown key:{key} (allowed: {allowed})")]
    UnknownKey {
        index: usize,
        key: String,
        allowed: &'static str,
    },
    #[error(
        "network connection no.:{index} has key:{key}, which is internal to DANM and cannot be set by a pod"
    )]
    InternalKey { index: usize, key: String },
    #[error("network connection no.:{index} has key:{key} more than once (keys are case-insensitive)")]
    DuplicateKey { index: usize, key: String },
    #[error("network connection no.:{index} key:{key} must be a {expected}, found {found}")]
    WrongType {
        index: usize,
        key: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("network connection no.:{index} key:{key} has invalid value:\"{value}\": {reason}")]
    InvalidIp {
        index: usize,
        key: &'static str,
        value: String,
        reason: String,
    },
}

const ALLOWED: &str = "network, tenantNetwork, clusterNetwork, ip, ip6, proutes, proutes6";
const KNOWN_KEYS: [&str; 7] = [
    "network",
    "tenantNetwork",
    "clusterNetwork",
    "ip",
    "ip6",
    "proutes",
    "proutes6",
];

/// Finds the interfaces annotation among a pod's annotations: `(key, value)`, or `None` when the pod has none.
pub fn find_annotation(annotations: &BTreeMap<String, String>) -> Option<(&str, &str)> {
    for key in ANNOTATION_KEYS {
        if let Some((k, v)) = annotations.get_key_value(key) {
            return Some((k.as_str(), v.as_str()));
        }
    }
    annotations
        .iter()
        .find(|(k, _)| {
            let lower = k.to_ascii_lowercase();
            ANNOTATION_KEYS.iter().any(|wanted| lower.contains(wanted))
        })
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Parses the pod's interface requests from its annotations. No annotation, `null` or `[]` give an empty list: the
/// caller then falls back to the default network ([`crate::resolve::requested_or_default`]).
pub fn parse_pod_annotations(
    annotations: &BTreeMap<String, String>,
) -> Result<Vec<InterfaceRequest>, AnnotationError> {
    match find_annotation(annotations) {
        None => Ok(Vec::new()),
        Some((key, value)) => parse_interfaces(key, value),
    }
}

/// Parses one annotation value. `key` is only used in error messages.
pub fn parse_interfaces(key: &str, value: &str) -> Result<Vec<InterfaceRequest>, AnnotationError> {
    let json: Value = serde_json::from_str(value).map_err(|source| AnnotationError::NotJson {
        key: key.to_owned(),
        source,
    })?;
    let elements = match json {
        Value::Null => return Ok(Vec::new()),
        Value::Array(elements) => elements,
        other => {
            return Err(AnnotationError::NotAnArray {
                key: key.to_owned(),
                found: type_name(&other),
            });
        }
    };
    elements
        .iter()
        .enumerate()
        .map(|(index, element)| parse_element(index, element))
        .collect()
}

fn parse_element(index: usize, element: &Value) -> Result<InterfaceRequest, AnnotationError> {
    let empty = serde_json::Map::new();
    let object = match element {
        // Go decoded `null` into an empty struct, which then had no network reference.
        Value::Null => &empty,
        Value::Object(object) => object,
        other => {
            return Err(AnnotationError::NotAnObject {
                index,
                found: type_name(other),
            });
        }
    };

    // Canonical key → value, rejecting unknown, internal and case-folded duplicate keys.
    let mut fields: BTreeMap<&'static str, &Value> = BTreeMap::new();
    for (key, value) in object {
        if INTERNAL_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(AnnotationError::InternalKey {
                index,
                key: key.clone(),
            });
        }
        let Some(canonical) = KNOWN_KEYS.iter().find(|k| k.eq_ignore_ascii_case(key)) else {
            return Err(AnnotationError::UnknownKey {
                index,
                key: key.clone(),
                allowed: ALLOWED,
            });
        };
        if fields.insert(canonical, value).is_some() {
            return Err(AnnotationError::DuplicateKey {
                index,
                key: key.clone(),
            });
        }
    }

    let string = |key: &'static str| -> Result<String, AnnotationError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(AnnotationError::WrongType {
                index,
                key,
                expected: "string",
                found: type_name(other),
            }),
        }
    };
    let routes = |key: &'static str| -> Result<Option<BTreeMap<String, String>>, AnnotationError> {
        let wrong = |found| AnnotationError::WrongType {
            index,
            key,
            expected: "map of strings",
            found,
        };
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(dst, gw)| match gw {
                    Value::String(gw) => Ok((dst.clone(), gw.clone())),
                    other => Err(wrong(type_name(other))),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()
                .map(Some),
            Some(other) => Err(wrong(type_name(other))),
        }
    };
    let ip = |key: &'static str, v6: bool| -> Result<IpRequest, AnnotationError> {
        let value = string(key)?;
        parse_ip_request(&value, v6).map_err(|reason| AnnotationError::InvalidIp {
            index,
            key,
            value,
            reason,
        })
    };

    let references: Vec<NetworkRef> = [
        ("network", NetworkKind::DanmNet),
        ("tenantNetwork", NetworkKind::TenantNetwork),
        ("clusterNetwork", NetworkKind::ClusterNetwork),
    ]
    .into_iter()
    .map(|(key, kind)| string(key).map(|name| (!name.is_empty()).then(|| NetworkRef::new(kind, name))))
    .collect::<Result<Vec<_>, _>>()?
    .into_iter()
    .flatten()
    .collect();
    let network = match <[NetworkRef; 1]>::try_from(references) {
        Ok([network]) => network,
        Err(references) => {
            return Err(AnnotationError::InvalidNetworkReferences {
                index,
                count: references.len(),
            });
        }
    };

    Ok(InterfaceRequest {
        index,
        network,
        ip: ip("ip", false)?,
        ip6: ip("ip6", true)?,
        proutes: routes("proutes")?,
        proutes6: routes("proutes6")?,
    })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
