//! `danm-lab bench webhook`: the real `danm-webhook` binary serving HTTPS, backed by a lab API server in a third
//! process, driven from this process at a constant rate (open loop: each request has a scheduled start and its
//! latency counts from it, so a slow server cannot slow the load down). The requests are a fixed mix of the
//! AdmissionReviews an API server sends: DanmNet, ClusterNetwork and TenantNetwork CREATE, UPDATE and DELETE
//! (TenantNetworks reserve and free VLAN ids in the TenantConfig), TenantConfig CREATE, valid and invalid objects,
//! and updates and deletes of networks that pods (their DanmEps) still use. Every answer is checked against the
//! verdict its request must get. Prints one JSON line: errors, latency quantiles, achieved rate, the webhook's peak
//! RSS (`VmHWM`), and the VLAN ids still reserved against the ones the run's TenantNetworks hold.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use bytes::Bytes;
use danm_api::{DanmEp, TenantConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kube::api::PostParams;
use serde::Serialize;
use serde_json::{Value, json};

use super::host::{self, ChildLab};

/// Rate, duration and binaries.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    pub rate: u64,
    pub seconds: u64,
    pub webhook: PathBuf,
    pub lab: PathBuf,
    pub plugin_dir: PathBuf,
    /// Pods (DanmEps) using the busy networks.
    pub pods: usize,
}

/// The JSON line.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WebhookReport {
    pub target_rps: u64,
    pub seconds: u64,
    pub requests: usize,
    /// Completed requests over the time from the first scheduled start to the last answer.
    pub achieved_rps: f64,
    /// Transport failures, non-200 answers, timeouts and wrong verdicts (must be 0).
    pub errors: usize,
    pub error_samples: Vec<String>,
    /// Requests denied as they must be (invalid objects, networks in use).
    pub denied_as_expected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub webhook_peak_rss_kib: u64,
    pub lab_server_peak_rss_kib: u64,
    pub loadavg: [f64; 3],
    /// Requests per template.
    pub mix: BTreeMap<String, usize>,
    /// A VLAN id handed to a TenantNetwork while another live one held it (must be 0).
    pub vni_duplicates: usize,
    /// VLAN ids the TenantConfig holds minus those the run's live TenantNetworks hold (must be 0).
    pub vni_mismatch: i64,
}

impl WebhookReport {
    pub fn passed(&self) -> bool {
        self.errors == 0 && self.vni_duplicates == 0 && self.vni_mismatch == 0
    }
}

/// One kind of request of the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Template {
    DanmNetCreate,
    DanmNetCreateInvalid,
    DanmNetUpdate,
    DanmNetUpdateInUse,
    DanmNetDelete,
    DanmNetDeleteInUse,
    ClusterNetworkCreate,
    ClusterNetworkUpdate,
    ClusterNetworkDelete,
    ClusterNetworkDeleteInUse,
    TenantNetworkCreate,
    TenantNetworkDelete,
    TenantConfigCreate,
    TenantConfigCreateInvalid,
}

use Template as T;

/// Twenty requests, repeated: 40 % networks created, 20 % updated, 20 % deleted (half of those refused for pods
/// still connected), 10 % TenantNetwork VLAN churn, 10 % TenantConfigs.
const MIX: [Template; 20] = [
    T::DanmNetCreate,
    T::DanmNetUpdate,
    T::ClusterNetworkCreate,
    T::TenantNetworkCreate,
    T::DanmNetCreate,
    T::DanmNetUpdateInUse,
    T::TenantConfigCreate,
    T::DanmNetDelete,
    T::DanmNetCreateInvalid,
    T::TenantNetworkDelete,
    T::DanmNetCreate,
    T::ClusterNetworkUpdate,
    T::DanmNetDeleteInUse,
    T::DanmNetUpdate,
    T::ClusterNetworkDeleteInUse,
    T::TenantConfigCreateInvalid,
    T::DanmNetCreate,
    T::ClusterNetworkCreate,
    T::DanmNetUpdate,
    T::ClusterNetworkDelete,
];

