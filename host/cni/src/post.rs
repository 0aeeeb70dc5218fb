//! Post-processing of every interface inside the pod netns (behaviour §4.10): IPv6 sysctls, NODAD re-add of a
//! delegate's IPv6, link up, the network's `routes`/`routes6` in the main table, and `proutes`/`proutes6` in the
//! network's `rt_tables` with the `from <ip>/<prefix>` source rule.

use danm_api::NetworkSpec;
use danm_core::annotation::{PolicyRoute, valid_routes};
use danm_netlink::{LinkChange, Netlink, Netns, NewAddress, Route, Rule, Sysctl};
use ipnetwork::IpNetwork;

use crate::error::Error;
use crate::ipam::is_real;
use crate::journal::{Journal, Undo};

/// What post-processing needs about one interface.
#[derive(Clone, Debug)]
pub struct PostInput<'a> {
    pub ifname: &'a str,
    pub spec: &'a NetworkSpec,
    /// The interface's addresses as recorded (`""`, `none` or `ip/prefix`).
    pub ip4: &'a str,
    pub ip6: &'a str,
    pub proutes: Vec<PolicyRoute>,
    pub proutes6: Vec<PolicyRoute>,
    /// A delegate created the interface (its IPv6 is re-added with NODAD).
    pub delegated: bool,
}

/// The sysctls of behaviour §4.10 step 3.
pub fn ipv6_sysctls(ifname: &str, ip6: &str) -> Vec<Sysctl> {
    if ip6.is_empty() {
        vec![Sysctl::ipv6_conf(ifname, "disable_ipv6", "1")]
    } else {
        vec![
            Sysctl::ipv6_conf(ifname, "disable_ipv6", "0"),
            Sysctl::ipv6_conf(ifname, "autoconf", "0"),
            Sysctl::ipv6_conf(ifname, "accept_ra", "0"),
            Sysctl::ipv6_conf(ifname, "ndisc_notify", "1"),
        ]
    }
}

/// The main-table routes of the network for an interface (only for families with a real address).
pub fn network_routes(input: &PostInput<'_>) -> Vec<Route> {
    let mut out = Vec::new();
    if is_real(input.ip4) {
        out.extend(
            valid_routes(input.spec.options.routes.iter().flatten(), false)
                .into_iter()
                .map(|r| route(r, input.ifname, None)),
        );
    }
    if is_real(input.ip6) {
        out.extend(
            valid_routes(input.spec.options.routes6.iter().flatten(), true)
                .into_iter()
                .map(|r| route(r, input.ifname, None)),
        );
    }
    out
}

fn route(r: PolicyRoute, ifname: &str, table: Option<u32>) -> Route {
    let mut route = Route::new(r.dst).via(r.gw).dev(ifname);
    if let Some(t) = table {
        route = route.table(t);
    }
    route
}

/// The policy rules and table routes for an interface: `(rule, routes)` per family that has a real address and
/// policy routes, when the network has `rt_tables`.
pub fn policy(input: &PostInput<'_>) -> Vec<(Rule, Vec<Route>)> {
    let table = input.spec.options.rt_tables;
    if table == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (addr, proutes) in [(input.ip4, &input.proutes), (input.ip6, &input.proutes6)] {
        if !is_real(addr) || proutes.is_empty() {
            continue;
        }
        let Ok(net) = addr.parse::<IpNetwork>() else {
            continue;
        };
        let Ok(from) = IpNetwork::new(net.network(), net.prefix()) else {
            continue;
        };
        let routes = proutes
            .iter()
            .map(|r| route(*r, input.ifname, Some(table)))
            .collect();
        out.push((Rule::new(from, table), routes));
    }
    out
}

/// Runs post-processing. A missing interface (a user-space device, or a delegate that ignored CNI_IFNAME) is
/// logged and skipped (behaviour §4.10 step 2).
pub async fn run(
    netlink: &dyn Netlink,
    pod: &Netns,
    input: &PostInput<'_>,
    journal: &Journal,
) -> Result<(), Error> {
    let ifname = input.ifname;
    let ctx = |what: &str| format!("Post-processing failed for interface:{ifname} because: {what}");
    match netlink.find_link(pod, ifname).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            tracing::warn!(
                ifname,
                "interface not found in the pod netns; skipping post-processing"
            );
            return Ok(());
        }
        Err(e) => return Err(Error::kernel(ctx("cannot read the link"), e)),
    }
    netlink
        .set_sysctls(pod, &ipv6_sysctls(ifname, input.ip6))
        .await
        .map_err(|e| Error::kernel(ctx("sysctl"), e))?;
    netlink
        .set_link(pod, ifname, &LinkChange::new().up(true))
        .await
        .map_err(|e| Error::kernel(ctx("link up"), e))?;
    if input.delegated
        && is_real(input.ip6)
        && let Ok(addr) = input.ip6.parse::<IpNetwork>()
    {
        netlink
            .add_address(pod, ifname, &NewAddress::new(addr).nodad(true).replace())
            .await
            .map_err(|e| Error::kernel(ctx("re-adding the IPv6 address with NODAD"), e))?;
    }
    for r in network_routes(input) {
        match netlink.add_route(pod, &r).await {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => {
                return Err(Error::kernel(
                    ctx(&format!("route {} via {:?}", r.dst, r.gateway)),
                    e,
                ));
            }
        }
    }
    for (rule, routes) in policy(input) {
        journal.push(Undo::Rule {
            netns: pod.clone(),
            rule: rule.clone(),
        });
        netlink
            .add_rule(pod, &rule)
            .await
            .map_err(|e| Error::kernel(ctx(&format!("rule from {}", rule.from)), e))?;
        for r in routes {
            match netlink.add_route(pod, &r).await {
                Ok(()) => {}
                Err(e) if e.is_exists() => {}
                Err(e) => {
                    return Err(Error::kernel(
                        ctx(&format!("policy route {} table {}", r.dst, r.table)),
                        e,
                    ));
                }
            }
        }
    }
    Ok(())
}
