//! IPAM rules of behaviour §5 and the [IPAM] items 54–72 of behaviour §11, on the pure core.

use std::collections::BTreeMap;
use std::net::IpAddr;

use danm_api::{NetworkOptions, NetworkSpec};
use danm_core::ipam::{
    Bitmap, Family, FreeOutcome, IpRequest, IpamError, MAX_BITS, ReservedReason, apply_network_defaults,
    default_v4_pool, default_v6_pool_cidr, free_address, fresh_v4_alloc, fresh_v6_alloc, max_v6_pool_prefix,
    parse_v4_cidr, parse_v6_cidr, paths, release, reserve, usage,
};

const FRESH_24: &str = "gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=";
const FRESH_24_GW1: &str = "wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=";
const FRESH_26: &str = "gAAAAAAAAAE=";

/// A network as the webhook leaves it after CREATE.
fn network(cidr: &str, net6: &str) -> NetworkSpec {
    let mut spec = NetworkSpec::default();
    spec.options.cidr = cidr.to_owned();
    spec.options.net6 = net6.to_owned();
    apply_network_defaults(&mut spec.options).unwrap();
    spec
}

fn routes(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(d, g)| (d.to_string(), g.to_string()))
            .collect(),
    )
}

fn req(s: &str) -> IpRequest {
    IpRequest::parse(s).unwrap()
}

fn dynamic4(spec: &NetworkSpec) -> (NetworkSpec, String) {
    let r = reserve(spec, &IpRequest::Dynamic, &IpRequest::Absent).unwrap();
    (r.spec, r.ip4)
}

// ---- bitmap encoding (behaviour §5.1) ----

#[test]
fn fresh_slash_24_bitmap_is_danms_vector() {
    let bm = fresh_v4_alloc(parse_v4_cidr("192.168.1.0/24").unwrap(), None).unwrap();
    assert_eq!(bm.encode(), FRESH_24);
}

#[test]
fn slash_24_with_gateway_dot_1_is_danms_vector() {
    let r = routes(&[("10.0.0.0/8", "192.168.1.1")]);
    let bm = fresh_v4_alloc(parse_v4_cidr("192.168.1.0/24").unwrap(), r.as_ref()).unwrap();
    assert_eq!(bm.encode(), FRESH_24_GW1);
}

#[test]
fn fresh_small_networks_are_danms_vectors() {
    let enc = |c: &str| fresh_v4_alloc(parse_v4_cidr(c).unwrap(), None).unwrap().encode();
    assert_eq!(enc("192.168.1.64/26"), FRESH_26);
    assert_eq!(enc("10.0.0.0/30"), "kA==");
    assert_eq!(enc("10.0.0.7/32"), "gA==");
}

#[test]
fn bitmap_bits_are_msb_first_and_decoded_length_is_bytes_times_eight() {
    let mut bm = Bitmap::new(4).unwrap();
    assert_eq!(bm.len(), 4);
    assert!(bm.set(0));
    assert!(bm.set(3));
    assert!(!bm.set(3), "setting a set bit reports it was not clear");
    assert_eq!(bm.as_bytes(), &[0x90]);
    let back = Bitmap::decode(&bm.encode()).unwrap();
    assert_eq!(back.len(), 8);
    assert!(back.get(0) && back.get(3) && !back.get(1) && !back.get(7));
    assert!(!back.get(8), "bits past the end read as clear");
}

#[test]
fn bitmap_clear_and_first_clear_skip_full_bytes() {
    let mut bm = Bitmap::new(64).unwrap();
    for i in 0..40 {
        bm.set(i);
    }
    assert_eq!(bm.first_clear_in(0, 63), Some(40));
    assert_eq!(bm.first_clear_in(3, 20), None);
    assert!(bm.clear(17));
    assert!(!bm.clear(17));
    assert_eq!(bm.first_clear_in(3, 63), Some(17));
    assert_eq!(bm.count_set_in(0, 63), 39);
    assert_eq!(
        bm.first_clear_in(70, 80),
        None,
        "a range past the end finds nothing"
    );
}

