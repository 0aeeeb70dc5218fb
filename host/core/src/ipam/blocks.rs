//! The `blocks` IPAM mode's arithmetic: how a network's pool splits into aligned blocks, what each block is named,
//! which address of a block is handed out next, and who may free it. Pure: the I/O lives in danm-ipam.
//!
//! A family's *space* is the range DANM's bitmap would cover (IPv4: `cidr`; IPv6: `allocation_pool_v6.cidr`, or its
//! default from `net6`). It is cut into blocks of `2^(width - block prefix)` addresses, block `b` covering offsets
//! `b*size .. (b+1)*size`. The addresses DANM never hands out stay protected in every mode: the space's first and last
//! address and every route gateway; dynamic allocation stays inside the pool's start/end.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use danm_api::{DanmIpBlockSpec, NetworkKind, NetworkSpec};

use super::defaults::{parse_pool6_cidr, parse_v4_cidr, parse_v6_cidr};
use super::space::parse_addr;
use super::{Family, IpamError};

/// The default IPv4 block: a /26 (64 addresses). A full block with 64 DanmEp owners is about 3.4 KB on the wire.
pub const DEFAULT_BLOCK_PREFIX_V4: u8 = 26;
/// The default IPv6 block: a /122 (64 addresses), for the same object size as IPv4's.
pub const DEFAULT_BLOCK_PREFIX_V6: u8 = 122;
/// Kubernetes object names are at most 253 characters.
const MAX_NAME: usize = 253;

/// Where a network's allocations live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpamMode {
    /// DANM's `alloc`/`alloc6` bitmaps in the network object, bit for bit.
    Bitmap,
    /// DanmIpBlock objects, one per aligned block of the pool, with an owner per address.
    #[default]
    Blocks,
}

impl IpamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IpamMode::Bitmap => "bitmap",
            IpamMode::Blocks => "blocks",
        }
    }

    /// The mode of a network: its `danm.k8s.io/ipam-mode` annotation; else `bitmap` when it carries a bitmap
    /// (`alloc`/`alloc6`, as DANM's webhook wrote); else `default` (the cluster's).
    pub fn of_network(
        annotations: Option<&BTreeMap<String, String>>,
        spec: &NetworkSpec,
        default: IpamMode,
    ) -> Result<IpamMode, IpamError> {
        if let Some(text) = annotations.and_then(|a| a.get(danm_api::annotations::IPAM_MODE)) {
            return text.parse();
        }
        if !spec.options.alloc.is_empty() || !spec.options.alloc6.is_empty() {
            return Ok(IpamMode::Bitmap);
        }
        Ok(default)
    }
}

impl fmt::Display for IpamMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpamMode {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bitmap" => Ok(IpamMode::Bitmap),
            "blocks" => Ok(IpamMode::Blocks),
            other => Err(IpamError::UnknownMode {
                mode: other.to_owned(),
            }),
        }
    }
}

/// Which network a block belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId {
    pub kind: NetworkKind,
    /// Empty for ClusterNetworks.
    pub namespace: String,
    pub name: String,
}

impl NetworkId {
    pub fn new(kind: NetworkKind, namespace: &str, name: &str) -> Self {
        NetworkId {
            kind,
            namespace: if kind.namespaced() {
                namespace.to_owned()
            } else {
                String::new()
            },
            name: name.to_owned(),
        }
    }

    /// The label value that selects the network's blocks: a 64-bit FNV-1a hash of kind, namespace and name, in hex
    /// (a label value is at most 63 characters; names are longer). Readers still compare `spec.network`.
    pub fn label(&self) -> String {
        format!(
            "{:016x}",
            fnv1a(&[self.kind.as_str(), &self.namespace, &self.name])
        )
    }

    fn short_kind(&self) -> &'static str {
        match self.kind {
            NetworkKind::DanmNet => "dn",
            NetworkKind::TenantNetwork => "tn",
            NetworkKind::ClusterNetwork => "cn",
        }
    }
}

impl fmt::Display for NetworkId {
    /// `DanmNet ns/name`, `ClusterNetwork name`: the form errors and `spec.network` use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.namespaced() {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        } else {
            write!(f, "{} {}", self.kind, self.name)
        }
    }
}

fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A node name as a label value: itself when it is one (≤ 63 characters of `[A-Za-z0-9._-]`, alphanumeric at both
/// ends), else a hash.
pub fn node_label(node: &str) -> String {
    let valid = !node.is_empty()
        && node.len() <= 63
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && node.as_bytes()[0].is_ascii_alphanumeric()
        && node.as_bytes()[node.len() - 1].is_ascii_alphanumeric();
    if valid {
        node.to_owned()
    } else {
        format!("h{:016x}", fnv1a(&[node]))
    }
}

/// One family of a network seen as blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    pub family: Family,
    /// The space's first address, as a number.
    base: u128,
    /// log2 of the space's size.
    space_bits: u32,
    /// log2 of a block's size (≤ `space_bits`).
    block_bits: u32,
    /// Dynamic allocation bounds (offsets in the space, inclusive).
    first: u128,
    last: u128,
    /// Offsets never handed out: the space's first and last address, and the route gateways inside it.
    protected: Vec<u128>,
    /// The prefix of the results (`cidr`'s for IPv4, `net6`'s for IPv6).
    result_prefix: u8,
    /// For static IPv6 requests: `net6` (an address must be inside it).
    net6: Option<(u128, u8)>,
    /// The text of the space (`cidr`, or the IPv6 pool CIDR) for errors.
    space_text: String,
    /// The text of the network's range (`cidr` or `net6`) for errors.
    net_text: String,
}

