//! Kernel-lane tests of danm's built-in ipvlan backend: the `danm` binary run as kubelet runs it, against the
//! in-process lab API server, creating ipvlan interfaces in real namespaces on a dummy, a VLAN and a VxLAN parent,
//! with IPv6 (NODAD) and policy routes, two pods pinging each other, and a missing parent failing cleanly.
//!
//! The build machines' kernel has no ipvlan, dummy or 802.1q links: there these tests print why they skip (except
//! the missing-parent test, which fails the same way on every kernel); inside the kernel lane's VM (`make
//! kernel-lane`, `DANM_KERNEL_LANE=1`) a missing kind fails them. Kernel state is read back through netlink (the
//! facts `ip -d link`, `ip addr`, `ip rule` and `ip route` show), and the ipvlan links also through iproute2's own
//! `ip -d link` text.

mod common;

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use common::lab::{Lab, lab};
use common::node::{Node, plugin_subset_dir};
use common::{HostLinks, cmd_ok, skip};
use danm_api::NetworkKind;
use danm_core::cni::codes;
use danm_netlink::netns::{create_named, delete_named};
use danm_netlink::{IpvlanMode, Link, LinkKind, Netlink, Netns, NewLink, RtNetlink, TABLE_MAIN, VxlanSpec};
use ipnetwork::IpNetwork;
use serde_json::{Value, json};

/// `IFA_F_TENTATIVE`: the address still waits for duplicate address detection.
const IFA_F_TENTATIVE: u32 = 0x40;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Why this kernel cannot run the ipvlan tests (a link kind it lacks), probed once in a scratch namespace.
fn missing_kind() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        common::missing_link_kinds(
            "danm's ipvlan path",
            vec![
                NewLink::dummy("p0"),
                NewLink::ipvlan("p1", "p0", IpvlanMode::L2),
                NewLink::vlan("p0.5", "p0", 5),
            ],
        )
    })
    .clone()
}

/// One test's world: the lab, a node whose danm has only the ipvlan plugin, netlink, and a short unique tag for
/// link and network names.
struct World {
    lab: Lab,
    node: Node,
    nl: Arc<RtNetlink>,
    tag: String,
    start: Instant,
}

impl Drop for World {
    /// Prints where the test's time went (shown with `--nocapture`, as the kernel lane runs it).
    fn drop(&mut self) {
        eprintln!(
            "[{:.1}s; danm runs: {}]",
            self.start.elapsed().as_secs_f64(),
            self.node.run_times()
        );
    }
}

/// The world, or a printed skip (a failure in the kernel lane). `kinds`: the test needs ipvlan, dummy and 802.1q.
async fn world(kinds: bool) -> Option<World> {
    let start = Instant::now();
    if !danm_testkit::fixtures::root_or_skip("network namespaces") {
        return None;
    }
    if kinds && let Some(why) = missing_kind() {
        skip(&why);
        return None;
    }
    let Some(plugins) = plugin_subset_dir(&["ipvlan"]) else {
        common::skip_without_plugins();
        return None;
    };
    let lab = lab().await;
    let node = Node::new(&lab, &plugins);
    let tag = format!(
        "{}{}",
        std::process::id() % 1000,
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    Some(World {
        lab,
        node,
        nl: Arc::new(RtNetlink::new()),
        tag,
        start,
    })
}

/// A pod's network namespace (`/var/run/netns/<name>`), removed on drop.
struct Pod {
    name: String,
    path: String,
    ns: Netns,
    nl: Arc<RtNetlink>,
}

impl Pod {
    fn new(world: &World, name: &str) -> Self {
        let name = format!("{name}-{}", world.tag);
        let _ = delete_named(&name);
        let ns = create_named(&name).expect("pod netns");
        let path = ns.file().unwrap().display().to_string();
        Pod {
            name,
            path,
            ns,
            nl: world.nl.clone(),
        }
    }

    /// The links of the pod other than `lo`.
    async fn links(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .nl
            .links(&self.ns)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .filter(|n| n != "lo")
            .collect();
        names.sort();
        names
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.nl.forget_netns(&self.ns);
        let _ = delete_named(&self.name);
    }
}

/// The address of a CNI result inside `range`.
fn addr_in(result: &Value, range: &str) -> IpNetwork {
    let range: IpNetwork = range.parse().unwrap();
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.parse::<IpNetwork>().ok())
        .find(|a| range.contains(a.ip()))
        .unwrap_or_else(|| panic!("no address in {range} in {result}"))
}

