//! Shared helpers of the webhook's integration tests: the built plugins, AdmissionReview builders, and calls
//! through the router in-process.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use danm_controller_kit::{MetricsRegistry, Readiness};
use danm_webhook::cluster::MemoryCluster;
use danm_webhook::metrics::WebhookMetrics;
use danm_webhook::validator::WasmValidator;
use danm_webhook::{RetryPolicy, Webhook};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The plugin directory: `DANM_PLUGIN_DIR`, else `<repo>/build/plugins` (where `make guests` stages them).
pub fn plugin_dir() -> PathBuf {
    danm_testkit::fixtures::plugin_dir()
}

/// Whether `dir` holds any `.wasm` file.
pub fn has_plugins(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        })
        .unwrap_or(false)
}

/// The wasm plugins, loaded once per test binary. Panics (the test fails) when they were not built.
pub fn validator() -> Arc<WasmValidator> {
    static V: OnceLock<Arc<WasmValidator>> = OnceLock::new();
    V.get_or_init(|| {
        let dir = plugin_dir();
        if !has_plugins(&dir) {
            panic!(
                "the wasm plugins are missing in {}: run `make guests` first",
                dir.display()
            );
        }
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("danm-plugin-cache");
        std::fs::create_dir_all(&cache).unwrap();
        let v = Arc::new(
            WasmValidator::load_dir(&dir, Some(&cache), false).unwrap_or_else(|e| {
                panic!(
                    "cannot load the plugins of {} ({e}): run `make guests` first",
                    dir.display()
                )
            }),
        );
        let problems = v.load_errors();
        assert!(
            problems.is_empty(),
            "plugin directory {} has problems: {problems:?}",
            dir.display()
        );
        v
    })
    .clone()
}

/// A test rig: an in-memory cluster, the webhook (seeded) and its router.
pub struct Rig {
    pub cluster: Arc<MemoryCluster>,
    pub router: Router,
    pub registry: MetricsRegistry,
}

pub fn rig(objects: Vec<Value>) -> Rig {
    rig_seeded(objects, 7)
}

pub fn rig_seeded(objects: Vec<Value>, seed: u64) -> Rig {
    rig_with(objects, seed, danm_core::ipam::blocks::IpamMode::Bitmap)
}

/// A rig whose webhook gives new networks `mode` when they name none.
pub fn rig_with(objects: Vec<Value>, seed: u64, mode: danm_core::ipam::blocks::IpamMode) -> Rig {
    rig_on(MemoryCluster::new(objects).unwrap(), seed, mode)
}

/// A rig over `cluster` as given (e.g. with API latency).
pub fn rig_on(cluster: MemoryCluster, seed: u64, mode: danm_core::ipam::blocks::IpamMode) -> Rig {
    let cluster = Arc::new(cluster);
    let (registry, metrics) = WebhookMetrics::registry();
    let metrics = Arc::new(metrics);
    let retry = RetryPolicy {
        attempts: 4,
        ..RetryPolicy::default()
    };
    let webhook = Webhook::new(cluster.clone(), validator())
        .with_seed(seed)
        .with_retry(retry)
        .with_metrics(metrics)
        .with_ipam_mode(mode);
    let ready = Readiness::default();
    ready.set(true);
    let router = danm_webhook::server::router(Arc::new(webhook), ready, registry.clone());
    Rig {
        cluster,
        router,
        registry,
    }
}

pub fn uid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!("00000000-0000-4000-8000-{:012}", N.fetch_add(1, Ordering::SeqCst))
}

fn plural(kind: &str) -> String {
    format!("{}s", kind.to_ascii_lowercase())
}

/// An AdmissionReview v1 for `object`/`old` (either may be null).
pub fn review(op: &str, object: &Value, old: &Value) -> Value {
    let src = if object.is_null() { old } else { object };
    let kind = src
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("DanmNet")
        .to_owned();
    let name = src
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let ns = src
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid(),
            "kind": {"group": "danm.k8s.io", "version": "v1", "kind": kind},
            "resource": {"group": "danm.k8s.io", "version": "v1", "resource": plural(&kind)},
            "name": name,
            "namespace": ns,
            "operation": op,
            "userInfo": {"username": "test"},
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

/// A network object of `kind` with `spec` (namespace `default` unless cluster-scoped).
pub fn net(kind: &str, name: &str, spec: Value) -> Value {
    let mut meta = json!({"name": name});
    if kind != "ClusterNetwork" {
        meta["namespace"] = json!("default");
    }
    json!({"apiVersion": "danm.k8s.io/v1", "kind": kind, "metadata": meta, "spec": spec})
}

pub fn danmnet(name: &str, spec: Value) -> Value {
    net("DanmNet", name, spec)
}

pub fn tenantconfig(name: &str, host_devices: Value, network_ids: Value) -> Value {
    json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig", "metadata": {"name": name},
        "hostDevices": host_devices, "networkIds": network_ids})
}

