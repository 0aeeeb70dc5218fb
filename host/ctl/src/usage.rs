//! How `danmctl ipam show` renders a network's usage (pool, reserved addresses, allocated ranges), for a network
//! file and for a network read from the cluster.

use std::net::IpAddr;

use danm_core::ipam::{self, FamilyUsage, ReservedReason};

/// What `show` prints for a bitmap network.
pub(crate) fn render_usage(reference: &str, network: &danm_api::Network, u: &ipam::Usage) -> String {
    let o = &network.spec.options;
    let mut s = format!("{reference}\n");
    match (&u.v4, o.cidr.is_empty()) {
        (Some(f), _) => family(&mut s, &format!("IPv4 cidr {}", o.cidr), f),
        (None, true) => s.push_str("IPv4: no cidr (L2)\n"),
        (None, false) => {
            s.push_str(&format!(
                "IPv4 cidr {}: no allocation bitmap (run `danmctl ipam init`)\n",
                o.cidr
            ));
        }
    }
    match (&u.v6, o.net6.is_empty()) {
        (Some(f), _) => family(&mut s, &format!("IPv6 net6 {} pool cidr {}", o.net6, f.cidr), f),
        (None, true) => s.push_str("IPv6: no net6 (L2)\n"),
        (None, false) => s.push_str(&format!(
            "IPv6 net6 {}: no allocation bitmap yet (the first IPv6 reservation or `danmctl ipam init` creates it)\n",
            o.net6
        )),
    }
    s
}

fn family(s: &mut String, title: &str, f: &FamilyUsage) {
    s.push_str(title);
    s.push('\n');
    s.push_str(&format!(
        "  pool {} - {}: {} addresses, {} used, {} free\n",
        f.pool_start,
        f.pool_end,
        f.pool_size,
        f.pool_size - f.pool_free,
        f.pool_free
    ));
    let reserved: Vec<String> = f
        .reserved
        .iter()
        .map(|r| {
            let why = match r.reason {
                ReservedReason::Network => "network",
                ReservedReason::Broadcast => "broadcast",
                ReservedReason::Gateway => "gateway",
            };
            format!("{} ({why})", r.addr)
        })
        .collect();
    s.push_str(&format!("  reserved: {}\n", reserved.join(", ")));
    let ranges: Vec<String> = f.allocated.iter().map(|(a, b)| range(*a, *b)).collect();
    s.push_str(&format!(
        "  allocated ({}): {}\n",
        f.allocated_count,
        ranges.join(", ")
    ));
}

fn range(a: IpAddr, b: IpAddr) -> String {
    if a == b { a.to_string() } else { format!("{a}-{b}") }
}
