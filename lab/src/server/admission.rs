//! Admission: finds the registered mutating/validating webhooks that match a request, calls them with an
//! AdmissionReview v1 over HTTPS/HTTP, applies their JSONPatches and turns denials into the apiserver's Status.

use super::registry::ResourceDef;
use super::selector::{LabelSelector, labels_of};
use super::status::ApiError;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The admission operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
        }
    }
}

/// How webhooks are reached from the lab.
#[derive(Debug, Clone, Default)]
pub struct AdmissionConfig {
    /// `namespace/name` of a Service → base URL (`https://127.0.0.1:8443`); the webhook's `service.path` is appended.
    pub services: HashMap<String, String>,
    /// Skip TLS verification of webhooks that have no `caBundle`.
    pub insecure: bool,
}

/// One webhook to call, resolved from a configuration object.
#[derive(Debug, Clone)]
pub struct Hook {
    pub name: String,
    pub mutating: bool,
    pub url: Result<String, String>,
    pub ca_bundle: Option<Vec<u8>>,
    pub ignore_failure: bool,
    pub timeout: Duration,
}

/// What is being admitted.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    pub def: &'a ResourceDef,
    pub version: &'a str,
    pub subresource: &'a str,
    pub op: Operation,
    pub namespace: &'a str,
    pub name: &'a str,
    pub dry_run: bool,
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn rule_matches(rule: &Value, a: &Attrs<'_>) -> bool {
    let any = |list: Vec<String>, want: &str| list.iter().any(|x| x == "*" || x == want);
    if !any(strs(rule, "operations"), a.op.as_str())
        || !any(strs(rule, "apiGroups"), &a.def.group)
        || !any(strs(rule, "apiVersions"), a.version)
    {
        return false;
    }
    let res_ok = strs(rule, "resources").iter().any(|r| {
        let (rr, rs) = r.split_once('/').unwrap_or((r.as_str(), ""));
        (rr == "*" || rr == a.def.plural) && (rs == a.subresource || rs == "*")
    });
    let scope = rule.get("scope").and_then(Value::as_str).unwrap_or("*");
    res_ok
        && match scope {
            "Namespaced" => a.def.namespaced,
            "Cluster" => !a.def.namespaced,
            _ => true,
        }
}

/// The webhooks of the given configuration objects that match the request, mutating first, in name order.
pub fn matching(
    cfg: &AdmissionConfig,
    mutating: &[Value],
    validating: &[Value],
    a: &Attrs<'_>,
    ns_labels: &BTreeMap<String, String>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Vec<Hook> {
    let mut out = Vec::new();
    for (is_mut, configs) in [(true, mutating), (false, validating)] {
        for c in configs {
            for w in c.get("webhooks").and_then(Value::as_array).into_iter().flatten() {
                let rules = w
                    .get("rules")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if !rules.iter().any(|r| rule_matches(r, a)) {
                    continue;
                }
                if let Some(sel) = w.get("namespaceSelector") {
                    let sel = LabelSelector::from_object(sel);
                    let labels = if a.def.group.is_empty() && a.def.plural == "namespaces" {
                        object
                            .or(old)
                            .map(|o| labels_of(o, "/metadata/labels"))
                            .unwrap_or_default()
                    } else {
                        ns_labels.clone()
                    };
                    if (a.def.namespaced || a.def.plural == "namespaces") && !sel.matches_labels(&labels) {
                        continue;
                    }
                }
                if let Some(sel) = w.get("objectSelector") {
                    let sel = LabelSelector::from_object(sel);
                    let hit = [object, old]
                        .iter()
                        .flatten()
                        .any(|o| sel.matches_labels(&labels_of(o, "/metadata/labels")));
                    if !sel.0.is_empty() && !hit {
                        continue;
                    }
                }
                let name = w
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let cc = w.get("clientConfig").cloned().unwrap_or(json!({}));
                let url = if let Some(u) = cc.get("url").and_then(Value::as_str) {
                    Ok(u.to_string())
                } else if let Some(svc) = cc.get("service") {
                    let ns = svc.get("namespace").and_then(Value::as_str).unwrap_or_default();
                    let sname = svc.get("name").and_then(Value::as_str).unwrap_or_default();
                    let path = svc.get("path").and_then(Value::as_str).unwrap_or("");
                    match cfg.services.get(&format!("{ns}/{sname}")) {
                        Some(base) => Ok(format!("{}{}", base.trim_end_matches('/'), path)),
                        None => Err(format!(
                            "service \"{sname}.{ns}.svc\" cannot be reached from the lab: map it with --webhook-service {ns}/{sname}=https://HOST:PORT"
                        )),
                    }
                } else {
                    Err("webhook has neither clientConfig.url nor clientConfig.service".to_string())
                };
                let ca_bundle = cc
                    .get("caBundle")
                    .and_then(Value::as_str)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .filter(|b| !b.is_empty());
                out.push(Hook {
                    name,
                    mutating: is_mut,
                    url,
                    ca_bundle,
                    ignore_failure: w.get("failurePolicy").and_then(Value::as_str) == Some("Ignore"),
                    timeout: Duration::from_secs(
                        w.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(10),
                    ),
                });
            }
        }
    }
    out
}

#[derive(Debug)]
struct AcceptAll;

impl rustls::client::danger::ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_config(ca: Option<&[u8]>, insecure: bool) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    match ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                let cert = cert.map_err(|e| format!("caBundle: {e}"))?;
                roots.add(cert).map_err(|e| format!("caBundle: {e}"))?;
            }
            Ok(builder.with_root_certificates(roots).with_no_client_auth())
        }
        None if insecure => Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAll))
            .with_no_client_auth()),
        None => Err("the webhook has no caBundle and the lab was not told to skip verification".into()),
    }
}

