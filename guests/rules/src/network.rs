//! Network rules (DanmNet, TenantNetwork, ClusterNetwork; behaviour §8.2), in DANM's order, all violations
//! reported.

use std::collections::BTreeMap;

use danm_api::{Network, NetworkKind, NetworkSpec, TenantConfig};
use danm_guest_sdk::{Operation, Violation};

use danm_core::ipam::max_v6_pool_prefix;

use crate::cidr::{Cidr, parse_ip, to_int};

/// What a network rule may look at besides the new spec.
pub struct Context<'a> {
    pub kind: NetworkKind,
    pub op: Operation,
    pub old: Option<&'a Network>,
    pub tenant_config: Option<&'a TenantConfig>,
    /// Lower-case NetworkTypes served by backend plugins.
    pub dynamic: &'a [String],
}

const O: &str = "spec.Options";

pub fn validate(spec: &NetworkSpec, ctx: &Context<'_>, out: &mut Vec<Violation>) {
    let o = &spec.options;
    // V1–V3 and V4–V6.
    let v4 = ip_fields(
        &o.cidr,
        o.routes.as_ref(),
        ["V1", "V2", "V3"],
        ("cidr", "routes"),
        out,
    );
    let v6 = ip_fields(
        &o.net6,
        o.routes6.as_ref(),
        ["V4", "V5", "V6"],
        ("net6", "routes6"),
        out,
    );
    // V7
    if ctx.op == Operation::Create {
        for (field, value) in [("alloc", &o.alloc), ("alloc6", &o.alloc6)] {
            if !value.is_empty() {
                out.push(Violation::new(
                    "V7",
                    format!("{O}.{field}"),
                    "Allocation bitmasks shall not be manually defined upon creation!",
                ));
            }
        }
    }
    alloc_v4(spec, v4.as_ref(), out);
    alloc_v6(spec, v4.as_ref(), v6.as_ref(), out);
    // V19
    if ctx.kind != NetworkKind::TenantNetwork && o.vlan != 0 && o.vxlan != 0 {
        out.push(Violation::new(
            "V19",
            format!("{O}.vxlan"),
            "VLAN ID and VxLAN ID parameters are mutually exclusive",
        ));
    }
    // V20, after the TenantNetwork's NetworkID mapping (DANM's post-mutation check).
    if effective_network_id(spec, ctx).is_empty() {
        out.push(Violation::new(
            "V20",
            "spec.NetworkID",
            "Spec.NetworkID mandatory parameter is missing!",
        ));
    }
    // V22
    if ctx.kind != NetworkKind::ClusterNetwork && spec.allowed_tenants.is_some() {
        out.push(Violation::new(
            "V22",
            "spec.AllowedTenants",
            "AllowedTenants attribute is only valid for the ClusterNetwork API!",
        ));
    }
    if ctx.kind == NetworkKind::TenantNetwork {
        tenant_network(spec, ctx, out);
    }
    // V26 for the types no backend plugin serves (the backends check their own, sriov has V25).
    if !ctx.dynamic.contains(&spec.backend()) && !o.host_device.is_empty() && !o.device_pool.is_empty() {
        out.push(Violation::new(
            "V26",
            format!("{O}.device_pool"),
            "Spec.Options.device_pool and Spec.Options.host_device cannot be provided together!",
        ));
    }
}

/// NetworkID as the webhook leaves it: a TenantNetwork's is overwritten by the TenantConfig's `networkIds` entry for
/// its type (compared case-insensitively; an empty type is ipvlan).
fn effective_network_id<'a>(spec: &'a NetworkSpec, ctx: &Context<'a>) -> &'a str {
    if ctx.kind == NetworkKind::TenantNetwork
        && let Some(tc) = ctx.tenant_config
    {
        let ty = spec.backend();
        if let Some((_, id)) = tc.network_ids.iter().find(|(k, _)| k.eq_ignore_ascii_case(&ty)) {
            return id;
        }
    }
    &spec.network_id
}

