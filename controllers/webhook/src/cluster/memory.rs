//! An in-memory cluster: a list of objects (JSON, v1 List, or multi-document YAML), resourceVersions, conditional
//! replaces, and injected API errors from `ApiFault` pseudo-objects (`apiVersion: acceptance.danm.io/v1`).

use std::sync::Mutex;
use std::sync::PoisonError;

use async_trait::async_trait;
use danm_api::{DanmEp, DanmIpBlock, TenantConfig};
use serde::Deserialize;
use serde_json::Value;

use super::{Cluster, ClusterError};

/// `apiVersion` of the acceptance corpus's fault pseudo-objects.
pub const FAULT_API_VERSION: &str = "acceptance.danm.io/v1";

/// Why an objects file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("objects are not valid JSON: {0}")]
    Json(String),
    #[error("objects are not valid YAML: {0}")]
    Yaml(String),
    #[error("object #{index} is not a Kubernetes object (no kind)")]
    NotAnObject { index: usize },
    #[error("ApiFault {name} is invalid: {reason}")]
    Fault { name: String, reason: String },
}

/// An API error to inject: `verb` (list|get|update) on `resource` fails with `code`/`message`, always or `times` times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiFault {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub code: u16,
    pub message: String,
    /// `None` = always.
    pub remaining: Option<u32>,
}

#[derive(Deserialize)]
struct FaultSpec {
    verb: String,
    #[serde(default)]
    group: String,
    resource: String,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    times: Option<Value>,
}

impl ApiFault {
    fn from_object(obj: &Value) -> Result<ApiFault, ObjectsError> {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let bad = |reason: String| ObjectsError::Fault {
            name: name.clone(),
            reason,
        };
        let spec: FaultSpec = serde_json::from_value(obj.get("spec").cloned().unwrap_or(Value::Null))
            .map_err(|e| bad(e.to_string()))?;
        let remaining = match &spec.times {
            None => None,
            Some(Value::String(s)) if s == "always" => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .ok_or_else(|| bad(format!("times {n} is not a count")))? as u32,
            ),
            Some(other) => return Err(bad(format!("times {other} is neither \"always\" nor a count"))),
        };
        let message = spec
            .message
            .or(spec.error)
            .unwrap_or_else(|| "injected API error".to_owned());
        Ok(ApiFault {
            verb: spec.verb,
            group: spec.group,
            resource: spec.resource,
            code: spec.code.unwrap_or(500),
            message,
            remaining,
        })
    }
}

/// Parses cluster objects: a JSON array, a JSON object (a `List` contributes its items), or multi-document YAML.
pub fn parse_objects(text: &str) -> Result<Vec<Value>, ObjectsError> {
    let trimmed = text.trim_start();
    let docs: Vec<Value> = if trimmed.is_empty() {
        Vec::new()
    } else if trimmed.starts_with('[') || trimmed.starts_with('{') {
        match serde_json::from_str::<Value>(trimmed).map_err(|e| ObjectsError::Json(e.to_string()))? {
            Value::Array(items) => items,
            v => vec![v],
        }
    } else {
        let mut out = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = Value::deserialize(doc).map_err(|e| ObjectsError::Yaml(e.to_string()))?;
            if !v.is_null() {
                out.push(v);
            }
        }
        out
    };
    let mut out = Vec::new();
    for d in docs {
        if d.get("kind").and_then(Value::as_str) == Some("List") {
            out.extend(
                d.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        } else if !d.is_null() {
            out.push(d);
        }
    }
    for (index, o) in out.iter().enumerate() {
        if o.get("kind").and_then(Value::as_str).is_none() {
            return Err(ObjectsError::NotAnObject { index });
        }
    }
    Ok(out)
}

struct State {
    objects: Vec<Value>,
    faults: Vec<ApiFault>,
    next_rv: u64,
    tenant_config_writes: u32,
}

/// The in-memory cluster.
pub struct MemoryCluster {
    state: Mutex<State>,
    /// How long each TenantConfig read and write takes, as a round trip to a real API server does (none by
    /// default); with it, concurrent reviews overlap as they do in a cluster.
    latency: std::time::Duration,
}

impl std::fmt::Debug for MemoryCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryCluster")
    }
}

fn is_kind(o: &Value, kind: &str) -> bool {
    o.get("kind").and_then(Value::as_str) == Some(kind)
}

fn name_of(o: &Value) -> &str {
    o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
}

