//! Raw throughput of the lab API server through kube-rs: conditional writes to one object (uncontended and
//! contended) and creates. The IPAM benchmark compares itself with these numbers. The load benchmarks
//! (`webhook_load`, `pods_at_once`, `attachments`) drive danm's real binaries.

pub mod attachments;
pub mod cni_pods;
pub mod host;
pub mod ipam_scale;
pub mod pods_at_once;
pub mod webhook_load;

use crate::{LabOptions, LabServer};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use std::fmt::Write;
use std::time::{Duration, Instant};

fn cm(name: &str, v: usize) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"counter": v.to_string()},
    }))
    .expect("static shape")
}

fn pct(mut d: Vec<Duration>, p: f64) -> Duration {
    d.sort();
    d.get(((d.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or_default()
}

/// Runs every measurement against a fresh in-process lab server and returns the report.
pub async fn run(ops: usize, clients: usize) -> anyhow::Result<String> {
    let lab = LabServer::start(LabOptions::default()).await?;
    let client = lab.client().await?;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut out = String::new();
    writeln!(
        out,
        "danm-lab throughput (kube-rs client, HTTP on loopback, {ops} ops per measurement)"
    )?;

    // 1. One writer: read the object once, then PUT with the last resourceVersion each time.
    let mut obj = api.create(&PostParams::default(), &cm("one", 0)).await?;
    let mut lat = Vec::with_capacity(ops);
    let t0 = Instant::now();
    for i in 0..ops {
        obj.data
            .as_mut()
            .unwrap()
            .insert("counter".into(), (i + 1).to_string());
        let t = Instant::now();
        obj = api.replace("one", &PostParams::default(), &obj).await?;
        lat.push(t.elapsed());
    }
    let el = t0.elapsed();
    writeln!(
        out,
        "conditional-update, 1 writer:        {:>9.0} writes/s  p50 {:>6.0} µs  p99 {:>6.0} µs",
        ops as f64 / el.as_secs_f64(),
        pct(lat.clone(), 0.5).as_secs_f64() * 1e6,
        pct(lat, 0.99).as_secs_f64() * 1e6
    )?;

    // 2. `clients` writers racing on the same object: GET, PUT with its resourceVersion, retry on 409.
    let per = ops / clients.max(1);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0usize;
            for _ in 0..per {
                loop {
                    let mut o = api.get("one").await?;
                    let n: usize = o
                        .data
                        .as_ref()
                        .and_then(|d| d.get("counter"))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    o.data
                        .as_mut()
                        .unwrap()
                        .insert("counter".into(), (n + 1).to_string());
                    match api.replace("one", &PostParams::default(), &o).await {
                        Ok(_) => break,
                        Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
            }
            Ok::<usize, anyhow::Error>(conflicts)
        }));
    }
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await??;
    }
    let el = t0.elapsed();
    let done = per * clients;
    let final_n: usize = api
        .get("one")
        .await?
        .data
        .and_then(|d| d.get("counter").cloned())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    anyhow::ensure!(
        final_n == ops + done,
        "lost update: counter {final_n}, expected {}",
        ops + done
    );
    writeln!(
        out,
        "conditional-update, {clients} racing (GET+PUT): {:>9.0} committed/s  {conflicts} conflicts ({:.2} per commit)",
        done as f64 / el.as_secs_f64(),
        conflicts as f64 / done as f64
    )?;

    // 3. Creates, sequential and from `clients` concurrent clients.
    let t0 = Instant::now();
    for i in 0..ops {
        api.create(&PostParams::default(), &cm(&format!("seq-{i}"), i))
            .await?;
    }
    let el = t0.elapsed();
    writeln!(
        out,
        "create, 1 client:                    {:>9.0} creates/s",
        ops as f64 / el.as_secs_f64()
    )?;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                api.create(&PostParams::default(), &cm(&format!("par-{c}-{i}"), i))
                    .await?;
            }
            Ok::<(), kube::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let el = t0.elapsed();
    writeln!(
        out,
        "create, {clients} clients:                   {:>9.0} creates/s",
        done as f64 / el.as_secs_f64()
    )?;
    lab.shutdown().await;
    Ok(out)
}