#[test]
fn bitmap_rejects_bad_base64_and_more_than_two_to_the_23_bits() {
    assert!(matches!(
        Bitmap::decode("not base64!"),
        Err(IpamError::CorruptBitmap { .. })
    ));
    assert!(matches!(
        Bitmap::new(MAX_BITS + 1),
        Err(IpamError::TooManyAddresses { .. })
    ));
    assert_eq!(Bitmap::new(MAX_BITS).unwrap().as_bytes().len(), 1 << 20);
}

#[test]
fn gateway_one_past_the_broadcast_is_not_marked() {
    // DANM checked `index <= len` (B10): index == N would write past the end.
    let r = routes(&[("10.0.0.0/8", "192.168.2.0"), ("10.1.0.0/16", "192.168.0.255")]);
    let bm = fresh_v4_alloc(parse_v4_cidr("192.168.1.0/24").unwrap(), r.as_ref()).unwrap();
    assert_eq!(bm.encode(), FRESH_24);
}

// ---- pool defaults (behaviour §5.2, §5.6; checklist 74) ----

#[test]
fn defaults_of_a_slash_26_are_pool_65_to_126_and_the_fresh_alloc() {
    let mut o = NetworkOptions {
        cidr: "192.168.1.64/26".into(),
        ..Default::default()
    };
    let changed = apply_network_defaults(&mut o).unwrap();
    assert_eq!(o.allocation_pool.start, "192.168.1.65");
    assert_eq!(o.allocation_pool.end, "192.168.1.126");
    assert_eq!(o.alloc, FRESH_26);
    assert_eq!(changed, vec![paths::ALLOCATION_POOL, paths::ALLOC]);
    assert_eq!(
        apply_network_defaults(&mut o).unwrap(),
        Vec::<&str>::new(),
        "a second run changes nothing"
    );
}

#[test]
fn defaults_fill_only_empty_pool_bounds() {
    let mut o = NetworkOptions {
        cidr: "192.168.1.64/26".into(),
        ..Default::default()
    };
    o.allocation_pool.start = "192.168.1.70".into();
    apply_network_defaults(&mut o).unwrap();
    assert_eq!(o.allocation_pool.start, "192.168.1.70");
    assert_eq!(o.allocation_pool.end, "192.168.1.126");
}

#[test]
fn default_v4_pool_is_network_plus_one_to_broadcast_minus_one() {
    let (s, e) = default_v4_pool(parse_v4_cidr("10.20.0.0/16").unwrap());
    assert_eq!(
        (s.to_string(), e.to_string()),
        ("10.20.0.1".into(), "10.20.255.254".into())
    );
}

#[test]
fn slash_8_is_rejected_and_slash_9_accepted() {
    let mut o = NetworkOptions {
        cidr: "10.0.0.0/8".into(),
        ..Default::default()
    };
    let err = apply_network_defaults(&mut o).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Netmask of the IPv4 CIDR is bigger than the maximum allowed /9"
    );
    let mut o = NetworkOptions {
        cidr: "10.0.0.0/9".into(),
        ..Default::default()
    };
    apply_network_defaults(&mut o).unwrap();
    assert_eq!(Bitmap::decode(&o.alloc).unwrap().len() as u64, MAX_BITS);
}

#[test]
fn invalid_or_ipv6_cidr_is_rejected() {
    let mut o = NetworkOptions {
        cidr: "10.0.0.0".into(),
        ..Default::default()
    };
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err().to_string(),
        "Invalid CIDR: 10.0.0.0"
    );
    let mut o = NetworkOptions {
        cidr: "2001:db8::/64".into(),
        ..Default::default()
    };
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err().to_string(),
        "Options.CIDR is not a valid V4 subnet!"
    );
}

#[test]
fn pool_rules_follow_the_webhook() {
    let mut o = NetworkOptions::default();
    o.allocation_pool.start = "10.0.0.5".into();
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err(),
        IpamError::PoolWithoutCidr
    );

    let mut o = NetworkOptions {
        cidr: "10.0.0.0/24".into(),
        ..Default::default()
    };
    o.allocation_pool.end = "10.0.1.5".into();
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err().to_string(),
        "Allocation pool is outside of defined CIDR!"
    );

    let mut o = NetworkOptions {
        cidr: "10.0.0.0/24".into(),
        ..Default::default()
    };
    o.allocation_pool.start = "10.0.0.9".into();
    o.allocation_pool.end = "10.0.0.9".into();
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err().to_string(),
        "Allocation pool start:10.0.0.9 is bigger than or equal to allocation pool end:10.0.0.9"
    );
    // A /31 has no room for a pool.
    let mut o = NetworkOptions {
        cidr: "10.0.0.0/31".into(),
        ..Default::default()
    };
    assert!(apply_network_defaults(&mut o).is_err());
}