impl BlockLayout {
    /// The layout of `family` on a network, with blocks of `block_prefix` (clamped to the space). An error when the
    /// family has no IPAM range (an L2 network) or a range does not parse.
    pub fn new(spec: &NetworkSpec, family: Family, block_prefix: u8) -> Result<Self, IpamError> {
        let opts = &spec.options;
        match family {
            Family::V4 => {
                if opts.cidr.is_empty() {
                    return Err(IpamError::L2Network { family });
                }
                let cidr = parse_v4_cidr(&opts.cidr)?;
                let space_bits = 32 - u32::from(cidr.prefix());
                let base = u128::from(u32::from(cidr.network()));
                let gateways = opts.routes.iter().flat_map(|r| r.values());
                let mut layout = Self::build(
                    family,
                    base,
                    space_bits,
                    block_prefix,
                    cidr.prefix(),
                    None,
                    gateways,
                    opts.cidr.clone(),
                    opts.cidr.clone(),
                );
                layout.set_bounds(&opts.allocation_pool.start, &opts.allocation_pool.end)?;
                Ok(layout)
            }
            Family::V6 => {
                if opts.net6.is_empty() {
                    return Err(IpamError::L2Network { family });
                }
                let net6 = parse_v6_cidr(&opts.net6)?;
                let pool = if opts.allocation_pool_v6.cidr.is_empty() {
                    let v4_prefix = parse_v4_cidr(&opts.cidr).ok().map(|c| c.prefix());
                    super::default_v6_pool_cidr(net6, v4_prefix)
                } else {
                    parse_pool6_cidr(&opts.allocation_pool_v6.cidr)?
                };
                if !net6.contains(pool.network()) || pool.prefix() < net6.prefix() {
                    return Err(IpamError::Pool6OutsideNet6 {
                        pool_cidr: pool.to_string(),
                        net6: opts.net6.clone(),
                    });
                }
                let space_bits = 128 - u32::from(pool.prefix());
                let gateways = opts.routes6.iter().flat_map(|r| r.values());
                let mut layout = Self::build(
                    family,
                    u128::from(pool.network()),
                    space_bits,
                    block_prefix,
                    net6.prefix(),
                    Some((u128::from(net6.network()), net6.prefix())),
                    gateways,
                    pool.to_string(),
                    opts.net6.clone(),
                );
                let p = &opts.allocation_pool_v6;
                layout.set_bounds(&p.start, &p.end)?;
                Ok(layout)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build<'a>(
        family: Family,
        base: u128,
        space_bits: u32,
        block_prefix: u8,
        result_prefix: u8,
        net6: Option<(u128, u8)>,
        gateways: impl Iterator<Item = &'a String>,
        space_text: String,
        net_text: String,
    ) -> Self {
        let width: u32 = match family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        // Offsets are u128 and sizes are `1 << bits`: a whole-space IPv6 pool (`::/0`, 128 bits) is taken as its
        // lower half, so no size or shift overflows (found by the `blocks` fuzz target: a `::/0` pool with
        // `/0` blocks panicked in `block_size`).
        let space_bits = space_bits.min(127);
        let block_bits = width.saturating_sub(u32::from(block_prefix)).min(space_bits);
        let mut layout = BlockLayout {
            family,
            base,
            space_bits,
            block_bits,
            first: 0,
            last: 0,
            protected: Vec::new(),
            result_prefix,
            net6,
            space_text,
            net_text,
        };
        let size = layout.space_size();
        let mut protected = vec![0, size - 1];
        protected.extend(
            gateways
                .filter_map(|g| g.parse::<IpAddr>().ok())
                .filter_map(|ip| layout.offset_of(ip)),
        );
        protected.sort_unstable();
        protected.dedup();
        layout.protected = protected;
        layout
    }

    /// Pool start/end (empty: first+1 and last−1 of the space).
    fn set_bounds(&mut self, start: &str, end: &str) -> Result<(), IpamError> {
        let size = self.space_size();
        let bound = |text: &str, default: u128| -> Option<u128> {
            if text.is_empty() {
                return Some(default);
            }
            text.parse::<IpAddr>().ok().and_then(|ip| self.offset_of(ip))
        };
        let first = bound(start, 1.min(size - 1));
        let last = bound(end, size.saturating_sub(2));
        match (first, last) {
            (Some(f), Some(l)) if f <= l => {
                self.first = f;
                self.last = l;
                Ok(())
            }
            _ => Err(match self.family {
                Family::V4 => IpamError::PoolOutsideCidr {
                    start: start.to_owned(),
                    end: end.to_owned(),
                    cidr: self.space_text.clone(),
                },
                Family::V6 => IpamError::Pool6OutsideNet6 {
                    pool_cidr: self.space_text.clone(),
                    net6: self.net_text.clone(),
                },
            }),
        }
    }

    fn space_size(&self) -> u128 {
        1u128 << self.space_bits
    }

    /// Addresses per block.
    pub fn block_size(&self) -> u128 {
        1u128 << self.block_bits
    }

    /// The prefix length of a block.
    pub fn block_prefix(&self) -> u8 {
        let width = match self.family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        (width - self.block_bits) as u8
    }

    /// The offset of `ip` in the space, if it is of this family and inside it.
    pub fn offset_of(&self, ip: IpAddr) -> Option<u128> {
        let n = match (self.family, ip) {
            (Family::V4, IpAddr::V4(a)) => u128::from(u32::from(a)),
            (Family::V6, IpAddr::V6(a)) => u128::from(a),
            _ => return None,
        };
        let off = n.checked_sub(self.base)?;
        (off < self.space_size()).then_some(off)
    }

    fn addr_at(&self, offset: u128) -> IpAddr {
        let n = self.base + offset;
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }

    /// The block holding a space offset.
    pub fn block_of(&self, offset: u128) -> u64 {
        (offset >> self.block_bits) as u64
    }

    /// The range of block `b` as a CIDR text.
    pub fn block_cidr(&self, b: u64) -> String {
        format!(
            "{}/{}",
            self.addr_at(u128::from(b) << self.block_bits),
            self.block_prefix()
        )
    }

    /// The object name of block `b` of `network`: `dn.<ns>.<name>.v4.<hex start>-<prefix>` (`cn.<name>...` for a
    /// ClusterNetwork); a network whose name would make it longer than 253 characters is named by its hash.
    pub fn block_name(&self, network: &NetworkId, b: u64) -> String {
        let start = self.base + (u128::from(b) << self.block_bits);
        let (fam, hex) = match self.family {
            Family::V4 => ("v4", format!("{:08x}", start as u32)),
            Family::V6 => ("v6", format!("{start:032x}")),
        };
        let tail = format!("{fam}.{hex}-{}", self.block_prefix());
        let scope = if network.namespace.is_empty() {
            network.name.clone()
        } else {
            format!("{}.{}", network.namespace, network.name)
        };
        let name = format!("{}.{scope}.{tail}", network.short_kind());
        if name.len() <= MAX_NAME {
            name
        } else {
            format!("{}.{}.{tail}", network.short_kind(), network.label())
        }
    }

    /// The blocks that hold addresses of the dynamic pool, lowest first.
    pub fn pool_blocks(&self) -> std::ops::RangeInclusive<u64> {
        self.block_of(self.first)..=self.block_of(self.last)
    }

    /// How many addresses dynamic allocation may hand out in block `b` (pool bounds and protected addresses
    /// excluded).
    pub fn capacity(&self, b: u64) -> u128 {
        let (lo, hi) = self.dynamic_range(b);
        if lo > hi {
            return 0;
        }
        let protected = self.protected.iter().filter(|&&p| p >= lo && p <= hi).count() as u128;
        (hi - lo + 1) - protected
    }

    /// The dynamic range of block `b` in space offsets (empty when `lo > hi`).
    fn dynamic_range(&self, b: u64) -> (u128, u128) {
        let start = u128::from(b) << self.block_bits;
        let end = start + self.block_size() - 1;
        (start.max(self.first), end.min(self.last))
    }

    /// The next address of block `b` to hand out dynamically: round robin after the block's `last`, skipping owned
    /// and protected offsets. Returns the block offset and the result text (`addr/prefix`).
    pub fn next_free(&self, b: u64, block: &DanmIpBlockSpec) -> Option<(u32, String)> {
        let (lo, hi) = self.dynamic_range(b);
        if lo > hi {
            return None;
        }
        let start = u128::from(b) << self.block_bits;
        let after = block
            .last
            .map(|l| start + u128::from(l) + 1)
            .filter(|o| *o >= lo && *o <= hi);
        let from = after.unwrap_or(lo);
        let candidates = (from..=hi).chain(lo..from);
        for offset in candidates {
            let rel = (offset - start) as u32;
            if self.protected.binary_search(&offset).is_ok() || block.owners.contains_key(&rel) {
                continue;
            }
            return Some((rel, self.result(offset)));
        }
        None
    }

    fn result(&self, offset: u128) -> String {
        format!("{}/{}", self.addr_at(offset), self.result_prefix)
    }

    /// Where a static request lands: the block and the offset in it, and the result text. Errors as the bitmap
    /// mode gives them: outside the network, outside the IPv6 pool, a protected address.
    pub fn locate_static(&self, ip: IpAddr) -> Result<(u64, u32, String), IpamError> {
        let outside = || IpamError::OutsideCidr {
            requested: ip.to_string(),
            cidr: self.net_text.clone(),
        };
        if let Some((net, prefix)) = self.net6 {
            let IpAddr::V6(a) = ip else {
                return Err(outside());
            };
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            if u128::from(a) & mask != net & mask {
                return Err(outside());
            }
        }
        let Some(offset) = self.offset_of(ip) else {
            return Err(match self.net6 {
                Some(_) => IpamError::OutsideV6Pool {
                    requested: ip.to_string(),
                    pool_cidr: self.space_text.clone(),
                },
                None => outside(),
            });
        };
        if self.protected.binary_search(&offset).is_ok() {
            return Err(IpamError::InUse {
                requested: ip.to_string(),
            });
        }
        let b = self.block_of(offset);
        let rel = (offset - (u128::from(b) << self.block_bits)) as u32;
        Ok((b, rel, format!("{ip}/{}", self.result_prefix)))
    }

    /// Where an allocated address (`ip` or `ip/len`) lives: block and offset; `None` when it is not an address of
    /// this space.
    pub fn locate(&self, addr: &str) -> Option<(u64, u32)> {
        let offset = self.offset_of(parse_addr(addr)?)?;
        let b = self.block_of(offset);
        Some((b, (offset - (u128::from(b) << self.block_bits)) as u32))
    }

    /// The exhaustion error of this family's pool.
    pub fn exhausted(&self) -> IpamError {
        IpamError::Exhausted {
            family: self.family,
            start: self.addr_at(self.first).to_string(),
            end: self.addr_at(self.last).to_string(),
        }
    }

    /// The addresses of a block's owners, with their owners (for `danmctl ipam show` and checks).
    pub fn owned(&self, b: u64, block: &DanmIpBlockSpec) -> Vec<(IpAddr, String)> {
        let start = u128::from(b) << self.block_bits;
        block
            .owners
            .iter()
            .filter(|(rel, _)| u128::from(**rel) < self.block_size())
            .map(|(rel, owner)| (self.addr_at(start + u128::from(*rel)), owner.clone()))
            .collect()
    }

    /// The block index a block object's `spec.cidr` names, if it is a block of this layout.
    pub fn block_of_cidr(&self, cidr: &str) -> Option<u64> {
        let (addr, len) = cidr.split_once('/')?;
        if len.parse::<u8>().ok()? != self.block_prefix() {
            return None;
        }
        let offset = self.offset_of(addr.parse().ok()?)?;
        (offset % self.block_size() == 0).then(|| self.block_of(offset))
    }
}

/// What releasing an address of a block found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockRelease {
    /// The owner held it; it is free now.
    Freed,
    /// Nobody holds it.
    NotAllocated,
    /// Someone else holds it: it stays theirs.
    WrongOwner { holder: String },
}

/// Frees offset `rel` of a block if `owner` holds it; when the block becomes empty, `empty_since` is set to `now`.
pub fn release_in_block(block: &mut DanmIpBlockSpec, rel: u32, owner: &str, now: &str) -> BlockRelease {
    match block.owners.get(&rel) {
        None => BlockRelease::NotAllocated,
        Some(holder) if holder != owner => BlockRelease::WrongOwner {
            holder: holder.clone(),
        },
        Some(_) => {
            block.owners.remove(&rel);
            if block.owners.is_empty() {
                block.empty_since = now.to_owned();
            }
            BlockRelease::Freed
        }
    }
}

/// Records `owner` at offset `rel` (the caller checked it is free); a dynamic allocation also moves `last`.
pub fn assign_in_block(block: &mut DanmIpBlockSpec, rel: u32, owner: &str, dynamic: bool) {
    block.owners.insert(rel, owner.to_owned());
    block.empty_since.clear();
    if dynamic {
        block.last = Some(rel);
    }
}

#[cfg(test)]
mod tests;
