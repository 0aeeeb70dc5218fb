use std::collections::BTreeMap;

use danm_api::{DanmIpBlockSpec, NetworkKind, NetworkSpec};

use super::*;

fn spec(cidr: &str, net6: &str) -> NetworkSpec {
    let mut s = NetworkSpec::default();
    s.options.cidr = cidr.into();
    s.options.net6 = net6.into();
    s
}

fn dn(name: &str) -> NetworkId {
    NetworkId::new(NetworkKind::DanmNet, "default", name)
}

#[test]
fn a_v4_network_splits_into_aligned_blocks_whose_names_and_ranges_follow_the_cidr() {
    let l = BlockLayout::new(&spec("10.0.0.0/24", ""), Family::V4, 26).unwrap();
    assert_eq!(l.block_size(), 64);
    assert_eq!(l.pool_blocks(), 0..=3);
    assert_eq!(l.block_cidr(1), "10.0.0.64/26");
    assert_eq!(l.block_name(&dn("net1"), 1), "dn.default.net1.v4.0a000040-26");
    assert_eq!(l.block_of_cidr("10.0.0.64/26"), Some(1));
    assert_eq!(l.block_of_cidr("10.0.0.65/26"), None);
    // Network and broadcast are never handed out: the first and last block lose one address each.
    assert_eq!(l.capacity(0), 63);
    assert_eq!(l.capacity(1), 64);
    assert_eq!(l.capacity(3), 63);
}

#[test]
fn a_block_larger_than_the_network_is_the_network() {
    let l = BlockLayout::new(&spec("10.0.0.0/28", ""), Family::V4, 26).unwrap();
    assert_eq!(l.block_size(), 16);
    assert_eq!(l.block_prefix(), 28);
    assert_eq!(l.pool_blocks(), 0..=0);
    assert_eq!(l.capacity(0), 14);
}

#[test]
fn dynamic_allocation_is_round_robin_after_the_last_address_and_skips_owners_and_gateways() {
    let mut s = spec("10.0.0.0/24", "");
    s.options.routes = Some(BTreeMap::from([(
        "10.1.0.0/16".to_owned(),
        "10.0.0.2".to_owned(),
    )]));
    let l = BlockLayout::new(&s, Family::V4, 26).unwrap();
    let mut block = DanmIpBlockSpec::default();
    let (rel, addr) = l.next_free(0, &block).unwrap();
    assert_eq!((rel, addr.as_str()), (1, "10.0.0.1/24"));
    assign_in_block(&mut block, rel, "ep-a", true);
    // .2 is the gateway.
    let (rel, addr) = l.next_free(0, &block).unwrap();
    assert_eq!((rel, addr.as_str()), (3, "10.0.0.3/24"));
    assign_in_block(&mut block, rel, "ep-b", true);
    // Freeing .1 does not make it the next one: round robin goes on after .3.
    assert_eq!(release_in_block(&mut block, 1, "ep-a", "t"), BlockRelease::Freed);
    assert_eq!(l.next_free(0, &block).unwrap().0, 4);
    // At the end of the block it wraps to the lowest free address.
    block.last = Some(63);
    assert_eq!(l.next_free(0, &block).unwrap().0, 1);
}

#[test]
fn pool_start_and_end_bound_dynamic_allocation_across_blocks() {
    let mut s = spec("10.0.0.0/24", "");
    s.options.allocation_pool.start = "10.0.0.100".into();
    s.options.allocation_pool.end = "10.0.0.130".into();
    let l = BlockLayout::new(&s, Family::V4, 26).unwrap();
    assert_eq!(l.pool_blocks(), 1..=2);
    assert_eq!(l.capacity(1), 28);
    assert_eq!(l.capacity(2), 3);
    let (rel, addr) = l.next_free(1, &DanmIpBlockSpec::default()).unwrap();
    assert_eq!((rel, addr.as_str()), (36, "10.0.0.100/24"));
    let mut full = DanmIpBlockSpec::default();
    for rel in 0..3 {
        assign_in_block(&mut full, rel, "x", true);
    }
    assert_eq!(l.next_free(2, &full), None);
}

#[test]
fn a_full_block_has_no_next_address() {
    let l = BlockLayout::new(&spec("10.0.0.0/30", ""), Family::V4, 26).unwrap();
    let mut block = DanmIpBlockSpec::default();
    for _ in 0..2 {
        let (rel, _) = l.next_free(0, &block).unwrap();
        assign_in_block(&mut block, rel, "x", true);
    }
    assert_eq!(l.next_free(0, &block), None);
    assert!(matches!(l.exhausted(), IpamError::Exhausted { .. }));
}

#[test]
fn static_requests_find_their_block_and_keep_the_bitmap_modes_errors() {
    let l = BlockLayout::new(&spec("10.0.0.0/24", ""), Family::V4, 26).unwrap();
    assert_eq!(
        l.locate_static("10.0.0.200".parse().unwrap()).unwrap(),
        (3, 8, "10.0.0.200/24".to_owned())
    );
    assert!(matches!(
        l.locate_static("10.0.1.1".parse().unwrap()),
        Err(IpamError::OutsideCidr { .. })
    ));
    assert!(matches!(
        l.locate_static("10.0.0.255".parse().unwrap()),
        Err(IpamError::InUse { .. })
    ));
    assert_eq!(l.locate("10.0.0.65/24"), Some((1, 1)));
    assert_eq!(l.locate("none"), None);
}

