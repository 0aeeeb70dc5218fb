//! Network pool defaults the webhook applies at CREATE (behaviour §5.2, §5.6), with DANM's IPAM validation rules in
//! order.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use danm_api::NetworkOptions;
use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};

use super::space::Space;
use super::{Bitmap, IpamError, MAX_BITS};

/// The shortest IPv4 prefix DANM accepts (/9 = 2^23 addresses).
pub const MIN_V4_PREFIX: u8 = 9;
/// The shortest prefix an IPv6 pool may have (/105 = 2^23 addresses), before subtracting the IPv4 pool.
pub const MIN_V6_POOL_PREFIX: u8 = 105;

/// JSON pointers of the fields [`apply_network_defaults`] may change.
pub mod paths {
    pub const ALLOCATION_POOL: &str = "/spec/Options/allocation_pool";
    pub const ALLOC: &str = "/spec/Options/alloc";
    pub const ALLOCATION_POOL_V6: &str = "/spec/Options/allocation_pool_v6";
    pub const ALLOC6: &str = "/spec/Options/alloc6";
}

/// Parses an IPv4 CIDR (`a.b.c.d/len`, a prefix is required) and normalises it to its network address.
pub fn parse_v4_cidr(text: &str) -> Result<Ipv4Network, IpamError> {
    match parse_cidr(text)? {
        IpNetwork::V4(n) => Ok(Ipv4Network::new(n.network(), n.prefix()).expect("prefix already validated")),
        IpNetwork::V6(_) => Err(IpamError::CidrNotV4 {
            cidr: text.to_owned(),
        }),
    }
}

/// Parses an IPv6 CIDR (a prefix is required) and normalises it to its network address.
pub fn parse_v6_cidr(text: &str) -> Result<Ipv6Network, IpamError> {
    match parse_cidr(text)? {
        IpNetwork::V6(n) => Ok(Ipv6Network::new(n.network(), n.prefix()).expect("prefix already validated")),
        IpNetwork::V4(_) => Err(IpamError::Net6NotV6 {
            net6: text.to_owned(),
        }),
    }
}

fn parse_cidr(text: &str) -> Result<IpNetwork, IpamError> {
    let invalid = || IpamError::InvalidCidr {
        cidr: text.to_owned(),
    };
    let (addr, len) = text.split_once('/').ok_or_else(invalid)?;
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let len: u8 = len.parse().map_err(|_| invalid())?;
    IpNetwork::new(addr, len).map_err(|_| invalid())
}

/// The default IPv4 pool: network + 1 to broadcast − 1 (wrapping like DANM's `cidr.Inc`/`Dec`; a /31 or /32 gives a
/// pool that validation then rejects).
pub fn default_v4_pool(cidr: Ipv4Network) -> (Ipv4Addr, Ipv4Addr) {
    let first = u32::from(cidr.network()).wrapping_add(1);
    let last = u32::from(cidr.broadcast()).wrapping_sub(1);
    (Ipv4Addr::from(first), Ipv4Addr::from(last))
}

/// A fresh IPv4 bitmap over `cidr`: network, broadcast and every `routes` gateway inside the CIDR are set.
pub fn fresh_v4_alloc(
    cidr: Ipv4Network,
    routes: Option<&BTreeMap<String, String>>,
) -> Result<Bitmap, IpamError> {
    Space::v4(cidr)?.fresh(routes.into_iter().flat_map(BTreeMap::values))
}

/// The shortest prefix (largest pool) the IPv6 pool may use next to an IPv4 `cidr` of `v4_prefix` (behaviour §5.6):
/// 105 without IPv4, else the smallest prefix in 105..=128 whose size is below 2^23 − (IPv4 addresses). When even a
/// /128 does not fit (IPv4 /9) it returns 128, which validation rejects.
pub fn max_v6_pool_prefix(v4_prefix: Option<u8>) -> u8 {
    let Some(p) = v4_prefix else {
        return MIN_V6_POOL_PREFIX;
    };
    let v4_size = 1u64 << (32 - u32::from(p.min(32)));
    let remaining = MAX_BITS.saturating_sub(v4_size);
    (MIN_V6_POOL_PREFIX..=128)
        .find(|q| (1u64 << (128 - u32::from(*q))) < remaining)
        .unwrap_or(128)
}

/// The default IPv6 pool CIDR: `net6`'s base address with prefix max([`max_v6_pool_prefix`], net6 prefix).
pub fn default_v6_pool_cidr(net6: Ipv6Network, v4_prefix: Option<u8>) -> Ipv6Network {
    let prefix = max_v6_pool_prefix(v4_prefix).max(net6.prefix());
    Ipv6Network::new(net6.network(), prefix).expect("prefix <= 128")
}

