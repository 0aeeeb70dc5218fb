//! `meta.k8s.io/v1 Table` rendering for `kubectl get` (server-side printing, as the real apiserver does).

use super::registry::ResourceDef;
use serde_json::{Value, json};

/// kubectl's `HumanDuration`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 192 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 730 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - t.as_second())
}

/// Evaluates the simple JSONPath (`.spec.a.b`, `.metadata.creationTimestamp`) CRD printer columns use.
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let ptr = path.trim_start_matches('.').replace('.', "/");
    obj.pointer(&format!("/{ptr}"))
}

fn col(name: &str, type_: &str, priority: i32) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": type_, "format": format, "description": name, "priority": priority})
}

fn cell(v: Option<&Value>, type_: &str) -> Value {
    match (v, type_) {
        (None | Some(Value::Null), _) => Value::Null,
        (Some(Value::String(s)), "date") => json!(age(Some(s))),
        (Some(v), _) => v.clone(),
    }
}

/// Columns and cells for one object.
fn columns(def: &ResourceDef, version: &str) -> Vec<Value> {
    let mut cols = vec![col("Name", "string", 0)];
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => {
            for (n, p) in [
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
            ] {
                cols.push(col(n, "string", p));
            }
        }
        ("", "namespaces") => {
            cols.push(col("Status", "string", 0));
            cols.push(col("Age", "string", 0));
        }
        _ => match def.columns.get(version) {
            Some(pc) if !pc.is_empty() => {
                for c in pc {
                    cols.push(col(&c.name, &c.type_, 0));
                }
            }
            _ => cols.push(col("Age", "string", 0)),
        },
    }
    cols
}

fn cells(def: &ResourceDef, version: &str, obj: &Value) -> Vec<Value> {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null);
    let created = obj.pointer("/metadata/creationTimestamp").and_then(Value::as_str);
    let mut out = vec![name];
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "pods") => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map_or(0, |a| a.iter().filter(|c| c["ready"] == json!(true)).count());
            let phase = if obj.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                obj.pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("Pending")
            };
            let ip = obj
                .pointer("/status/podIP")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            let node = obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("<none>");
            out.extend([
                json!(format!("{ready}/{total}")),
                json!(phase),
                json!("0"),
                json!(age(created)),
                json!(ip),
                json!(node),
            ]);
        }
        ("", "namespaces") => {
            let phase = obj
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Active");
            out.extend([json!(phase), json!(age(created))]);
        }
        _ => match def.columns.get(version) {
            Some(pc) if !pc.is_empty() => {
                for c in pc {
                    out.push(cell(json_path(obj, &c.json_path), &c.type_));
                }
            }
            _ => out.push(json!(age(created))),
        },
    }
    out
}

/// The Table for a list of objects.
pub fn table(def: &ResourceDef, version: &str, objs: &[Value], rv: &str) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            json!({
                "cells": cells(def, version, o),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns(def, version), "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