#[test]
fn a_stale_alloc_after_a_cidr_change_is_an_error() {
    let mut o = NetworkOptions {
        cidr: "10.0.0.0/24".into(),
        alloc: FRESH_26.into(),
        ..Default::default()
    };
    let err = apply_network_defaults(&mut o).unwrap_err();
    assert!(
        matches!(
            err,
            IpamError::BitmapSizeMismatch {
                family: Family::V4,
                bytes: 8,
                needed: 32,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn max_v6_pool_prefix_subtracts_the_v4_pool() {
    assert_eq!(max_v6_pool_prefix(None), 105);
    assert_eq!(max_v6_pool_prefix(Some(24)), 106);
    assert_eq!(max_v6_pool_prefix(Some(32)), 106);
    assert_eq!(max_v6_pool_prefix(Some(10)), 107, "2^22 is not below 2^23 - 2^22");
    assert_eq!(
        max_v6_pool_prefix(Some(9)),
        128,
        "a /9 leaves no room: /128 which validation rejects"
    );
}

#[test]
fn default_v6_pool_cidr_uses_the_net6_base_and_the_larger_prefix() {
    let net6 = parse_v6_cidr("2a00:8a00:a000:1193::/64").unwrap();
    assert_eq!(
        default_v6_pool_cidr(net6, Some(26)).to_string(),
        "2a00:8a00:a000:1193::/106"
    );
    assert_eq!(
        default_v6_pool_cidr(net6, None).to_string(),
        "2a00:8a00:a000:1193::/105"
    );
    let small = parse_v6_cidr("2001:db8::/120").unwrap();
    assert_eq!(
        default_v6_pool_cidr(small, Some(24)).to_string(),
        "2001:db8::/120"
    );
}

#[test]
fn v6_defaults_fill_pool_cidr_range_and_alloc6() {
    let mut o = NetworkOptions {
        net6: "2001:db8::/120".into(),
        ..Default::default()
    };
    let changed = apply_network_defaults(&mut o).unwrap();
    assert_eq!(changed, vec![paths::ALLOCATION_POOL_V6, paths::ALLOC6]);
    let p = &o.allocation_pool_v6;
    assert_eq!(
        (p.cidr.as_str(), p.start.as_str(), p.end.as_str()),
        ("2001:db8::/120", "2001:db8::1", "2001:db8::fe")
    );
    assert_eq!(
        o.alloc6,
        fresh_v4_alloc(parse_v4_cidr("10.0.0.0/24").unwrap(), None)
            .unwrap()
            .encode()
    );
}

#[test]
fn v6_pool_rules_follow_the_webhook() {
    let mut o = NetworkOptions::default();
    o.allocation_pool_v6.cidr = "2001:db8::/120".into();
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err(),
        IpamError::Pool6WithoutNet6
    );

    let mut o = NetworkOptions {
        net6: "10.0.0.0/24".into(),
        ..Default::default()
    };
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err().to_string(),
        "spec.Options.Net6 is not a valid V6 subnet!"
    );

    let too_big = |cidr: &str, pool: &str| {
        let mut o = NetworkOptions {
            cidr: cidr.into(),
            net6: "2001:db8::/64".into(),
            ..Default::default()
        };
        o.allocation_pool_v6.cidr = pool.into();
        apply_network_defaults(&mut o).unwrap_err().to_string()
    };
    let msg = "The defined IPv6 allocation pool exceeds the maximum - 8M-size(IPv4 allocation pool) - storage capacity!";
    assert_eq!(too_big("", "2001:db8::/104"), msg);
    assert_eq!(too_big("10.0.0.0/24", "2001:db8::/105"), msg);
    assert_eq!(too_big("", "2001:db8::1/128"), msg);

    let mut o = NetworkOptions {
        net6: "2001:db8::/64".into(),
        ..Default::default()
    };
    o.allocation_pool_v6.cidr = "2001:db9::/120".into();
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err().to_string(),
        "IPv6 allocation pool is outside of the defined IPv6 subnet!"
    );

    let mut o = NetworkOptions {
        net6: "2001:db8::/64".into(),
        ..Default::default()
    };
    o.allocation_pool_v6.cidr = "2001:db8::/120".into();
    o.allocation_pool_v6.start = "2001:db8::1:1".into();
    assert!(matches!(
        apply_network_defaults(&mut o),
        Err(IpamError::Pool6OutsideNet6 { .. })
    ));

    let mut o = NetworkOptions {
        net6: "2001:db8::/64".into(),
        ..Default::default()
    };
    o.allocation_pool_v6.cidr = "10.0.0.0/24".into();
    assert_eq!(
        apply_network_defaults(&mut o).unwrap_err().to_string(),
        "spec.Options.Allocation_Pool_V6.Cidr is not a valid V6 subnet!"
    );
}

#[test]
fn v6_gateways_are_indexed_from_the_pool_base() {
    // B10: DANM mapped v6 gateways relative to the wrong base; a gateway below the pool base wrapped around.
    let pool = parse_v6_cidr("2001:db8::100/120").unwrap();
    let r = routes(&[
        ("2001:db9::/64", "2001:db8::105"),
        ("2001:dba::/64", "2001:db8::1"),
    ]);
    let bm = fresh_v6_alloc(pool, r.as_ref()).unwrap();
    let set: Vec<usize> = (0..256).filter(|&i| bm.get(i)).collect();
    assert_eq!(set, vec![0, 5, 255]);
}

// ---- allocation (behaviour §5.3; checklist 54–69) ----

#[test]
fn first_dynamic_ipv4_in_a_slash_26_is_dot_65() {
    let r = reserve(
        &network("192.168.1.64/26", ""),
        &IpRequest::Dynamic,
        &IpRequest::Absent,
    )
    .unwrap();
    assert_eq!(r.ip4, "192.168.1.65/26");
    assert_eq!(r.ip6, "");
    assert!(r.changed);
    assert_eq!(
        r.spec.options.allocation_pool.last_ip, "192.168.1.65/26",
        "lastIp is written as DANM wrote it"
    );
}

#[test]
fn pool_70_to_80_with_last_ip_80_starts_at_70() {
    let mut spec = network("192.168.1.64/26", "");
    spec.options.allocation_pool.start = "192.168.1.70".into();
    spec.options.allocation_pool.end = "192.168.1.80".into();
    spec.options.allocation_pool.last_ip = "192.168.1.80".into();
    assert_eq!(dynamic4(&spec).1, "192.168.1.70/26");
}

#[test]
fn lowest_free_pool_address_wins_regardless_of_last_ip() {
    let spec = network("192.168.1.64/26", "");
    let (spec, a) = dynamic4(&spec);
    let (spec, b) = dynamic4(&spec);
    let (spec, c) = dynamic4(&spec);
    assert_eq!(
        (a.as_str(), b.as_str(), c.as_str()),
        ("192.168.1.65/26", "192.168.1.66/26", "192.168.1.67/26")
    );
    let (mut spec, changed) = release(&spec, "192.168.1.65/26", "");
    assert!(changed);
    // B2: even a parseable lastIp set by hand does not move the search start.
    spec.options.allocation_pool.last_ip = "192.168.1.100".into();
    assert_eq!(dynamic4(&spec).1, "192.168.1.65/26");
}

#[test]
fn a_full_slash_30_reports_all_addresses_reserved() {
    let spec = network("10.0.0.0/30", "");
    let (spec, a) = dynamic4(&spec);
    let (spec, b) = dynamic4(&spec);
    assert_eq!((a.as_str(), b.as_str()), ("10.0.0.1/30", "10.0.0.2/30"));
    let err = reserve(&spec, &IpRequest::Dynamic, &IpRequest::Absent).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("IP address cannot be dynamically allocated, all addresses are reserved!"),
        "{err}"
    );
    assert!(matches!(
        err,
        IpamError::Exhausted {
            family: Family::V4,
            ..
        }
    ));
}

