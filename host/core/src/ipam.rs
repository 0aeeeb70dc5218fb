//! IPAM: DANM's allocation bitmaps, network pool defaults, one-step dual-stack reservation and release (behaviour §5).
//!
//! Everything here is a pure function over the network spec: the caller reads the object, calls [`reserve`] or
//! [`release`], and writes the returned spec back with a conditional update (resourceVersion); on a conflict it
//! re-reads and calls again on the fresh copy (behaviour §5.4, bounded retries: §10 B8).
//!
//! Differences from DANM, all deliberate (behaviour §10):
//! - **B2**: `lastIp` is still written as `"ip/prefix"` after a dynamic allocation (so objects look like DANM's), but
//!   it is never read: dynamic allocation is always lowest-free-first inside the pool, which is what DANM did in
//!   practice.
//! - **B10**: gateways are reserved only when their index is inside the bitmap (DANM allowed index == N); IPv6
//!   gateways are mapped relative to the pool CIDR's base and skipped when outside it; a static IPv6 address inside
//!   `net6` but outside `allocation_pool_v6.cidr` is **rejected** ([`IpamError::OutsideV6Pool`]) instead of being
//!   handed out untracked.
//! - A bitmap whose size does not match its CIDR (e.g. a stale `alloc` after the CIDR changed, §10 B12) is an error
//!   instead of silent corruption.
//! - [`release`] never clears the network, broadcast or gateway bits, so an operator's `free` cannot make them
//!   allocatable.

mod bitmap;
pub mod blocks;
mod defaults;
mod release;
mod reserve;
mod space;
mod usage;

use std::fmt;

pub use bitmap::{Bitmap, MAX_BITS};
pub use defaults::{
    MIN_V4_PREFIX, MIN_V6_POOL_PREFIX, apply_network_defaults, default_v4_pool, default_v6_pool,
    default_v6_pool_cidr, fresh_v4_alloc, fresh_v6_alloc, max_v6_pool_prefix, parse_v4_cidr, parse_v6_cidr,
    paths,
};
pub use release::{FreeOutcome, free_address, release};
pub use reserve::{IpRequest, Reservation, reserve};
pub use usage::{FamilyUsage, Reserved, ReservedReason, Usage, usage};

