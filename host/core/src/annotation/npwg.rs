//! Parsing of the Network Plumbing WG pod annotation `k8s.v1.cni.cncf.io/networks` (NPWG multi-net spec v1.x,
//! behaviour §2.1) into network selection elements.
//!
//! Both forms of the spec are read:
//! - the comma list: `name`, `ns/name`, `name@ifname`, `ns/name@ifname`, elements separated by commas, whitespace
//!   around elements and their parts tolerated;
//! - the JSON list of network selection elements with `name` (required), `namespace`, `interface`, `ips`, `mac`,
//!   `default-route`, `ipam-claim-reference`, `cni-args`, `bandwidth`, `portMappings` and `infiniband-guid`.
//!   Unknown keys are kept in [`NetworkSelection::unknown`] and otherwise ignored, as the spec asks of
//!   implementations (`interfaceRequest`, Multus's old name of `interface`, is read as `interface`).
//!
//! Every error names the annotation, the element's index and the field. How the elements are passed to the
//! delegated plugins (runtimeConfig, `args.cni`) is [`NetworkSelection::runtime_config`] and
//! [`NetworkSelection::cni_args`].

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

use crate::naming::validate_name;

/// The NPWG network selection annotation.
pub const NETWORKS_ANNOTATION: &str = "k8s.v1.cni.cncf.io/networks";
/// Multus's annotation naming the pod's cluster default network (danm refuses it, behaviour §2.1).
pub const DEFAULT_NETWORK_ANNOTATION: &str = "v1.multus-cni.io/default-network";

/// One network selection element: one interface on the network a NetworkAttachmentDefinition describes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkSelection {
    /// The element's position in the annotation.
    pub index: usize,
    /// The NAD's name.
    pub name: String,
    /// The NAD's namespace; `None`: the pod's.
    pub namespace: Option<String>,
    /// The interface name asked for; `None`: the implementation numbers them (`net1`, `net2`, ...).
    pub interface: Option<String>,
    /// Static addresses, as written (an address, optionally with a `/prefix`).
    pub ips: Vec<String>,
    /// The MAC address asked for, in the canonical lower-case `aa:bb:cc:dd:ee:ff` form.
    pub mac: Option<String>,
    /// Gateways of the default route the interface should carry.
    pub default_route: Vec<IpAddr>,
    /// The IPAMClaim (in the pod's namespace) the interface's addresses are bound to (spec v1.3).
    pub ipam_claim_reference: Option<String>,
    /// Extra CNI args, passed on in the config's `args.cni`.
    pub cni_args: Option<Map<String, Value>>,
    /// The bandwidth capability's value, passed on as given.
    pub bandwidth: Option<Value>,
    /// The portMappings capability's value, passed on as given.
    pub port_mappings: Option<Vec<Value>>,
    /// The InfiniBand GUID asked for.
    pub infiniband_guid: Option<String>,
    /// Keys the spec does not define, kept as written and ignored.
    pub unknown: Map<String, Value>,
}

impl NetworkSelection {
    /// The NAD's namespace: the element's, else the pod's.
    pub fn nad_namespace<'a>(&'a self, pod_namespace: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(pod_namespace)
    }

    /// The name network-status and errors use: `<namespace>/<name>`.
    pub fn qualified_name(&self, pod_namespace: &str) -> String {
        format!("{}/{}", self.nad_namespace(pod_namespace), self.name)
    }

    /// The capability arguments of the element, keyed as the CNI conventions name the capabilities (`ips`, `mac`,
    /// `bandwidth`, `portMappings`, `infinibandGUID`). A delegated plugin gets those it declares in its
    /// `capabilities` as its `runtimeConfig`, as libcni does.
    pub fn runtime_config(&self) -> Map<String, Value> {
        let mut map = Map::new();
        if !self.ips.is_empty() {
            map.insert("ips".into(), Value::from(self.ips.clone()));
        }
        if let Some(mac) = &self.mac {
            map.insert("mac".into(), Value::from(mac.clone()));
        }
        if let Some(b) = &self.bandwidth {
            map.insert("bandwidth".into(), b.clone());
        }
        if let Some(p) = &self.port_mappings {
            map.insert("portMappings".into(), Value::from(p.clone()));
        }
        if let Some(g) = &self.infiniband_guid {
            map.insert("infinibandGUID".into(), Value::from(g.clone()));
        }
        map
    }

    /// The `args.cni` of the delegated config: the element's `cni-args`, plus `ips` and `mac` when asked for (the
    /// keys the reference plugins read there, e.g. the static IPAM).
    pub fn cni_args(&self) -> Map<String, Value> {
        let mut map = self.cni_args.clone().unwrap_or_default();
        if !self.ips.is_empty() {
            map.insert("ips".into(), Value::from(self.ips.clone()));
        }
        if let Some(mac) = &self.mac {
            map.insert("mac".into(), Value::from(mac.clone()));
        }
        map
    }
}

