//! Release of addresses back into a network's bitmaps (behaviour §5.5).

use std::net::IpAddr;

use danm_api::{NetworkOptions, NetworkSpec};

use super::defaults::{parse_pool6_cidr, parse_v4_cidr};
use super::space::{Space, parse_addr};

/// What [`free_address`] did with one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeOutcome {
    /// The bit was set and is now clear.
    Freed,
    /// The address is tracked but its bit was already clear.
    NotAllocated,
    /// `""` or `"none"`: nothing to free.
    Skipped,
    /// Not an IP address.
    Invalid,
    /// The network has no bitmap for this family (L2, or `cidr`/pool CIDR/bitmap unusable).
    NoIpam,
    /// Outside `cidr` (IPv4) or `allocation_pool_v6.cidr` (IPv6).
    OutsideRange,
    /// Network, last address or a route gateway: these bits are never cleared.
    Protected,
}

impl FreeOutcome {
    /// Whether the spec changed.
    pub fn changed(self) -> bool {
        self == FreeOutcome::Freed
    }
}

/// Frees one address (`ip` or `ip/len`) in `opts`, picking the family from the address.
pub fn free_address(opts: &mut NetworkOptions, addr: &str) -> FreeOutcome {
    if addr.is_empty() || addr == "none" {
        return FreeOutcome::Skipped;
    }
    let Some(ip) = parse_addr(addr) else {
        return FreeOutcome::Invalid;
    };
    let (space, alloc, routes) = match ip {
        IpAddr::V4(_) => {
            let Ok(space) = parse_v4_cidr(&opts.cidr).and_then(Space::v4) else {
                return FreeOutcome::NoIpam;
            };
            (space, &mut opts.alloc, &opts.routes)
        }
        IpAddr::V6(_) => {
            let Ok(space) = parse_pool6_cidr(&opts.allocation_pool_v6.cidr).and_then(Space::v6) else {
                return FreeOutcome::NoIpam;
            };
            (space, &mut opts.alloc6, &opts.routes6)
        }
    };
    if alloc.is_empty() {
        return FreeOutcome::NoIpam;
    }
    let Ok(mut bm) = space.load(alloc) else {
        return FreeOutcome::NoIpam;
    };
    let Some(i) = space.index_of(ip) else {
        return FreeOutcome::OutsideRange;
    };
    let gateways = space.gateway_indices(routes.iter().flat_map(|r| r.values()));
    if space.is_protected(i, &gateways) {
        return FreeOutcome::Protected;
    }
    if !bm.clear(i) {
        return FreeOutcome::NotAllocated;
    }
    *alloc = bm.encode();
    FreeOutcome::Freed
}

/// Releases an interface's addresses (a DanmEp's `Address` and `AddressIPv6`). Skips `""`, `"none"`, invalid and
/// out-of-range addresses. Returns the new spec and whether it changed (nothing to write when it did not).
pub fn release(spec: &NetworkSpec, addr4: &str, addr6: &str) -> (NetworkSpec, bool) {
    let mut new = spec.clone();
    let a = free_address(&mut new.options, addr4).changed();
    let b = free_address(&mut new.options, addr6).changed();
    (new, a || b)
}
