//! The resource registry: built-in kinds the suite uses and the kinds CRDs add at run time (names, scope, versions).

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `(group, plural)`: the storage identity of a resource, independent of the version it is served at.
pub type GroupResource = (String, String);

/// One additional printer column of a CRD version.
#[derive(Debug, Clone)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub json_path: String,
}

/// Everything the server needs to serve one resource.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions, storage version first.
    pub versions: Vec<String>,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub namespaced: bool,
    /// Whether `/status` is a subresource: then the main resource ignores status and `/status` changes only status.
    pub status_subresource: bool,
    /// Printer columns per version (CRDs); empty for built-ins.
    pub columns: BTreeMap<String, Vec<PrinterColumn>>,
    /// Defined by a CRD (as opposed to built in).
    pub from_crd: bool,
}

impl ResourceDef {
    pub fn gr(&self) -> GroupResource {
        (self.group.clone(), self.plural.clone())
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

fn builtin(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    status: bool,
    short: &[&str],
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        versions: vec![version.into()],
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        namespaced,
        status_subresource: status,
        columns: BTreeMap::new(),
        from_crd: false,
    }
}

/// The resources every lab serves from the start.
pub fn builtins() -> Vec<ResourceDef> {
    vec![
        builtin("", "v1", "Namespace", "namespaces", false, true, &["ns"]),
        builtin("", "v1", "Pod", "pods", true, true, &["po"]),
        builtin("", "v1", "Service", "services", true, true, &["svc"]),
        builtin("", "v1", "Endpoints", "endpoints", true, false, &["ep"]),
        builtin("", "v1", "Node", "nodes", false, true, &["no"]),
        builtin("", "v1", "ConfigMap", "configmaps", true, false, &["cm"]),
        builtin("", "v1", "Secret", "secrets", true, false, &[]),
        builtin(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            false,
            &["sa"],
        ),
        builtin("", "v1", "Event", "events", true, false, &["ev"]),
        builtin(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            false,
            &[],
        ),
        builtin("coordination.k8s.io", "v1", "Lease", "leases", true, false, &[]),
        builtin("events.k8s.io", "v1", "Event", "events", true, false, &["ev"]),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            true,
            &["crd", "crds"],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            false,
            &[],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            false,
            &[],
        ),
        // What `kubectl apply -k deploy/` creates besides CRDs: workloads and RBAC (stored, not run).
        builtin("apps", "v1", "DaemonSet", "daemonsets", true, true, &["ds"]),
        builtin("apps", "v1", "Deployment", "deployments", true, true, &["deploy"]),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            false,
            &[],
        ),
        builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            false,
            &[],
        ),
    ]
}

/// Why a CRD cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrdError {
    #[error("{field}: Required value")]
    Missing { field: &'static str },
    #[error("metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group")]
    BadName { name: String },
    #[error("spec.versions: Invalid value: must have exactly one storage version")]
    Storage,
}

impl CrdError {
    /// The field the error is about, for the 422 cause.
    pub fn field(&self) -> &'static str {
        match self {
            CrdError::Missing { field } => field,
            CrdError::BadName { .. } => "metadata.name",
            CrdError::Storage => "spec.versions",
        }
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Reads an `apiextensions.k8s.io/v1` CRD into the definition it serves.
pub fn from_crd(crd: &Value) -> Result<ResourceDef, CrdError> {
    let group = str_at(crd, "/spec/group").ok_or(CrdError::Missing { field: "spec.group" })?;
    let plural = str_at(crd, "/spec/names/plural").ok_or(CrdError::Missing {
        field: "spec.names.plural",
    })?;
    let kind = str_at(crd, "/spec/names/kind").ok_or(CrdError::Missing {
        field: "spec.names.kind",
    })?;
    let name = str_at(crd, "/metadata/name").unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(CrdError::BadName {
            name: name.to_string(),
        });
    }
    let scope = str_at(crd, "/spec/scope").unwrap_or("Namespaced");
    let strs = |ptr: &str| -> Vec<String> {
        crd.pointer(ptr)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .unwrap_or_default()
    };
    let empty = Vec::new();
    let vers = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let mut versions = Vec::new();
    let mut storage = None;
    let mut status = false;
    let mut columns = BTreeMap::new();
    for v in vers {
        let Some(vname) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            if storage.is_some() {
                return Err(CrdError::Storage);
            }
            storage = Some(vname.to_string());
        }
        if v.get("served").and_then(Value::as_bool) != Some(false) {
            versions.push(vname.to_string());
        }
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        let cols = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            type_: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        columns.insert(vname.to_string(), cols);
    }
    let storage = storage.ok_or(CrdError::Storage)?;
    versions.sort_by_key(|v| *v != storage);
    Ok(ResourceDef {
        group: group.into(),
        versions,
        kind: kind.into(),
        list_kind: str_at(crd, "/spec/names/listKind")
            .map(String::from)
            .unwrap_or(format!("{kind}List")),
        plural: plural.into(),
        singular: str_at(crd, "/spec/names/singular")
            .map(String::from)
            .unwrap_or(kind.to_lowercase()),
        short_names: strs("/spec/names/shortNames"),
        categories: strs("/spec/names/categories"),
        namespaced: scope != "Cluster",
        status_subresource: status,
        columns,
        from_crd: true,
    })
}

