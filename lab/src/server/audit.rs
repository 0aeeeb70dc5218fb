//! The audit log: one JSON line per API request (who, verb, group, resource, namespace), appended to the file
//! named by `DANM_LAB_AUDIT` when it is set. Who is the request's `User-Agent` (danm's components name themselves
//! there); the RBAC least-privilege check compares these lines with the roles in `deploy/`.

use std::io::Write;
use std::sync::Mutex;

use axum::http::{HeaderMap, Method};
use serde_json::json;

/// Where audit lines go; `None` when auditing is off.
#[derive(Debug, Default)]
pub struct AuditLog {
    file: Option<Mutex<std::fs::File>>,
}

impl AuditLog {
    /// Opens the file `DANM_LAB_AUDIT` names (append), if set. A file that cannot be opened is a start-up warning.
    pub fn from_env() -> Self {
        let Some(path) = std::env::var_os("DANM_LAB_AUDIT").filter(|p| !p.is_empty()) else {
            return Self::default();
        };
        match std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Self {
                file: Some(Mutex::new(f)),
            },
            Err(e) => {
                tracing::warn!(path = %std::path::Path::new(&path).display(), error = %e, "audit log not opened");
                Self::default()
            }
        }
    }

    /// Records one resource request. `named`: the request addressed one object; `watch`: a GET with `watch`.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        headers: &HeaderMap,
        method: &Method,
        named: bool,
        watch: bool,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
    ) {
        let Some(file) = &self.file else { return };
        let verb = match (method.as_str(), named) {
            ("GET" | "HEAD", _) if watch => "watch",
            ("GET" | "HEAD", true) => "get",
            ("GET" | "HEAD", false) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            (other, _) => other,
        };
        let agent = headers
            .get("user-agent")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let line = json!({"agent": agent, "verb": verb, "group": group, "resource": resource,
            "namespace": namespace.unwrap_or_default()});
        // One write per line on an O_APPEND file: lines of concurrent servers (parallel tests) do not interleave.
        let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}