/// A profile with a fresh VNI map.
pub fn profile(name: &str, vni_type: &str, range: &str) -> Value {
    json!({"name": name, "vniType": vni_type, "vniRange": range, "alloc": danm_core::vni::fresh_vni_alloc()})
}

pub fn danmep(ns: &str, pod: &str, network: &str, api_type: &str) -> Value {
    json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
        "metadata": {"name": format!("{pod}-{network}"), "namespace": ns},
        "spec": {"NetworkName": network, "Pod": pod, "apiType": api_type, "Interface": {"Name": "eth0"}}})
}

/// POSTs `body` to `path`; returns the status and the body (JSON when it parses, else a string).
pub async fn post_raw(router: &Router, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// The outcome of a review.
#[derive(Debug)]
pub struct Outcome {
    pub review: Value,
    pub response: Value,
    /// The incoming object with the patch applied (strict RFC 6902).
    pub patched: Value,
    pub patch: Vec<Value>,
}

impl Outcome {
    pub fn allowed(&self) -> bool {
        self.response["allowed"] == json!(true)
    }
    pub fn message(&self) -> String {
        self.response
            .pointer("/status/message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    }
    pub fn paths(&self) -> Vec<String> {
        self.patch
            .iter()
            .map(|o| o["path"].as_str().unwrap().to_owned())
            .collect()
    }
    #[track_caller]
    pub fn assert_denied(&self, needle: &str) {
        assert!(
            !self.allowed(),
            "expected a denial containing {needle:?}, got {}",
            self.response
        );
        assert!(
            self.message().contains(needle),
            "denial {:?} lacks {needle:?}",
            self.message()
        );
        assert!(self.response.get("patch").is_none(), "a denial carries no patch");
    }
    #[track_caller]
    pub fn assert_allowed(&self) {
        assert!(self.allowed(), "expected allowed, got {}", self.response);
        assert!(
            self.response.get("status").is_none(),
            "an allowed response carries no status: {}",
            self.response
        );
    }
}

/// Sends a review to `path` and decodes the response; asserts the protocol (200, v1, uid echoed).
pub async fn call(rig: &Rig, path: &str, review: Value) -> Outcome {
    let (status, body) = post_raw(&rig.router, path, serde_json::to_vec(&review).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["apiVersion"], review["apiVersion"]);
    assert_eq!(body["kind"], "AdmissionReview");
    let response = body["response"].clone();
    assert_eq!(response["uid"], review["request"]["uid"]);
    let mut patch = Vec::new();
    let mut patched = review["request"]["object"].clone();
    if let Some(p) = response.get("patch").and_then(Value::as_str) {
        assert_eq!(response["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        patch = serde_json::from_slice(&raw).unwrap();
        let ops: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
        json_patch::patch(&mut patched, &ops).expect("the patch applies to the incoming object");
    }
    Outcome {
        review,
        response,
        patched,
        patch,
    }
}

pub async fn create(rig: &Rig, object: Value) -> Outcome {
    call(rig, "/netvalidation", review("CREATE", &object, &Value::Null)).await
}

pub async fn update(rig: &Rig, old: Value, object: Value) -> Outcome {
    call(rig, "/netvalidation", review("UPDATE", &object, &old)).await
}

pub async fn delete(rig: &Rig, old: Value) -> Outcome {
    call(rig, "/netdeletion", review("DELETE", &Value::Null, &old)).await
}

pub async fn conf(rig: &Rig, op: &str, object: Value, old: Value) -> Outcome {
    call(rig, "/confvalidation", review(op, &object, &old)).await
}

/// The stored TenantConfig `name`.
pub fn stored_tc(rig: &Rig, name: &str) -> Value {
    rig.cluster
        .objects()
        .into_iter()
        .find(|o| o["kind"] == "TenantConfig" && o["metadata"]["name"] == name)
        .expect("TenantConfig exists")
}

/// Set bits of a DANM base64 bitmap.
pub fn set_bits(b64: &str) -> Vec<usize> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    (0..bytes.len() * 8)
        .filter(|i| bytes[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect()
}
