//! The HTTP edge: routes Kubernetes API paths (discovery, resources, subresources) and the lab admin API to the store,
//! runs admission between preparing and committing a write, and renders every failure as a Status.

use super::admission::{self, Attrs, Operation};
use super::patch::{self, PatchKind};
use super::registry::ResourceDef;
use super::selector::{FieldSelector, LabelSelector, labels_of};
use super::status::{ApiError, json_response};
use super::store::{self, check_body};
use super::{Shared, openapi, proto, table, watch};
use crate::server::fault::Fault;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::PoisonError;

const MAX_BODY: usize = 32 << 20;
const RETRIES: usize = 8;

/// Entry point of every request.
pub async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    match route(&sh, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// Where a resource request points.
#[derive(Debug)]
struct Target {
    def: ResourceDef,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v)
}

fn authorized(sh: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = &sh.token else { return true };
    headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token)
}

async fn route(sh: &Arc<Shared>, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if matches!(segs.as_slice(), ["healthz"] | ["livez"] | ["readyz"]) {
        return Ok((StatusCode::OK, "ok").into_response());
    }
    if !authorized(sh, req.headers()) {
        return Err(ApiError::unauthorized());
    }
    let query: HashMap<String, String> = Query::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default();
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let req = if ct.starts_with("application/vnd.kubernetes.protobuf") {
        // kubectl's typed clients (create namespace/configmap/secret) send protobuf; those few kinds are decoded.
        let (mut parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        let json = proto::decode(&body).ok_or_else(|| {
            ApiError::unsupported_media("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (protobuf only for Namespace, ConfigMap, Secret, ServiceAccount)")
        })?;
        parts.headers.insert(
            "content-type",
            axum::http::HeaderValue::from_static("application/json"),
        );
        Request::from_parts(
            parts,
            axum::body::Body::from(serde_json::to_vec(&json).unwrap_or_default()),
        )
    } else {
        req
    };
    match segs.as_slice() {
        [] => Ok(ok(
            &json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/version", "/lab/v1/faults"]}),
        )),
        ["version"] => Ok(ok(&version())),
        ["lab", "v1", "faults"] => faults(sh, req).await,
        ["openapi", "v3"] => Ok(ok(&openapi::root(
            &sh.store.lock().unwrap_or_else(PoisonError::into_inner).registry,
        ))),
        ["openapi", "v3", "api", v] => openapi::group_version(
            &sh.store.lock().unwrap_or_else(PoisonError::into_inner).registry,
            "",
            v,
        )
        .map(|d| ok(&d))
        .ok_or_else(ApiError::no_resource),
        ["openapi", "v3", "apis", g, v] => openapi::group_version(
            &sh.store.lock().unwrap_or_else(PoisonError::into_inner).registry,
            g,
            v,
        )
        .map(|d| ok(&d))
        .ok_or_else(ApiError::no_resource),
        ["api"] => Ok(ok(&json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": sh.addr}],
        }))),
        ["apis"] => Ok(ok(&group_list(sh))),
        ["apis", g] => {
            let list = group_list(sh);
            let found = list["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == *g).cloned());
            let mut grp = found.ok_or_else(ApiError::no_resource)?;
            grp["kind"] = json!("APIGroup");
            grp["apiVersion"] = json!("v1");
            Ok(ok(&grp))
        }
        ["api", "v1", rest @ ..] => resource(sh, req, query, "", "v1", rest).await,
        ["apis", g, v, rest @ ..] => resource(sh, req, query, g, v, rest).await,
        _ => Err(ApiError::no_resource()),
    }
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-danm-lab", "gitCommit": "danm-lab",
        "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

fn group_list(sh: &Shared) -> Value {
    let groups = sh
        .store
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .registry
        .groups();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": versions, "preferredVersion": versions[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

async fn faults(sh: &Shared, req: Request) -> Result<Response, ApiError> {
    match *req.method() {
        Method::GET => Ok(ok(&json!(sh.faults.list()))),
        Method::DELETE => {
            sh.faults.clear();
            Ok(ok(&json!([])))
        }
        Method::POST => {
            let body = read_body(req).await?;
            let f: Fault =
                serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("fault: {e}")))?;
            sh.faults.add(f);
            Ok(ok(&json!(sh.faults.list())))
        }
        _ => Err(ApiError::method_not_allowed("GET, POST or DELETE /lab/v1/faults")),
    }
}