#[test]
fn dynamic_or_static_without_cidr_is_an_l2_network_error() {
    let spec = NetworkSpec::default();
    for r4 in [IpRequest::Dynamic, req("10.0.0.5")] {
        let err = reserve(&spec, &r4, &IpRequest::Absent).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("IP address cannot be allocated for an L2 network!"),
            "{err}"
        );
    }
    let err = reserve(&spec, &IpRequest::Absent, &IpRequest::Dynamic).unwrap_err();
    assert_eq!(err, IpamError::L2Network { family: Family::V6 });
}

#[test]
fn none_and_absent_reserve_nothing_and_need_no_write() {
    let spec = network("192.168.1.64/26", "2001:db8::/120");
    let r = reserve(&spec, &req("none"), &req("")).unwrap();
    assert_eq!((r.ip4.as_str(), r.ip6.as_str(), r.changed), ("none", "", false));
    assert_eq!(r.spec, spec);
    // Also on an L2 network.
    let r = reserve(&NetworkSpec::default(), &req("none"), &req("none")).unwrap();
    assert_eq!(
        (r.ip4.as_str(), r.ip6.as_str(), r.changed),
        ("none", "none", false)
    );
}

#[test]
fn static_126_is_granted_and_network_or_broadcast_are_in_use() {
    let spec = network("192.168.1.64/26", "");
    let r = reserve(&spec, &req("192.168.1.126"), &IpRequest::Absent).unwrap();
    assert_eq!(r.ip4, "192.168.1.126/26");
    assert_eq!(
        r.spec.options.allocation_pool.last_ip, "",
        "static allocations leave lastIp alone"
    );
    for ip in ["192.168.1.127", "192.168.1.64"] {
        let err = reserve(&spec, &req(ip), &IpRequest::Absent).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("static IP allocation failed, requested IP address:{ip} is already in use")
        );
    }
}