impl Template {
    fn name(self) -> String {
        format!("{self:?}")
    }

    fn allowed(self) -> bool {
        !matches!(
            self,
            T::DanmNetCreateInvalid
                | T::DanmNetUpdateInUse
                | T::DanmNetDeleteInUse
                | T::ClusterNetworkDeleteInUse
                | T::TenantConfigCreateInvalid
        )
    }
}

fn danmnet(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmNet", "metadata": {"name": name, "namespace": "default"},
        "spec": spec})
}

fn clusternet(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "danm.k8s.io/v1", "kind": "ClusterNetwork", "metadata": {"name": name}, "spec": spec})
}

fn tenantnet(name: &str) -> Value {
    json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantNetwork", "metadata": {"name": name, "namespace": "default"},
        "spec": {"NetworkID": name, "Options": {"cidr": "10.9.0.0/24"}}})
}

fn tenantconfig(name: &str, range: &str) -> Value {
    json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig", "metadata": {"name": name},
        "hostDevices": [{"name": "ens5", "vniType": "vxlan", "vniRange": range}]})
}

fn review(kind: &str, op: &str, namespace: &str, name: &str, object: Value, old: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": uuid::Uuid::new_v4().to_string(),
        "kind": {"group": "danm.k8s.io", "version": "v1", "kind": kind},
        "resource": {"group": "danm.k8s.io", "version": "v1", "resource": format!("{}s", kind.to_lowercase())},
        "operation": op, "namespace": namespace, "name": name,
        "userInfo": {"username": "system:serviceaccount:kube-system:loader"},
        "object": object, "oldObject": old, "dryRun": false}})
}

/// The objects as the API server stores them after admission (created through the webhook once, patch applied).
#[derive(Clone, Debug, Default)]
struct Stored {
    idle_dn: Value,
    busy_dn: Value,
    idle_cn: Value,
    busy_cn: Value,
    tn: Value,
}

/// Live TenantNetworks' VLAN ids, in creation order (deletes free the oldest).
#[derive(Debug, Default)]
struct Vnis {
    live: VecDeque<u32>,
    set: BTreeSet<u32>,
    duplicates: usize,
}

struct Generator {
    client:
        Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>,
    base: String,
    stored: Stored,
    vnis: Mutex<Vnis>,
}