async fn read_body(req: Request) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    // kubectl and kube-rs send JSON; YAML is accepted as a convenience (and is a superset of JSON).
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) => serde_yaml::from_slice::<Value>(body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| ApiError::bad_request(format!("error decoding the request body as JSON: {e}"))),
    }
}

fn resolve(sh: &Shared, group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
    let st = sh.store.lock().unwrap_or_else(PoisonError::into_inner);
    let reg = &st.registry;
    let s = |i: usize| rest.get(i).map(|x| x.to_string());
    let t = if rest.len() >= 3
        && rest[0] == "namespaces"
        && reg.lookup(group, version, rest[2]).is_some_and(|d| d.namespaced)
    {
        let def = reg.lookup(group, version, rest[2]).unwrap().clone();
        Target {
            def,
            version: version.into(),
            namespace: s(1),
            name: s(3),
            sub: s(4),
        }
    } else {
        let res = rest.first().ok_or_else(ApiError::no_resource)?;
        let def = reg
            .lookup(group, version, res)
            .ok_or_else(ApiError::no_resource)?
            .clone();
        if def.namespaced && rest.len() > 1 {
            // A namespaced resource addressed without a namespace.
            return Err(ApiError::no_resource());
        }
        Target {
            def,
            version: version.into(),
            namespace: None,
            name: s(1),
            sub: s(2),
        }
    };
    if rest.len() > 5
        || t.sub
            .as_deref()
            .is_some_and(|x| x != "status" || !t.def.status_subresource)
    {
        return Err(ApiError::no_resource());
    }
    Ok(t)
}

/// Sets `apiVersion` to the version the request was served at.
fn at_version(t: &Target, mut v: Value) -> Value {
    v["apiVersion"] = json!(t.def.api_version(&t.version));
    v
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

async fn resource(
    sh: &Arc<Shared>,
    req: Request,
    query: HashMap<String, String>,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Response, ApiError> {
    if rest.is_empty() {
        if *req.method() != Method::GET {
            return Err(ApiError::method_not_allowed("discovery documents are read-only"));
        }
        let list = sh
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .registry
            .resource_list(group, version);
        return list.map(|l| ok(&l)).ok_or_else(ApiError::no_resource);
    }
    let t = resolve(sh, group, version, rest)?;
    let resource = match &t.sub {
        Some(sub) => format!("{}/{sub}", t.def.plural),
        None => t.def.plural.clone(),
    };
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    sh.audit.record(
        req.headers(),
        req.method(),
        t.name.is_some(),
        watch,
        group,
        &resource,
        t.namespace.as_deref(),
    );
    let write = !matches!(*req.method(), Method::GET | Method::HEAD);
    inject_faults(sh, &t, write).await?;
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    let ns = t.namespace.clone().unwrap_or_default();
    match (req.method().clone(), t.name.clone()) {
        (Method::GET, None) => list_or_watch(sh, req, &query, t),
        (Method::GET, Some(name)) => get_one(sh, &req, &t, &ns, &name),
        (Method::POST, None) => create_one(sh, req, &t, &ns, dry_run).await,
        (Method::PUT, Some(name)) => replace_one(sh, req, &t, &ns, &name, dry_run).await,
        (Method::PATCH, Some(name)) => patch_one(sh, req, &t, &ns, &name, dry_run).await,
        (Method::DELETE, Some(name)) => delete_one(sh, req, &t, &ns, &name, dry_run).await,
        (Method::DELETE, None) => delete_collection(sh, &query, &t, dry_run).await,
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {m}"
        ))),
    }
}

