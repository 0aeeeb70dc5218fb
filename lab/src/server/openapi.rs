//! A minimal OpenAPI v3 surface: per group/version documents listing every path and verb with its
//! group-version-kind and the `dryRun`/`fieldManager`/`fieldValidation` parameters, so kubectl sees that the server
//! validates fields itself (`fieldValidation=Strict`) and does not need schemas for client-side validation.

use super::registry::Registry;
use serde_json::{Map, Value, json};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of group/version documents.
pub fn root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = Vec::new();
    for d in reg.all() {
        for v in &d.versions {
            if !gvs.contains(&(d.group.clone(), v.clone())) {
                gvs.push((d.group.clone(), v.clone()));
            }
        }
    }
    for (g, v) in gvs {
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}")}),
        );
    }
    json!({"paths": paths})
}

fn op(action: &str, gvk: &Value, with_params: bool) -> Value {
    let mut params = vec![json!({"name": "pretty", "in": "query", "schema": {"type": "string"}})];
    if with_params {
        for n in ["dryRun", "fieldManager", "fieldValidation"] {
            params.push(json!({"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": true}));
        }
    }
    json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
    })
}

/// `/openapi/v3/<api|apis/group>/<version>`.
pub fn group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let prefix = format!("/{}", gv_path(group, version));
    for d in reg.all().filter(|d| d.group == group && d.serves(version)) {
        let gvk = json!({"group": d.group, "version": version, "kind": d.kind});
        let base = if d.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{prefix}/{}", d.plural)
        };
        paths.insert(
            base.clone(),
            json!({"get": op("list", &gvk, false), "post": op("post", &gvk, true)}),
        );
        paths.insert(
            format!("{base}/{{name}}"),
            json!({"get": op("get", &gvk, false), "put": op("put", &gvk, true), "patch": op("patch", &gvk, true),
                   "delete": op("delete", &gvk, true)}),
        );
        if d.status_subresource {
            paths.insert(
                format!("{base}/{{name}}/status"),
                json!({"get": op("get", &gvk, false), "put": op("put", &gvk, true), "patch": op("patch", &gvk, true)}),
            );
        }
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-danm-lab"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