/// V1/V2/V3 (or V4/V5/V6): routes need a subnet, the subnet must parse, gateways must be inside it.
fn ip_fields(
    cidr: &str,
    routes: Option<&BTreeMap<String, String>>,
    ids: [&str; 3],
    (cidr_field, routes_field): (&str, &str),
    out: &mut Vec<Violation>,
) -> Option<Cidr> {
    if cidr.is_empty() {
        if routes.is_some() {
            out.push(Violation::new(
                ids[0],
                format!("{O}.{routes_field}"),
                "IP routes cannot be defined for a L2 network",
            ));
        }
        return None;
    }
    let Some(net) = Cidr::parse(cidr) else {
        out.push(Violation::new(
            ids[1],
            format!("{O}.{cidr_field}"),
            format!("Invalid CIDR: {cidr}"),
        ));
        return None;
    };
    for (dst, gw) in routes.into_iter().flatten() {
        if !parse_ip(gw).is_some_and(|ip| net.contains(ip)) {
            out.push(Violation::new(
                ids[2],
                format!("{O}.{routes_field}[{dst:?}]"),
                format!("Specified GW address:{gw} is not part of CIDR:{cidr}"),
            ));
        }
    }
    Some(net)
}

/// V8–V12.
fn alloc_v4(spec: &NetworkSpec, v4: Option<&Cidr>, out: &mut Vec<Violation>) {
    let o = &spec.options;
    let pool = &o.allocation_pool;
    if o.cidr.is_empty() {
        if !pool.start.is_empty() || !pool.end.is_empty() {
            out.push(Violation::new(
                "V8",
                format!("{O}.allocation_pool"),
                "V4 Allocation pool cannot be defined without CIDR!",
            ));
        }
        return;
    }
    let Some(net) = v4 else { return }; // V2 reported it
    if !net.is_v4() {
        out.push(Violation::new(
            "V9",
            format!("{O}.cidr"),
            "Options.CIDR is not a valid V4 subnet!",
        ));
        return;
    }
    if net.prefix < 9 {
        out.push(Violation::new(
            "V10",
            format!("{O}.cidr"),
            "Netmask of the IPv4 CIDR is bigger than the maximum allowed /9",
        ));
        return;
    }
    // The webhook's defaults (behaviour §5.2) before the range checks.
    let start = or_default_addr(&pool.start, net, net.base().wrapping_add(1));
    let end = or_default_addr(&pool.end, net, net.last().wrapping_sub(1));
    range_checks(
        net,
        (&start, "allocation_pool.start"),
        (&end, "allocation_pool.end"),
        ["V11", "V12"],
        out,
    );
}

/// V13–V18.
fn alloc_v6(spec: &NetworkSpec, v4: Option<&Cidr>, v6: Option<&Cidr>, out: &mut Vec<Violation>) {
    let o = &spec.options;
    let pool = &o.allocation_pool_v6;
    if o.net6.is_empty() {
        if !pool.start.is_empty() || !pool.end.is_empty() || !pool.cidr.is_empty() {
            out.push(Violation::new(
                "V13",
                format!("{O}.allocation_pool_v6"),
                "IPv6 allocation pool cannot be defined without Net6!",
            ));
        }
        return;
    }
    let Some(net6) = v6 else { return }; // V5 reported it
    if net6.is_v4() {
        out.push(Violation::new(
            "V14",
            format!("{O}.net6"),
            "spec.Options.Net6 is not a valid V6 subnet!",
        ));
        return;
    }
    // 128 when the IPv4 pool leaves no room (which V16 then rejects).
    let max_prefix = max_v6_pool_prefix(v4.filter(|c| c.is_v4() && c.prefix >= 9).map(|c| c.prefix));
    // Default pool cidr (behaviour §5.6): net6's base with prefix max(P, net6 prefix).
    let pool_cidr = if pool.cidr.is_empty() {
        let p = max_prefix.max(net6.prefix);
        Some(Cidr {
            addr: net6.addr_at(net6.base()),
            prefix: p,
        })
    } else {
        Cidr::parse(&pool.cidr)
    };
    let field = format!("{O}.allocation_pool_v6.cidr");
    let Some(pc) = pool_cidr else {
        out.push(Violation::new(
            "V15",
            field,
            "spec.Options.Pool6.CIDR is invalid!",
        ));
        return;
    };
    if pc.is_v4() {
        out.push(Violation::new(
            "V15",
            field,
            "spec.Options.Allocation_Pool_V6.Cidr is not a valid V6 subnet!",
        ));
        return;
    }
    if pc.prefix < max_prefix || pc.prefix == 128 {
        out.push(Violation::new(
            "V16",
            field,
            "The defined IPv6 allocation pool exceeds the maximum - 8M-size(IPv4 allocation pool) - storage capacity!",
        ));
        return;
    }
    let outside = "IPv6 allocation pool is outside of the defined IPv6 subnet!";
    let mut bad = false;
    for (value, name) in [(&pool.start, "start"), (&pool.end, "end")] {
        if !value.is_empty() && !parse_ip(value).is_some_and(|ip| pc.contains(ip)) {
            out.push(Violation::new(
                "V17",
                format!("{O}.allocation_pool_v6.{name}"),
                outside,
            ));
            bad = true;
        }
    }
    if !(net6.contains(pc.addr_at(pc.base())) && net6.contains(pc.addr_at(pc.last()))) {
        out.push(Violation::new(
            "V17",
            format!("{O}.allocation_pool_v6.cidr"),
            outside,
        ));
        bad = true;
    }
    if bad {
        return;
    }
    let start = or_default_addr(&pool.start, &pc, pc.base().wrapping_add(1));
    let end = or_default_addr(&pool.end, &pc, pc.last().wrapping_sub(1));
    range_checks(
        &pc,
        (&start, "allocation_pool_v6.start"),
        (&end, "allocation_pool_v6.end"),
        ["V17", "V18"],
        out,
    );
}

