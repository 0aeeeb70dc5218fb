//! What each watched object asks of the host: DANM networks and NADs turned into [`LinkSource`]s, and the NAD
//! `master` rewrite (behaviour §6) without the self-deletion bug (§10 B15).

use std::collections::BTreeMap;
use std::fmt;

use danm_api::{Network, NetworkAttachmentDefinition, NetworkKind};
use serde_json::{Map, Value};

/// Annotation holding the NAD's original `master` (the NIC) once netwatcher has pointed `master` at its link.
pub const ORIGINAL_MASTER_ANNOTATION: &str = "danm.k8s.io/original-master";
/// Annotation holding the `master` value netwatcher wrote, so a later `master` that differs is recognised as a
/// user edit (a new NIC) rather than netwatcher's own rewrite.
pub const REWRITTEN_MASTER_ANNOTATION: &str = "danm.k8s.io/rewritten-master";

/// Which watched kind an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Network(NetworkKind),
    Nad,
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceKind::Network(kind) => f.write_str(kind.as_str()),
            SourceKind::Nad => f.write_str("NetworkAttachmentDefinition"),
        }
    }
}

/// The object a link is wanted for: `DanmNet/ns/name`, `ClusterNetwork/name`, `NetworkAttachmentDefinition/ns/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceRef {
    pub kind: SourceKind,
    pub namespace: Option<String>,
    pub name: String,
}

impl SourceRef {
    pub fn new(kind: SourceKind, namespace: Option<&str>, name: &str) -> Self {
        SourceRef {
            kind,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.kind, ns, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// The link-relevant facts of one network or NAD. Only these four fields matter to netwatcher, so any other change
/// of the object leaves the links alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSource {
    pub owner: SourceRef,
    pub network_id: String,
    pub host_device: String,
    pub vlan: u32,
    pub vxlan: u32,
}

/// Errors reading a watched object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("{owner}: spec.config is not a JSON object: {message}")]
    BadNadConfig { owner: String, message: String },
    #[error("{owner}: spec.config field {field} has the wrong type: {message}")]
    BadNadField {
        owner: String,
        field: &'static str,
        message: String,
    },
}

/// The link-relevant facts of a DanmNet/TenantNetwork/ClusterNetwork. `kind` is the kind it was watched as (list
/// items may lack `kind`).
pub fn network_source(kind: NetworkKind, net: &Network) -> LinkSource {
    let opts = &net.spec.options;
    LinkSource {
        owner: SourceRef::new(SourceKind::Network(kind), net.namespace(), net.name()),
        network_id: net.spec.network_id.clone(),
        host_device: opts.host_device.clone(),
        vlan: opts.vlan,
        vxlan: opts.vxlan,
    }
}

/// The name of the VLAN host link of a network.
pub fn vlan_link_name(network_id: &str, vlan: u32) -> String {
    format!("{network_id}.{vlan}")
}

/// The name of the VxLAN host link of a network.
pub fn vxlan_link_name(network_id: &str) -> String {
    format!("vx_{network_id}")
}

/// What netwatcher makes of one NAD: its link needs, and the write that points `master` at the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NadView {
    /// `None` when the config has no top-level `type` (a conflist): netwatcher ignores it.
    pub source: Option<LinkSource>,
    /// The rewrite to apply, if the stored object differs from what it should be.
    pub update: Option<NadUpdate>,
}

/// A NAD rewrite: the new `spec.config` and annotation changes (`None` removes the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NadUpdate {
    pub config: String,
    pub annotations: BTreeMap<String, Option<String>>,
}

impl NadUpdate {
    /// Applies the update to a copy of `nad`.
    pub fn apply(&self, nad: &NetworkAttachmentDefinition) -> NetworkAttachmentDefinition {
        let mut out = nad.clone();
        out.spec.config = self.config.clone();
        let annotations = out.metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (key, value) in &self.annotations {
            match value {
                Some(v) => {
                    annotations.insert(key.clone(), v.clone());
                }
                None => {
                    annotations.remove(key);
                }
            }
        }
        if annotations.is_empty() {
            out.metadata.annotations = None;
        }
        out
    }
}

fn uint_field(obj: &Map<String, Value>, field: &'static str, owner: &SourceRef) -> Result<u32, SourceError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => {
            n.as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| SourceError::BadNadField {
                    owner: owner.to_string(),
                    field,
                    message: format!("{n} is not a non-negative 32-bit integer"),
                })
        }
        Some(other) => Err(SourceError::BadNadField {
            owner: owner.to_string(),
            field,
            message: format!("expected a number, got {other}"),
        }),
    }
}