/// The default IPv6 range: the pool CIDR's first address + 1 to its last address − 1.
pub fn default_v6_pool(pool_cidr: Ipv6Network) -> (Ipv6Addr, Ipv6Addr) {
    let first = u128::from(pool_cidr.network()).wrapping_add(1);
    let last = u128::from(pool_cidr.broadcast()).wrapping_sub(1);
    (Ipv6Addr::from(first), Ipv6Addr::from(last))
}

/// A fresh IPv6 bitmap over the pool CIDR: first and last address, and every `routes6` gateway inside the pool CIDR
/// (indexed from the pool's base, behaviour §10 B10).
pub fn fresh_v6_alloc(
    pool_cidr: Ipv6Network,
    routes6: Option<&BTreeMap<String, String>>,
) -> Result<Bitmap, IpamError> {
    Space::v6(pool_cidr)?.fresh(routes6.into_iter().flat_map(BTreeMap::values))
}

/// Applies the webhook's IPAM defaults to a network's options, checking DANM's IPAM rules in the webhook's order
/// (behaviour §8.2 V8–V18, §5.2, §5.6): v4 pool start/end and `alloc` (each only if empty), the v6 pool CIDR,
/// start/end and `alloc6`. Returns the JSON pointers of the changed fields (for an admission patch).
///
/// Also rejects an existing `alloc`/`alloc6` whose size does not fit its CIDR. Not checked here (the rules plugin's
/// job): V1–V7 (routes without CIDR, gateways outside the CIDR, `alloc` on CREATE). Gateways outside the CIDR are
/// simply not marked.
pub fn apply_network_defaults(opts: &mut NetworkOptions) -> Result<Vec<&'static str>, IpamError> {
    let mut changed = Vec::new();
    let v4_prefix = apply_v4_defaults(opts, &mut changed)?;
    apply_v6_defaults(opts, v4_prefix, &mut changed)?;
    Ok(changed)
}

fn apply_v4_defaults(
    opts: &mut NetworkOptions,
    changed: &mut Vec<&'static str>,
) -> Result<Option<u8>, IpamError> {
    if opts.cidr.is_empty() {
        if !opts.allocation_pool.start.is_empty() || !opts.allocation_pool.end.is_empty() {
            return Err(IpamError::PoolWithoutCidr);
        }
        return Ok(None);
    }
    let cidr = parse_v4_cidr(&opts.cidr)?;
    if cidr.prefix() < MIN_V4_PREFIX {
        return Err(IpamError::CidrTooBig {
            cidr: opts.cidr.clone(),
        });
    }
    let (start, end) = default_v4_pool(cidr);
    let pool = &mut opts.allocation_pool;
    if pool.start.is_empty() {
        pool.start = start.to_string();
        push(changed, paths::ALLOCATION_POOL);
    }
    if pool.end.is_empty() {
        pool.end = end.to_string();
        push(changed, paths::ALLOCATION_POOL);
    }
    if opts.alloc.is_empty() {
        opts.alloc = fresh_v4_alloc(cidr, opts.routes.as_ref())?.encode();
        push(changed, paths::ALLOC);
    } else {
        Space::v4(cidr)?.load(&opts.alloc)?;
    }
    check_v4_pool(opts, cidr)?;
    Ok(Some(cidr.prefix()))
}

/// V11 and V12: pool start and end inside `cidr`, start < end.
fn check_v4_pool(opts: &NetworkOptions, cidr: Ipv4Network) -> Result<(), IpamError> {
    let pool = &opts.allocation_pool;
    let outside = || IpamError::PoolOutsideCidr {
        start: pool.start.clone(),
        end: pool.end.clone(),
        cidr: opts.cidr.clone(),
    };
    let start: Ipv4Addr = pool.start.parse().map_err(|_| outside())?;
    let end: Ipv4Addr = pool.end.parse().map_err(|_| outside())?;
    if !cidr.contains(start) || !cidr.contains(end) {
        return Err(outside());
    }
    if end <= start {
        return Err(IpamError::PoolStartNotBeforeEnd {
            start: pool.start.clone(),
            end: pool.end.clone(),
        });
    }
    Ok(())
}