/// The fault-injection layer: a configured latency, then a configured failure, before any verb runs.
async fn inject_faults(sh: &Shared, t: &Target, write: bool) -> Result<(), ApiError> {
    let verdict = sh.faults.take(&t.def.plural, write);
    if !verdict.latency.is_zero() {
        tokio::time::sleep(verdict.latency).await;
    }
    let Some(code) = verdict.fail else {
        return Ok(());
    };
    let name = t.name.clone().unwrap_or_default();
    let target = super::status::Target {
        group: &t.def.group,
        plural: &t.def.plural,
        name: &name,
    };
    Err(match code {
        409 => ApiError::conflict(target),
        500 => ApiError::internal(format!("injected fault on {}", t.def.plural)),
        c => ApiError {
            code: c,
            reason: "ServiceUnavailable",
            message: format!("injected fault on {}", t.def.plural),
            details: None,
        },
    })
}

/// GET of a collection: a list (or a table), or a watch.
fn list_or_watch(
    sh: &Arc<Shared>,
    req: Request,
    query: &HashMap<String, String>,
    t: Target,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if query.get("watch").is_some_and(|w| w == "1" || w == "true") {
        return Ok(watch::serve(
            sh.clone(),
            t.def,
            t.version,
            t.namespace,
            labels,
            fields,
            query,
        ));
    }
    let (items, rv) = {
        let st = sh.store.lock().unwrap_or_else(PoisonError::into_inner);
        (st.list(&t.def, t.namespace.as_deref(), &labels, &fields), st.rv())
    };
    if wants_table(req.headers()) {
        return Ok(ok(&table::table(&t.def, &t.version, &items, &rv.to_string())));
    }
    let items: Vec<Value> = items.into_iter().map(|o| at_version(&t, o)).collect();
    Ok(ok(&json!({
        "kind": t.def.list_kind, "apiVersion": t.def.api_version(&t.version),
        "metadata": {"resourceVersion": rv.to_string()}, "items": items,
    })))
}

/// GET of one object (or its table row).
fn get_one(sh: &Shared, req: &Request, t: &Target, ns: &str, name: &str) -> Result<Response, ApiError> {
    let obj = sh
        .store
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&t.def, ns, name)?
        .clone();
    if wants_table(req.headers()) {
        let rv = obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        return Ok(ok(&table::table(&t.def, &t.version, &[obj], &rv)));
    }
    Ok(ok(&at_version(t, obj)))
}

/// POST: a create.
async fn create_one(
    sh: &Arc<Shared>,
    req: Request,
    t: &Target,
    ns: &str,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let body = read_body(req).await?;
    let mut obj = parse_json(&body)?;
    check_body(&t.def, &t.version, &mut obj)?;
    let created = create(sh, t, ns, obj, dry_run).await?;
    Ok(json_response(StatusCode::CREATED, &at_version(t, created)))
}

/// PUT: a (conditional) replace.
async fn replace_one(
    sh: &Arc<Shared>,
    req: Request,
    t: &Target,
    ns: &str,
    name: &str,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let body = read_body(req).await?;
    let mut obj = parse_json(&body)?;
    check_body(&t.def, &t.version, &mut obj)?;
    let status_only = t.sub.is_some();
    let out = update(sh, t, ns, name, dry_run, |st| {
        st.prepare_update(&t.def, ns, name, obj.clone(), status_only)
    })
    .await?;
    Ok(ok(&at_version(t, out)))
}