/// The path and body of request `i` of template `t`.
impl Generator {
    fn request(&self, t: Template, i: u64) -> (&'static str, Value) {
        let s = &self.stored;
        let n = format!("load-{i}");
        let with = |mut v: Value, ptr: &str, val: Value| {
            if let Some(x) = v.pointer_mut(ptr) {
                *x = val;
            }
            v
        };
        match t {
            T::DanmNetCreate => {
                let spec = json!({"NetworkID": format!("l{}", i % 10_000), "NetworkType": "macvlan", "Options": {"host_device": "eth1",
                    "cidr": "10.1.0.0/24", "routes": {"10.2.0.0/16": "10.1.0.1"}}});
                (
                    "/netvalidation",
                    review("DanmNet", "CREATE", "default", &n, danmnet(&n, spec), Value::Null),
                )
            }
            T::DanmNetCreateInvalid => {
                let spec =
                    json!({"NetworkType": "sriov", "Options": {"cidr": "10.0.0.0/7", "host_device": "x"}});
                (
                    "/netvalidation",
                    review("DanmNet", "CREATE", "default", &n, danmnet(&n, spec), Value::Null),
                )
            }
            T::DanmNetUpdate => {
                let new = with(
                    s.idle_dn.clone(),
                    "/spec/Options/routes",
                    json!({"10.3.0.0/16": "10.1.0.1"}),
                );
                (
                    "/netvalidation",
                    review("DanmNet", "UPDATE", "default", "idle", new, s.idle_dn.clone()),
                )
            }
            T::DanmNetUpdateInUse => {
                let new = with(s.busy_dn.clone(), "/spec/Options/vlan", json!(51));
                (
                    "/netvalidation",
                    review("DanmNet", "UPDATE", "default", "busy", new, s.busy_dn.clone()),
                )
            }
            T::DanmNetDelete => (
                "/netdeletion",
                review(
                    "DanmNet",
                    "DELETE",
                    "default",
                    "idle",
                    Value::Null,
                    s.idle_dn.clone(),
                ),
            ),
            T::DanmNetDeleteInUse => (
                "/netdeletion",
                review(
                    "DanmNet",
                    "DELETE",
                    "default",
                    "busy",
                    Value::Null,
                    s.busy_dn.clone(),
                ),
            ),
            T::ClusterNetworkCreate => {
                let spec = json!({"NetworkID": format!("c{}", i % 10_000), "NetworkType": "macvlan",
                    "Options": {"host_device": "eth2", "cidr": "10.5.0.0/24"}});
                (
                    "/netvalidation",
                    review(
                        "ClusterNetwork",
                        "CREATE",
                        "",
                        &n,
                        clusternet(&n, spec),
                        Value::Null,
                    ),
                )
            }
            T::ClusterNetworkUpdate => {
                let new = with(
                    s.idle_cn.clone(),
                    "/spec/Options/routes",
                    json!({"10.6.0.0/16": "10.5.0.1"}),
                );
                (
                    "/netvalidation",
                    review("ClusterNetwork", "UPDATE", "", "cidle", new, s.idle_cn.clone()),
                )
            }
            T::ClusterNetworkDelete => (
                "/netdeletion",
                review(
                    "ClusterNetwork",
                    "DELETE",
                    "",
                    "cidle",
                    Value::Null,
                    s.idle_cn.clone(),
                ),
            ),
            T::ClusterNetworkDeleteInUse => (
                "/netdeletion",
                review(
                    "ClusterNetwork",
                    "DELETE",
                    "",
                    "cbusy",
                    Value::Null,
                    s.busy_cn.clone(),
                ),
            ),
            T::TenantNetworkCreate => (
                "/netvalidation",
                review(
                    "TenantNetwork",
                    "CREATE",
                    "default",
                    &n,
                    tenantnet(&n),
                    Value::Null,
                ),
            ),
            T::TenantNetworkDelete => {
                // The oldest live TenantNetwork goes (one without a VLAN id when none is live).
                let vni = self
                    .vnis
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .live
                    .pop_front();
                let old = with(s.tn.clone(), "/spec/Options/vxlan", json!(vni.unwrap_or(0)));
                if let Some(v) = vni {
                    self.vnis.lock().unwrap_or_else(|p| p.into_inner()).set.remove(&v);
                }
                (
                    "/netdeletion",
                    review("TenantNetwork", "DELETE", "default", "tn", Value::Null, old),
                )
            }
            T::TenantConfigCreate => (
                "/confvalidation",
                review(
                    "TenantConfig",
                    "CREATE",
                    "",
                    &n,
                    tenantconfig(&n, "1000-1100"),
                    Value::Null,
                ),
            ),
            T::TenantConfigCreateInvalid => (
                "/confvalidation",
                review(
                    "TenantConfig",
                    "CREATE",
                    "",
                    &n,
                    tenantconfig(&n, "1000-11a0"),
                    Value::Null,
                ),
            ),
        }
    }

