//! The AdmissionReview protocol: decoding requests (`admission.k8s.io/v1` and `v1beta1`), and encoding responses in
//! the request's version with the uid echoed, denials as `status {message, code}`, and mutations as a base64
//! JSONPatch (`patchType: JSONPatch`).

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// `apiVersion` of v1 reviews; the default when a request names none.
pub const V1: &str = "admission.k8s.io/v1";
/// `apiVersion` of v1beta1 reviews (same JSON shape).
pub const V1BETA1: &str = "admission.k8s.io/v1beta1";
/// DANM's text for a body without an AdmissionReview.
pub const EMPTY_REVIEW: &str = "Received review request is empty!";

/// Why a body is not an AdmissionReview the webhook can answer (HTTP 400; the CLI exits non-zero).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is empty, or holds no `request`.
    #[error("{EMPTY_REVIEW}")]
    Empty,
    /// The body is not JSON of an AdmissionReview.
    #[error("the body is not a valid AdmissionReview: {0}")]
    Malformed(String),
    /// An `apiVersion` other than admission.k8s.io/v1 or v1beta1.
    #[error("AdmissionReview apiVersion {0:?} is not supported (expected {V1} or {V1BETA1})")]
    Version(String),
}

/// The admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
    /// Missing or unknown; the handlers treat it per endpoint.
    Other,
}

impl Operation {
    pub fn parse(s: &str) -> Self {
        match s {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => Operation::Other,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
            Operation::Other => "",
        }
    }
}

/// `group/version/kind` as the API server sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// The part of `request` the webhook uses. Other members are ignored (the envelope is the API server's, not the user's).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: Gvk,
    pub name: String,
    pub namespace: String,
    pub operation: String,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub dry_run: Option<bool>,
}

impl AdmissionRequest {
    pub fn operation(&self) -> Operation {
        Operation::parse(&self.operation)
    }
    /// The kind of the object under review: the object's own `kind`, else the old object's, else `request.kind`.
    pub fn object_kind(&self) -> String {
        let of = |v: &Option<Value>| {
            v.as_ref()
                .and_then(|o| o.get("kind"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        of(&self.object)
            .filter(|k| !k.is_empty())
            .or_else(|| of(&self.old_object).filter(|k| !k.is_empty()))
            .unwrap_or_else(|| self.kind.kind.clone())
    }
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    request: Option<AdmissionRequest>,
}

/// A decoded review: the version to answer in, and the request.
#[derive(Clone, Debug)]
pub struct Review {
    pub api_version: String,
    pub request: AdmissionRequest,
}

impl Review {
    /// Decodes a request body.
    pub fn decode(body: &[u8]) -> Result<Review, ReviewError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ReviewError::Empty);
        }
        let env: Envelope =
            serde_json::from_slice(body).map_err(|e| ReviewError::Malformed(e.to_string()))?;
        let api_version = match env.api_version.as_deref() {
            None | Some("") | Some(V1) => V1.to_owned(),
            Some(V1BETA1) => V1BETA1.to_owned(),
            Some(other) => return Err(ReviewError::Version(other.to_owned())),
        };
        let request = env.request.ok_or(ReviewError::Empty)?;
        Ok(Review { api_version, request })
    }
}

/// One RFC 6902 operation. danm only emits `add` (which also replaces an existing member) so the patch applies
/// whether or not the member exists.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatchOp {
    pub op: &'static str,
    pub path: String,
    pub value: Value,
}

impl PatchOp {
    pub fn add(path: impl Into<String>, value: Value) -> Self {
        PatchOp {
            op: "add",
            path: path.into(),
            value,
        }
    }
}

/// The webhook's answer to one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// Denial text (`status.message`).
    pub message: Option<String>,
    /// HTTP-style code of a denial (`status.code`): 403 for rule violations, 500 when the cluster could not be read.
    pub code: Option<u16>,
    pub patch: Vec<PatchOp>,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allow() -> Self {
        Verdict {
            allowed: true,
            ..Verdict::default()
        }
    }
    pub fn patched(patch: Vec<PatchOp>) -> Self {
        Verdict {
            allowed: true,
            patch,
            ..Verdict::default()
        }
    }
    pub fn deny(message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            message: Some(message.into()),
            code: Some(403),
            ..Verdict::default()
        }
    }
    pub fn deny_internal(message: impl Into<String>) -> Self {
        Verdict {
            allowed: false,
            message: Some(message.into()),
            code: Some(500),
            ..Verdict::default()
        }
    }
    pub fn with_warning(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }
}

/// The response AdmissionReview for `review` (same apiVersion, uid echoed). Allowed without changes = no patch and no
/// status.
pub fn encode_response(api_version: &str, uid: &str, verdict: &Verdict) -> Value {
    let mut resp = json!({ "uid": uid, "allowed": verdict.allowed });
    if !verdict.allowed {
        let mut status = json!({ "message": verdict.message.clone().unwrap_or_default() });
        if let Some(code) = verdict.code {
            status["code"] = json!(code);
        }
        resp["status"] = status;
    }
    if verdict.allowed && !verdict.patch.is_empty() {
        let text = serde_json::to_vec(&verdict.patch).expect("patch ops serialise");
        resp["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        resp["patchType"] = json!("JSONPatch");
    }
    if !verdict.warnings.is_empty() {
        resp["warnings"] = json!(verdict.warnings);
    }
    json!({ "apiVersion": api_version, "kind": "AdmissionReview", "response": resp })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_is_danms_empty_review_error() {
        assert_eq!(Review::decode(b"").unwrap_err().to_string(), EMPTY_REVIEW);
        assert_eq!(Review::decode(b"  \n").unwrap_err().to_string(), EMPTY_REVIEW);
        assert_eq!(
            Review::decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
                .unwrap_err()
                .to_string(),
            EMPTY_REVIEW
        );
    }

    #[test]
    fn malformed_json_and_unknown_versions_are_rejected() {
        assert!(matches!(
            Review::decode(b"{\"request\":").unwrap_err(),
            ReviewError::Malformed(_)
        ));
        assert!(matches!(
            Review::decode(b"[1,2]").unwrap_err(),
            ReviewError::Malformed(_)
        ));
        let v2 = br#"{"apiVersion":"admission.k8s.io/v2","request":{"uid":"u"}}"#;
        assert!(matches!(Review::decode(v2).unwrap_err(), ReviewError::Version(_)));
    }

    #[test]
    fn v1beta1_requests_are_answered_in_v1beta1() {
        let r =
            Review::decode(br#"{"apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"u1"}}"#).unwrap();
        let out = encode_response(&r.api_version, &r.request.uid, &Verdict::allow());
        assert_eq!(out["apiVersion"], V1BETA1);
        assert_eq!(out["kind"], "AdmissionReview");
        assert_eq!(out["response"]["uid"], "u1");
    }

    #[test]
    fn an_allowed_response_without_changes_has_no_patch_and_no_status() {
        let out = encode_response(V1, "u", &Verdict::allow());
        assert_eq!(out["response"], json!({"uid":"u","allowed":true}));
    }

    #[test]
    fn a_denial_carries_status_message_and_code() {
        let out = encode_response(V1, "u", &Verdict::deny("no"));
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"], json!({"message":"no","code":403}));
        assert!(out["response"].get("patch").is_none());
    }

    #[test]
    fn a_patch_is_base64_json_patch() {
        let v = Verdict::patched(vec![PatchOp::add("/spec/NetworkType", json!("ipvlan"))]);
        let out = encode_response(V1, "u", &v);
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(
            ops,
            json!([{"op":"add","path":"/spec/NetworkType","value":"ipvlan"}])
        );
    }
}
