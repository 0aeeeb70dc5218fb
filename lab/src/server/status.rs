//! Kubernetes `Status` errors: the one place lab failures are mapped to the wire (reason, code, details).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed API request, rendered as a `meta/v1 Status` object exactly like kube-apiserver does.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code, also `Status.code`.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `Conflict`, `AlreadyExists`, `Invalid`, ...).
    pub reason: &'static str,
    /// `Status.message`, worded as the real apiserver words it.
    pub message: String,
    /// `Status.details`, when the real apiserver sends one.
    pub details: Option<Value>,
}

/// What a `Status` names: the qualified resource (`danmnets.danm.k8s.io`), its group, and the object name.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub group: &'a str,
    pub plural: &'a str,
    pub name: &'a str,
}

impl Target<'_> {
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({ "name": self.name, "kind": self.plural });
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(t: Target<'_>) -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{}\" not found", t.qualified(), t.name),
            details: Some(t.details()),
        }
    }

    /// 404 for a path that names no resource the server serves.
    pub fn no_resource() -> Self {
        Self {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    pub fn already_exists(t: Target<'_>) -> Self {
        Self {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{}\" already exists", t.qualified(), t.name),
            details: Some(t.details()),
        }
    }

    pub fn conflict(t: Target<'_>) -> Self {
        Self::conflict_msg(
            t,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn conflict_msg(t: Target<'_>, why: &str) -> Self {
        Self {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {why}",
                t.qualified(),
                t.name
            ),
            details: Some(t.details()),
        }
    }

    /// 422 Invalid with one cause, e.g. `metadata.name: Required value: name or generateName is required`.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        field: &str,
        cause_reason: &str,
        detail: &str,
    ) -> Self {
        let qkind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let short = match cause_reason {
            "FieldValueRequired" => "Required value",
            "FieldValueDuplicate" => "Duplicate value",
            "FieldValueForbidden" => "Forbidden",
            _ => "Invalid value",
        };
        let cause = format!("{field}: {short}: {detail}");
        let mut details = json!({
            "name": name, "kind": kind,
            "causes": [{ "reason": cause_reason, "message": format!("{short}: {detail}"), "field": field }]
        });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        Self {
            code: 422,
            reason: "Invalid",
            message: format!("{qkind} \"{name}\" is invalid: {cause}"),
            details: Some(details),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 410 Gone, sent as a watch `ERROR` event when the requested resourceVersion was compacted away.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}

/// A JSON body with the given status code.
pub fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A `Status` of success, as returned by some deletes.
pub fn success_status(t: Target<'_>) -> Value {
    let mut d = t.details();
    d["uid"] = Value::Null;
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d })
}
