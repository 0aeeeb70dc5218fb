//! CNI CHECK: every interface recorded for the container still exists in the pod netns with its addresses and the
//! network's routes, the network's IPAM still holds its addresses (for its DanmEp, in blocks mode), and a delegated
//! interface passes its own plugin's CHECK (given the ADD result danm kept for it); an NPWG attachment is checked
//! against its NAD and the addresses its claim or DanmEp holds ([`crate::npwg::check`]). Reports every difference.

use std::sync::Arc;

use danm_api::NetworkKind;
use danm_core::annotation::valid_routes;
use danm_netlink::{Netns, TABLE_MAIN};
use ipnetwork::IpNetwork;

use crate::context::Ctx;
use crate::del::container_eps;
use crate::error::Error;
use crate::ipam::is_real;
use crate::post::{PostInput, network_routes};
use crate::teardown::{check_delegated, interface_config};

/// Returns the differences found (empty: the container is as ADD left it).
pub async fn check(ctx: Arc<Ctx>) -> Result<Vec<String>, Error> {
    let eps = container_eps(&ctx).await?;
    let mut problems = Vec::new();
    if eps.is_empty() {
        problems.push(format!(
            "no DanmEps are recorded for container {}",
            ctx.env.container_id()
        ));
        return Ok(problems);
    }
    let netns_path = ctx.env.netns.clone().unwrap_or_default();
    let pod = Netns::path(&netns_path);
    // The families whose default route an NPWG element's default-route moved to its interface: danm's networks'
    // default routes of those families are not expected any more; the element's are.
    let moved: Vec<(String, std::net::IpAddr)> = eps
        .iter()
        .filter(|ep| crate::npwg::is_npwg(ep))
        .flat_map(|ep| {
            crate::npwg::ep_default_route(ep)
                .into_iter()
                .map(|gw| (ep.spec.interface.name.clone(), gw))
        })
        .collect();
    if !moved.is_empty() {
        let routes = ctx
            .netlink
            .routes(&pod, TABLE_MAIN)
            .await
            .map_err(|e| Error::kernel("reading routes", e))?;
        for (name, gw) in &moved {
            if !routes.iter().any(|r| {
                r.dst.prefix() == 0 && r.gateway == Some(*gw) && r.dev.as_deref() == Some(name.as_str())
            }) {
                problems.push(format!(
                    "{name}: default route via {gw} (default-route) is missing"
                ));
            }
        }
    }
    for ep in &eps {
        let iface = &ep.spec.interface;
        let name = &iface.name;
        // A NAD attachment: its IPAM and its NAD's plugins (no network object, no danm routes); then its link and
        // addresses as danm's own.
        let network = if crate::npwg::is_npwg(ep) {
            problems.extend(crate::npwg::check(&ctx, ep, &netns_path).await?);
            None
        } else {
            let kind = NetworkKind::from_api_type(&ep.spec.api_type).unwrap_or(NetworkKind::DanmNet);
            let ns = ep.metadata.namespace.clone().unwrap_or_default();
            let network = ctx.api.get_network(kind, &ns, &ep.spec.network_name).await?;
            let Some(network) = network else {
                problems.push(format!(
                    "{name}: network {kind}:{} no longer exists",
                    ep.spec.network_name
                ));
                continue;
            };
            // IPAM still holds the addresses: their bits are set, or their blocks record this DanmEp as owner.
            let owner = ep.metadata.name.as_deref().unwrap_or_default();
            for addr in [&iface.address, &iface.address_ipv6] {
                if is_real(addr)
                    && crate::context::in_network(&network.spec, addr)
                    && !ctx.ipam().holds(&network, addr, owner).await?
                {
                    problems.push(format!(
                        "{name}: address {addr} is not allocated in network {}",
                        network.name()
                    ));
                }
            }
            // A delegated interface: its own plugin checks what it made, given its kept ADD result.
            let ty = network.spec.backend();
            match interface_config(&ctx, ep, Some(&network), &ty).await {
                (_, true) | (None, _) => {}
                (Some(Err(e)), false) => problems.push(format!("{name}: {e}")),
                (Some(Ok(chain)), false) => {
                    check_delegated(&ctx, ep, &chain, &netns_path, &mut problems).await;
                }
            }
            Some(network)
        };
        let link = match ctx.netlink.find_link(&pod, name).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                problems.push(format!("{name}: interface is missing from {netns_path}"));
                continue;
            }
            Err(e) => return Err(Error::kernel(format!("reading {name}"), e)),
        };
        if !link.up {
            problems.push(format!("{name}: interface is down"));
        }
        let have = ctx
            .netlink
            .addresses(&pod, name)
            .await
            .map_err(|e| Error::kernel(format!("addresses of {name}"), e))?;
        for addr in [&iface.address, &iface.address_ipv6] {
            if !is_real(addr) {
                continue;
            }
            match addr.parse::<IpNetwork>() {
                Ok(want) if have.iter().any(|a| a.addr == want) => {}
                Ok(_) => problems.push(format!("{name}: address {addr} is missing")),
                Err(_) => problems.push(format!("{name}: recorded address {addr} is invalid")),
            }
        }
        let Some(network) = network else {
            continue;
        };
        let routes = ctx
            .netlink
            .routes(&pod, TABLE_MAIN)
            .await
            .map_err(|e| Error::kernel("reading routes", e))?;
        let input = PostInput {
            ifname: name,
            spec: &network.spec,
            ip4: &iface.address,
            ip6: &iface.address_ipv6,
            proutes: valid_routes(iface.proutes.iter().flatten(), false),
            proutes6: valid_routes(iface.proutes6.iter().flatten(), true),
            delegated: false,
        };
        for want in network_routes(&input) {
            if want.dst.prefix() == 0 && moved.iter().any(|(_, gw)| gw.is_ipv6() == want.dst.is_ipv6()) {
                continue;
            }
            let dst = IpNetwork::new(want.dst.network(), want.dst.prefix()).unwrap_or(want.dst);
            if !routes
                .iter()
                .any(|r| r.dst == dst && r.gateway == want.gateway && r.dev.as_deref() == Some(name.as_str()))
            {
                problems.push(format!(
                    "{name}: route {} via {:?} is missing",
                    want.dst, want.gateway
                ));
            }
        }
    }
    Ok(problems)
}
