//! One-step dual-stack reservation on one network (behaviour §5.3): a pure function from spec and requests to a new spec
//! and the addresses.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use danm_api::{NetworkOptions, NetworkSpec};

use super::defaults::{ensure_v6_pool, parse_pool6_cidr, parse_v4_cidr, parse_v6_cidr};
use super::space::{Space, parse_addr};
use super::{Bitmap, Family, IpamError};

/// What an interface asks for in one family (the annotation's `ip` or `ip6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpRequest {
    /// `""` or the key is missing: nothing for this family; the result is `""`.
    Absent,
    /// `"none"`: the result is `"none"`, nothing is reserved.
    None,
    /// `"dynamic"`: the lowest free address of the pool.
    Dynamic,
    /// A static address (`a.b.c.d` or `a.b.c.d/len`; the length is ignored, the network's prefix is used).
    Static(IpAddr),
}

impl IpRequest {
    /// Parses DANM's request text. Keywords are exact (`none`, `dynamic`); anything else must be an address.
    pub fn parse(text: &str) -> Result<Self, IpamError> {
        match text {
            "" => Ok(IpRequest::Absent),
            "none" => Ok(IpRequest::None),
            "dynamic" => Ok(IpRequest::Dynamic),
            other => {
                let valid_suffix = match other.split_once('/') {
                    Some((_, len)) => !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()),
                    None => true,
                };
                match parse_addr(other) {
                    Some(ip) if valid_suffix => Ok(IpRequest::Static(ip)),
                    _ => Err(IpamError::InvalidStatic {
                        requested: other.to_owned(),
                    }),
                }
            }
        }
    }

    /// Whether this request needs the family's bitmap (dynamic or static).
    pub fn needs_ipam(&self) -> bool {
        matches!(self, IpRequest::Dynamic | IpRequest::Static(_))
    }
}

impl FromStr for IpRequest {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpRequest::parse(s)
    }
}

impl fmt::Display for IpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpRequest::Absent => Ok(()),
            IpRequest::None => f.write_str("none"),
            IpRequest::Dynamic => f.write_str("dynamic"),
            IpRequest::Static(ip) => write!(f, "{ip}"),
        }
    }
}

/// The outcome of [`reserve`].
#[derive(Clone, Debug, PartialEq)]
pub struct Reservation {
    /// The spec to write back (equal to the input when `changed` is false).
    pub spec: NetworkSpec,
    /// IPv4 result: `"a.b.c.d/<cidr prefix>"`, `"none"` or `""`.
    pub ip4: String,
    /// IPv6 result: `"addr/<net6 prefix>"`, `"none"` or `""`.
    pub ip6: String,
    /// Whether the spec differs from the input, i.e. whether a write is needed.
    pub changed: bool,
}

/// Reserves addresses for one interface on one network, both families in one step (behaviour §5.3).
///
/// Either both requests succeed and the returned spec carries both reservations (one write), or an error is returned
/// and nothing changes. `lastIp` is written as DANM wrote it (`"ip/prefix"`) after a dynamic allocation but never
/// read (B2). When `net6` is set but the IPv6 pool is missing, the pool defaults are applied on the fly.
pub fn reserve(spec: &NetworkSpec, req4: &IpRequest, req6: &IpRequest) -> Result<Reservation, IpamError> {
    let mut new = spec.clone();
    let ip4 = reserve_v4(&mut new.options, req4)?;
    let ip6 = reserve_v6(&mut new.options, req6)?;
    let changed = new != *spec;
    Ok(Reservation {
        spec: new,
        ip4,
        ip6,
        changed,
    })
}

fn reserve_v4(opts: &mut NetworkOptions, req: &IpRequest) -> Result<String, IpamError> {
    match req {
        IpRequest::Absent => return Ok(String::new()),
        IpRequest::None => return Ok("none".to_owned()),
        IpRequest::Dynamic | IpRequest::Static(_) => {}
    }
    if opts.alloc.is_empty() || opts.cidr.is_empty() {
        return Err(IpamError::L2Network { family: Family::V4 });
    }
    let cidr = parse_v4_cidr(&opts.cidr)?;
    let space = Space::v4(cidr)?;
    let mut bm = space.load(&opts.alloc)?;
    let gateways = space.gateway_indices(opts.routes.iter().flat_map(|r| r.values()));
    let pool = &mut opts.allocation_pool;
    let result = match req {
        IpRequest::Static(ip) => reserve_static(&space, &mut bm, &gateways, *ip, &opts.cidr, space.prefix)?,
        _ => {
            let (start, end) =
                pool_bounds(&space, &pool.start, &pool.end).map_err(|()| IpamError::PoolOutsideCidr {
                    start: pool.start.clone(),
                    end: pool.end.clone(),
                    cidr: opts.cidr.clone(),
                })?;
            let result = reserve_dynamic(&space, &mut bm, &gateways, (start, end), space.prefix)?;
            pool.last_ip = result.clone();
            result
        }
    };
    opts.alloc = bm.encode();
    Ok(result)
}

