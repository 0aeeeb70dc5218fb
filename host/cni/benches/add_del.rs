//! ADD+DEL latency of the `danm` binary against the lab API server, on real links: (a) one native macvlan interface
//! (API IPAM, wasm translation, DanmEp, network-status) against Debian's `/usr/lib/cni/macvlan` + `static` IPAM doing
//! the same interface, target ratio ≤ 1.0; (b) a pod with 8 interfaces against one with 1, target ≤ 2.5×.
//! `cargo bench -p danm-cni --bench add_del`; root and the built plugins needed (prints why and exits 0 otherwise).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Danm, PodNs, Veth, danmnet, exec_plugin, median, ms, ok, pod, skip_reason};
use serde_json::json;

/// Measured rounds per case (after one warm-up round); the cases alternate so drift hits all alike.
const ROUNDS: usize = 15;

struct Times {
    add: Vec<Duration>,
    del: Vec<Duration>,
    total: Vec<Duration>,
}

impl Times {
    fn new() -> Times {
        Times {
            add: Vec::new(),
            del: Vec::new(),
            total: Vec::new(),
        }
    }
    fn push(&mut self, add: Duration, del: Duration) {
        self.add.push(add);
        self.del.push(del);
        self.total.push(add + del);
    }
    fn line(&self, what: &str) -> Duration {
        let total = median(self.total.clone());
        println!(
            "  {what:<44} ADD {:>7.2} ms  DEL {:>7.2} ms  ADD+DEL {:>7.2} ms (medians of {})",
            ms(median(self.add.clone())),
            ms(median(self.del.clone())),
            ms(total),
            self.total.len()
        );
        total
    }
}

/// One danm ADD+DEL of `pod`; checks the pod netns got `ifaces` links and lost them again.
async fn danm_round(danm: &Danm, pod: &str, cid: &str, ns: &PodNs, ifaces: usize) -> (Duration, Duration) {
    let t = Instant::now();
    let out = danm.run("ADD", pod, cid, ns.path()).await;
    let add = t.elapsed();
    ok(&format!("danm ADD {pod}"), &out);
    assert_eq!(ns.links().len(), ifaces, "danm ADD {pod}: links {:?}", ns.links());
    let t = Instant::now();
    let out = danm.run("DEL", pod, cid, ns.path()).await;
    let del = t.elapsed();
    ok(&format!("danm DEL {pod}"), &out);
    assert!(ns.links().is_empty(), "danm DEL {pod} left {:?}", ns.links());
    (add, del)
}

/// One ADD+DEL of Debian's macvlan plugin with static IPAM.
async fn debian_round(config: &str, cid: &str, ns: &PodNs) -> (Duration, Duration) {
    let bin = Path::new("/usr/lib/cni/macvlan");
    let env = [
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", ns.path()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    let t = Instant::now();
    let out = exec_plugin(bin, "ADD", &env, config).await;
    let add = t.elapsed();
    ok("Debian macvlan ADD", &out);
    assert_eq!(ns.links(), ["eth0"]);
    let t = Instant::now();
    let out = exec_plugin(bin, "DEL", &env, config).await;
    let del = t.elapsed();
    ok("Debian macvlan DEL", &out);
    assert!(ns.links().is_empty(), "Debian macvlan DEL left {:?}", ns.links());
    (add, del)
}

async fn bench() {
    let tmp = tempfile::Builder::new().prefix("danm-bench").tempdir().unwrap();
    let (lab, client) = common::lab().await;
    let veth = Veth::new("bav");
    for i in 0..8 {
        danmnet(
            &client,
            &format!("net{i}"),
            json!({"NetworkID": format!("net{i}"), "NetworkType": "macvlan",
                   "Options": {"host_device": veth.0, "cidr": format!("10.81.{i}.0/24")}}),
        )
        .await;
    }
    pod(&client, "one", json!([{"network": "net0", "ip": "dynamic"}])).await;
    let eight: Vec<_> = (0..8)
        .map(|i| json!({"network": format!("net{i}"), "ip": "dynamic"}))
        .collect();
    pod(&client, "eight", json!(eight)).await;
    let danm = Danm::new(&lab, &tmp.path().join("cache"));
    let ns = PodNs::new(&format!("danm-bench-{}", std::process::id()));
    let debian =
        json!({"cniVersion": "1.0.0", "name": "mv", "type": "macvlan", "master": veth.0, "mode": "bridge",
                        "ipam": {"type": "static", "addresses": [{"address": "10.81.0.200/24"}]}})
        .to_string();

    let (mut d1, mut d8, mut deb) = (Times::new(), Times::new(), Times::new());
    for round in 0..=ROUNDS {
        let (a1, l1) = danm_round(&danm, "one", &format!("one-{round}"), &ns, 1).await;
        let (ad, ld) = debian_round(&debian, &format!("deb-{round}"), &ns).await;
        let (a8, l8) = danm_round(&danm, "eight", &format!("eight-{round}"), &ns, 8).await;
        if round > 0 {
            d1.push(a1, l1);
            deb.push(ad, ld);
            d8.push(a8, l8);
        }
    }
    println!("danm ADD+DEL on real links, lab API server in-process, {ROUNDS} alternating rounds");
    let t_deb = deb.line("Debian macvlan + static IPAM, 1 interface");
    let t1 = d1.line("danm, 1 native macvlan (API IPAM, wasm)");
    let t8 = d8.line("danm, 8 native macvlan interfaces");
    let r1 = t1.as_secs_f64() / t_deb.as_secs_f64();
    let r8 = t8.as_secs_f64() / t1.as_secs_f64();
    println!(
        "  (a) danm 1 interface / Debian macvlan+static: {r1:.2}  (target <= 1.00: {})",
        verdict(r1 <= 1.0)
    );
    println!(
        "  (b) danm 8 interfaces / 1 interface:         {r8:.2}  (target <= 2.50: {})",
        verdict(r8 <= 2.5)
    );
    drop(ns);
    lab.shutdown().await;
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT met" }
}

fn main() {
    if let Some(reason) = skip_reason() {
        println!("add_del bench skipped: {reason}");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}
