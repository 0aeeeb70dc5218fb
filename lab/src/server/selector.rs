//! Label selectors (equality- and set-based, and the `matchLabels`/`matchExpressions` form) and field selectors.

use serde_json::Value;
use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(pub Vec<Req>);

/// A malformed selector, with the text that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn set_values(s: &str) -> Result<Vec<String>, SelectorError> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| SelectorError(s.to_string()))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let p = part.trim();
            if p.is_empty() {
                continue;
            }
            let req = if let Some(k) = p.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = p.split_once("!=") {
                Req::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = p.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some(idx) = p.find(" notin ") {
                Req::NotIn(p[..idx].trim().into(), set_values(&p[idx + 7..])?)
            } else if let Some(idx) = p.find(" in ") {
                Req::In(p[..idx].trim().into(), set_values(&p[idx + 4..])?)
            } else if p.contains(['(', ')', ' ']) {
                return Err(SelectorError(p.to_string()));
            } else {
                Req::Exists(p.to_string())
            };
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Reads a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`).
    pub fn from_object(v: &Value) -> Self {
        let mut reqs = Vec::new();
        if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in m {
                reqs.push(Req::Eq(k.clone(), val.as_str().unwrap_or_default().to_string()));
            }
        }
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let vals: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => reqs.push(Req::In(key, vals)),
                Some("NotIn") => reqs.push(Req::NotIn(key, vals)),
                Some("Exists") => reqs.push(Req::Exists(key)),
                Some("DoesNotExist") => reqs.push(Req::NotExists(key)),
                _ => {}
            }
        }
        Self(reqs)
    }

    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => labels.get(k) == Some(v),
            Req::NotEq(k, v) => labels.get(k) != Some(v),
            Req::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Req::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
            Req::Exists(k) => labels.contains_key(k),
            Req::NotExists(k) => !labels.contains_key(k),
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.is_empty() || self.matches_labels(&labels_of(obj, "/metadata/labels"))
    }
}

/// The string map at `ptr` (labels, annotations).
pub fn labels_of(obj: &Value, ptr: &str) -> BTreeMap<String, String> {
    obj.pointer(ptr)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A parsed field selector: `path=value` / `path!=value` terms over dotted JSON paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(pub Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut terms = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (path, eq, val) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(SelectorError(part.to_string()));
            };
            terms.push((path.trim().to_string(), eq, val.trim().to_string()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let ptr = format!("/{}", path.replace('.', "/"));
            let got = match obj.pointer(&ptr) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}, "spec": {"nodeName": "n1"}})
    }

    #[test]
    fn equality_and_set_based_requirements_combine() {
        let s = LabelSelector::parse("app=web,tier in (front, back),env notin (prod),!legacy,owner").unwrap();
        assert!(s.matches(&obj(json!({"app": "web", "tier": "front", "owner": "x"}))));
        assert!(!s.matches(&obj(json!({"app": "web", "tier": "db", "owner": "x"}))));
        assert!(!s.matches(&obj(
            json!({"app": "web", "tier": "front", "owner": "x", "legacy": "1"})
        )));
        assert!(!s.matches(&obj(
            json!({"app": "web", "tier": "front", "owner": "x", "env": "prod"})
        )));
        assert!(!s.matches(&obj(json!({"app": "web", "tier": "front"}))));
    }

    #[test]
    fn not_equal_matches_a_missing_label() {
        let s = LabelSelector::parse("app!=web").unwrap();
        assert!(s.matches(&obj(json!({}))));
        assert!(!s.matches(&obj(json!({"app": "web"}))));
    }

    #[test]
    fn field_selectors_read_dotted_paths() {
        let f = FieldSelector::parse("metadata.name=a,spec.nodeName!=n2").unwrap();
        assert!(f.matches(&obj(json!({}))));
        let f = FieldSelector::parse("spec.nodeName=n2").unwrap();
        assert!(!f.matches(&obj(json!({}))));
    }

    #[test]
    fn a_dangling_set_is_a_parse_error() {
        assert!(LabelSelector::parse("tier in front").is_err());
    }
}
