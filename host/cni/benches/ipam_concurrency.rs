//! Dynamic allocation throughput: 1000 pods, one native macvlan interface each on one DanmNet, ADDed by `danm`
//! processes 20 at a time (as 20 kubelet workers would), against the lab API server's raw conditional-write rate
//! measured in the same run by `danm_lab::bench` (20 clients racing GET+PUT on one object, and one uncontended
//! writer). Target: ≥ 50 % of the contended raw rate, with zero duplicate addresses (asserted). For scale it also
//! times Debian's macvlan plugin with static IPAM doing the same ADDs 20 at a time: one exec per ADD with no API
//! work at all, the ceiling of any CNI binary on this machine.
//! It also measures danm's IPAM layer alone (the same reads and conditional writes as an ADD, from 20 tasks in this
//! process, like the raw baseline's racers), which separates what the IPAM design costs from what a process and
//! the kernel cost per ADD.
//! `cargo bench -p danm-cni --bench ipam_concurrency`; root and the built plugins needed (prints why and exits 0
//! otherwise). `DANM_IPAM_BENCH_PODS` changes the number of pods.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Danm, PodNs, Veth, danmnet, get_danmnet, median, ms, ok, pod, skip_reason};
use danm_api::DanmEp;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

const CONCURRENCY: usize = 20;

/// The rate printed before `unit` (e.g. `committed/s`) on the line of `report` that contains `marker`.
fn rate(report: &str, marker: &str, unit: &str) -> f64 {
    report
        .lines()
        .find(|l| l.contains(marker))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| *w == unit)?;
            words.get(at.checked_sub(1)?)?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no {marker:?} line with a rate in {unit} in the lab report:\n{report}"))
}

/// The DanmNet `name`'s bitmap is `before` plus exactly `addrs`: each is marked, and releasing them all restores it.
async fn assert_bitmap_holds(client: &kube::Client, name: &str, before: &str, addrs: &[String]) {
    let mut spec = get_danmnet(client, name).await.spec;
    for a in addrs {
        let (released, changed) = danm_core::ipam::release(&spec, a, "");
        assert!(changed, "{a} is not marked allocated in {name}");
        spec = released;
    }
    assert_eq!(
        spec.options.alloc, before,
        "{name}'s bitmap holds exactly the returned addresses"
    );
}

