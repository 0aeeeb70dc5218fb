//! Property tests: allocation and release sequences never hand out an address twice, never hand out network,
//! broadcast or gateway addresses or addresses outside their range, and bitmaps round-trip through base64.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use danm_api::NetworkSpec;
use danm_core::ipam::{Bitmap, IpRequest, IpamError, apply_network_defaults, release, reserve, usage};
use proptest::prelude::*;

proptest! {
    #[test]
    fn bitmaps_round_trip_through_base64(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut bm = Bitmap::new(bytes.len() as u64 * 8).unwrap();
        for (i, b) in bytes.iter().enumerate() {
            for bit in 0..8 {
                if b & (0x80 >> bit) != 0 {
                    bm.set(i * 8 + bit);
                }
            }
        }
        prop_assert_eq!(bm.as_bytes(), &bytes[..]);
        let back = Bitmap::decode(&bm.encode()).unwrap();
        prop_assert_eq!(&back, &bm);
        prop_assert_eq!(back.encode(), bm.encode());
    }

    #[test]
    fn any_bit_pattern_of_any_length_survives_encoding(
        bits in 1u64..200,
        ops in proptest::collection::vec((any::<bool>(), 0usize..200), 0..100),
    ) {
        let mut bm = Bitmap::new(bits).unwrap();
        let mut model = BTreeSet::new();
        for (set, i) in ops {
            let i = i % bits as usize;
            if set { bm.set(i); model.insert(i); } else { bm.clear(i); model.remove(&i); }
        }
        let back = Bitmap::decode(&bm.encode()).unwrap();
        prop_assert_eq!(back.len() as u64, bits.div_ceil(8) * 8);
        for i in 0..back.len() {
            prop_assert_eq!(back.get(i), model.contains(&i));
        }
        let first_clear = (0..bits as usize).find(|i| !model.contains(i));
        prop_assert_eq!(bm.first_clear_in(0, bits as usize - 1), first_clear);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Dynamic,
    /// Static at this offset from the network base (may be outside the CIDR).
    Static(u32),
    /// Release the n-th currently held address.
    ReleaseHeld(usize),
    /// Release an arbitrary offset, held or not (network, broadcast and gateways included).
    ReleaseAny(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Dynamic),
        2 => (0u32..80).prop_map(Op::Static),
        2 => any::<usize>().prop_map(Op::ReleaseHeld),
        1 => (0u32..80).prop_map(Op::ReleaseAny),
    ]
}

/// A v4 network: prefix 26..=30 at 10.1.2.64-ish, up to two gateways, a pool inside the CIDR.
fn v4_network() -> impl Strategy<Value = (NetworkSpec, u32, BTreeSet<u32>, (u32, u32))> {
    (
        26u8..=30,
        proptest::collection::vec(0u32..64, 0..3),
        0u32..64,
        0u32..64,
    )
        .prop_map(|(prefix, gws, a, b)| {
            let size = 1u32 << (32 - prefix);
            let base = u32::from(Ipv4Addr::new(10, 1, 2, 64));
            let mut spec = NetworkSpec::default();
            spec.options.cidr = format!("{}/{prefix}", Ipv4Addr::from(base));
            let gws: BTreeSet<u32> = gws.into_iter().map(|g| g % size).collect();
            spec.options.routes = Some(
                gws.iter()
                    .enumerate()
                    .map(|(n, g)| (format!("172.16.{n}.0/24"), Ipv4Addr::from(base + g).to_string()))
                    .collect::<BTreeMap<_, _>>(),
            );
            let (lo, hi) = (1 + a % (size - 2), 1 + b % (size - 2));
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            spec.options.allocation_pool.start = Ipv4Addr::from(base + lo).to_string();
            spec.options.allocation_pool.end = Ipv4Addr::from(base + hi).to_string();
            if lo < hi {
                apply_network_defaults(&mut spec.options).unwrap();
            } else {
                // start == end is refused by validation but is a legal one-address pool for allocation.
                spec.options.allocation_pool.end = Ipv4Addr::from(base + hi + 1).to_string();
                apply_network_defaults(&mut spec.options).unwrap();
                spec.options.allocation_pool.end = Ipv4Addr::from(base + hi).to_string();
            }
            (spec, size, gws, (lo, hi))
        })
}