    /// Sends one review; the parsed response or why it failed.
    async fn send(&self, path: &str, body: &Value) -> Result<Value, String> {
        let req = hyper::Request::post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .map_err(|_| "no answer within 10 s (the API server's webhook timeout)".to_string())?
            .map_err(|e| format!("transport: {e}"))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        if status != 200 {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not JSON: {e}"))
    }
}

/// The response's JSONPatch, decoded.
fn patch_of(resp: &Value) -> Option<json_patch::Patch> {
    let b64 = resp.pointer("/response/patch")?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// The VXLAN id a TenantNetwork CREATE's patch assigns.
fn vxlan_of(resp: &Value) -> Option<u32> {
    let patch = patch_of(resp)?;
    patch.0.iter().find_map(|op| match op {
        json_patch::PatchOperation::Add(a) if a.path.as_str() == "/spec/Options/vxlan" => {
            a.value.as_u64().map(|v| v as u32)
        }
        _ => None,
    })
}

fn allowed(resp: &Value) -> bool {
    resp.pointer("/response/allowed").and_then(Value::as_bool) == Some(true)
}

/// Creates `object` through the webhook once and returns it as stored (patch applied).
async fn admitted(g: &Generator, kind: &str, ns: &str, name: &str, object: Value) -> anyhow::Result<Value> {
    let body = review(kind, "CREATE", ns, name, object.clone(), Value::Null);
    let resp = g
        .send("/netvalidation", &body)
        .await
        .map_err(|e| anyhow::anyhow!("creating {kind} {name} through the webhook: {e}"))?;
    anyhow::ensure!(allowed(&resp), "{kind} {name} was denied: {resp}");
    let mut stored = object;
    if let Some(p) = patch_of(&resp) {
        json_patch::patch(&mut stored, &p).with_context(|| format!("applying the patch of {kind} {name}"))?;
    }
    Ok(stored)
}

fn https_client(ca_pem: &str) -> anyhow::Result<Generator> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(cfg)
        .https_only()
        .enable_http1()
        .build();
    Ok(Generator {
        client: Client::builder(TokioExecutor::new()).build(https),
        base: String::new(),
        stored: Stored::default(),
        vnis: Mutex::new(Vnis::default()),
    })
}

/// Seeds the lab: the TenantConfig the TenantNetworks take VLAN ids from, and the DanmEps of `pods` pods using
/// the busy DanmNet and ClusterNetwork.
async fn seed(client: &kube::Client, pods: usize) -> anyhow::Result<()> {
    let tc: TenantConfig = serde_json::from_value(
        json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig",
        "metadata": {"name": "tconf"}, "hostDevices": [{"name": "ens4", "vniType": "vxlan", "vniRange": "1-5000",
        "alloc": danm_core::vni::fresh_vni_alloc()}]}),
    )?;
    kube::Api::<TenantConfig>::all(client.clone())
        .create(&PostParams::default(), &tc)
        .await
        .context("creating the TenantConfig")?;
    let eps: kube::Api<DanmEp> = kube::Api::namespaced(client.clone(), "default");
    for i in 0..pods {
        let (net, api_type) = if i % 3 == 2 {
            ("cbusy", "ClusterNetwork")
        } else {
            ("busy", "DanmNet")
        };
        let ep: DanmEp = serde_json::from_value(json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
            "metadata": {"name": format!("ep-{i}"), "namespace": "default"},
            "spec": {"NetworkName": net, "Pod": format!("web-{i}"), "apiType": api_type, "Host": "lab-node",
                "Interface": {"Name": "eth0", "Address": format!("10.0.{}.{}/16", i / 250, i % 250 + 1)}}}))?;
        eps.create(&PostParams::default(), &ep)
            .await
            .context("creating a DanmEp")?;
    }
    Ok(())
}

