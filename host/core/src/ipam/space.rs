//! The address space one bitmap covers: index ↔ address arithmetic for both families.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::{Ipv4Network, Ipv6Network};

use super::{Bitmap, Family, IpamError, MAX_BITS};

/// A CIDR seen as a bitmap: bit `i` is `base + i`.
#[derive(Clone, Debug)]
pub(crate) struct Space {
    pub family: Family,
    pub base: u128,
    pub bits: usize,
    pub prefix: u8,
    pub cidr: String,
}

impl Space {
    pub fn v4(net: Ipv4Network) -> Result<Self, IpamError> {
        let bits = 1u64 << (32 - u32::from(net.prefix()));
        Self::checked(
            Family::V4,
            u128::from(u32::from(net.network())),
            bits,
            net.prefix(),
            net.to_string(),
        )
    }

    pub fn v6(net: Ipv6Network) -> Result<Self, IpamError> {
        let host_bits = 128 - u32::from(net.prefix());
        if host_bits > 23 {
            return Err(IpamError::TooManyAddresses {
                bits: if host_bits >= 64 { u64::MAX } else { 1 << host_bits },
            });
        }
        Self::checked(
            Family::V6,
            u128::from(net.network()),
            1 << host_bits,
            net.prefix(),
            net.to_string(),
        )
    }

    fn checked(family: Family, base: u128, bits: u64, prefix: u8, cidr: String) -> Result<Self, IpamError> {
        if bits > MAX_BITS {
            return Err(IpamError::TooManyAddresses { bits });
        }
        Ok(Space {
            family,
            base,
            bits: bits as usize,
            prefix,
            cidr,
        })
    }

    /// The bit index of `ip`, if it is of this family and inside the CIDR.
    pub fn index_of(&self, ip: IpAddr) -> Option<usize> {
        let n = match (self.family, ip) {
            (Family::V4, IpAddr::V4(a)) => u128::from(u32::from(a)),
            (Family::V6, IpAddr::V6(a)) => u128::from(a),
            _ => return None,
        };
        let off = n.checked_sub(self.base)?;
        (off < self.bits as u128).then_some(off as usize)
    }

    /// The address at bit `i` (callers keep `i < bits`).
    pub fn addr_at(&self, i: usize) -> IpAddr {
        let n = self.base + i as u128;
        match self.family {
            Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }

    /// Decodes `alloc` and checks that its size is exactly DANM's size for this CIDR.
    pub fn load(&self, alloc: &str) -> Result<Bitmap, IpamError> {
        let bm = Bitmap::decode(alloc)?;
        let needed = self.bits.div_ceil(8);
        if bm.as_bytes().len() != needed {
            return Err(IpamError::BitmapSizeMismatch {
                family: self.family,
                cidr: self.cidr.clone(),
                bytes: bm.as_bytes().len(),
                needed,
            });
        }
        Ok(bm)
    }

    /// A fresh bitmap: network (bit 0), last address (bit N−1), and every gateway inside the space (behaviour §5.1, B10).
    pub fn fresh<'a>(&self, gateways: impl IntoIterator<Item = &'a String>) -> Result<Bitmap, IpamError> {
        let mut bm = Bitmap::new(self.bits as u64)?;
        bm.set(0);
        bm.set(self.bits - 1);
        for i in self.gateway_indices(gateways) {
            bm.set(i);
        }
        Ok(bm)
    }

    /// Indices of the gateways (route values) that parse, are of this family and lie inside the space.
    pub fn gateway_indices<'a>(&self, gateways: impl IntoIterator<Item = &'a String>) -> Vec<usize> {
        gateways
            .into_iter()
            .filter_map(|gw| gw.parse::<IpAddr>().ok())
            .filter_map(|ip| self.index_of(ip))
            .collect()
    }

    /// Whether bit `i` is one that must never be handed out or freed: network, last address, a gateway.
    pub fn is_protected(&self, i: usize, gateways: &[usize]) -> bool {
        i == 0 || i == self.bits - 1 || gateways.contains(&i)
    }
}

/// Parses the address part of `ip` or `ip/len`.
pub(crate) fn parse_addr(text: &str) -> Option<IpAddr> {
    text.split('/').next().unwrap_or_default().parse().ok()
}