#[test]
fn static_outside_the_cidr_is_rejected() {
    let spec = network("192.168.1.64/26", "");
    let err = reserve(&spec, &req("192.168.1.200"), &IpRequest::Absent).unwrap_err();
    assert_eq!(
        err.to_string(),
        "static IP allocation failed, requested static IP:192.168.1.200 is outside the network's CIDR:192.168.1.64/26"
    );
    let err = reserve(&spec, &req("2001:db8::1"), &IpRequest::Absent).unwrap_err();
    assert!(
        matches!(err, IpamError::OutsideCidr { .. }),
        "an IPv6 address in ip is outside the IPv4 CIDR"
    );
}

#[test]
fn static_with_a_slash_32_suffix_gets_the_network_prefix() {
    let r = reserve(
        &network("192.168.1.64/26", ""),
        &req("192.168.1.100/32"),
        &IpRequest::Absent,
    )
    .unwrap();
    assert_eq!(r.ip4, "192.168.1.100/26");
}

#[test]
fn the_same_static_ip_twice_is_in_use() {
    let spec = network("192.168.1.64/26", "");
    let first = reserve(&spec, &req("192.168.1.100"), &IpRequest::Absent).unwrap();
    let err = reserve(&first.spec, &req("192.168.1.100"), &IpRequest::Absent).unwrap_err();
    assert_eq!(
        err,
        IpamError::InUse {
            requested: "192.168.1.100".into()
        }
    );
}

#[test]
fn static_outside_the_pool_but_inside_the_cidr_is_reserved() {
    let mut spec = network("192.168.1.64/26", "");
    spec.options.allocation_pool.start = "192.168.1.70".into();
    spec.options.allocation_pool.end = "192.168.1.71".into();
    let r = reserve(&spec, &req("192.168.1.66"), &IpRequest::Absent).unwrap();
    assert_eq!(r.ip4, "192.168.1.66/26");
    assert!(Bitmap::decode(&r.spec.options.alloc).unwrap().get(2));
    let (spec, a) = dynamic4(&r.spec);
    let (spec, b) = dynamic4(&spec);
    assert_eq!((a.as_str(), b.as_str()), ("192.168.1.70/26", "192.168.1.71/26"));
    assert!(
        reserve(&spec, &IpRequest::Dynamic, &IpRequest::Absent).is_err(),
        "the pool bounds dynamic allocation"
    );
}

