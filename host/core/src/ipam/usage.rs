//! A read-only summary of a network's allocations (what `danmctl ipam show` prints).

use std::net::IpAddr;

use danm_api::NetworkSpec;

use super::defaults::{parse_pool6_cidr, parse_v4_cidr};
use super::space::Space;
use super::{Family, IpamError};

/// Why an address is reserved without being allocated to anybody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedReason {
    /// Bit 0: the network address (IPv4) or the pool CIDR's first address (IPv6).
    Network,
    /// Bit N−1: the broadcast address (IPv4) or the pool CIDR's last address (IPv6).
    Broadcast,
    /// A gateway of `routes`/`routes6`.
    Gateway,
}

/// A reserved address and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub addr: IpAddr,
    pub reason: ReservedReason,
}

/// Allocation summary of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FamilyUsage {
    pub family: Family,
    /// The CIDR the bitmap covers (`cidr`, or `allocation_pool_v6.cidr`).
    pub cidr: String,
    pub pool_start: IpAddr,
    pub pool_end: IpAddr,
    /// Addresses in the pool range (inclusive).
    pub pool_size: u64,
    /// Pool addresses that a dynamic request could still get.
    pub pool_free: u64,
    /// Network, last address and gateways.
    pub reserved: Vec<Reserved>,
    /// Allocated addresses (set bits that are not reserved), as inclusive ascending ranges; statics outside the pool
    /// are included.
    pub allocated: Vec<(IpAddr, IpAddr)>,
    /// Number of allocated addresses.
    pub allocated_count: u64,
}

impl FamilyUsage {
    /// Every allocated address, ascending (the ranges of [`FamilyUsage::allocated`] expanded).
    pub fn allocated_addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.allocated.iter().flat_map(|&(first, last)| {
            std::iter::successors(Some(first), move |&a| (a != last).then(|| super::addr_plus(a, 1)))
        })
    }
}

/// Allocation summary of a network; a family without a bitmap is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage {
    pub v4: Option<FamilyUsage>,
    pub v6: Option<FamilyUsage>,
}

/// Summarises the bitmaps of `spec`. Families without `alloc`/`alloc6` are `None`; a corrupt bitmap is an error.
pub fn usage(spec: &NetworkSpec) -> Result<Usage, IpamError> {
    let o = &spec.options;
    let v4 = if o.cidr.is_empty() || o.alloc.is_empty() {
        None
    } else {
        let space = Space::v4(parse_v4_cidr(&o.cidr)?)?;
        let outside = || IpamError::PoolOutsideCidr {
            start: o.allocation_pool.start.clone(),
            end: o.allocation_pool.end.clone(),
            cidr: o.cidr.clone(),
        };
        Some(summarise(
            &space,
            &o.alloc,
            &o.allocation_pool.start,
            &o.allocation_pool.end,
            &o.routes,
            outside,
        )?)
    };
    let v6 = if o.net6.is_empty() || o.alloc6.is_empty() {
        None
    } else {
        let p = &o.allocation_pool_v6;
        let space = Space::v6(parse_pool6_cidr(&p.cidr)?)?;
        let outside = || IpamError::Pool6OutsideNet6 {
            pool_cidr: p.cidr.clone(),
            net6: o.net6.clone(),
        };
        Some(summarise(
            &space, &o.alloc6, &p.start, &p.end, &o.routes6, outside,
        )?)
    };
    Ok(Usage { v4, v6 })
}

fn summarise(
    space: &Space,
    alloc: &str,
    start: &str,
    end: &str,
    routes: &Option<std::collections::BTreeMap<String, String>>,
    outside: impl Fn() -> IpamError,
) -> Result<FamilyUsage, IpamError> {
    let bm = space.load(alloc)?;
    let gateways = space.gateway_indices(routes.iter().flat_map(|r| r.values()));
    let bound = |text: &str, default: usize| -> Result<usize, IpamError> {
        if text.is_empty() {
            return Ok(default);
        }
        text.parse::<IpAddr>()
            .ok()
            .and_then(|ip| space.index_of(ip))
            .ok_or_else(&outside)
    };
    let first = bound(start, 1.min(space.bits - 1))?;
    let last = bound(end, space.bits.saturating_sub(2))?;

    let mut reserved = vec![Reserved {
        addr: space.addr_at(0),
        reason: ReservedReason::Network,
    }];
    if space.bits > 1 {
        reserved.push(Reserved {
            addr: space.addr_at(space.bits - 1),
            reason: ReservedReason::Broadcast,
        });
    }
    let mut gw_sorted = gateways.clone();
    gw_sorted.sort_unstable();
    gw_sorted.dedup();
    for &i in gw_sorted.iter().filter(|&&i| i != 0 && i != space.bits - 1) {
        reserved.push(Reserved {
            addr: space.addr_at(i),
            reason: ReservedReason::Gateway,
        });
    }

    let mut allocated: Vec<(IpAddr, IpAddr)> = Vec::new();
    let mut allocated_count = 0u64;
    let mut run: Option<(usize, usize)> = None;
    for i in bm
        .iter_set_in(0, space.bits - 1)
        .filter(|&i| !space.is_protected(i, &gateways))
    {
        allocated_count += 1;
        run = match run {
            Some((a, b)) if b + 1 == i => Some((a, i)),
            Some((a, b)) => {
                allocated.push((space.addr_at(a), space.addr_at(b)));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some((a, b)) = run {
        allocated.push((space.addr_at(a), space.addr_at(b)));
    }

    let mut protected = gw_sorted.clone();
    protected.extend([0, space.bits - 1]);
    protected.sort_unstable();
    protected.dedup();
    let (pool_size, pool_free) = if first <= last {
        let size = (last - first + 1) as u64;
        let set = bm.count_set_in(first, last) as u64;
        let protected_clear = protected
            .iter()
            .filter(|&&i| i >= first && i <= last && !bm.get(i))
            .count() as u64;
        (size, size - set - protected_clear)
    } else {
        (0, 0)
    };

    Ok(FamilyUsage {
        family: space.family,
        cidr: space.cidr.clone(),
        pool_start: space.addr_at(first),
        pool_end: space.addr_at(last),
        pool_size,
        pool_free,
        reserved,
        allocated,
        allocated_count,
    })
}