fn addr_of(result: &Value, i: usize) -> IpNetwork {
    result["ips"][i]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips[{i}] in {result}"))
        .parse()
        .unwrap()
}

/// `ping` from pod `pod` to `to` (from source `from` if given), one echo, up to 3 s, through `ip netns exec`.
/// Ok(()) on a reply, else ping's output.
fn ping(pod: &Pod, to: IpAddr, from: Option<IpAddr>) -> Result<(), String> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pod.name, "ping"]);
    cmd.arg(if to.is_ipv6() { "-6" } else { "-4" });
    cmd.args(["-c", "1", "-W", "3"]);
    if let Some(from) = from {
        cmd.arg("-I").arg(from.to_string());
    }
    cmd.arg(to.to_string());
    let out = cmd.output().map_err(|e| format!("cannot run ping: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ping {to} from {} ({}): {}{}",
            pod.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// What an ipvlan interface in a pod should look like.
struct Want<'a> {
    ifname: &'a str,
    /// Its parent in the host namespace (so the kernel reports a link-netnsid).
    parent: &'a Link,
    mode: IpvlanMode,
    mtu: u32,
    addr: IpNetwork,
}

/// Asserts the ipvlan facts of an interface: mode, parent, MTU, the parent's MAC, up, holding its address.
async fn assert_ipvlan(world: &World, pod: &Pod, want: Want<'_>) {
    let Want {
        ifname,
        parent,
        mode,
        mtu,
        addr,
    } = want;
    let link = world.nl.link(&pod.ns, ifname).await.unwrap();
    assert_eq!(link.kind, LinkKind::Ipvlan { mode }, "{ifname}");
    assert_eq!(
        link.parent_index,
        Some(parent.index),
        "{ifname} is on {}",
        parent.name
    );
    assert!(
        link.link_netnsid.is_some(),
        "{ifname}: the parent is in the host namespace"
    );
    assert_eq!(link.mtu, mtu, "{ifname}'s MTU");
    assert_eq!(link.mac, parent.mac, "{ifname} shares the MAC of {}", parent.name);
    assert!(link.up, "{ifname} is up");
    let addrs: Vec<IpNetwork> = world
        .nl
        .addresses(&pod.ns, ifname)
        .await
        .unwrap()
        .iter()
        .map(|a| a.addr)
        .collect();
    assert!(addrs.contains(&addr), "{ifname} holds {addr}: {addrs:?}");
    // The same facts as iproute2 prints them, independent of danm-netlink's parser.
    let text = cmd_ok(&["ip", "-n", &pod.name, "-d", "-o", "link", "show", "dev", ifname]);
    for fact in [
        format!("{ifname}@if{}:", parent.index),
        format!(" mtu {mtu} "),
        "link-netnsid".to_owned(),
        "ipvlan".to_owned(),
        format!("mode {mode} "),
    ] {
        assert!(text.contains(&fact), "`ip -d link` shows {fact:?}: {text}");
    }
}

/// The network's allocation bitmaps (v4, v6) as stored by the API server.
async fn allocs(world: &World, name: &str) -> (String, String) {
    let net = world.lab.get_network(NetworkKind::DanmNet, "default", name).await;
    (net.spec.options.alloc, net.spec.options.alloc6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn danm_adds_checks_and_deletes_ipvlan_interfaces_on_a_dummy_a_vlan_and_a_vxlan_parent() {
    let Some(world) = world(true).await else {
        return;
    };
    let (t, nl) = (&world.tag, &world.nl);
    let (nic, nic2, vlan_id, vx_id) = (
        format!("nic{t}"),
        format!("nicb{t}"),
        format!("vl{t}"),
        format!("vx{t}"),
    );
    let (vlan_link, vx_link) = (format!("{vlan_id}.500"), format!("vx_{vx_id}"));
    let _host = HostLinks(vec![
        vx_link.clone(),
        vlan_link.clone(),
        nic.clone(),
        nic2.clone(),
    ]);
    // The node's NICs, and the links netwatcher keeps for a vlan and a vxlan network, each with its own MTU. (The
    // kernel keeps one ipvlan mode per parent, so the L3 network has a NIC of its own.)
    let host = Netns::Host;
    let nic_link = nl
        .create_link(&host, &NewLink::dummy(&nic).mtu(9000).up())
        .await
        .unwrap();
    let nic2_link = nl.create_link(&host, &NewLink::dummy(&nic2).up()).await.unwrap();
    let vlan = nl
        .create_link(&host, &NewLink::vlan(&vlan_link, &nic, 500).mtu(1400).up())
        .await
        .unwrap();
    let mut spec = VxlanSpec::new(50);
    spec.underlay = Some(nic.clone());
    let vx = nl
        .create_link(&host, &NewLink::vxlan(&vx_link, spec).mtu(1450).up())
        .await
        .unwrap();

    let lab = &world.lab;
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "flat",
        json!({"NetworkID": format!("fl{t}"),
        "NetworkType": "ipvlan", "Options": {"host_device": nic, "cidr": "10.171.0.0/24"}}),
    )
    .await;
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "tagged",
        json!({"NetworkID": vlan_id,
        "NetworkType": "ipvlan", "Options": {"host_device": nic, "vlan": 500, "cidr": "10.172.0.0/24"}}),
    )
    .await;
    // An empty NetworkType is ipvlan (behaviour §10 B3).
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "overlay",
        json!({"NetworkID": vx_id,
        "Options": {"host_device": nic, "vxlan": 50, "cidr": "10.173.0.0/24"}}),
    )
    .await;
    // danm's extensions (behaviour §10 B17): the network's mode and MTU instead of L2 and the parent's MTU.
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "routed",
        json!({"NetworkID": format!("l3{t}"), "NetworkType": "ipvlan",
            "Options": {"host_device": nic2, "mode": "l3", "mtu": 1300, "cidr": "10.174.0.0/24"}}),
    )
    .await;
    let nets = ["flat", "tagged", "overlay", "routed"];
    let mut before = Vec::new();
    for name in nets {
        before.push(allocs(&world, name).await);
    }
    lab.pod(
        "default",
        "three",
        Some(
            json!([{"network":"flat","ip":"dynamic"},{"network":"tagged","ip":"dynamic"},
                    {"network":"overlay","ip":"dynamic"},{"network":"routed","ip":"dynamic"}]),
        ),
        &[("app", "vm")],
    )
    .await;
    let pod = Pod::new(&world, "three");

    let add = world.node.danm("ADD", "three", "c3", &pod.path).await;
    assert!(add.ok, "ADD: {} {}\n{}", add.out, add.stderr, world.node.log());
    let names: Vec<&str> = add.out["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eth0", "eth1", "eth2", "eth3"], "{}", add.out);
    assert_eq!(pod.links().await, ["eth0", "eth1", "eth2", "eth3"]);
    let l2 = IpvlanMode::L2;
    for (ifname, parent, mode, mtu, range) in [
        ("eth0", &nic_link, l2, 9000, "10.171.0.0/24"),
        ("eth1", &vlan, l2, 1400, "10.172.0.0/24"),
        ("eth2", &vx, l2, 1450, "10.173.0.0/24"),
        ("eth3", &nic2_link, IpvlanMode::L3, 1300, "10.174.0.0/24"),
    ] {
        let want = Want {
            ifname,
            parent,
            mode,
            mtu,
            addr: addr_in(&add.out, range),
        };
        assert_ipvlan(&world, &pod, want).await;
    }
    assert_eq!(
        (nic_link.mtu, vlan.mtu, vx.mtu),
        (9000, 1400, 1450),
        "the L2 interfaces took their parents' MTUs"
    );
    // No interface without IPv6 keeps it enabled.
    assert_eq!(
        nl.sysctl(&pod.ns, "net/ipv6/conf/eth1/disable_ipv6")
            .await
            .unwrap()
            .trim(),
        "1"
    );
    let eps = lab.eps("default").await;
    assert_eq!(eps.len(), 4);
    for ep in &eps {
        let i = names.iter().position(|n| *n == ep.spec.interface.name).unwrap();
        assert_eq!(ep.spec.interface.address, addr_of(&add.out, i).to_string());
        assert_eq!(ep.spec.netns, pod.path);
    }
    for (name, before) in nets.iter().zip(&before) {
        assert_ne!(&allocs(&world, name).await, before, "{name} holds an address");
    }

    let check = world.node.danm("CHECK", "three", "c3", &pod.path).await;
    assert!(check.ok, "CHECK: {}", check.out);
    // CHECK sees the kernel's state: an interface taken down is reported by name.
    nl.set_link(&pod.ns, "eth1", &danm_netlink::LinkChange::new().up(false))
        .await
        .unwrap();
    let check = world.node.danm("CHECK", "three", "c3", &pod.path).await;
    assert!(!check.ok);
    assert_eq!(check.out["code"], codes::DANM_FAILURE, "{}", check.out);
    assert!(
        check.out["details"]
            .as_str()
            .unwrap_or_default()
            .contains("eth1: interface is down"),
        "{}",
        check.out
    );

    let del = world.node.danm("DEL", "three", "c3", &pod.path).await;
    assert!(del.ok, "DEL: {}", del.out);
    assert_eq!(pod.links().await, Vec::<String>::new(), "DEL leaves no link");
    assert!(lab.eps("default").await.is_empty(), "DEL leaves no DanmEp");
    for (name, before) in nets.iter().zip(&before) {
        assert_eq!(
            &allocs(&world, name).await,
            before,
            "{name} gave its address back"
        );
    }
    for parent in [&nic, &nic2, &vlan_link, &vx_link] {
        assert!(
            nl.find_link(&host, parent).await.unwrap().is_some(),
            "DEL keeps the parent {parent}"
        );
    }
    let again = world.node.danm("DEL", "three", "c3", &pod.path).await;
    assert!(again.ok, "a second DEL succeeds: {}", again.out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ipvlan_pods_ping_each_other_over_ipv4_and_nodad_ipv6_and_through_their_policy_routes() {
    let Some(world) = world(true).await else {
        return;
    };
    let (t, nl, lab) = (&world.tag, &world.nl, &world.lab);
    let nic = format!("nic{t}");
    let _host = HostLinks(vec![nic.clone()]);
    nl.create_link(&Netns::Host, &NewLink::dummy(&nic).up())
        .await
        .unwrap();
    // Small IPv6 pools: the default pool of a /64 is a 2^22-bit bitmap (700 KB of base64 in every network object),
    // which the emulated debug build takes ~2 s per ADD and DEL to read and write.
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "pr",
        json!({"NetworkID": format!("pr{t}"),
        "NetworkType": "ipvlan", "Options": {"host_device": nic, "cidr": "10.181.0.0/24", "net6": "fd81::/64",
        "allocation_pool_v6": {"cidr": "fd81::/120"}, "rt_tables": 20,
        "routes": {"10.182.0.0/24": "10.181.0.254"}, "routes6": {"fd82::/64": "fd81::fe"}}}),
    )
    .await;
    // A second subnet on the same NIC, where only pod b has an interface.
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "far",
        json!({"NetworkID": format!("fa{t}"),
        "NetworkType": "ipvlan", "Options": {"host_device": nic, "cidr": "10.183.0.0/24", "net6": "fd83::/64",
        "allocation_pool_v6": {"cidr": "fd83::/120"}}}),
    )
    .await;
    let before = (allocs(&world, "pr").await, allocs(&world, "far").await);

    // Pod b first: pod a's policy routes go through b's addresses.
    lab.pod(
        "default",
        "b",
        Some(json!([{"network":"pr","ip":"dynamic","ip6":"dynamic"},{"network":"far","ip":"dynamic","ip6":"dynamic"}])),
        &[],
    )
    .await;
    let pod_b = Pod::new(&world, "pb");
    let add_b = world.node.danm("ADD", "b", "cb", &pod_b.path).await;
    assert!(add_b.ok, "ADD b: {} {}", add_b.out, add_b.stderr);
    let (b4, b6) = (
        addr_in(&add_b.out, "10.181.0.0/24"),
        addr_in(&add_b.out, "fd81::/64"),
    );
    let (far4, far6) = (
        addr_in(&add_b.out, "10.183.0.0/24"),
        addr_in(&add_b.out, "fd83::/64"),
    );
    lab.pod(
        "default",
        "a",
        Some(json!([{"network":"pr","ip":"dynamic","ip6":"dynamic",
            "proutes": {"10.183.0.0/24": b4.ip().to_string()}, "proutes6": {"fd83::/64": b6.ip().to_string()}}])),
        &[],
    )
    .await;
    let pod_a = Pod::new(&world, "pa");
    let add_a = world.node.danm("ADD", "a", "ca", &pod_a.path).await;
    assert!(add_a.ok, "ADD a: {} {}", add_a.out, add_a.stderr);
    let (a4, a6) = (
        addr_in(&add_a.out, "10.181.0.0/24"),
        addr_in(&add_a.out, "fd81::/64"),
    );

    // IPv6 is added with NODAD: usable at once, never tentative; RAs and autoconf are off.
    for (pod, ifname, addr) in [(&pod_a, "eth0", a6), (&pod_b, "eth0", b6), (&pod_b, "eth1", far6)] {
        let got = nl.addresses(&pod.ns, ifname).await.unwrap();
        let v6 = got
            .iter()
            .find(|a| a.addr == addr)
            .unwrap_or_else(|| panic!("{addr} on {ifname} in {}: {got:?}", pod.name));
        assert!(v6.nodad, "{addr} has IFA_F_NODAD");
        assert_eq!(v6.flags & IFA_F_TENTATIVE, 0, "{addr} is not tentative");
        for (key, want) in [("accept_ra", "0"), ("autoconf", "0"), ("disable_ipv6", "0")] {
            let got = nl
                .sysctl(&pod.ns, &format!("net/ipv6/conf/{ifname}/{key}"))
                .await
                .unwrap();
            assert_eq!(got.trim(), want, "{key} of {ifname} in {}", pod.name);
        }
    }
    // The network's routes in the main table; the policy routes in table 20 behind a rule per family.
    let main = nl.routes(&pod_a.ns, TABLE_MAIN).await.unwrap();
    for (dst, gw) in [("10.182.0.0/24", "10.181.0.254"), ("fd82::/64", "fd81::fe")] {
        assert!(
            main.iter().any(|r| r.dst == dst.parse().unwrap()
                && r.gateway == Some(gw.parse().unwrap())
                && r.dev.as_deref() == Some("eth0")),
            "{dst} via {gw} dev eth0 in the main table: {main:?}"
        );
    }
    assert!(
        !main
            .iter()
            .any(|r| r.dst.contains(far4.ip()) || r.dst.contains(far6.ip())),
        "the main table has no route to the far subnet: {main:?}"
    );
    let table = nl.routes(&pod_a.ns, 20).await.unwrap();
    for (dst, gw) in [("10.183.0.0/24", b4.ip()), ("fd83::/64", b6.ip())] {
        assert!(
            table.iter().any(|r| r.dst == dst.parse().unwrap()
                && r.gateway == Some(gw)
                && r.dev.as_deref() == Some("eth0")),
            "{dst} via {gw} dev eth0 in table 20: {table:?}"
        );
    }
    let rules = nl.rules(&pod_a.ns).await.unwrap();
    for addr in [a4, a6] {
        let from = IpNetwork::new(addr.network(), addr.prefix()).unwrap();
        assert!(
            rules.iter().any(|r| r.from == Some(from) && r.table == 20),
            "rule from {from} lookup 20: {rules:?}"
        );
    }

    // Traffic: a <-> b over IPv4 and IPv6 right after ADD (NODAD), and a -> b's far addresses only through the
    // policy route: without a's own source address no rule matches and the main table has no route.
    for (from, to) in [(&pod_a, b4), (&pod_a, b6), (&pod_b, a4), (&pod_b, a6)] {
        ping(from, to.ip(), None).unwrap_or_else(|e| panic!("{e}"));
    }
    for (to, src) in [(far4, a4), (far6, a6)] {
        ping(&pod_a, to.ip(), Some(src.ip())).unwrap_or_else(|e| panic!("policy route: {e}"));
    }
    assert!(
        ping(&pod_a, far4.ip(), None).is_err(),
        "no route to {far4} outside the policy table"
    );

    let check = world.node.danm("CHECK", "a", "ca", &pod_a.path).await;
    assert!(check.ok, "CHECK a: {}", check.out);
    for (pod, name, cid) in [(&pod_a, "a", "ca"), (&pod_b, "b", "cb")] {
        let del = world.node.danm("DEL", name, cid, &pod.path).await;
        assert!(del.ok, "DEL {name}: {}", del.out);
        assert_eq!(
            pod.links().await,
            Vec::<String>::new(),
            "DEL {name} leaves no link"
        );
    }
    let rules = nl.rules(&pod_a.ns).await.unwrap();
    assert!(
        !rules.iter().any(|r| r.table == 20),
        "DEL removes the policy rules: {rules:?}"
    );
    assert!(lab.eps("default").await.is_empty(), "DEL leaves no DanmEp");
    assert_eq!(
        (allocs(&world, "pr").await, allocs(&world, "far").await),
        before,
        "DEL gives the addresses back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_parent_fails_add_with_a_kernel_error_naming_network_interface_and_parent_and_leaves_nothing()
 {
    let Some(world) = world(false).await else {
        return;
    };
    let (t, lab) = (&world.tag, &world.lab);
    let missing = format!("nodev{t}");
    lab.network(NetworkKind::DanmNet, "default", "gone", json!({"NetworkID": format!("gn{t}"),
        "NetworkType": "ipvlan", "Options": {"host_device": missing, "cidr": "10.191.0.0/24", "net6": "fd91::/64",
        "allocation_pool_v6": {"cidr": "fd91::/120"}}}))
        .await;
    let before = allocs(&world, "gone").await;
    lab.pod(
        "default",
        "broken",
        Some(json!([{"network":"gone","ip":"dynamic","ip6":"dynamic"}])),
        &[],
    )
    .await;
    let pod = Pod::new(&world, "broken");

    let add = world.node.danm("ADD", "broken", "cx", &pod.path).await;
    assert!(!add.ok, "ADD on a missing parent fails: {}", add.out);
    assert_eq!(add.out["cniVersion"], "1.0.0", "{}", add.out);
    assert_eq!(add.out["code"], codes::KERNEL, "{}", add.out);
    let msg = add.out["msg"].as_str().unwrap();
    for part in [
        "network:DanmNet:gone",
        "interface:eth0",
        &format!("host device {missing}"),
        &format!("parent link {missing}"),
        "not found",
    ] {
        assert!(msg.contains(part), "the message names {part:?}: {msg}");
    }
    let details: Value = serde_json::from_str(add.out["details"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            &details[0]["network"],
            &details[0]["interface"],
            &details[0]["code"]
        ),
        (&json!("DanmNet:gone"), &json!("eth0"), &json!(codes::KERNEL)),
        "{details}"
    );
    // The failed ADD rolled back: no link, no DanmEp, no address held.
    assert_eq!(pod.links().await, Vec::<String>::new());
    assert!(lab.eps("default").await.is_empty());
    assert_eq!(allocs(&world, "gone").await, before);
    // Kubelet calls DEL after a failed ADD: it succeeds and still leaves nothing.
    let del = world.node.danm("DEL", "broken", "cx", &pod.path).await;
    assert!(del.ok, "DEL: {}", del.out);
    assert_eq!(pod.links().await, Vec::<String>::new());
    assert_eq!(allocs(&world, "gone").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_vlan_link_fails_add_and_rolls_back_the_pods_healthy_ipvlan_interface_too() {
    let Some(world) = world(true).await else {
        return;
    };
    let (t, nl, lab) = (&world.tag, &world.nl, &world.lab);
    let nic = format!("nic{t}");
    let _host = HostLinks(vec![nic.clone()]);
    nl.create_link(&Netns::Host, &NewLink::dummy(&nic).up())
        .await
        .unwrap();
    let vlan_id = format!("vl{t}");
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "ok",
        json!({"NetworkID": format!("ok{t}"),
        "NetworkType": "ipvlan", "Options": {"host_device": nic, "cidr": "10.192.0.0/24"}}),
    )
    .await;
    // netwatcher has not made `<NetworkID>.700` on the NIC (yet).
    lab.network(
        NetworkKind::DanmNet,
        "default",
        "novlan",
        json!({"NetworkID": vlan_id,
        "NetworkType": "ipvlan", "Options": {"host_device": nic, "vlan": 700, "cidr": "10.193.0.0/24"}}),
    )
    .await;
    let before = (allocs(&world, "ok").await, allocs(&world, "novlan").await);
    lab.pod(
        "default",
        "half",
        Some(json!([{"network":"ok","ip":"dynamic"},{"network":"novlan","ip":"dynamic"}])),
        &[],
    )
    .await;
    let pod = Pod::new(&world, "half");

    let add = world.node.danm("ADD", "half", "ch", &pod.path).await;
    assert!(!add.ok, "ADD fails: {}", add.out);
    assert_eq!(add.out["code"], codes::KERNEL, "{}", add.out);
    let msg = add.out["msg"].as_str().unwrap();
    assert!(
        msg.contains("network:DanmNet:novlan interface:eth1")
            && msg.contains(&format!("parent link {vlan_id}.700")),
        "{msg}"
    );
    assert!(
        !msg.contains("network:DanmNet:ok "),
        "the healthy interface is not reported as failed: {msg}"
    );
    assert_eq!(pod.links().await, Vec::<String>::new(), "eth0 was rolled back");
    assert!(lab.eps("default").await.is_empty());
    assert_eq!(
        (allocs(&world, "ok").await, allocs(&world, "novlan").await),
        before
    );
    assert!(
        nl.find_link(&Netns::Host, &format!("{vlan_id}.700"))
            .await
            .unwrap()
            .is_none(),
        "danm never creates VLAN links itself (netwatcher's job)"
    );
}
