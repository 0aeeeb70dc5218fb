//! Drives the webhook over HTTPS on loopback at a fixed rate and prints p50/p99 latency, then compares the cost of
//! the rules (rules plugin + backend plugin) run as wasm against the same Rust code linked natively.
//!
//! `cargo bench -p danm-webhook --features native-plugins --bench latency [-- --rate 500 --seconds 10]`
//! Needs the staged plugins (`make guests`; `DANM_PLUGIN_DIR` or `build/plugins`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use danm_controller_kit::{CertFiles, MetricsRegistry, Readiness, ReloadingCert};
use danm_webhook::Webhook;
use danm_webhook::cluster::MemoryCluster;
use danm_webhook::review::Operation;
use danm_webhook::validator::{NativeValidator, RulesReview, Validator, WasmValidator};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn plugin_dir() -> PathBuf {
    danm_testkit::fixtures::plugin_dir()
}

/// Reviews of the mix the bench sends: a valid DanmNet with a /24 (alloc patch), a denied one, a TenantConfig.
fn bodies() -> Vec<(&'static str, Bytes)> {
    let review = |kind: &str, object: Value| {
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "00000000-0000-4000-8000-000000000001", "kind": {"group": "danm.k8s.io", "version": "v1", "kind": kind},
            "operation": "CREATE", "namespace": "default", "name": "n", "object": object, "oldObject": null}})
    };
    let ok = json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet", "metadata": {"name": "n", "namespace": "default"},
        "spec": {"NetworkID": "internal", "Options": {"host_device": "eth1", "cidr": "10.1.0.0/24",
        "routes": {"10.2.0.0/16": "10.1.0.1"}, "vlan": 100}}});
    let bad = json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet", "metadata": {"name": "n", "namespace": "default"},
        "spec": {"NetworkType": "sriov", "Options": {"cidr": "10.0.0.0/7", "host_device": "x"}}});
    let tc = json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig", "metadata": {"name": "tc"},
        "hostDevices": [{"name": "ens4", "vniType": "vxlan", "vniRange": "100-200"}]});
    vec![
        ("/netvalidation", Bytes::from(review("DanmNet", ok).to_string())),
        ("/netvalidation", Bytes::from(review("DanmNet", bad).to_string())),
        (
            "/confvalidation",
            Bytes::from(review("TenantConfig", tc).to_string()),
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn serve(validator: Arc<dyn Validator>, dir: &std::path::Path) -> (std::net::SocketAddr, Vec<u8>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let files = CertFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    std::fs::write(&files.cert, ck.cert.pem()).unwrap();
    std::fs::write(&files.key, ck.key_pair.serialize_pem()).unwrap();
    let tls = ReloadingCert::new(files).unwrap().server_config().unwrap();
    let cluster = Arc::new(MemoryCluster::new(Vec::new()).unwrap());
    let webhook = Arc::new(Webhook::new(cluster, validator));
    let router = danm_webhook::server::router(webhook, Readiness::default(), MetricsRegistry::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(danm_controller_kit::serve_tls(
        listener,
        router,
        tls,
        Duration::from_secs(5),
        std::future::pending(),
    ));
    (addr, ck.cert.der().to_vec())
}

async fn drive(addr: std::net::SocketAddr, ca_der: Vec<u8>, rate: u64, seconds: u64) -> Vec<Duration> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der))
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let bodies = Arc::new(bodies());
    let total = rate * seconds;
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    for i in 0..total {
        // Open loop: each request has a scheduled start; latency counts from it (no coordinated omission).
        let scheduled = start + period * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let (path, body) = bodies[i as usize % bodies.len()].clone();
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let req = hyper::Request::post(format!("https://localhost:{}{path}", addr.port()))
                .header("content-type", "application/json")
                .body(Full::new(body))
                .unwrap();
            let resp = client.request(req).await.expect("request");
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
            scheduled.elapsed()
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn rules_cost(v: &dyn Validator, iterations: u32) -> Duration {
    let net = json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet", "metadata": {"name": "n", "namespace": "default"},
        "spec": {"NetworkID": "internal", "NetworkType": "ipvlan", "Options": {"host_device": "eth1", "cidr": "10.1.0.0/24",
        "routes": {"10.2.0.0/16": "10.1.0.1"}, "vlan": 100}}})
    .to_string();
    let review = RulesReview {
        kind: "DanmNet".into(),
        operation: Operation::Create,
        object_json: Some(net.clone()),
        old_object_json: None,
        tenant_config_json: None,
    };
    let start = Instant::now();
    for _ in 0..iterations {
        let r = v.rules(&review).unwrap();
        let b = v
            .backend("ipvlan", Operation::Create, &net, None)
            .unwrap()
            .unwrap();
        assert!(r.is_empty() && b.is_empty(), "{r:?} {b:?}");
    }
    start.elapsed() / iterations
}

fn main() {
    let rate = arg("--rate", 500);
    let seconds = arg("--seconds", 10);
    let dir = plugin_dir();
    let wasm = Arc::new(WasmValidator::load_dir(&dir, None, true).expect("plugins load"));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut lat = rt.block_on(async {
        let (addr, ca) = serve(wasm.clone(), tmp.path()).await;
        // Warm up the connection pool and the plugin instances.
        drive(addr, ca.clone(), 200, 1).await;
        drive(addr, ca, rate, seconds).await
    });
    lat.sort();
    let p50 = percentile(&lat, 0.50);
    let p99 = percentile(&lat, 0.99);
    println!(
        "webhook over TLS, {rate} req/s for {seconds} s ({} requests, wasm plugins): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= 5 ms: {})",
        lat.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
        if p99 <= Duration::from_millis(5) {
            "met"
        } else {
            "MISSED"
        }
    );

    let iterations = 2000;
    rules_cost(wasm.as_ref(), 50);
    rules_cost(&NativeValidator, 50);
    let w = rules_cost(wasm.as_ref(), iterations);
    let n = rules_cost(&NativeValidator, iterations);
    println!(
        "rules + ipvlan backend per network: wasm {:.1} µs, native {:.1} µs, ratio wasm/native {:.1}x",
        w.as_secs_f64() * 1e6,
        n.as_secs_f64() * 1e6,
        w.as_secs_f64() / n.as_secs_f64()
    );
}
