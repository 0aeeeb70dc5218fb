//! Bench: a macvlan created directly inside the pod namespace (`IFLA_NET_NS_FD`) vs created next to its parent
//! and then moved, both through `RtNetlink`, with `ip` (fork+exec) doing the direct variant as a reference; and the
//! deletion of 8 VxLAN links (netwatcher's host links of 8 removed networks): one request per link vs
//! `delete_links` (one link group, one request).
//! Runs in namespaces of its own; needs root (prints why it skips otherwise). `DANM_BENCH_N` sets the rounds.

use std::process::Command;
use std::time::{Duration, Instant};

use danm_netlink::netns::{create_named, delete_named};
use danm_netlink::{LinkChange, MacvlanMode, Netlink, NewLink, RtNetlink, VxlanSpec};

struct Stats {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Stats {
    fn new(name: &'static str) -> Self {
        Stats {
            name,
            samples: Vec::new(),
        }
    }

    fn median(&self) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        sorted[sorted.len() / 2]
    }

    fn p90(&self) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        sorted[(sorted.len() * 9 / 10).min(sorted.len() - 1)]
    }

    fn mean(&self) -> Duration {
        self.samples.iter().sum::<Duration>() / self.samples.len() as u32
    }

    fn print(&self) {
        println!(
            "{:<44} median {:>9.3} ms   mean {:>9.3} ms   p90 {:>9.3} ms   (n={})",
            self.name,
            self.median().as_secs_f64() * 1e3,
            self.mean().as_secs_f64() * 1e3,
            self.p90().as_secs_f64() * 1e3,
            self.samples.len()
        );
    }
}

fn ratio(a: &Stats, b: &Stats) -> f64 {
    a.median().as_secs_f64() / b.median().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rounds: usize = std::env::var("DANM_BENCH_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let tag = std::process::id();
    let (host_name, pod_name) = (format!("danm-bench-h{tag}"), format!("danm-bench-p{tag}"));
    let host = match create_named(&host_name) {
        Ok(ns) => ns,
        Err(err) => {
            danm_testkit::fixtures::skip(&format!(
                "cannot create a network namespace ({err}); the bench needs root"
            ));
            return;
        }
    };
    let pod = create_named(&pod_name).expect("second namespace");
    let nl = RtNetlink::new();
    nl.create_link(&host, &NewLink::veth("par0", "par1").up())
        .await
        .expect("veth parent");
    nl.set_link(&host, "par1", &LinkChange::new().up(true))
        .await
        .expect("peer up");
    let ip_available = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());

    let mut direct = Stats::new("netlink: create in target netns");
    let mut moved = Stats::new("netlink: create on host + move");
    let mut moved_create = Stats::new("  of which create");
    let mut ip_direct = Stats::new("ip (fork+exec): create in target netns");
    // One untimed round opens the sockets of both namespaces.
    for round in 0..=rounds {
        let warmup = round == 0;
        let name = format!("d{round}");
        let start = Instant::now();
        nl.create_link(
            &host,
            &NewLink::macvlan(&name, "par0", MacvlanMode::Bridge).in_netns(pod.clone()),
        )
        .await
        .expect("direct create");
        let took = start.elapsed();
        if !warmup {
            direct.samples.push(took);
        }

        let name = format!("m{round}");
        let start = Instant::now();
        nl.create_link(&host, &NewLink::macvlan(&name, "par0", MacvlanMode::Bridge))
            .await
            .expect("create on host");
        let created = start.elapsed();
        nl.move_link(&host, &name, &pod).await.expect("move");
        let took = start.elapsed();
        if !warmup {
            moved.samples.push(took);
            moved_create.samples.push(created);
        }

        if ip_available {
            let name = format!("i{round}");
            let start = Instant::now();
            let status = Command::new("ip")
                .args([
                    "-n", &host_name, "link", "add", "link", "par0", "name", &name, "netns", &pod_name,
                ])
                .args(["type", "macvlan", "mode", "bridge"])
                .status()
                .expect("run ip");
            let took = start.elapsed();
            assert!(status.success(), "ip link add failed");
            if !warmup {
                ip_direct.samples.push(took);
            }
        }
    }
    let in_pod = nl.links(&pod).await.expect("list").len();
    assert!(
        in_pod > 2 * rounds,
        "every macvlan ended up in the pod namespace ({in_pod} links)"
    );

    println!("macvlan into a pod namespace, {rounds} rounds (each create/move returns the link read back):");
    direct.print();
    moved.print();
    moved_create.print();
    if ip_available {
        ip_direct.print();
    }
    println!(
        "ratio create+move / create-in-target (median): {:.1}x",
        ratio(&moved, &direct)
    );
    if ip_available {
        println!(
            "ratio ip create-in-target / netlink create-in-target (median): {:.1}x",
            ratio(&ip_direct, &direct)
        );
    }

    // Deleting 8 VxLAN links: one by one vs together.
    const LINKS: u32 = 8;
    let mut by_one = Stats::new("delete 8 vxlan links, one request each");
    let mut together = Stats::new("delete 8 vxlan links, delete_links");
    let vxlans = |round: usize| -> Vec<String> { (0..LINKS).map(|i| format!("vx{round}_{i}")).collect() };
    for round in 0..rounds.min(15) {
        for (batch, stats) in [(false, &mut by_one), (true, &mut together)] {
            let names = vxlans(round * 2 + usize::from(batch));
            for (i, name) in names.iter().enumerate() {
                let spec = VxlanSpec::new(1000 + round as u32 * 100 + i as u32 * 2 + u32::from(batch));
                nl.create_link(&host, &NewLink::vxlan(name, spec))
                    .await
                    .expect("vxlan");
            }
            let start = Instant::now();
            if batch {
                nl.delete_links(&host, &names).await.expect("delete together");
            } else {
                nl.delete_links_one_by_one(&host, &names)
                    .await
                    .expect("delete one by one");
            }
            stats.samples.push(start.elapsed());
            assert!(
                nl.find_link(&host, &names[0]).await.expect("read").is_none(),
                "the links are gone"
            );
        }
    }
    by_one.print();
    together.print();
    println!(
        "ratio one by one / together (median): {:.1}x",
        ratio(&by_one, &together)
    );

    nl.forget_netns(&host);
    nl.forget_netns(&pod);
    drop(nl);
    let _ = delete_named(&pod_name);
    let _ = delete_named(&host_name);
}