async fn post(hook: &Hook, cfg: &AdmissionConfig, review: &Value) -> Result<Value, String> {
    let url = hook.url.clone()?;
    // Plain-HTTP webhooks (accepted by the lab, not by a real apiserver) need no verification settings.
    let https = tls_config(
        hook.ca_bundle.as_deref(),
        cfg.insecure || url.starts_with("http://"),
    )?;
    let conn = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(https)
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(conn);
    let req = hyper::Request::post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(review).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let call = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("Post \"{url}\": {e:?}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "Post \"{url}\": HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice::<Value>(&body)
            .map_err(|e| format!("response body is not an AdmissionReview: {e}"))
    };
    tokio::time::timeout(hook.timeout, call)
        .await
        .map_err(|_| format!("Post \"{url}\": context deadline exceeded"))?
}

/// Denial in the apiserver's words (`webhookerrors.ToStatusErr`).
fn denial(hook: &str, result: Option<&Value>) -> ApiError {
    let denied_by = format!("admission webhook \"{hook}\" denied the request");
    let r = result.cloned().unwrap_or(json!({}));
    let code = r
        .get("code")
        .and_then(Value::as_u64)
        .filter(|c| *c >= 400)
        .unwrap_or(400) as u16;
    let msg = r.get("message").and_then(Value::as_str).filter(|s| !s.is_empty());
    let reason_s = r.get("reason").and_then(Value::as_str).filter(|s| !s.is_empty());
    let message = match (msg, reason_s) {
        (Some(m), _) => format!("{denied_by}: {m}"),
        (None, Some(rs)) => format!("{denied_by}: {rs}"),
        _ => format!("{denied_by} without explanation"),
    };
    let reason: &'static str = match reason_s {
        Some("Forbidden") => "Forbidden",
        Some("Invalid") => "Invalid",
        Some("BadRequest") => "BadRequest",
        _ => match code {
            403 => "Forbidden",
            422 => "Invalid",
            _ => "",
        },
    };
    ApiError {
        code,
        reason,
        message,
        details: r.get("details").cloned(),
    }
}

/// Runs the hooks in order on `object` (mutating ones may patch it) and returns the admitted object.
pub async fn run(
    cfg: &AdmissionConfig,
    hooks: &[Hook],
    a: &Attrs<'_>,
    mut object: Option<Value>,
    old: Option<&Value>,
) -> Result<Option<Value>, ApiError> {
    for hook in hooks {
        let uid = uuid::Uuid::new_v4().to_string();
        let gvk = json!({"group": a.def.group, "version": a.version, "kind": a.def.kind});
        let gvr = json!({"group": a.def.group, "version": a.version, "resource": a.def.plural});
        let mut request = json!({
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": a.name, "operation": a.op.as_str(),
            "userInfo": {"username": "danm-lab-admin", "groups": ["system:masters", "system:authenticated"]},
            "object": object.clone().unwrap_or(Value::Null), "oldObject": old.cloned().unwrap_or(Value::Null),
            "dryRun": a.dry_run,
        });
        if a.def.namespaced {
            request["namespace"] = json!(a.namespace);
        }
        if !a.subresource.is_empty() {
            request["subResource"] = json!(a.subresource);
        }
        let review =
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
        let resp = match post(hook, cfg, &review).await {
            Ok(r) => r,
            Err(e) if hook.ignore_failure => {
                tracing::warn!(webhook = %hook.name, error = %e, "webhook failed; failurePolicy Ignore");
                continue;
            }
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "failed calling webhook \"{}\": failed to call webhook: {e}",
                    hook.name
                )));
            }
        };
        let Some(r) = resp.get("response") else {
            return Err(ApiError::internal(format!(
                "failed calling webhook \"{}\": the AdmissionReview has no response",
                hook.name
            )));
        };
        if r.get("uid").and_then(Value::as_str) != Some(uid.as_str()) {
            return Err(ApiError::internal(format!(
                "failed calling webhook \"{}\": expected response.uid=\"{uid}\", got \"{}\"",
                hook.name,
                r.get("uid").and_then(Value::as_str).unwrap_or_default()
            )));
        }
        if r.get("allowed").and_then(Value::as_bool) != Some(true) {
            return Err(denial(&hook.name, r.get("status")));
        }
        if let Some(p) = r.get("patch").and_then(Value::as_str) {
            if !hook.mutating {
                return Err(ApiError::internal(format!(
                    "failed calling webhook \"{}\": a validating webhook returned a patch",
                    hook.name
                )));
            }
            let raw = base64::engine::general_purpose::STANDARD.decode(p).map_err(|e| {
                ApiError::internal(format!("webhook \"{}\": patch is not base64: {e}", hook.name))
            })?;
            let patch: json_patch::Patch = serde_json::from_slice(&raw).map_err(|e| {
                ApiError::internal(format!(
                    "webhook \"{}\": patch is not a JSONPatch: {e}",
                    hook.name
                ))
            })?;
            if let Some(obj) = object.as_mut() {
                json_patch::patch(obj, &patch).map_err(|e| {
                    ApiError::internal(format!("webhook \"{}\": applying its patch: {e}", hook.name))
                })?;
            }
        }
    }
    Ok(object)
}
