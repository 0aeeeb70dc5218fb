//! Which Services svcwatcher manages and what they select: the `danm.k8s.io/*` (or `danm.io/*`) annotations
//! of behaviour §7.

use std::collections::{BTreeMap, BTreeSet};

use danm_api::{ANNOTATION_PREFIXES, NetworkKind};
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

/// The tolerate-unready annotation (`"true"` publishes unready pods as ready).
pub const TOLERATE_UNREADY_ANNOTATION: &str = "service.alpha.kubernetes.io/tolerate-unready-endpoints";

/// What a managed Service selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// Every pair must be among the pod's labels.
    pub selector: BTreeMap<String, String>,
    /// The networks (kind, name) whose DanmEps count; several keys are ORed.
    pub networks: BTreeSet<(NetworkKind, String)>,
    /// `publishNotReadyAddresses` or the tolerate-unready annotation: unready pods count as ready.
    pub publish_not_ready: bool,
}

impl Selection {
    pub fn selects_labels(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    }

    pub fn selects_network(&self, kind: NetworkKind, name: &str) -> bool {
        self.networks.contains(&(kind, name.to_owned()))
    }
}

/// A managed-looking Service whose annotations cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("service {namespace}/{name}: annotation {key} is not a JSON object of string labels: {message}")]
    BadSelector {
        namespace: String,
        name: String,
        key: String,
        message: String,
    },
}

/// The annotation `suffix` under the first prefix that has it (`danm.k8s.io/` before `danm.io/`).
fn annotation<'a>(annotations: &'a BTreeMap<String, String>, suffix: &str) -> Option<(String, &'a str)> {
    ANNOTATION_PREFIXES.iter().find_map(|prefix| {
        let key = format!("{prefix}{suffix}");
        annotations.get(&key).map(|v| (key, v.as_str()))
    })
}

/// What `svc` selects, or `None` if svcwatcher does not manage it: managed are Services without `spec.selector`
/// (Kubernetes' own controllers fill the endpoints of the others) carrying a non-empty selector annotation and at
/// least one network annotation (behaviour §7).
pub fn selection(svc: &Service) -> Result<Option<Selection>, SelectionError> {
    let Some(annotations) = svc.metadata.annotations.as_ref() else {
        return Ok(None);
    };
    let spec = svc.spec.as_ref();
    if spec
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
    {
        return Ok(None);
    }
    let Some((key, raw)) = annotation(annotations, "selector") else {
        return Ok(None);
    };
    let bad = |message: String| SelectionError::BadSelector {
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        key: key.clone(),
        message,
    };
    let value: Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(bad("not an object".to_owned()));
    };
    let mut selector = BTreeMap::new();
    for (k, v) in map {
        match v {
            Value::String(s) => {
                selector.insert(k, s);
            }
            other => return Err(bad(format!("label {k} has the non-string value {other}"))),
        }
    }
    let mut networks = BTreeSet::new();
    for (suffix, kind) in [
        ("network", NetworkKind::DanmNet),
        ("tenantNetwork", NetworkKind::TenantNetwork),
        ("clusterNetwork", NetworkKind::ClusterNetwork),
    ] {
        if let Some((_, name)) = annotation(annotations, suffix)
            && !name.is_empty()
        {
            networks.insert((kind, name.to_owned()));
        }
    }
    if selector.is_empty() || networks.is_empty() {
        return Ok(None);
    }
    let publish_not_ready = spec.and_then(|s| s.publish_not_ready_addresses) == Some(true)
        || annotations
            .get(TOLERATE_UNREADY_ANNOTATION)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    Ok(Some(Selection {
        selector,
        networks,
        publish_not_ready,
    }))
}

#[cfg(test)]
mod tests;