#[test]
fn v6_blocks_cover_the_pool_cidr_and_static_addresses_outside_it_are_refused() {
    // A /64 gets DANM's default pool (/105 without IPv4).
    let l = BlockLayout::new(&spec("", "2001:db8::/64"), Family::V6, 122).unwrap();
    assert_eq!(l.block_size(), 64);
    assert_eq!(l.pool_blocks(), 0..=(1 << 17) - 1);
    assert_eq!(l.block_cidr(1), "2001:db8::40/122");
    assert_eq!(
        l.block_name(&dn("n"), 1),
        "dn.default.n.v6.20010db8000000000000000000000040-122"
    );
    assert_eq!(
        l.next_free(0, &DanmIpBlockSpec::default()).unwrap().1,
        "2001:db8::1/64"
    );
    assert!(matches!(
        l.locate_static("2001:db8::ffff:ffff".parse().unwrap()),
        Err(IpamError::OutsideV6Pool { .. })
    ));
    assert!(matches!(
        l.locate_static("2001:db9::1".parse().unwrap()),
        Err(IpamError::OutsideCidr { .. })
    ));
    assert!(matches!(
        BlockLayout::new(&spec("10.0.0.0/24", ""), Family::V6, 122),
        Err(IpamError::L2Network { family: Family::V6 })
    ));
}

#[test]
fn only_the_owner_frees_an_address_and_an_emptied_block_records_when() {
    let mut block = DanmIpBlockSpec::default();
    assign_in_block(&mut block, 5, "ep-a", false);
    assert_eq!(
        release_in_block(&mut block, 5, "ep-b", "t1"),
        BlockRelease::WrongOwner {
            holder: "ep-a".into()
        }
    );
    assert_eq!(block.owners.len(), 1);
    assert_eq!(
        release_in_block(&mut block, 6, "ep-a", "t1"),
        BlockRelease::NotAllocated
    );
    assert_eq!(release_in_block(&mut block, 5, "ep-a", "t1"), BlockRelease::Freed);
    assert_eq!(block.empty_since, "t1");
    assign_in_block(&mut block, 7, "ep-c", false);
    assert!(block.empty_since.is_empty());
    assert_eq!(
        block.last, None,
        "a static assignment does not move the round robin"
    );
}

#[test]
fn the_mode_follows_the_annotation_then_the_bitmap_then_the_default() {
    let mut s = spec("10.0.0.0/24", "");
    assert_eq!(
        IpamMode::of_network(None, &s, IpamMode::Blocks).unwrap(),
        IpamMode::Blocks
    );
    s.options.alloc = "gAE=".into();
    assert_eq!(
        IpamMode::of_network(None, &s, IpamMode::Blocks).unwrap(),
        IpamMode::Bitmap
    );
    let ann = BTreeMap::from([(danm_api::annotations::IPAM_MODE.to_owned(), "blocks".to_owned())]);
    assert_eq!(
        IpamMode::of_network(Some(&ann), &s, IpamMode::Bitmap).unwrap(),
        IpamMode::Blocks
    );
    let bad = BTreeMap::from([(danm_api::annotations::IPAM_MODE.to_owned(), "bits".to_owned())]);
    assert!(IpamMode::of_network(Some(&bad), &s, IpamMode::Bitmap).is_err());
}

#[test]
fn names_stay_valid_object_names_and_labels() {
    let long = "a".repeat(250);
    let l = BlockLayout::new(&spec("10.0.0.0/24", ""), Family::V4, 26).unwrap();
    let name = l.block_name(&dn(&long), 0);
    assert!(name.len() <= 253, "{name}");
    assert!(name.starts_with("dn.") && name.ends_with(".v4.0a000000-26"));
    let cn = NetworkId::new(NetworkKind::ClusterNetwork, "ignored", "c1");
    assert_eq!(l.block_name(&cn, 0), "cn.c1.v4.0a000000-26");
    assert_eq!(cn.to_string(), "ClusterNetwork c1");
    assert_ne!(
        dn("x").label(),
        NetworkId::new(NetworkKind::TenantNetwork, "default", "x").label()
    );
    assert_eq!(node_label("worker-1"), "worker-1");
    assert!(node_label(&"n".repeat(80)).len() <= 63);
    assert!(node_label("-bad").starts_with('h'));
}

#[test]
fn a_whole_space_v6_pool_with_whole_space_blocks_does_not_overflow() {
    let mut s = spec("", "::/0");
    s.options.allocation_pool_v6.cidr = "::/0".into();
    let l = BlockLayout::new(&s, Family::V6, 0).unwrap();
    assert_eq!(l.block_size(), 1u128 << 127);
    assert_eq!(l.block_prefix(), 1);
    assert_eq!(l.pool_blocks(), 0..=0);
    let (rel, addr) = l.next_free(0, &DanmIpBlockSpec::default()).unwrap();
    assert_eq!((rel, addr.as_str()), (1, "::1/0"));
    assert_eq!(l.locate(&addr), Some((0, 1)));
}