fn offset4(result: &str, base: u32) -> u32 {
    let ip: Ipv4Addr = result.split('/').next().unwrap().parse().unwrap();
    u32::from(ip) - base
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn v4_allocations_are_unique_and_avoid_reserved_addresses(
        (mut spec, size, gws, (lo, hi)) in v4_network(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let base = u32::from(Ipv4Addr::new(10, 1, 2, 64));
        let reserved = |o: u32| o == 0 || o == size - 1 || gws.contains(&o);
        let mut held: BTreeSet<u32> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Dynamic => match reserve(&spec, &IpRequest::Dynamic, &IpRequest::Absent) {
                    Ok(r) => {
                        let o = offset4(&r.ip4, base);
                        prop_assert!(!held.contains(&o), "{} handed out twice", r.ip4);
                        prop_assert!(!reserved(o), "{} is network/broadcast/gateway", r.ip4);
                        prop_assert!(o >= lo && o <= hi, "{} is outside the pool", r.ip4);
                        held.insert(o);
                        spec = r.spec;
                    }
                    Err(e) => {
                        prop_assert!(matches!(e, IpamError::Exhausted { .. }), "{e}");
                        prop_assert!((lo..=hi).all(|o| held.contains(&o) || reserved(o)), "pool not full but: {e}");
                    }
                },
                Op::Static(o) => {
                    let ip = Ipv4Addr::from(base + o);
                    match reserve(&spec, &IpRequest::Static(IpAddr::V4(ip)), &IpRequest::Absent) {
                        Ok(r) => {
                            prop_assert!(o < size, "{ip} is outside the CIDR");
                            prop_assert!(!held.contains(&o) && !reserved(o), "{ip} granted while taken");
                            held.insert(o);
                            spec = r.spec;
                        }
                        Err(IpamError::OutsideCidr { .. }) => prop_assert!(o >= size),
                        Err(IpamError::InUse { .. }) => prop_assert!(held.contains(&o) || reserved(o)),
                        Err(e) => prop_assert!(false, "unexpected error {e}"),
                    }
                }
                Op::ReleaseHeld(n) => {
                    if let Some(&o) = held.iter().nth(n % held.len().max(1)) {
                        let (new, changed) = release(&spec, &format!("{}/{}", Ipv4Addr::from(base + o), 26), "");
                        prop_assert!(changed);
                        held.remove(&o);
                        spec = new;
                    }
                }
                Op::ReleaseAny(o) => {
                    let (new, changed) = release(&spec, &Ipv4Addr::from(base + o).to_string(), "");
                    prop_assert_eq!(changed, held.remove(&o));
                    spec = new;
                }
            }
            // The bitmap agrees with the model.
            let bm = Bitmap::decode(&spec.options.alloc).unwrap();
            for o in 0..size {
                prop_assert_eq!(bm.get(o as usize), held.contains(&o) || reserved(o), "bit {}", o);
            }
            prop_assert_eq!(usage(&spec).unwrap().v4.unwrap().allocated_count, held.len() as u64);
        }
    }

    #[test]
    fn dual_stack_allocations_are_unique_in_both_families(
        ops in proptest::collection::vec((any::<bool>(), any::<bool>(), any::<usize>()), 1..150),
    ) {
        let mut spec = NetworkSpec::default();
        spec.options.cidr = "10.9.0.0/28".into();
        spec.options.net6 = "2001:db8::/124".into();
        spec.options.routes6 = Some([("2001:db9::/64".to_owned(), "2001:db8::3".to_owned())].into());
        apply_network_defaults(&mut spec.options).unwrap();
        let mut held: Vec<(String, String)> = Vec::new();
        let mut seen4: BTreeSet<String> = BTreeSet::new();
        let mut seen6: BTreeSet<String> = BTreeSet::new();
        for (alloc, dual, n) in ops {
            if alloc {
                let r6 = if dual { IpRequest::Dynamic } else { IpRequest::Absent };
                match reserve(&spec, &IpRequest::Dynamic, &r6) {
                    Ok(r) => {
                        prop_assert!(seen4.insert(r.ip4.clone()), "{} twice", r.ip4);
                        if dual {
                            prop_assert!(seen6.insert(r.ip6.clone()), "{} twice", r.ip6);
                            let ip: Ipv6Addr = r.ip6.split('/').next().unwrap().parse().unwrap();
                            let o = u128::from(ip) - u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
                            prop_assert!(o != 0 && o != 15 && o != 3, "{} is reserved", r.ip6);
                        }
                        held.push((r.ip4, r.ip6));
                        spec = r.spec;
                    }
                    Err(IpamError::Exhausted { .. }) => {
                        // A failed step returns no spec, so the stored one is still full and a retry fails too.
                        prop_assert!(reserve(&spec, &IpRequest::Dynamic, &r6).is_err());
                    }
                    Err(e) => prop_assert!(false, "unexpected error {e}"),
                }
            } else if !held.is_empty() {
                let (a4, a6) = held.remove(n % held.len());
                let (new, changed) = release(&spec, &a4, &a6);
                prop_assert!(changed);
                seen4.remove(&a4);
                seen6.remove(&a6);
                spec = new;
            }
        }
        let u = usage(&spec).unwrap();
        prop_assert_eq!(u.v4.unwrap().allocated_count, seen4.len() as u64);
        prop_assert_eq!(u.v6.unwrap().allocated_count, seen6.len() as u64);
    }
}