/// The address `n` after `base` in its family (wrapping at the end of the family's range): a block's base plus an
/// owner's offset, or the next address of a range.
pub fn addr_plus(base: std::net::IpAddr, n: u32) -> std::net::IpAddr {
    match base {
        std::net::IpAddr::V4(a) => std::net::IpAddr::V4(u32::from(a).wrapping_add(n).into()),
        std::net::IpAddr::V6(a) => std::net::IpAddr::V6(u128::from(a).wrapping_add(u128::from(n)).into()),
    }
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Errors of the IPAM layer. The texts keep DANM's wording (behaviour §5, §8.2) so operators and tests recognise them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// The family has no allocation bitmap (no `cidr`/`alloc`, or no `net6`).
    #[error(
        "IP address cannot be allocated for an L2 network! (the network has no {family} allocation pool)"
    )]
    L2Network { family: Family },
    /// Dynamic allocation found no clear bit in the pool.
    #[error(
        "IP address cannot be dynamically allocated, all addresses are reserved! ({family} pool {start}-{end})"
    )]
    Exhausted {
        family: Family,
        start: String,
        end: String,
    },
    /// The static request is not an IP address.
    #[error("static IP allocation failed, requested static IP:{requested} is not a valid IP")]
    InvalidStatic { requested: String },
    /// The static address is not inside `cidr` (IPv4) or `net6` (IPv6).
    #[error(
        "static IP allocation failed, requested static IP:{requested} is outside the network's CIDR:{cidr}"
    )]
    OutsideCidr { requested: String, cidr: String },
    /// The static IPv6 address is inside `net6` but outside the pool CIDR the bitmap covers (behaviour §10 B10).
    #[error(
        "static IP allocation failed, requested static IP:{requested} is outside the IPv6 allocation pool's \
         CIDR:{pool_cidr}, where its use could not be tracked"
    )]
    OutsideV6Pool { requested: String, pool_cidr: String },
    /// The static address's bit is already set (allocated, or network/broadcast/gateway).
    #[error("static IP allocation failed, requested IP address:{requested} is already in use")]
    InUse { requested: String },
    /// A bitmap or network would exceed 2^23 addresses.
    #[error(
        "DANM does not support networks with more than 2^23 IP addresses (requested a bitmap of {bits} bits)"
    )]
    TooManyAddresses { bits: u64 },
    /// The `alloc`/`alloc6` text is not DANM base64.
    #[error("the allocation bitmap is corrupt: {reason}")]
    CorruptBitmap { reason: String },
    /// The bitmap's size does not fit the CIDR it covers (stale after a CIDR change, or corrupt).
    #[error(
        "the {family} allocation bitmap is corrupt: it has {bytes} bytes, but CIDR:{cidr} needs {needed} bytes \
         (stale alloc after a CIDR change?)"
    )]
    BitmapSizeMismatch {
        family: Family,
        cidr: String,
        bytes: usize,
        needed: usize,
    },
    /// `cidr`, `net6` or a pool CIDR does not parse (V2/V5).
    #[error("Invalid CIDR: {cidr}")]
    InvalidCidr { cidr: String },
    /// `cidr` is IPv6 (V9).
    #[error("Options.CIDR is not a valid V4 subnet!")]
    CidrNotV4 { cidr: String },
    /// IPv4 prefix shorter than /9 (V10).
    #[error("Netmask of the IPv4 CIDR is bigger than the maximum allowed /9")]
    CidrTooBig { cidr: String },
    /// `allocation_pool` set without `cidr` (V8).
    #[error("V4 Allocation pool cannot be defined without CIDR!")]
    PoolWithoutCidr,
    /// Pool start or end not inside `cidr` (V11).
    #[error("Allocation pool is outside of defined CIDR!")]
    PoolOutsideCidr {
        start: String,
        end: String,
        cidr: String,
    },
    /// end ≤ start (V12/V18).
    #[error("Allocation pool start:{start} is bigger than or equal to allocation pool end:{end}")]
    PoolStartNotBeforeEnd { start: String, end: String },
    /// v6 pool fields without `net6` (V13).
    #[error("IPv6 allocation pool cannot be defined without Net6!")]
    Pool6WithoutNet6,
    /// `net6` is IPv4 (V14).
    #[error("spec.Options.Net6 is not a valid V6 subnet!")]
    Net6NotV6 { net6: String },
    /// `allocation_pool_v6.cidr` does not parse (V15).
    #[error("spec.Options.Pool6.CIDR is invalid!")]
    InvalidPool6Cidr { cidr: String },
    /// `allocation_pool_v6.cidr` is IPv4 (V15).
    #[error("spec.Options.Allocation_Pool_V6.Cidr is not a valid V6 subnet!")]
    Pool6CidrNotV6 { cidr: String },
    /// The v6 pool CIDR is larger than the storage left next to the v4 bitmap, or is a /128 (V16).
    #[error(
        "The defined IPv6 allocation pool exceeds the maximum - 8M-size(IPv4 allocation pool) - storage capacity!"
    )]
    Pool6TooBig { cidr: String, max_prefix: u8 },
    /// v6 start/end outside the pool CIDR, or the pool CIDR not inside `net6` (V17).
    #[error("IPv6 allocation pool is outside of the defined IPv6 subnet!")]
    Pool6OutsideNet6 { pool_cidr: String, net6: String },
    /// A `danm.k8s.io/ipam-mode` value other than `bitmap` and `blocks`.
    #[error("unknown IPAM mode {mode:?} (danm.k8s.io/ipam-mode is bitmap or blocks)")]
    UnknownMode { mode: String },
    /// A network's block-size annotation is not a prefix length of its family.
    #[error("{annotation}={value:?} is not a prefix length of the family")]
    InvalidBlockPrefix { annotation: String, value: String },
    /// An error while allocating on a named network (DANM's wrapper text).
    #[error("failed to allocate IP address for network:{network} with error:{source}")]
    Reserve {
        network: String,
        #[source]
        source: Box<IpamError>,
    },
}

impl IpamError {
    /// Wraps the error with the network's name, as DANM's CNI reported it.
    pub fn for_network(self, network: &str) -> IpamError {
        match self {
            e @ IpamError::Reserve { .. } => e,
            e => IpamError::Reserve {
                network: network.to_owned(),
                source: Box::new(e),
            },
        }
    }

    /// The underlying error, without the network wrapper.
    pub fn root(&self) -> &IpamError {
        match self {
            IpamError::Reserve { source, .. } => source.root(),
            e => e,
        }
    }
}