/// The VXLAN ids the TenantConfig's `ens4` profile holds.
async fn reserved_vnis(client: &kube::Client) -> anyhow::Result<usize> {
    let tc = kube::Api::<TenantConfig>::all(client.clone())
        .get("tconf")
        .await?;
    let dev = tc
        .host_devices
        .iter()
        .find(|d| d.name == "ens4")
        .context("the TenantConfig lost its ens4 profile")?;
    let bitmap = danm_core::ipam::Bitmap::decode(&dev.alloc)?;
    Ok(bitmap.count_set_in(1, 5000))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Runs the load; the lab server and the webhook are started and stopped here.
pub async fn run(opts: &WebhookOptions) -> anyhow::Result<WebhookReport> {
    anyhow::ensure!(
        opts.plugin_dir.join("rules.wasm").exists(),
        "webhook: no rules.wasm in the plugin directory {} (run `make guests` or pass --plugin-dir)",
        opts.plugin_dir.display()
    );
    anyhow::ensure!(
        opts.rate > 0 && opts.seconds > 0,
        "webhook: --rate and --seconds must be positive"
    );
    let dir = std::env::temp_dir().join(format!("danm-load-webhook-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_in(opts, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn start_webhook(
    opts: &WebhookOptions,
    dir: &Path,
    kubeconfig: &Path,
) -> anyhow::Result<(tokio::process::Child, u16, String)> {
    let certs = crate::tls::generate(&["localhost", "127.0.0.1"])?;
    std::fs::write(dir.join("tls.crt"), &certs.cert_pem)?;
    std::fs::write(dir.join("tls.key"), &certs.key_pem)?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("webhook.log"))?;
    let child = tokio::process::Command::new(&opts.webhook)
        .arg("--plugin-dir")
        .arg(&opts.plugin_dir)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--bind-address", "127.0.0.1", "--bind-port", &port.to_string()])
        .arg("--tls-cert-bundle")
        .arg(dir.join("tls.crt"))
        .arg("--tls-private-key-file")
        .arg(dir.join("tls.key"))
        .args(["--log", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", opts.webhook.display()))?;
    Ok((child, port, certs.ca_pem))
}

async fn run_in(opts: &WebhookOptions, dir: &Path) -> anyhow::Result<WebhookReport> {
    let lab = ChildLab::start(&opts.lab, dir).await?;
    seed(&lab.client, opts.pods).await?;
    let (mut webhook, port, ca) = start_webhook(opts, dir, &lab.kubeconfig).await?;
    let webhook_pid = webhook.id().unwrap_or(0);
    let mut g = https_client(&ca)?;
    g.base = format!("https://localhost:{port}");

    // Ready when /readyz answers over TLS.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let req = hyper::Request::get(format!("{}/readyz", g.base)).body(Full::new(Bytes::new()))?;
        if let Ok(r) = g.client.request(req).await
            && r.status() == 200
        {
            break;
        }
        if let Ok(Some(st)) = webhook.try_wait() {
            anyhow::bail!(
                "the webhook exited ({st}); see {}",
                dir.join("webhook.log").display()
            );
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the webhook did not become ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The stored objects the UPDATEs and DELETEs refer to, admitted through the webhook as the API server does.
    let ipvlan = |cidr: &str| {
        json!({"NetworkID": "busy", "NetworkType": "ipvlan",
        "Options": {"host_device": "ens4", "cidr": cidr, "vlan": 50}})
    };
    g.stored = Stored {
        idle_dn: admitted(
            &g,
            "DanmNet",
            "default",
            "idle",
            danmnet("idle", ipvlan("10.1.0.0/24")),
        )
        .await?,
        busy_dn: admitted(
            &g,
            "DanmNet",
            "default",
            "busy",
            danmnet("busy", ipvlan("10.0.0.0/16")),
        )
        .await?,
        idle_cn: admitted(
            &g,
            "ClusterNetwork",
            "",
            "cidle",
            clusternet("cidle", ipvlan("10.5.0.0/24")),
        )
        .await?,
        busy_cn: admitted(
            &g,
            "ClusterNetwork",
            "",
            "cbusy",
            clusternet("cbusy", ipvlan("10.0.0.0/16")),
        )
        .await?,
        tn: {
            let mut tn = tenantnet("tn");
            tn["spec"]["NetworkType"] = json!("ipvlan");
            tn["spec"]["Options"]["host_device"] = json!("ens4");
            tn["spec"]["Options"]["vxlan"] = json!(0);
            tn
        },
    };
    let g = Arc::new(g);
    let before = reserved_vnis(&lab.client).await?;

    // Warm-up (connections, plugin instances): one second at a tenth of the rate, not counted.
    let warm = drive(&g, (opts.rate / 10).max(10), 1).await;
    anyhow::ensure!(warm.errors == 0, "warm-up failed: {:?}", warm.error_samples);

    let mut report = WebhookReport {
        target_rps: opts.rate,
        seconds: opts.seconds,
        loadavg: host::loadavg(),
        ..Default::default()
    };
    let r = drive(&g, opts.rate, opts.seconds).await;
    report.requests = r.latencies.len();
    report.achieved_rps = host::r2(r.latencies.len() as f64 / r.elapsed.as_secs_f64());
    report.errors = r.errors;
    report.error_samples = r.error_samples;
    report.denied_as_expected = r.denied;
    report.mix = r.mix;
    let mut lat = r.latencies;
    lat.sort();
    report.p50_ms = host::r2(host::quantile_ms(&lat, 0.5));
    report.p99_ms = host::r2(host::quantile_ms(&lat, 0.99));
    report.max_ms = host::r2(host::quantile_ms(&lat, 1.0));
    report.webhook_peak_rss_kib = host::peak_rss_kib(webhook_pid).unwrap_or(0);
    report.lab_server_peak_rss_kib = lab.peak_rss_kib();
    let (duplicates, live) = {
        let vnis = g.vnis.lock().unwrap_or_else(|p| p.into_inner());
        (vnis.duplicates, vnis.live.len() as i64)
    };
    report.vni_duplicates = duplicates;
    let held = reserved_vnis(&lab.client).await? as i64 - before as i64;
    report.vni_mismatch = held - live;
    let _ = webhook.start_kill();
    let _ = webhook.wait().await;
    lab.stop().await;
    Ok(report)
}

struct Driven {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: usize,
    error_samples: Vec<String>,
    denied: usize,
    mix: BTreeMap<String, usize>,
}

/// Sends `rate` requests per second for `seconds`, open loop, and checks every verdict.
async fn drive(g: &Arc<Generator>, rate: u64, seconds: u64) -> Driven {
    let total = rate * seconds;
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    let mut mix = BTreeMap::new();
    for i in 0..total {
        let scheduled = start + period.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let t = MIX[(i % MIX.len() as u64) as usize];
        *mix.entry(t.name()).or_insert(0) += 1;
        let g = g.clone();
        handles.push(tokio::spawn(async move {
            let (path, body) = g.request(t, i);
            let res = g.send(path, &body).await;
            let latency = scheduled.elapsed();
            let verdict = match res {
                Err(e) => Err(format!("{}: {e}", t.name())),
                Ok(resp) if allowed(&resp) != t.allowed() => Err(format!(
                    "{}: expected allowed={}, got {}",
                    t.name(),
                    t.allowed(),
                    resp.pointer("/response/status/message").unwrap_or(&Value::Null)
                )),
                Ok(resp) => {
                    if t == T::TenantNetworkCreate {
                        match vxlan_of(&resp) {
                            Some(v) => {
                                let mut vn = g.vnis.lock().unwrap_or_else(|p| p.into_inner());
                                if !vn.set.insert(v) {
                                    vn.duplicates += 1;
                                }
                                vn.live.push_back(v);
                            }
                            None => return (latency, Err(format!("{}: no VXLAN id in the patch", t.name()))),
                        }
                    }
                    Ok(!t.allowed())
                }
            };
            (latency, verdict)
        }));
    }
    let mut out = Driven {
        latencies: Vec::with_capacity(handles.len()),
        elapsed: Duration::ZERO,
        errors: 0,
        error_samples: Vec::new(),
        denied: 0,
        mix,
    };
    for h in handles {
        match h.await {
            Ok((lat, verdict)) => {
                out.latencies.push(lat);
                match verdict {
                    Ok(true) => out.denied += 1,
                    Ok(false) => {}
                    Err(e) => {
                        out.errors += 1;
                        if out.error_samples.len() < 5 {
                            out.error_samples.push(e);
                        }
                    }
                }
            }
            Err(e) => {
                out.errors += 1;
                out.error_samples.push(format!("request task: {e}"));
            }
        }
    }
    out.elapsed = start.elapsed();
    out
}