/// The set of served resources.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: BTreeMap<GroupResource, ResourceDef>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Self::default();
        for d in builtins() {
            r.defs.insert(d.gr(), d);
        }
        r
    }

    pub fn insert(&mut self, def: ResourceDef) {
        self.defs.insert(def.gr(), def);
    }

    pub fn remove(&mut self, gr: &GroupResource) -> Option<ResourceDef> {
        self.defs.remove(gr)
    }

    pub fn get(&self, gr: &GroupResource) -> Option<&ResourceDef> {
        self.defs.get(gr)
    }

    /// The definition served at `group/version` under `plural`.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceDef> {
        self.defs
            .get(&(group.to_string(), plural.to_string()))
            .filter(|d| d.serves(version))
    }

    /// The definition serving `kind` at `apiVersion` (`v1`, `danm.k8s.io/v1`).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceDef> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.defs
            .values()
            .find(|d| d.group == group && d.kind == kind && d.serves(version))
    }

    pub fn all(&self) -> impl Iterator<Item = &ResourceDef> {
        self.defs.values()
    }

    /// Groups (other than core) and their versions, preferred version first.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for d in self.defs.values().filter(|d| !d.group.is_empty()) {
            let vs = g.entry(d.group.clone()).or_default();
            for v in &d.versions {
                if !vs.contains(v) {
                    vs.push(v.clone());
                }
            }
        }
        g
    }

    /// `APIResourceList` for one group/version.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let mut resources = Vec::new();
        for d in self
            .defs
            .values()
            .filter(|d| d.group == group && d.serves(version))
        {
            let mut r = json!({
                "name": d.plural,
                "singularName": d.singular,
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            });
            if !d.short_names.is_empty() {
                r["shortNames"] = json!(d.short_names);
            }
            if !d.categories.is_empty() {
                r["categories"] = json!(d.categories);
            }
            resources.push(r);
            if d.status_subresource {
                resources.push(json!({
                    "name": format!("{}/status", d.plural),
                    "singularName": "",
                    "namespaced": d.namespaced,
                    "kind": d.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        if resources.is_empty() {
            return None;
        }
        Some(
            json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crd_yields_its_names_scope_and_storage_version_first() {
        let crd = json!({
            "metadata": {"name": "danmnets.danm.k8s.io"},
            "spec": {"group": "danm.k8s.io", "scope": "Namespaced",
                "names": {"kind": "DanmNet", "plural": "danmnets", "singular": "danmnet", "shortNames": ["dn"]},
                "versions": [{"name": "v1beta1", "served": true, "storage": false},
                             {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}}]}
        });
        let d = from_crd(&crd).unwrap();
        assert_eq!(d.versions, vec!["v1", "v1beta1"]);
        assert_eq!(d.short_names, vec!["dn"]);
        assert!(d.namespaced && d.status_subresource);
        assert_eq!(d.list_kind, "DanmNetList");
    }

    #[test]
    fn a_crd_whose_name_is_not_plural_dot_group_is_rejected() {
        let crd = json!({"metadata": {"name": "x.danm.k8s.io"},
            "spec": {"group": "danm.k8s.io", "names": {"kind": "A", "plural": "as"},
                     "versions": [{"name": "v1", "served": true, "storage": true}]}});
        assert!(matches!(from_crd(&crd), Err(CrdError::BadName { .. })));
    }
}
