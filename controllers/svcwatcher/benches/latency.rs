//! svcwatcher latency and memory at scale: 5 000 pods with one DanmEp each and 50 services (100 pods each) in the
//! lab; svcwatcher runs as its own process (the built `svcwatcher` binary) against the lab server. Measures the
//! time from a DanmEp create/delete to the service's EndpointSlice showing it (target <= 100 ms), the
//! controller's resident memory, and as the in-run baseline the latency of one API write (DanmEp create) and of
//! the pure `desired_endpoints` for one service. Run: `cargo bench -p danm-svcwatcher --bench latency`
//! (`DANM_BENCH_PODS`, `DANM_BENCH_SERVICES`, `DANM_BENCH_ROUNDS` override the sizes).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use danm_api::{DanmEp, DanmEpInterface, DanmEpSpec};
use danm_lab::{LabOptions, LabServer};
use danm_svcwatcher::{desired_endpoints, selection};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Pod, PodSpec, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use std::sync::Arc;
use tokio::sync::Notify;

const NS: &str = "bench";

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256)
}

fn pod(i: usize, services: usize) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("p{i}")),
            namespace: Some(NS.into()),
            labels: Some(BTreeMap::from([("svc".to_owned(), format!("s{}", i % services))])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node1".into()),
            containers: vec![k8s_openapi::api::core::v1::Container {
                name: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn danmep(name: &str, pod: &Pod, address: &str) -> DanmEp {
    let mut ep = DanmEp::new(
        NS,
        name,
        DanmEpSpec {
            network_name: "net".into(),
            api_type: "DanmNet".into(),
            pod: pod.metadata.name.clone().unwrap_or_default(),
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            interface: DanmEpInterface {
                name: "eth1".into(),
                address: format!("{address}/8"),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    ep.metadata.labels = pod.metadata.labels.clone();
    ep
}

fn service(j: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(format!("s{j}")),
            namespace: Some(NS.into()),
            annotations: Some(BTreeMap::from([
                ("danm.k8s.io/selector".to_owned(), format!(r#"{{"svc":"s{j}"}}"#)),
                ("danm.k8s.io/network".to_owned(), "net".to_owned()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Pods are never marked Ready here; publishing unready addresses keeps every address in the slice.
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("p".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Waits, on the bench's own watch of the slices (no polling load on the server), until slice `name` does
/// (`present`) or does not hold `address`.
async fn wait_until(
    slices: &Store<EndpointSlice>,
    changed: &Notify,
    name: &str,
    address: &str,
    present: bool,
    timeout: Duration,
) -> Duration {
    let start = Instant::now();
    let key = ObjectRef::new(name).within(NS);
    loop {
        let notified = changed.notified();
        let has = slices.get(&key).is_some_and(|s| {
            s.endpoints
                .iter()
                .any(|e| e.addresses.iter().any(|a| a == address))
        });
        if has == present {
            return start.elapsed();
        }
        let left = timeout
            .checked_sub(start.elapsed())
            .expect("slice change not seen in time");
        let _ = tokio::time::timeout(left, notified).await;
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let pods_n = env_usize("DANM_BENCH_PODS", 5000);
    let services_n = env_usize("DANM_BENCH_SERVICES", 50);
    let rounds = env_usize("DANM_BENCH_ROUNDS", 40);
    let lab = LabServer::start(LabOptions::default()).await?;
    let client: Client = lab.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in danm_api::crd::all() {
        crds.create(&PostParams::default(), &serde_json::from_value(crd)?)
            .await?;
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    for ns in [NS, "kube-system"] {
        let obj = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let _ = nss.create(&PostParams::default(), &obj).await;
    }

    let start = Instant::now();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let eps_api: Api<DanmEp> = Api::namespaced(client.clone(), NS);
    let created: Vec<Pod> = stream::iter(0..pods_n)
        .map(|i| {
            let pods_api = pods_api.clone();
            let eps_api = eps_api.clone();
            async move {
                let p = pods_api
                    .create(&PostParams::default(), &pod(i, services_n))
                    .await
                    .expect("pod");
                eps_api
                    .create(&PostParams::default(), &danmep(&format!("ep{i}"), &p, &ip(i)))
                    .await
                    .expect("danmep");
                p
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let svc_api: Api<Service> = Api::namespaced(client.clone(), NS);
    for j in 0..services_n {
        svc_api.create(&PostParams::default(), &service(j)).await?;
    }
    println!(
        "populated {pods_n} pods + {pods_n} DanmEps + {services_n} services in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let bin = env!("CARGO_BIN_EXE_svcwatcher");
    let child = Command::new(bin)
        .args(["--kubeconfig"])
        .arg(lab.kubeconfig_path())
        .args([
            "--metrics-addr",
            "127.0.0.1:0",
            "--identity",
            "bench",
            "--retry-ms",
            "200",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let _guard = Guard(child);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let (slice_store, writer) = reflector::store::<EndpointSlice>();
    let changed = Arc::new(Notify::new());
    {
        let changed = changed.clone();
        let stream = watcher(slices.clone(), watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while stream.next().await.is_some() {
                changed.notify_waiters();
            }
        });
    }
    let sync_start = Instant::now();
    let per_service = pods_n / services_n;
    loop {
        let list = slices.list(&ListParams::default()).await?;
        let full = list
            .items
            .iter()
            .filter(|s| s.endpoints.len() >= per_service)
            .count();
        if full >= services_n {
            break;
        }
        anyhow::ensure!(
            sync_start.elapsed() < Duration::from_secs(300),
            "initial sync incomplete: {full}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let initial_sync = sync_start.elapsed();
    let (rss_synced, _) = rss_kib(pid);

    // Latency: create then delete a DanmEp of an existing pod, waiting each time for its service's slice.
    let mut latencies = Vec::new();
    let mut api_writes = Vec::new();
    for r in 0..rounds {
        let i = (r * 97) % pods_n;
        let p = &created
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(&format!("p{i}")))
            .expect("pod");
        let slice = format!("s{}-danm-ipv4", i % services_n);
        let address = ip(pods_n + 1000 + r);
        let name = format!("extra{r}");
        let t0 = Instant::now();
        eps_api
            .create(&PostParams::default(), &danmep(&name, p, &address))
            .await?;
        api_writes.push(t0.elapsed());
        wait_until(
            &slice_store,
            &changed,
            &slice,
            &address,
            true,
            Duration::from_secs(10),
        )
        .await;
        latencies.push(t0.elapsed());
        let t1 = Instant::now();
        eps_api.delete(&name, &DeleteParams::default()).await?;
        wait_until(
            &slice_store,
            &changed,
            &slice,
            &address,
            false,
            Duration::from_secs(10),
        )
        .await;
        latencies.push(t1.elapsed());
    }
    let (rss_end, hwm) = rss_kib(pid);

    // Pure core baseline: desired_endpoints for one service over the whole namespace.
    let svc = service(0);
    let sel = selection(&svc)?.expect("managed");
    let all_pods: Vec<Pod> = pods_api.list(&ListParams::default()).await?.items;
    let all_eps: Vec<DanmEp> = eps_api.list(&ListParams::default()).await?.items;
    let pod_refs: Vec<&Pod> = all_pods.iter().collect();
    let ep_refs: Vec<&DanmEp> = all_eps.iter().collect();
    let t = Instant::now();
    let reps = 20;
    for _ in 0..reps {
        std::hint::black_box(desired_endpoints(&svc, &sel, &ep_refs, &pod_refs));
    }
    let pure = t.elapsed() / reps;

    latencies.sort();
    api_writes.sort();
    let median = percentile(&latencies, 0.5);
    let api_median = percentile(&api_writes, 0.5);
    println!(
        "svcwatcher bench: {pods_n} pods/DanmEps, {services_n} services, {} measured changes",
        latencies.len()
    );
    println!(
        "  initial sync (process start -> all slices full): {:.2} s",
        initial_sync.as_secs_f64()
    );
    println!(
        "  DanmEp change -> EndpointSlice updated: median {:.1} ms, p95 {:.1} ms, max {:.1} ms (target <= 100 ms)",
        median.as_secs_f64() * 1e3,
        percentile(&latencies, 0.95).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  baseline, one API write (DanmEp create): median {:.2} ms; change-to-slice / API write = {:.1}x",
        api_median.as_secs_f64() * 1e3,
        median.as_secs_f64() / api_median.as_secs_f64().max(1e-9)
    );
    println!(
        "  pure desired_endpoints for one service over {pods_n} pods: {:.2} ms",
        pure.as_secs_f64() * 1e3
    );
    println!(
        "  svcwatcher resident memory: {:.1} MiB after sync, {:.1} MiB at the end, peak {:.1} MiB",
        rss_synced as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}