fn or_default_addr(value: &str, net: &Cidr, default: u128) -> String {
    if value.is_empty() {
        net.addr_at(default).to_string()
    } else {
        value.to_owned()
    }
}

/// Pool start/end inside the network (`ids[0]`) and start < end (`ids[1]`).
fn range_checks(
    net: &Cidr,
    start: (&str, &str),
    end: (&str, &str),
    ids: [&str; 2],
    out: &mut Vec<Violation>,
) {
    let outside = if ids[0] == "V11" {
        "Allocation pool is outside of defined CIDR!"
    } else {
        "IPv6 allocation pool is outside of the defined IPv6 subnet!"
    };
    let mut addrs = Vec::new();
    for (value, field) in [start, end] {
        match parse_ip(value).filter(|ip| net.contains(*ip)) {
            Some(ip) => addrs.push(to_int(ip)),
            None => out.push(Violation::new(ids[0], format!("{O}.{field}"), outside)),
        }
    }
    if let [s, e] = addrs[..]
        && e <= s
    {
        out.push(Violation::new(
            ids[1],
            format!("{O}.{}", end.1),
            format!(
                "Allocation pool start:{} is bigger than or equal to allocation pool end:{}",
                start.0, end.0
            ),
        ));
    }
}

/// V23 and V24.
fn tenant_network(spec: &NetworkSpec, ctx: &Context<'_>, out: &mut Vec<Violation>) {
    let o = &spec.options;
    if ctx.op == Operation::Create {
        for (field, v) in [("vlan", o.vlan), ("vxlan", o.vxlan)] {
            if v != 0 {
                out.push(Violation::new(
                    "V23",
                    format!("{O}.{field}"),
                    "Manually configuring Spec.Options.vlan, or Spec.Options.vxlan attributes is not allowed for TenantNetworks!",
                ));
            }
        }
    }
    if ctx.op == Operation::Update
        && let Some(old) = ctx.old
    {
        let p = &old.spec.options;
        let changed = [
            ("host_device", o.host_device != p.host_device),
            ("device_pool", o.device_pool != p.device_pool),
            ("vlan", o.vlan != p.vlan),
            ("vxlan", o.vxlan != p.vxlan),
        ];
        for (field, _) in changed.iter().filter(|(_, c)| *c) {
            out.push(Violation::new(
                "V24",
                format!("{O}.{field}"),
                "Manually changing any one of Spec.Options. host_device, device_pool, vlan, or vxlan attributes is not allowed for TenantNetworks!",
            ));
        }
    }
}