/// Why the annotation could not be used: the annotation, the element's index and the field are always named.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {}{reason}", where_(.index, .field))]
pub struct NpwgError {
    pub annotation: &'static str,
    /// `None`: the annotation as a whole.
    pub index: Option<usize>,
    /// The element's field, when one is at fault.
    pub field: Option<&'static str>,
    pub reason: String,
}

fn where_(index: &Option<usize>, field: &Option<&'static str>) -> String {
    match (index, field) {
        (Some(i), Some(f)) => format!("element {i} field {f}: "),
        (Some(i), None) => format!("element {i}: "),
        (None, _) => String::new(),
    }
}

impl NpwgError {
    fn element(index: usize, field: Option<&'static str>, reason: impl fmt::Display) -> Self {
        NpwgError {
            annotation: NETWORKS_ANNOTATION,
            index: Some(index),
            field,
            reason: reason.to_string(),
        }
    }
}

/// Parses the value of `k8s.v1.cni.cncf.io/networks`. A value starting with `[` (after whitespace) is the JSON
/// form, anything else the comma list. An empty value (or only whitespace) selects nothing.
pub fn parse_networks(value: &str) -> Result<Vec<NetworkSelection>, NpwgError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        parse_json(trimmed)
    } else {
        parse_list(trimmed)
    }
}

fn parse_list(value: &str) -> Result<Vec<NetworkSelection>, NpwgError> {
    value
        .split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            if item.is_empty() {
                return Err(NpwgError::element(index, Some("name"), "is empty"));
            }
            let (reference, interface) = match item.split_once('@') {
                Some((r, i)) => (r.trim(), Some(i.trim().to_owned())),
                None => (item, None),
            };
            let (namespace, name) = match reference.split_once('/') {
                Some((ns, n)) => (Some(ns.trim().to_owned()), n.trim().to_owned()),
                None => (None, reference.to_owned()),
            };
            let selection = NetworkSelection {
                index,
                name,
                namespace,
                interface,
                ..NetworkSelection::default()
            };
            check_names(&selection)?;
            Ok(selection)
        })
        .collect()
}