async fn bench(pods: usize) {
    // Baseline: the lab server's raw conditional writes, same process, same moment.
    let report = danm_lab::bench::run(pods, CONCURRENCY)
        .await
        .expect("lab baseline");
    let raw_contended = rate(&report, "racing", "committed/s");
    let raw_single = rate(&report, "1 writer", "writes/s");

    let tmp = tempfile::Builder::new().prefix("danm-bench").tempdir().unwrap();
    let (lab, client) = common::lab().await;
    let veth = Veth::new("biv");
    let net = danmnet(
        &client,
        "bulk",
        json!({"NetworkID": "bulk", "NetworkType": "macvlan",
               "Options": {"host_device": veth.0, "cidr": "10.82.0.0/20"}}),
    )
    .await;
    let danm = Arc::new(Danm::new(&lab, &tmp.path().join("cache")));
    // Warm the precompiled-plugin cache outside the measurement.
    {
        pod(&client, "warm", json!([{"network": "bulk", "ip": "dynamic"}])).await;
        let ns = PodNs::new(&format!("danm-bw-{}", std::process::id()));
        ok("warm-up ADD", &danm.run("ADD", "warm", "warm", ns.path()).await);
        ok("warm-up DEL", &danm.run("DEL", "warm", "warm", ns.path()).await);
    }
    let before = get_danmnet(&client, "bulk").await;
    assert_eq!(
        before.spec.options.alloc, net.spec.options.alloc,
        "the warm-up address was released"
    );

    let t = Instant::now();
    let mut namespaces = Vec::with_capacity(pods);
    for i in 0..pods {
        pod(
            &client,
            &format!("p{i}"),
            json!([{"network": "bulk", "ip": "dynamic"}]),
        )
        .await;
        namespaces.push(Arc::new(PodNs::new(&format!(
            "danm-b{}-{i}",
            std::process::id() % 10_000
        ))));
    }
    let setup = t.elapsed();

    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let t = Instant::now();
    let mut tasks = Vec::with_capacity(pods);
    for (i, ns) in namespaces.iter().enumerate() {
        let (gate, danm, ns) = (gate.clone(), danm.clone(), ns.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.unwrap();
            let t = Instant::now();
            let out = danm
                .run("ADD", &format!("p{i}"), &format!("c{i}"), ns.path())
                .await;
            let took = t.elapsed();
            let result: Value = serde_json::from_str(&ok(&format!("ADD p{i}"), &out)).unwrap();
            let addr = result["ips"][0]["address"]
                .as_str()
                .unwrap_or_else(|| panic!("p{i}: {result}"))
                .to_owned();
            (addr, took)
        }));
    }
    let mut addrs = Vec::with_capacity(pods);
    let mut latencies: Vec<Duration> = Vec::with_capacity(pods);
    for task in tasks {
        let (addr, took) = task.await.unwrap();
        addrs.push(addr);
        latencies.push(took);
    }
    let elapsed = t.elapsed();

    // Zero duplicates: in the results, in the DanmEps, and every address marked in the network's bitmap.
    let distinct: BTreeSet<&String> = addrs.iter().collect();
    assert_eq!(distinct.len(), pods, "duplicate addresses among the ADD results");
    let eps: Vec<DanmEp> = kube::Api::<DanmEp>::namespaced(client.clone(), common::NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(eps.len(), pods, "one DanmEp per pod");
    let ep_addrs: BTreeSet<String> = eps.iter().map(|e| e.spec.interface.address.clone()).collect();
    assert_eq!(
        ep_addrs,
        addrs.iter().cloned().collect(),
        "DanmEps record exactly the returned addresses"
    );
    assert_bitmap_holds(&client, "bulk", &before.spec.options.alloc, &addrs).await;

    // The same ADDs by Debian's macvlan plugin with static IPAM (no API server, no IPAM at all), 20 at a time into
    // the same namespaces: what one exec per ADD costs on this machine, the ceiling of any CNI plugin binary.
    let debian = if std::path::Path::new("/usr/lib/cni/macvlan").exists() {
        let parent = veth.0.clone();
        let t = Instant::now();
        let mut tasks = Vec::with_capacity(pods);
        for (i, ns) in namespaces.iter().enumerate() {
            let (gate, ns, parent) = (gate.clone(), ns.clone(), parent.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let conf = json!({"cniVersion": "1.0.0", "name": "deb", "type": "macvlan", "master": parent,
                    "mode": "bridge", "ipam": {"type": "static", "addresses": [
                        {"address": format!("10.83.{}.{}/16", i / 250, i % 250 + 1)}]}})
                .to_string();
                let env = [
                    ("CNI_CONTAINERID", format!("d{i}")),
                    ("CNI_NETNS", ns.path().to_owned()),
                    ("CNI_IFNAME", "deb0".to_owned()),
                    ("CNI_PATH", "/usr/lib/cni".to_owned()),
                ];
                let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let out =
                    common::exec_plugin(std::path::Path::new("/usr/lib/cni/macvlan"), "ADD", &env, &conf)
                        .await;
                ok(&format!("Debian macvlan ADD d{i}"), &out);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        Some(pods as f64 / t.elapsed().as_secs_f64())
    } else {
        None
    };

    // danm's IPAM layer alone, without the process and the kernel work of an ADD: CONCURRENCY tasks in this process
    // reserve `pods` addresses on another DanmNet exactly as an ADD does (read the network, `reserve_batch`: reserve
    // in the bitmap, conditional PUT, re-read with danm's jittered backoff on 409), like the raw baseline's racers.
    let ipam_rate = {
        let net = danmnet(
            &client,
            "ipamonly",
            json!({"NetworkID": "ipamonly", "NetworkType": "macvlan",
                   "Options": {"host_device": veth.0, "cidr": "10.84.0.0/20"}}),
        )
        .await;
        let before = net.spec.options.alloc.clone();
        let api: Arc<dyn danm_cni::api::Api> = Arc::new(danm_cni::api::KubeApi::new(client.clone()));
        let per = pods / CONCURRENCY;
        let t = Instant::now();
        let mut tasks = Vec::with_capacity(CONCURRENCY);
        for _ in 0..CONCURRENCY {
            let api = api.clone();
            tasks.push(tokio::spawn(async move {
                let dynamic = danm_core::ipam::IpRequest::Dynamic;
                let absent = danm_core::ipam::IpRequest::Absent;
                let mut got = Vec::with_capacity(per);
                for _ in 0..per {
                    let net = api
                        .get_network(danm_api::NetworkKind::DanmNet, common::NS, "ipamonly")
                        .await
                        .expect("read the network")
                        .expect("the network exists");
                    let owner = format!("bench-{}", got.len());
                    let ipam = danm_cni::ipam::Ipam::new(
                        api.as_ref(),
                        "bench-node",
                        danm_cni::ipam::IpamConfig::default(),
                    );
                    let request = danm_cni::ipam::Request {
                        ip4: dynamic,
                        ip6: absent,
                        owner: &owner,
                    };
                    let (reserved, _) = ipam.reserve(&net, &[request]).await.expect("reserve");
                    got.push(reserved[0].ip4.clone());
                }
                got
            }));
        }
        let mut got = Vec::with_capacity(per * CONCURRENCY);
        for task in tasks {
            got.extend(task.await.unwrap());
        }
        let rate = got.len() as f64 / t.elapsed().as_secs_f64();
        let distinct: BTreeSet<&String> = got.iter().collect();
        assert_eq!(
            distinct.len(),
            got.len(),
            "duplicate addresses from the IPAM layer"
        );
        assert_bitmap_holds(&client, "ipamonly", &before, &got).await;
        (got.len(), rate)
    };

    let rate_danm = pods as f64 / elapsed.as_secs_f64();
    println!("{report}");
    println!(
        "danm ADD, {pods} pods x 1 dynamic IPv4 on one DanmNet, {CONCURRENCY} concurrent danm processes \
         (pods + netns set up beforehand in {:.1} s)",
        setup.as_secs_f64()
    );
    println!(
        "  {rate_danm:>9.0} allocations/s end to end ({:.2} s), ADD latency p50 {:.1} ms, p99 {:.1} ms; \
         0 duplicates among {pods} addresses",
        elapsed.as_secs_f64(),
        ms(median(latencies.clone())),
        ms({
            latencies.sort();
            latencies[(latencies.len() - 1) * 99 / 100]
        })
    );
    let ratio = rate_danm / raw_contended;
    println!(
        "  danm / lab raw contended ({CONCURRENCY} racing GET+PUT, {raw_contended:.0}/s): {:.0} %  (target >= 50 %: {})",
        ratio * 100.0,
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
    println!(
        "  danm / lab raw uncontended (1 writer PUT, {raw_single:.0}/s):      {:.0} %",
        rate_danm / raw_single * 100.0
    );
    let (ipam_n, ipam_rate) = ipam_rate;
    println!(
        "danm IPAM layer alone (in process, {CONCURRENCY} tasks: GET network + reserve_batch, danm's 409 backoff), {ipam_n} \
         allocations: {ipam_rate:.0}/s = {:.0} % of the lab raw contended rate; 0 duplicates",
        ipam_rate / raw_contended * 100.0
    );
    if let Some(deb) = debian {
        println!(
            "Debian macvlan + static IPAM (no API, no IPAM), same {pods} namespaces, {CONCURRENCY} at a time: {deb:.0} ADDs/s \
             = {:.0} % of the lab raw contended rate; danm reaches {:.0} % of this exec-per-ADD ceiling",
            deb / raw_contended * 100.0,
            rate_danm / deb * 100.0
        );
    }
    drop(namespaces);
    lab.shutdown().await;
}

fn main() {
    if let Some(reason) = skip_reason() {
        println!("ipam_concurrency bench skipped: {reason}");
        return;
    }
    let pods = std::env::var("DANM_IPAM_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench(pods));
}
