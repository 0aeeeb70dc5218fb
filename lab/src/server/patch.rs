//! PATCH bodies: JSON merge patch, JSON patch, strategic merge patch (the subset the suite and kubectl use) and
//! server-side apply approximated as a merge.

use serde_json::{Map, Value};

/// The patch flavours a PATCH request can carry, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Some(Self::Json),
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// Why a patch could not be applied; the message goes into a 422 / 400 Status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PatchError {
    #[error("{0}")]
    Json(String),
    #[error(
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )]
    Format,
}

/// RFC 7386 merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// Strategic merge patch: merge-patch semantics, plus lists of objects that all carry a `name` (containers, ports,
/// volumes, env...) are merged by name, `$patch: delete`/`replace` directives are honoured and other `$` directives
/// (`$setElementOrder/...`, `$retainKeys`) are dropped.
pub fn strategic(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut clean = patch.clone();
                strip_directives(&mut clean);
                *target = clean;
                return;
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    if let (Some(Value::Array(cur)), Some(del)) = (t.get_mut(field), v.as_array()) {
                        cur.retain(|x| !del.contains(x));
                    }
                    continue;
                }
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    t.remove(k);
                    continue;
                }
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                match (slot.as_array_mut(), v.as_array()) {
                    (Some(cur), Some(new)) if keyed(cur) && keyed(new) => merge_keyed(cur, new),
                    _ => strategic(slot, v),
                }
            }
        }
        Value::Array(_) => {
            let mut clean = patch.clone();
            strip_directives(&mut clean);
            *target = clean;
        }
        _ => *target = patch.clone(),
    }
}

fn keyed(list: &[Value]) -> bool {
    !list.is_empty() && list.iter().all(|e| e.get("name").is_some_and(Value::is_string))
}

fn merge_keyed(cur: &mut Vec<Value>, new: &[Value]) {
    for item in new {
        let name = item.get("name").cloned();
        let pos = cur.iter().position(|c| c.get("name") == name.as_ref());
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (Some(i), false) => strategic(&mut cur[i], item),
            (None, true) => {}
            (None, false) => {
                let mut clean = item.clone();
                strip_directives(&mut clean);
                cur.push(clean);
            }
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Applies a patch body of the given kind to `current`, returning the patched object.
pub fn apply(kind: PatchKind, current: &Value, body: &[u8]) -> Result<Value, PatchError> {
    match kind {
        PatchKind::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| PatchError::Json(format!("error decoding patch: {e}")))?;
            let mut out = current.clone();
            json_patch::patch(&mut out, &p).map_err(|e| PatchError::Json(e.to_string()))?;
            Ok(out)
        }
        PatchKind::Merge | PatchKind::Strategic => {
            let p: Value = serde_json::from_slice(body).map_err(|e| PatchError::Json(e.to_string()))?;
            if !p.is_object() {
                return Err(PatchError::Format);
            }
            let mut out = current.clone();
            if kind == PatchKind::Merge {
                merge(&mut out, &p)
            } else {
                strategic(&mut out, &p)
            }
            Ok(out)
        }
        PatchKind::Apply => {
            let p: Value = serde_yaml::from_slice(body).map_err(|e| PatchError::Json(e.to_string()))?;
            let mut out = current.clone();
            strategic(&mut out, &p);
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_removes_null_members() {
        let mut t = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        merge(&mut t, &json!({"metadata": {"labels": {"a": null, "c": "3"}}}));
        assert_eq!(t, json!({"metadata": {"labels": {"b": "2", "c": "3"}}}));
    }

    #[test]
    fn strategic_patch_merges_named_lists_and_drops_directives() {
        let mut t =
            json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let p = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}]}});
        strategic(&mut t, &p);
        assert_eq!(t, json!({"spec": {"containers": [{"name": "b", "image": "z"}]}}));
    }

    #[test]
    fn json_patch_test_op_failure_is_an_error() {
        let cur = json!({"metadata": {"resourceVersion": "5"}});
        let body = br#"[{"op":"test","path":"/metadata/resourceVersion","value":"4"}]"#;
        assert!(apply(PatchKind::Json, &cur, body).is_err());
    }
}