fn parse_json(value: &str) -> Result<Vec<NetworkSelection>, NpwgError> {
    let json: Value = serde_json::from_str(value).map_err(|e| NpwgError {
        annotation: NETWORKS_ANNOTATION,
        index: None,
        field: None,
        reason: format!("not valid JSON: {e}"),
    })?;
    let Value::Array(elements) = json else {
        unreachable!("a value starting with '[' that parses is an array");
    };
    elements
        .into_iter()
        .enumerate()
        .map(|(index, element)| parse_element(index, element))
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_element(index: usize, element: Value) -> Result<NetworkSelection, NpwgError> {
    let Value::Object(object) = element else {
        return Err(NpwgError::element(
            index,
            None,
            format!("must be a JSON object, found {}", kind(&element)),
        ));
    };
    let mut selection = NetworkSelection {
        index,
        ..NetworkSelection::default()
    };
    let wrong = |field: &'static str, expected: &str, found: &Value| {
        NpwgError::element(
            index,
            Some(field),
            format!("must be {expected}, found {}", kind(found)),
        )
    };
    let string = |field: &'static str, v: Value| match v {
        Value::String(s) => Ok(Some(s)),
        Value::Null => Ok(None),
        other => Err(wrong(field, "a string", &other)),
    };
    let strings = |field: &'static str, v: Value| match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Ok(s),
                other => Err(wrong(field, "a list of strings", &other)),
            })
            .collect(),
        other => Err(wrong(field, "a list of strings", &other)),
    };
    for (key, v) in object {
        match key.as_str() {
            "name" => selection.name = string("name", v)?.unwrap_or_default(),
            "namespace" => selection.namespace = string("namespace", v)?,
            "interface" => selection.interface = string("interface", v)?,
            "interfaceRequest" if selection.interface.is_none() => {
                selection.interface = string("interfaceRequest", v)?
            }
            "ips" => {
                selection.ips = strings("ips", v)?;
                for ip in &selection.ips {
                    if ip.parse::<IpAddr>().is_err() && ip.parse::<IpNetwork>().is_err() {
                        return Err(NpwgError::element(
                            index,
                            Some("ips"),
                            format!("\"{ip}\" is not an IP address or CIDR"),
                        ));
                    }
                }
            }
            "mac" => {
                selection.mac = match string("mac", v)? {
                    None => None,
                    Some(m) => Some(parse_mac(&m).ok_or_else(|| {
                        NpwgError::element(index, Some("mac"), format!("\"{m}\" is not a MAC address"))
                    })?),
                }
            }
            "default-route" => {
                selection.default_route = strings("default-route", v)?
                    .into_iter()
                    .map(|g| {
                        g.parse().map_err(|_| {
                            NpwgError::element(
                                index,
                                Some("default-route"),
                                format!("\"{g}\" is not an IP address"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
            "ipam-claim-reference" => selection.ipam_claim_reference = string("ipam-claim-reference", v)?,
            "cni-args" => {
                selection.cni_args = match v {
                    Value::Null => None,
                    Value::Object(m) => Some(m),
                    other => return Err(wrong("cni-args", "an object", &other)),
                }
            }
            "bandwidth" => {
                selection.bandwidth = match v {
                    Value::Null => None,
                    Value::Object(m) => Some(Value::Object(m)),
                    other => return Err(wrong("bandwidth", "an object", &other)),
                }
            }
            "portMappings" => {
                selection.port_mappings = match v {
                    Value::Null => None,
                    Value::Array(items) => {
                        if let Some(bad) = items.iter().find(|i| !i.is_object()) {
                            return Err(wrong("portMappings", "a list of objects", bad));
                        }
                        Some(items)
                    }
                    other => return Err(wrong("portMappings", "a list of objects", &other)),
                }
            }
            "infiniband-guid" => selection.infiniband_guid = string("infiniband-guid", v)?,
            _ => {
                selection.unknown.insert(key, v);
            }
        }
    }
    check_names(&selection)?;
    if let Some(claim) = &selection.ipam_claim_reference
        && !is_object_name(claim)
    {
        return Err(NpwgError::element(
            index,
            Some("ipam-claim-reference"),
            format!("\"{claim}\" is not a valid object name"),
        ));
    }
    Ok(selection)
}

/// The name, namespace and interface of an element, whatever form it came in.
fn check_names(s: &NetworkSelection) -> Result<(), NpwgError> {
    if s.name.is_empty() {
        return Err(NpwgError::element(s.index, Some("name"), "is empty"));
    }
    if !is_object_name(&s.name) {
        return Err(NpwgError::element(
            s.index,
            Some("name"),
            format!("\"{}\" is not a valid object name", s.name),
        ));
    }
    if let Some(ns) = &s.namespace
        && (!is_object_name(ns) || ns.contains('.'))
    {
        return Err(NpwgError::element(
            s.index,
            Some("namespace"),
            format!("\"{ns}\" is not a valid namespace name"),
        ));
    }
    if let Some(ifname) = &s.interface
        && let Err(problem) = validate_name(ifname)
    {
        return Err(NpwgError::element(
            s.index,
            Some("interface"),
            format!("\"{ifname}\" is not a valid interface name: {problem}"),
        ));
    }
    Ok(())
}

/// A Kubernetes object name (DNS-1123 subdomain): at most 253 characters of lower-case alphanumerics, `-` and `.`,
/// alphanumeric at both ends.
fn is_object_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 253
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// A MAC address (`aa:bb:cc:dd:ee:ff` or with `-`), in canonical lower-case colon form.
fn parse_mac(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6
        || parts
            .iter()
            .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    Some(parts.join(":").to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