impl MemoryCluster {
    /// A cluster holding `objects`; `ApiFault` pseudo-objects become faults. Objects without a resourceVersion get one.
    pub fn new(objects: Vec<Value>) -> Result<Self, ObjectsError> {
        let mut state = State {
            objects: Vec::new(),
            faults: Vec::new(),
            next_rv: 1,
            tenant_config_writes: 0,
        };
        for mut o in objects {
            if o.get("apiVersion").and_then(Value::as_str) == Some(FAULT_API_VERSION)
                && is_kind(&o, "ApiFault")
            {
                state.faults.push(ApiFault::from_object(&o)?);
                continue;
            }
            if o.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                let rv = state.next_rv.to_string();
                state.next_rv += 1;
                if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), Value::String(rv));
                } else if let Some(obj) = o.as_object_mut() {
                    obj.insert("metadata".into(), serde_json::json!({ "resourceVersion": rv }));
                }
            }
            state.objects.push(o);
        }
        Ok(MemoryCluster {
            state: Mutex::new(state),
            latency: std::time::Duration::ZERO,
        })
    }

    /// Parses `text` with [`parse_objects`] and builds the cluster.
    pub fn from_text(text: &str) -> Result<Self, ObjectsError> {
        Self::new(parse_objects(text)?)
    }

    /// Adds an API fault.
    pub fn inject(&self, fault: ApiFault) {
        self.lock().faults.push(fault);
    }

    /// Adds (or replaces, by kind/namespace/name) an object.
    pub fn put(&self, obj: Value) {
        let mut st = self.lock();
        let key = |o: &Value| {
            (
                o.get("kind").and_then(Value::as_str).unwrap_or("").to_owned(),
                o.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                name_of(o).to_owned(),
            )
        };
        let k = key(&obj);
        st.objects.retain(|o| key(o) != k);
        st.objects.push(obj);
    }

    /// Removes every object of `kind` named `name`.
    pub fn remove(&self, kind: &str, name: &str) {
        self.lock()
            .objects
            .retain(|o| !(is_kind(o, kind) && name_of(o) == name));
    }

    /// Every object (faults excluded), in load order.
    pub fn objects(&self) -> Vec<Value> {
        self.lock().objects.clone()
    }

    /// Each TenantConfig read and write takes `latency` from now on.
    pub fn with_latency(mut self, latency: std::time::Duration) -> Self {
        self.latency = latency;
        self
    }

    async fn round_trip(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// How many TenantConfig replaces were attempted (successful or not).
    pub fn tenant_config_writes(&self) -> u32 {
        self.lock().tenant_config_writes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn fault(&mut self, verb: &'static str, resource: &'static str) -> Result<(), ClusterError> {
        for f in &mut self.faults {
            if f.verb != verb || f.resource != resource || !(f.group.is_empty() || f.group == danm_api::GROUP)
            {
                continue;
            }
            match &mut f.remaining {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            return Err(match f.code {
                409 => ClusterError::Conflict {
                    resource,
                    name: String::new(),
                },
                code => ClusterError::Api {
                    verb,
                    resource,
                    code,
                    message: f.message.clone(),
                },
            });
        }
        Ok(())
    }

    fn decode<T: serde::de::DeserializeOwned>(o: &Value, resource: &'static str) -> Result<T, ClusterError> {
        serde_json::from_value(o.clone()).map_err(|e| ClusterError::Api {
            verb: "decode",
            resource,
            code: 500,
            message: format!("stored object {} cannot be decoded: {e}", name_of(o)),
        })
    }
}

#[async_trait]
impl Cluster for MemoryCluster {
    async fn first_tenant_config(&self) -> Result<Option<TenantConfig>, ClusterError> {
        let mut st = self.lock();
        st.fault("list", "tenantconfigs")?;
        st.objects
            .iter()
            .find(|o| is_kind(o, "TenantConfig"))
            .map(|o| State::decode(o, "tenantconfigs"))
            .transpose()
    }

    async fn get_tenant_config(&self, name: &str) -> Result<TenantConfig, ClusterError> {
        self.round_trip().await;
        let mut st = self.lock();
        st.fault("get", "tenantconfigs")?;
        let o = st
            .objects
            .iter()
            .find(|o| is_kind(o, "TenantConfig") && name_of(o) == name)
            .ok_or_else(|| ClusterError::NotFound {
                resource: "tenantconfigs",
                name: name.to_owned(),
            })?;
        State::decode(o, "tenantconfigs")
    }

    async fn replace_tenant_config(&self, tc: &TenantConfig) -> Result<TenantConfig, ClusterError> {
        self.round_trip().await;
        let name = tc.metadata.name.clone().unwrap_or_default();
        let mut st = self.lock();
        st.tenant_config_writes += 1;
        st.fault("update", "tenantconfigs")?;
        let rv = st.next_rv;
        let slot = st
            .objects
            .iter_mut()
            .find(|o| is_kind(o, "TenantConfig") && name_of(o) == name)
            .ok_or_else(|| ClusterError::NotFound {
                resource: "tenantconfigs",
                name: name.clone(),
            })?;
        let current = slot
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if tc.metadata.resource_version.as_deref().unwrap_or("") != current {
            return Err(ClusterError::Conflict {
                resource: "tenantconfigs",
                name,
            });
        }
        let mut stored = tc.clone();
        stored.metadata.resource_version = Some(rv.to_string());
        *slot = serde_json::to_value(&stored).expect("TenantConfig serialises");
        st.next_rv += 1;
        Ok(stored)
    }

    async fn list_danmeps(&self, namespace: Option<&str>) -> Result<Vec<DanmEp>, ClusterError> {
        let mut st = self.lock();
        st.fault("list", "danmeps")?;
        st.objects
            .iter()
            .filter(|o| is_kind(o, "DanmEp"))
            .filter(|o| {
                namespace.is_none_or(|ns| {
                    o.pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        == ns
                })
            })
            .map(|o| State::decode(o, "danmeps"))
            .collect()
    }

    async fn list_ipblocks(&self, selector: &str) -> Result<Vec<DanmIpBlock>, ClusterError> {
        let mut st = self.lock();
        st.fault("list", "danmipblocks")?;
        let wanted: Vec<(&str, &str)> = selector
            .split(',')
            .filter_map(|term| term.split_once('='))
            .collect();
        st.objects
            .iter()
            .filter(|o| is_kind(o, "DanmIpBlock"))
            .filter(|o| {
                wanted.iter().all(|(k, v)| {
                    o.pointer("/metadata/labels")
                        .and_then(|l| l.get(*k))
                        .and_then(Value::as_str)
                        == Some(*v)
                })
            })
            .map(|o| State::decode(o, "danmipblocks"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tc(name: &str) -> Value {
        json!({"apiVersion":"danm.k8s.io/v1","kind":"TenantConfig","metadata":{"name":name},"networkIds":{"flannel":"f"}})
    }

    #[test]
    fn objects_parse_from_a_json_array_a_v1_list_and_multi_document_yaml() {
        let arr = parse_objects(&json!([tc("a"), tc("b")]).to_string()).unwrap();
        let list =
            parse_objects(&json!({"apiVersion":"v1","kind":"List","items":[tc("a"), tc("b")]}).to_string())
                .unwrap();
        let yaml = "---\napiVersion: \"danm.k8s.io/v1\"\nkind: \"TenantConfig\"\nmetadata:\n  name: \"a\"\nnetworkIds:\n  flannel: \"f\"\n---\napiVersion: \"danm.k8s.io/v1\"\nkind: \"TenantConfig\"\nmetadata:\n  name: \"b\"\nnetworkIds:\n  flannel: \"f\"\n";
        let yaml = parse_objects(yaml).unwrap();
        assert_eq!(arr, list);
        assert_eq!(arr, yaml);
        assert!(parse_objects("").unwrap().is_empty());
        assert!(matches!(
            parse_objects("[{\"a\":1}]"),
            Err(ObjectsError::NotAnObject { index: 0 })
        ));
    }

    #[tokio::test]
    async fn a_replace_with_a_stale_resource_version_is_a_conflict() {
        let c = MemoryCluster::new(vec![tc("a")]).unwrap();
        let first = c.first_tenant_config().await.unwrap().unwrap();
        let stored = c.replace_tenant_config(&first).await.unwrap();
        assert_ne!(stored.metadata.resource_version, first.metadata.resource_version);
        assert!(matches!(
            c.replace_tenant_config(&first).await,
            Err(ClusterError::Conflict { .. })
        ));
        assert_eq!(c.tenant_config_writes(), 2);
    }

    #[tokio::test]
    async fn api_faults_fail_the_named_verb_the_given_number_of_times() {
        let fault = json!({"apiVersion":FAULT_API_VERSION,"kind":"ApiFault","metadata":{"name":"f"},
            "spec":{"verb":"list","group":"danm.k8s.io","resource":"danmeps","error":"InternalError","code":500,"message":"error happened","times":1}});
        let c = MemoryCluster::new(vec![fault, tc("a")]).unwrap();
        let err = c.list_danmeps(None).await.unwrap_err();
        assert!(err.to_string().contains("error happened"), "{err}");
        assert!(c.list_danmeps(None).await.unwrap().is_empty());
        assert_eq!(c.objects().len(), 1, "faults are not objects");
    }
}