/// PATCH: JSON, merge or apply patches (an apply of a missing object creates it).
async fn patch_one(
    sh: &Arc<Shared>,
    req: Request,
    t: &Target,
    ns: &str,
    name: &str,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let kind = PatchKind::from_content_type(&ct).ok_or_else(|| {
            ApiError::unsupported_media(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {ct:?})"))
        })?;
    let body = read_body(req).await?;
    if kind == PatchKind::Apply {
        let exists = sh
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&t.def, ns, name)
            .is_ok();
        if !exists {
            let mut obj: Value = serde_yaml::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            check_body(&t.def, &t.version, &mut obj)?;
            obj["metadata"]["name"] = json!(name);
            let created = create(sh, t, ns, obj, dry_run).await?;
            return Ok(json_response(StatusCode::CREATED, &at_version(t, created)));
        }
    }
    let status_only = t.sub.is_some();
    let out = update(sh, t, ns, name, dry_run, |st| {
        let cur = st.get(&t.def, ns, name)?.clone();
        let mut patched = patch::apply(kind, &cur, &body).map_err(|e| match e {
            patch::PatchError::Format => ApiError::bad_request(e.to_string()),
            patch::PatchError::Json(m) => {
                ApiError::invalid(&t.def.kind, &t.def.group, name, "patch", "FieldValueInvalid", &m)
            }
        })?;
        check_body(&t.def, &t.version, &mut patched)?;
        // A resourceVersion the patch set (or kept) different from the stored one is a precondition failure.
        st.prepare_update(&t.def, ns, name, patched, status_only)
    })
    .await?;
    Ok(ok(&at_version(t, out)))
}

/// DELETE of one object (with DeleteOptions: preconditions, dry run).
async fn delete_one(
    sh: &Arc<Shared>,
    req: Request,
    t: &Target,
    ns: &str,
    name: &str,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let body = read_body(req).await?;
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        parse_json(&body)?
    };
    let dry = dry_run
        || opts["dryRun"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    let out = delete(sh, t, ns, name, opts.get("preconditions"), dry).await?;
    Ok(ok(&at_version(t, out)))
}

