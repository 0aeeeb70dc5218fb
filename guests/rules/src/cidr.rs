//! CIDR arithmetic with Go's `net.ParseCIDR`/`ParseIP` semantics, on `u128` for both families (the IPv6 pool budget
//! comes from `danm_core::ipam`, shared with the webhook's defaults).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A parsed `address/prefix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `a.b.c.d/n` or `x::y/n`; a prefix is required (Go's `ParseCIDR`).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
            return None;
        }
        let prefix: u8 = p.parse().ok()?;
        (prefix <= bits(addr)).then_some(Cidr { addr, prefix })
    }

    pub fn is_v4(&self) -> bool {
        self.addr.is_ipv4()
    }

    fn host_bits(&self) -> u32 {
        u32::from(bits(self.addr) - self.prefix)
    }

    /// The network address as an integer.
    pub fn base(&self) -> u128 {
        let h = self.host_bits();
        if h >= 128 {
            0
        } else {
            (to_int(self.addr) >> h) << h
        }
    }

    /// The last address (broadcast for IPv4) as an integer.
    pub fn last(&self) -> u128 {
        let h = self.host_bits();
        if h >= 128 {
            u128::MAX
        } else {
            self.base() | ((1u128 << h) - 1)
        }
    }

    /// Whether `ip` is of the same family and inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_v4() && (self.base()..=self.last()).contains(&to_int(ip))
    }

    /// The address at integer `n` in this network's family.
    pub fn addr_at(&self, n: u128) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(n as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(n))
        }
    }
}

fn bits(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

pub fn to_int(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// Go's `net.ParseIP` for our purposes.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_requires_a_prefix_within_the_family() {
        assert!(Cidr::parse("10.0.0.0/24").is_some());
        assert!(Cidr::parse("10.0.0.0").is_none());
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("2001:db8::/64").is_some());
        assert!(Cidr::parse("10.0.0.0/ 24").is_none());
    }

    #[test]
    fn base_last_and_membership() {
        let c = Cidr::parse("10.0.0.77/24").unwrap();
        assert_eq!(c.addr_at(c.base()), "10.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(c.addr_at(c.last()), "10.0.0.255".parse::<IpAddr>().unwrap());
        assert!(c.contains("10.0.0.1".parse().unwrap()));
        assert!(!c.contains("10.0.1.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
    }
}