fn str_field(
    obj: &Map<String, Value>,
    field: &'static str,
    owner: &SourceRef,
) -> Result<String, SourceError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(SourceError::BadNadField {
            owner: owner.to_string(),
            field,
            message: format!("expected a string, got {other}"),
        }),
    }
}

/// Recursively orders object keys, so the re-serialised config has sorted keys (as DANM wrote it) whatever
/// serde_json's map flavour is.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<String, Value> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Reads a NAD (behaviour §6): `name` → NetworkID, `master` → host_device, `vlan`, `vxlan`; a config without
/// a top-level `type` is ignored. With a VLAN or VxLAN, `master` must name netwatcher's link
/// (`<name>.<vlan>`, else `vx_<name>`); the NIC is kept in [`ORIGINAL_MASTER_ANNOTATION`] so the rewrite's
/// own update event does not move the link onto itself (B15). Without one, a master netwatcher rewrote
/// earlier is restored.
pub fn nad_view(nad: &NetworkAttachmentDefinition) -> Result<NadView, SourceError> {
    let owner = SourceRef::new(
        SourceKind::Nad,
        nad.metadata.namespace.as_deref(),
        nad.metadata.name.as_deref().unwrap_or_default(),
    );
    let ignored = NadView {
        source: None,
        update: None,
    };
    if nad.spec.config.trim().is_empty() {
        return Ok(ignored);
    }
    let value: Value = serde_json::from_str(&nad.spec.config).map_err(|e| SourceError::BadNadConfig {
        owner: owner.to_string(),
        message: e.to_string(),
    })?;
    let Value::Object(mut obj) = value else {
        return Err(SourceError::BadNadConfig {
            owner: owner.to_string(),
            message: "not an object".to_owned(),
        });
    };
    if !obj.contains_key("type") {
        return Ok(ignored);
    }
    let name = str_field(&obj, "name", &owner)?;
    let master = str_field(&obj, "master", &owner)?;
    let vlan = uint_field(&obj, "vlan", &owner)?;
    let vxlan = uint_field(&obj, "vxlan", &owner)?;

    let annotations = nad.metadata.annotations.clone().unwrap_or_default();
    let original = annotations.get(ORIGINAL_MASTER_ANNOTATION);
    let rewritten = annotations.get(REWRITTEN_MASTER_ANNOTATION);
    // The NIC: the remembered one while `master` is still what netwatcher wrote, else whatever `master` says now.
    let nic = match (original, rewritten) {
        (Some(original), Some(rewritten)) if *rewritten == master => original.clone(),
        _ => master.clone(),
    };

    let link = if vlan != 0 {
        Some(vlan_link_name(&name, vlan))
    } else if vxlan != 0 {
        Some(vxlan_link_name(&name))
    } else {
        None
    };
    let mut changes = BTreeMap::new();
    let want_master = match (&link, nic.is_empty()) {
        (Some(link), false) => {
            if original != Some(&nic) {
                changes.insert(ORIGINAL_MASTER_ANNOTATION.to_owned(), Some(nic.clone()));
            }
            if rewritten != Some(link) {
                changes.insert(REWRITTEN_MASTER_ANNOTATION.to_owned(), Some(link.clone()));
            }
            link.clone()
        }
        _ => {
            for key in [ORIGINAL_MASTER_ANNOTATION, REWRITTEN_MASTER_ANNOTATION] {
                if annotations.contains_key(key) {
                    changes.insert(key.to_owned(), None);
                }
            }
            nic.clone()
        }
    };
    let update = if want_master != master || !changes.is_empty() {
        if !want_master.is_empty() || obj.contains_key("master") {
            obj.insert("master".to_owned(), Value::String(want_master));
        }
        let config =
            serde_json::to_string(&sorted(Value::Object(obj))).map_err(|e| SourceError::BadNadConfig {
                owner: owner.to_string(),
                message: e.to_string(),
            })?;
        Some(NadUpdate {
            config,
            annotations: changes,
        })
    } else {
        None
    };
    Ok(NadView {
        source: Some(LinkSource {
            owner,
            network_id: name,
            host_device: nic,
            vlan,
            vxlan,
        }),
        update,
    })
}

#[cfg(test)]
mod tests;
