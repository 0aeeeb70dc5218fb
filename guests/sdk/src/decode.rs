//! Decoding objects from JSON: lenient (translation) and strict (validation, every unknown member reported with its path).

use danm_api::NetworkSpec;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Attachment, Operation, TranslateError, Violation};

/// What a backend reads of a network object: the name for messages and the spec. Decoding only this (not the whole
/// `ObjectMeta`) keeps the backend components small.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct NetworkDoc {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: NetworkSpec,
}

/// `metadata.name` and `metadata.namespace`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Meta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

impl NetworkDoc {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Decodes a network object the way the CNI reads it: unknown members are ignored, `null` means absent.
pub fn parse_network(json: &str) -> Result<NetworkDoc, String> {
    serde_json::from_str(json).map_err(|e| format!("cannot decode the network object: {e}"))
}

/// What a backend's `validate` works on: the decoded network, or (as `Err`) its final answer — nothing to check
/// on DELETE, a `D1` violation when the object does not decode.
pub fn network_to_validate(op: Operation, network_json: &str) -> Result<NetworkDoc, Vec<Violation>> {
    if op == Operation::Delete {
        return Err(Vec::new());
    }
    parse_network(network_json).map_err(|e| vec![Violation::new("D1", "", e)])
}

/// A backend's `validate`: nothing to check on DELETE, a `D1` violation when the object does not decode, else what
/// `checks` finds in the network's spec.
pub fn validate_network(
    op: Operation,
    network_json: &str,
    checks: impl FnOnce(&NetworkSpec, &mut Vec<Violation>),
) -> Vec<Violation> {
    match network_to_validate(op, network_json) {
        Ok(net) => {
            let mut out = Vec::new();
            checks(&net.spec, &mut out);
            out
        }
        Err(answer) => answer,
    }
}

/// What a backend's `translate` works on: the attachment's decoded network, or a `D1` error naming the pod.
pub fn network_to_translate(att: &Attachment) -> Result<NetworkDoc, TranslateError> {
    parse_network(&att.network_json)
        .map_err(|e| TranslateError::new("D1", format!("pod {}/{}: {e}", att.pod_namespace, att.pod_name)))
}

/// Decodes `json` into `T`, reporting every member `T` does not know as a `U1` violation
/// ("ERROR: unknown fields are not allowed:<path>", DANM's strict decoding) and a malformed document as `D1`.
/// Returns the value when the document decodes (unknown members notwithstanding).
pub fn strict_decode<T: DeserializeOwned>(json: &str) -> (Option<T>, Vec<Violation>) {
    let mut unknown = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    let res: Result<T, _> = serde_ignored::deserialize(&mut de, |path| unknown.push(render_path(&path)));
    let res = res.and_then(|v| de.end().map(|()| v));
    match res {
        Ok(v) => {
            let violations = unknown
                .into_iter()
                .map(|p| {
                    Violation::new(
                        "U1",
                        p.clone(),
                        format!("ERROR: unknown fields are not allowed:{p}"),
                    )
                })
                .collect();
            (Some(v), violations)
        }
        Err(e) => (
            None,
            vec![Violation::new(
                "D1",
                "",
                format!("ERROR: cannot decode the object: {e}"),
            )],
        ),
    }
}

/// `spec.Options.foo`, `hostDevices[1].bar`.
fn render_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", render_path(parent)),
        Path::Map { parent, key } => {
            let p = render_path(parent);
            if p.is_empty() {
                key.clone()
            } else {
                format!("{p}.{key}")
            }
        }
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            render_path(parent)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_decoding_reports_every_unknown_member_with_its_path() {
        let json = r#"{"kind":"DanmNet","metadata":{"name":"a"},"bogus":1,
            "spec":{"NetworkID":"x","Options":{"cidr":"10.0.0.0/24","colour":"red","allocation_pool":{"start":"","x":1}}}}"#;
        let (net, v): (Option<danm_api::Network>, _) = strict_decode(json);
        assert_eq!(net.unwrap().spec.network_id, "x");
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["bogus", "spec.Options.colour", "spec.Options.allocation_pool.x"]
        );
        assert!(v.iter().all(|v| v.rule == "U1"));
        assert_eq!(v[0].message, "ERROR: unknown fields are not allowed:bogus");
    }

    #[test]
    fn strict_decoding_reports_malformed_json_as_d1() {
        let (net, v): (Option<danm_api::Network>, _) = strict_decode("{\"spec\":");
        assert!(net.is_none());
        assert_eq!(v[0].rule, "D1");
    }

    #[test]
    fn lenient_parsing_ignores_unknown_members() {
        let net = parse_network(r#"{"spec":{"NetworkID":"n","extra":true}}"#).unwrap();
        assert_eq!(net.spec.network_id, "n");
    }
}