fn apply_v6_defaults(
    opts: &mut NetworkOptions,
    v4_prefix: Option<u8>,
    changed: &mut Vec<&'static str>,
) -> Result<(), IpamError> {
    if opts.net6.is_empty() {
        let p = &opts.allocation_pool_v6;
        if !p.start.is_empty() || !p.end.is_empty() || !p.cidr.is_empty() {
            return Err(IpamError::Pool6WithoutNet6);
        }
        return Ok(());
    }
    let net6 = parse_v6_cidr(&opts.net6)?;
    if opts.allocation_pool_v6.cidr.is_empty() {
        opts.allocation_pool_v6.cidr = default_v6_pool_cidr(net6, v4_prefix).to_string();
        push(changed, paths::ALLOCATION_POOL_V6);
    }
    let pool_cidr = parse_pool6_cidr(&opts.allocation_pool_v6.cidr)?;
    let max_prefix = max_v6_pool_prefix(v4_prefix);
    if pool_cidr.prefix() < max_prefix || pool_cidr.prefix() == 128 {
        return Err(IpamError::Pool6TooBig {
            cidr: opts.allocation_pool_v6.cidr.clone(),
            max_prefix,
        });
    }
    let (pool_text, net6_text) = (opts.allocation_pool_v6.cidr.clone(), opts.net6.clone());
    let outside = || IpamError::Pool6OutsideNet6 {
        pool_cidr: pool_text.clone(),
        net6: net6_text.clone(),
    };
    if !net6.contains(pool_cidr.network()) || !net6.contains(pool_cidr.broadcast()) {
        return Err(outside());
    }
    for bound in [&opts.allocation_pool_v6.start, &opts.allocation_pool_v6.end] {
        if !bound.is_empty() && !bound.parse::<Ipv6Addr>().is_ok_and(|a| pool_cidr.contains(a)) {
            return Err(outside());
        }
    }
    let (start, end) = default_v6_pool(pool_cidr);
    let pool = &mut opts.allocation_pool_v6;
    if pool.start.is_empty() {
        pool.start = start.to_string();
        push(changed, paths::ALLOCATION_POOL_V6);
    }
    if pool.end.is_empty() {
        pool.end = end.to_string();
        push(changed, paths::ALLOCATION_POOL_V6);
    }
    if opts.alloc6.is_empty() {
        opts.alloc6 = fresh_v6_alloc(pool_cidr, opts.routes6.as_ref())?.encode();
        push(changed, paths::ALLOC6);
    } else {
        Space::v6(pool_cidr)?.load(&opts.alloc6)?;
    }
    let (start, end) = (&opts.allocation_pool_v6.start, &opts.allocation_pool_v6.end);
    let (s, e): (Ipv6Addr, Ipv6Addr) = (
        start.parse().map_err(|_| outside())?,
        end.parse().map_err(|_| outside())?,
    );
    if e <= s {
        return Err(IpamError::PoolStartNotBeforeEnd {
            start: start.clone(),
            end: end.clone(),
        });
    }
    Ok(())
}

/// Parses `allocation_pool_v6.cidr` with V15's messages.
pub(crate) fn parse_pool6_cidr(text: &str) -> Result<Ipv6Network, IpamError> {
    parse_v6_cidr(text).map_err(|e| match e {
        IpamError::Net6NotV6 { .. } => IpamError::Pool6CidrNotV6 {
            cidr: text.to_owned(),
        },
        _ => IpamError::InvalidPool6Cidr {
            cidr: text.to_owned(),
        },
    })
}

/// Fills in what the v6 side of a network needs before an allocation, when `net6` is set but the pool is not
/// (behaviour §5.3: "§5.6 defaults are applied on the fly"). Missing pieces only; the v4 prefix comes from `cidr`.
pub(crate) fn ensure_v6_pool(opts: &mut NetworkOptions) -> Result<(), IpamError> {
    let net6 = parse_v6_cidr(&opts.net6)?;
    if opts.allocation_pool_v6.cidr.is_empty() {
        let v4_prefix = if opts.cidr.is_empty() {
            None
        } else {
            Some(parse_v4_cidr(&opts.cidr)?.prefix())
        };
        opts.allocation_pool_v6.cidr = default_v6_pool_cidr(net6, v4_prefix).to_string();
    }
    let pool_cidr = parse_pool6_cidr(&opts.allocation_pool_v6.cidr)?;
    let (start, end) = default_v6_pool(pool_cidr);
    if opts.allocation_pool_v6.start.is_empty() {
        opts.allocation_pool_v6.start = start.to_string();
    }
    if opts.allocation_pool_v6.end.is_empty() {
        opts.allocation_pool_v6.end = end.to_string();
    }
    if opts.alloc6.is_empty() {
        opts.alloc6 = fresh_v6_alloc(pool_cidr, opts.routes6.as_ref())?.encode();
    }
    Ok(())
}

fn push(changed: &mut Vec<&'static str>, path: &'static str) {
    if !changed.contains(&path) {
        changed.push(path);
    }
}