#[test]
fn net6_slash_64_with_a_slash_26_gets_a_slash_106_pool_and_first_address_1() {
    let spec = network("192.168.1.64/26", "2a00:8a00:a000:1193::/64");
    assert_eq!(spec.options.allocation_pool_v6.cidr, "2a00:8a00:a000:1193::/106");
    let r = reserve(&spec, &IpRequest::Absent, &IpRequest::Dynamic).unwrap();
    assert_eq!(
        r.ip6, "2a00:8a00:a000:1193::1/64",
        "the v6 result carries net6's prefix, not the pool's"
    );
    assert_eq!(r.spec.options.allocation_pool_v6.last_ip, r.ip6);
}

#[test]
fn net6_slash_120_without_cidr_gets_a_slash_120_pool() {
    let spec = network("", "2001:db8::/120");
    assert_eq!(spec.options.allocation_pool_v6.cidr, "2001:db8::/120");
    let r = reserve(&spec, &IpRequest::Absent, &IpRequest::Dynamic).unwrap();
    assert_eq!(r.ip6, "2001:db8::1/120");
}

#[test]
fn v6_defaults_are_applied_on_the_fly_when_the_pool_is_missing() {
    let mut spec = NetworkSpec::default();
    spec.options.net6 = "2001:db8::/120".into();
    spec.options.cidr = "10.0.0.0/24".into();
    let r = reserve(&spec, &IpRequest::Absent, &IpRequest::Dynamic).unwrap();
    assert_eq!(r.ip6, "2001:db8::1/120");
    assert_eq!(r.spec.options.allocation_pool_v6.cidr, "2001:db8::/120");
    assert!(!r.spec.options.alloc6.is_empty());
    assert!(r.changed);
}

#[test]
fn a_dual_stack_request_gets_both_addresses_in_one_new_spec() {
    let spec = network("192.168.1.64/26", "2001:db8::/120");
    let r = reserve(&spec, &IpRequest::Dynamic, &IpRequest::Dynamic).unwrap();
    assert_eq!(
        (r.ip4.as_str(), r.ip6.as_str()),
        ("192.168.1.65/26", "2001:db8::1/120")
    );
    assert!(r.changed);
    let u = usage(&r.spec).unwrap();
    assert_eq!(u.v4.unwrap().allocated_count, 1);
    assert_eq!(u.v6.unwrap().allocated_count, 1);
}

#[test]
fn a_failing_v6_part_keeps_the_v4_allocation_out() {
    let spec = network("192.168.1.64/26", "2001:db8::/120");
    let err = reserve(&spec, &IpRequest::Dynamic, &req("2001:db9::1")).unwrap_err();
    assert!(matches!(err, IpamError::OutsideCidr { .. }));
    // Nothing was returned to write, so a retry still gets the first address.
    assert_eq!(dynamic4(&spec).1, "192.168.1.65/26");
}

#[test]
fn a_conflicting_writer_redoes_the_allocation_on_the_fresh_copy() {
    // Two CNI calls read the same object; the first write wins, the second gets a 409 and recomputes.
    let stored = network("192.168.1.64/26", "");
    let a = reserve(&stored, &IpRequest::Dynamic, &IpRequest::Absent).unwrap();
    let b_stale = reserve(&stored, &IpRequest::Dynamic, &IpRequest::Absent).unwrap();
    assert_eq!(
        a.ip4, b_stale.ip4,
        "both computed the same address from the same version"
    );
    let stored = a.spec; // A's conditional write succeeds; B's fails with a conflict.
    let b = reserve(&stored, &IpRequest::Dynamic, &IpRequest::Absent).unwrap();
    assert_eq!(
        (a.ip4.as_str(), b.ip4.as_str()),
        ("192.168.1.65/26", "192.168.1.66/26")
    );
}

#[test]
fn free_clears_the_bit_and_freeing_outside_the_cidr_needs_no_write() {
    let spec = network("192.168.1.64/26", "");
    let (spec, ip) = dynamic4(&spec);
    let (freed, changed) = release(&spec, &ip, "");
    assert!(changed);
    assert!(!Bitmap::decode(&freed.options.alloc).unwrap().get(1));
    assert_eq!(freed.options.alloc, FRESH_26);
    for addr in ["10.0.0.1/24", "", "none", "not-an-ip", "192.168.1.70/26"] {
        let (same, changed) = release(&spec, addr, addr);
        assert!(!changed, "{addr:?} needs no write");
        assert_eq!(same, spec);
    }
}