fn reserve_v6(opts: &mut NetworkOptions, req: &IpRequest) -> Result<String, IpamError> {
    match req {
        IpRequest::Absent => return Ok(String::new()),
        IpRequest::None => return Ok("none".to_owned()),
        IpRequest::Dynamic | IpRequest::Static(_) => {}
    }
    if opts.net6.is_empty() {
        return Err(IpamError::L2Network { family: Family::V6 });
    }
    let net6 = parse_v6_cidr(&opts.net6)?;
    if opts.alloc6.is_empty() {
        ensure_v6_pool(opts)?;
    }
    let pool_cidr = parse_pool6_cidr(&opts.allocation_pool_v6.cidr)?;
    let space = Space::v6(pool_cidr)?;
    let mut bm = space.load(&opts.alloc6)?;
    let gateways = space.gateway_indices(opts.routes6.iter().flat_map(|r| r.values()));
    let result = match req {
        IpRequest::Static(ip) => {
            let inside_net6 = matches!(ip, IpAddr::V6(a) if net6.contains(*a));
            if !inside_net6 {
                return Err(IpamError::OutsideCidr {
                    requested: ip.to_string(),
                    cidr: opts.net6.clone(),
                });
            }
            if space.index_of(*ip).is_none() {
                return Err(IpamError::OutsideV6Pool {
                    requested: ip.to_string(),
                    pool_cidr: opts.allocation_pool_v6.cidr.clone(),
                });
            }
            reserve_static(&space, &mut bm, &gateways, *ip, &opts.net6, net6.prefix())?
        }
        _ => {
            let pool = &mut opts.allocation_pool_v6;
            let (start, end) =
                pool_bounds(&space, &pool.start, &pool.end).map_err(|()| IpamError::Pool6OutsideNet6 {
                    pool_cidr: pool.cidr.clone(),
                    net6: opts.net6.clone(),
                })?;
            let result = reserve_dynamic(&space, &mut bm, &gateways, (start, end), net6.prefix())?;
            pool.last_ip = result.clone();
            result
        }
    };
    opts.alloc6 = bm.encode();
    Ok(result)
}

/// The pool's bit range; empty bounds default to first+1 / last−1 of the space. `Err(())` when a bound does not
/// parse, lies outside the space, or start > end.
fn pool_bounds(space: &Space, start: &str, end: &str) -> Result<(usize, usize), ()> {
    let bound = |text: &str, default: usize| -> Result<usize, ()> {
        if text.is_empty() {
            return Ok(default);
        }
        let ip: IpAddr = text.parse().map_err(|_| ())?;
        space.index_of(ip).ok_or(())
    };
    let first = bound(start, 1.min(space.bits - 1))?;
    let last = bound(end, space.bits.saturating_sub(2))?;
    if first > last {
        return Err(());
    }
    Ok((first, last))
}

/// Lowest-free-first inside `first..=last`. Network, last address and the network's current gateways are never
/// handed out, even when their bits are clear (e.g. a route added after the bitmap was made).
fn reserve_dynamic(
    space: &Space,
    bm: &mut Bitmap,
    gateways: &[usize],
    (first, last): (usize, usize),
    result_prefix: u8,
) -> Result<String, IpamError> {
    let mut from = first;
    loop {
        let Some(i) = bm.first_clear_in(from, last) else {
            return Err(IpamError::Exhausted {
                family: space.family,
                start: space.addr_at(first).to_string(),
                end: space.addr_at(last).to_string(),
            });
        };
        if space.is_protected(i, gateways) {
            from = i + 1;
            continue;
        }
        bm.set(i);
        return Ok(format!("{}/{}", space.addr_at(i), result_prefix));
    }
}

/// A static address inside the space; its bit must be clear and it must not be network, last or a gateway.
fn reserve_static(
    space: &Space,
    bm: &mut Bitmap,
    gateways: &[usize],
    ip: IpAddr,
    cidr_text: &str,
    result_prefix: u8,
) -> Result<String, IpamError> {
    let Some(i) = space.index_of(ip) else {
        return Err(IpamError::OutsideCidr {
            requested: ip.to_string(),
            cidr: cidr_text.to_owned(),
        });
    };
    if space.is_protected(i, gateways) || !bm.set(i) {
        return Err(IpamError::InUse {
            requested: ip.to_string(),
        });
    }
    Ok(format!("{ip}/{result_prefix}"))
}