/// DELETE of a collection (by label and field selector).
async fn delete_collection(
    sh: &Arc<Shared>,
    query: &HashMap<String, String>,
    t: &Target,
    dry_run: bool,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let items = sh.store.lock().unwrap_or_else(PoisonError::into_inner).list(
        &t.def,
        t.namespace.as_deref(),
        &labels,
        &fields,
    );
    let mut gone = Vec::new();
    for o in items {
        let ons = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match delete(sh, t, &ons, store::name_of(&o), None, dry_run).await {
            Ok(g) => gone.push(at_version(t, g)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = sh.store.lock().unwrap_or_else(PoisonError::into_inner).rv();
    Ok(ok(&json!({
        "kind": t.def.list_kind, "apiVersion": t.def.api_version(&t.version),
        "metadata": {"resourceVersion": rv.to_string()}, "items": gone,
    })))
}

/// The matching webhooks for a request, read under the lock.
fn hooks_for(
    sh: &Shared,
    st: &store::Store,
    a: &Attrs<'_>,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> Vec<admission::Hook> {
    let reg = &st.registry;
    let (Some(mdef), Some(vdef)) = (
        reg.lookup(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
        ),
        reg.lookup(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
        ),
    ) else {
        return Vec::new();
    };
    let none = (LabelSelector::default(), FieldSelector::default());
    let m = st.list(mdef, None, &none.0, &none.1);
    let v = st.list(vdef, None, &none.0, &none.1);
    if m.is_empty() && v.is_empty() {
        return Vec::new();
    }
    let ns_labels = reg
        .lookup("", "v1", "namespaces")
        .and_then(|d| st.get(d, a.namespace, a.namespace).ok())
        .map(|n| labels_of(n, "/metadata/labels"))
        .unwrap_or_default();
    let cfg = sh.admission.read().unwrap_or_else(PoisonError::into_inner);
    admission::matching(&cfg, &m, &v, a, &ns_labels, obj, old)
}

async fn create(sh: &Shared, t: &Target, ns: &str, obj: Value, dry_run: bool) -> Result<Value, ApiError> {
    let (prepared, hooks) = {
        let mut st = sh.store.lock().unwrap_or_else(PoisonError::into_inner);
        let prepared = st.prepare_create(&t.def, ns, obj)?;
        let name = store::name_of(&prepared).to_string();
        let a = attrs(t, ns, &name, Operation::Create, dry_run);
        let hooks = hooks_for(sh, &st, &a, Some(&prepared), None);
        if hooks.is_empty() {
            let out = st.commit_create(&t.def, prepared, dry_run);
            drop(st);
            sh.notify();
            return out;
        }
        (prepared, hooks)
    };
    let name = store::name_of(&prepared).to_string();
    let a = attrs(t, ns, &name, Operation::Create, dry_run);
    let cfg = sh
        .admission
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let admitted = admission::run(&cfg, &hooks, &a, Some(prepared), None)
        .await?
        .expect("create has an object");
    let out = sh
        .store
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .commit_create(&t.def, admitted, dry_run);
    sh.notify();
    out
}

fn attrs<'a>(t: &'a Target, ns: &'a str, name: &'a str, op: Operation, dry_run: bool) -> Attrs<'a> {
    Attrs {
        def: &t.def,
        version: &t.version,
        subresource: t.sub.as_deref().unwrap_or(""),
        op,
        namespace: ns,
        name,
        dry_run,
    }
}

/// Prepare (under the lock), admit (without it), commit (under it again); a commit that loses a race with another
/// writer is retried from a fresh prepare, so only a stale resourceVersion *sent by the client* is a 409.
async fn update<F>(
    sh: &Shared,
    t: &Target,
    ns: &str,
    name: &str,
    dry_run: bool,
    prepare: F,
) -> Result<Value, ApiError>
where
    F: Fn(&store::Store) -> Result<(Value, Value), ApiError>,
{
    for _ in 0..RETRIES {
        let (old, new, hooks) = {
            let mut st = sh.store.lock().unwrap_or_else(PoisonError::into_inner);
            let (old, new) = prepare(&st)?;
            let a = attrs(t, ns, name, Operation::Update, dry_run);
            let hooks = hooks_for(sh, &st, &a, Some(&new), Some(&old));
            if hooks.is_empty() {
                let base = old["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let out = st.commit_update(&t.def, new, &base, dry_run);
                drop(st);
                sh.notify();
                return out;
            }
            (old, new, hooks)
        };
        let a = attrs(t, ns, name, Operation::Update, dry_run);
        let cfg = sh
            .admission
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let admitted = admission::run(&cfg, &hooks, &a, Some(new), Some(&old))
            .await?
            .expect("update has an object");
        let base = old["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let res = sh
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .commit_update(&t.def, admitted, &base, dry_run);
        sh.notify();
        match res {
            Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
            r => return r,
        }
    }
    let target = super::status::Target {
        group: &t.def.group,
        plural: &t.def.plural,
        name,
    };
    Err(ApiError::conflict(target))
}

async fn delete(
    sh: &Shared,
    t: &Target,
    ns: &str,
    name: &str,
    preconditions: Option<&Value>,
    dry_run: bool,
) -> Result<Value, ApiError> {
    let hooks = {
        let mut st = sh.store.lock().unwrap_or_else(PoisonError::into_inner);
        let old = st.get(&t.def, ns, name)?.clone();
        let a = attrs(t, ns, name, Operation::Delete, dry_run);
        let hooks = hooks_for(sh, &st, &a, None, Some(&old));
        if hooks.is_empty() {
            let out = st.delete(&t.def, ns, name, preconditions, dry_run);
            drop(st);
            sh.notify();
            return out;
        }
        (hooks, old)
    };
    let a = attrs(t, ns, name, Operation::Delete, dry_run);
    let cfg = sh
        .admission
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    admission::run(&cfg, &hooks.0, &a, None, Some(&hooks.1)).await?;
    let out = sh.store.lock().unwrap_or_else(PoisonError::into_inner).delete(
        &t.def,
        ns,
        name,
        preconditions,
        dry_run,
    );
    sh.notify();
    out
}