#[test]
fn route_gateways_are_never_allocated() {
    let mut spec = NetworkSpec::default();
    spec.options.cidr = "192.168.1.64/26".into();
    spec.options.routes = routes(&[("10.0.0.0/8", "192.168.1.65")]);
    apply_network_defaults(&mut spec.options).unwrap();
    assert_eq!(dynamic4(&spec).1, "192.168.1.66/26");
    assert!(matches!(
        reserve(&spec, &req("192.168.1.65"), &IpRequest::Absent),
        Err(IpamError::InUse { .. })
    ));
    // A gateway added after the bitmap was made is not in the bitmap, and is still never handed out or freed.
    spec.options.routes = routes(&[("10.0.0.0/8", "192.168.1.65"), ("10.1.0.0/16", "192.168.1.66")]);
    assert_eq!(dynamic4(&spec).1, "192.168.1.67/26");
    assert!(matches!(
        reserve(&spec, &req("192.168.1.66"), &IpRequest::Absent),
        Err(IpamError::InUse { .. })
    ));
    assert_eq!(
        free_address(&mut spec.options, "192.168.1.65"),
        FreeOutcome::Protected
    );
}

#[test]
fn the_fresh_slash_24_alloc_is_what_the_defaults_write() {
    assert_eq!(network("10.10.10.0/24", "").options.alloc, FRESH_24);
}

// ---- IPv6 statics (B10) ----

#[test]
fn a_static_v6_outside_the_pool_cidr_is_rejected_instead_of_untracked() {
    let spec = network("192.168.1.64/26", "2a00:8a00:a000:1193::/64");
    let err = reserve(&spec, &IpRequest::Absent, &req("2a00:8a00:a000:1193:0:1:0:5")).unwrap_err();
    assert_eq!(
        err,
        IpamError::OutsideV6Pool {
            requested: "2a00:8a00:a000:1193:0:1:0:5".into(),
            pool_cidr: "2a00:8a00:a000:1193::/106".into()
        }
    );
    assert!(
        err.to_string()
            .contains("outside the IPv6 allocation pool's CIDR:2a00:8a00:a000:1193::/106")
    );
}

#[test]
fn a_static_v6_inside_the_pool_is_tracked() {
    let spec = network("", "2001:db8::/120");
    let r = reserve(&spec, &IpRequest::Absent, &req("2001:db8::50/128")).unwrap();
    assert_eq!(r.ip6, "2001:db8::50/120");
    let err = reserve(&r.spec, &IpRequest::Absent, &req("2001:db8::50")).unwrap_err();
    assert!(matches!(err, IpamError::InUse { .. }));
    let (freed, changed) = release(&r.spec, "", &r.ip6);
    assert!(changed);
    assert_eq!(freed.options.alloc6, spec.options.alloc6);
}

// ---- requests, errors, release details ----

#[test]
fn requests_parse_keywords_and_addresses() {
    assert_eq!(req(""), IpRequest::Absent);
    assert_eq!(req("none"), IpRequest::None);
    assert_eq!(req("dynamic"), IpRequest::Dynamic);
    assert_eq!(req("10.0.0.1"), IpRequest::Static("10.0.0.1".parse().unwrap()));
    assert_eq!(req("10.0.0.1/24"), IpRequest::Static("10.0.0.1".parse().unwrap()));
    assert_eq!(
        req("2001:db8::1/64"),
        IpRequest::Static("2001:db8::1".parse::<IpAddr>().unwrap())
    );
    for bad in [
        "Dynamic",
        "10.0.0.256",
        "abc",
        "10.0.0.1/",
        "10.0.0.1/x",
        " 10.0.0.1",
    ] {
        let err = IpRequest::parse(bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("static IP allocation failed, requested static IP:{bad} is not a valid IP")
        );
    }
    assert_eq!(IpRequest::Dynamic.to_string(), "dynamic");
    assert!(IpRequest::Dynamic.needs_ipam() && !IpRequest::None.needs_ipam());
}

#[test]
fn errors_name_the_network_when_wrapped() {
    let err = reserve(&NetworkSpec::default(), &IpRequest::Dynamic, &IpRequest::Absent)
        .unwrap_err()
        .for_network("ext");
    assert!(
        err.to_string()
            .starts_with("failed to allocate IP address for network:ext with error:IP address cannot")
    );
    assert_eq!(err.root(), &IpamError::L2Network { family: Family::V4 });
    assert_eq!(
        err.clone().for_network("other"),
        err,
        "wrapping twice keeps the first name"
    );
}

#[test]
fn reserve_refuses_a_bitmap_that_does_not_fit_the_cidr() {
    let mut spec = network("192.168.1.64/26", "");
    spec.options.cidr = "192.168.1.0/24".into();
    let err = reserve(&spec, &IpRequest::Dynamic, &IpRequest::Absent).unwrap_err();
    assert!(matches!(err, IpamError::BitmapSizeMismatch { .. }), "{err}");
}

#[test]
fn free_reports_what_happened_to_each_address() {
    let spec = network("192.168.1.64/26", "2001:db8::/120");
    let r = reserve(&spec, &IpRequest::Dynamic, &IpRequest::Dynamic).unwrap();
    let mut o = r.spec.options.clone();
    assert_eq!(free_address(&mut o, "192.168.1.65/26"), FreeOutcome::Freed);
    assert_eq!(free_address(&mut o, "192.168.1.65"), FreeOutcome::NotAllocated);
    assert_eq!(free_address(&mut o, "192.168.1.64"), FreeOutcome::Protected);
    assert_eq!(free_address(&mut o, "192.168.1.127"), FreeOutcome::Protected);
    assert_eq!(free_address(&mut o, "192.168.2.1"), FreeOutcome::OutsideRange);
    assert_eq!(free_address(&mut o, "2001:db8::1"), FreeOutcome::Freed);
    assert_eq!(free_address(&mut o, "2001:db8::1:1"), FreeOutcome::OutsideRange);
    assert_eq!(free_address(&mut o, "none"), FreeOutcome::Skipped);
    assert_eq!(free_address(&mut o, "x"), FreeOutcome::Invalid);
    assert_eq!(
        free_address(&mut NetworkOptions::default(), "10.0.0.1"),
        FreeOutcome::NoIpam
    );
    assert_eq!(o, spec.options.clone().tap_last_ip(&r.spec.options));
}

trait TapLastIp {
    fn tap_last_ip(self, from: &NetworkOptions) -> Self;
}
impl TapLastIp for NetworkOptions {
    /// Freeing does not touch lastIp; copy it so the comparison is about the bitmaps.
    fn tap_last_ip(mut self, from: &NetworkOptions) -> Self {
        self.allocation_pool.last_ip = from.allocation_pool.last_ip.clone();
        self.allocation_pool_v6.last_ip = from.allocation_pool_v6.last_ip.clone();
        self
    }
}

#[test]
fn usage_counts_pool_addresses_and_lists_allocations_as_ranges() {
    let mut spec = NetworkSpec::default();
    spec.options.cidr = "192.168.1.64/26".into();
    spec.options.routes = routes(&[("10.0.0.0/8", "192.168.1.65")]);
    apply_network_defaults(&mut spec.options).unwrap();
    let (spec, _) = dynamic4(&spec); // .66
    let (spec, _) = dynamic4(&spec); // .67
    let spec = reserve(&spec, &req("192.168.1.100"), &IpRequest::Absent)
        .unwrap()
        .spec;
    let u = usage(&spec).unwrap();
    assert!(u.v6.is_none());
    let v4 = u.v4.unwrap();
    assert_eq!(v4.pool_size, 62);
    assert_eq!(v4.pool_free, 62 - 1 - 3, "gateway and three allocations");
    assert_eq!(v4.allocated_count, 3);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        v4.allocated,
        vec![
            (ip("192.168.1.66"), ip("192.168.1.67")),
            (ip("192.168.1.100"), ip("192.168.1.100"))
        ]
    );
    let reasons: Vec<_> = v4
        .reserved
        .iter()
        .map(|r| (r.addr.to_string(), r.reason))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("192.168.1.64".into(), ReservedReason::Network),
            ("192.168.1.127".into(), ReservedReason::Broadcast),
            ("192.168.1.65".into(), ReservedReason::Gateway),
        ]
    );
}
