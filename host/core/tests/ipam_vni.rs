//! TenantConfig VNI bitmaps and vniRange parsing (behaviour §1.4, §8.4, §8.6; checklist 89, 95, 98, 99).

use danm_api::{InterfaceProfile, NetworkSpec, TenantConfig};
use danm_core::ipam::Bitmap;
use danm_core::vni::{
    VNI_BYTES, VniError, VniRelease, fresh_vni_alloc, init_profile_allocs, parse_vni_range,
    release_network_vni, release_vni, reserve_for_profile, reserve_vni,
};

fn profile(name: &str, vni_type: &str, range: &str) -> InterfaceProfile {
    InterfaceProfile {
        name: name.into(),
        vni_type: vni_type.into(),
        vni_range: range.into(),
        alloc: String::new(),
    }
}

fn tenant_config(profiles: Vec<InterfaceProfile>) -> TenantConfig {
    let mut tc = TenantConfig::new("tconf");
    tc.host_devices = profiles;
    init_profile_allocs(&mut tc);
    tc
}

#[test]
fn a_fresh_vni_map_is_626_bytes_with_only_vni_0_set() {
    let text = fresh_vni_alloc();
    assert_eq!(text.len(), 836);
    assert!(text.starts_with("gAAAAAAAAAAA"));
    let bm = Bitmap::decode(&text).unwrap();
    assert_eq!(bm.as_bytes().len(), VNI_BYTES);
    assert_eq!(VNI_BYTES, 626);
    assert_eq!(bm.count_set_in(0, bm.len() - 1), 1);
    assert!(bm.get(0));
}

#[test]
fn vni_ranges_parse_in_cpuset_syntax_in_ascending_order() {
    let r = parse_vni_range("2000-2500,2601,2650-2700").unwrap();
    assert_eq!(r, vec![2000..=2500, 2601..=2601, 2650..=2700]);
    assert_eq!(
        parse_vni_range("2601,2000-2500").unwrap(),
        vec![2000..=2500, 2601..=2601]
    );
    assert_eq!(
        parse_vni_range("5-10,8-12,13").unwrap(),
        vec![5..=13],
        "overlapping and adjacent ranges merge"
    );
    assert_eq!(parse_vni_range("").unwrap(), vec![]);
    assert_eq!(parse_vni_range("5000").unwrap(), vec![5000..=5000]);
}

#[test]
fn bad_vni_ranges_are_rejected_with_clear_errors() {
    for bad in ["700-71a0", "1, 2", "1,,2", "-5", "5-", "1-2-3", "10-5", " 7"] {
        let err = parse_vni_range(bad).unwrap_err();
        assert!(matches!(err, VniError::InvalidRange { .. }), "{bad:?}: {err}");
        assert!(
            err.to_string().contains(bad),
            "the message names the range: {err}"
        );
    }
    let err = parse_vni_range("4000-5001").unwrap_err();
    assert_eq!(
        err,
        VniError::VniTooBig {
            range: "4000-5001".into(),
            vni: 5001
        }
    );
    assert!(matches!(
        parse_vni_range("99999999999999999999"),
        Err(VniError::VniTooBig { .. })
    ));
}

#[test]
fn a_fresh_profile_hands_out_1000_then_1001() {
    let tc = tenant_config(vec![profile("ens4", "vlan", "1000-2000")]);
    let (tc, a) = reserve_for_profile(&tc, "ens4", "vlan").unwrap();
    let (_, b) = reserve_for_profile(&tc, "ens4", "vlan").unwrap();
    assert_eq!((a, b), (1000, 1001));
}

#[test]
fn vnis_come_from_the_lowest_range_first() {
    let (alloc, vni) = reserve_vni(&fresh_vni_alloc(), "3000,2000-2001", "p").unwrap();
    assert_eq!(vni, 2000);
    let (alloc, vni) = reserve_vni(&alloc, "3000,2000-2001", "p").unwrap();
    assert_eq!(vni, 2001);
    let (alloc, vni) = reserve_vni(&alloc, "3000,2000-2001", "p").unwrap();
    assert_eq!(vni, 3000);
    let err = reserve_vni(&alloc, "3000,2000-2001", "p").unwrap_err();
    assert_eq!(
        err.to_string(),
        "VNI cannot be allocated from interface profile:p because the whole range is already reserved"
    );
}

#[test]
fn vni_0_is_never_handed_out() {
    let (_, vni) = reserve_vni(&fresh_vni_alloc(), "0-1", "p").unwrap();
    assert_eq!(vni, 1);
}

#[test]
fn an_empty_or_corrupt_profile_alloc_is_reported() {
    for alloc in ["", "gA==", "!!"] {
        let err = reserve_vni(alloc, "1-5", "ens4").unwrap_err();
        assert_eq!(
            err.to_string(),
            "VNI allocations for interface:ens4 is corrupt! Are you running without webhook?"
        );
    }
}

#[test]
fn a_profile_must_match_name_and_vni_type() {
    let tc = tenant_config(vec![profile("ens4", "vlan", "10-20")]);
    let err = reserve_for_profile(&tc, "ens4", "vxlan").unwrap_err();
    assert!(matches!(err, VniError::NoSuchProfile { .. }));
    assert!(
        err.to_string()
            .starts_with("VNI cannot be reserved because selected interface does not exist")
    );
}

#[test]
fn a_freed_vni_is_reused_by_the_next_network() {
    let tc = tenant_config(vec![profile("ens4", "vlan", "1000-2000")]);
    let (tc, a) = reserve_for_profile(&tc, "ens4", "vlan").unwrap();
    let (tc, b) = reserve_for_profile(&tc, "ens4", "vlan").unwrap();
    assert_eq!((a, b), (1000, 1001));
    let mut net = NetworkSpec::default();
    net.options.host_device = "ens4".into();
    net.options.vlan = a;
    let VniRelease::Freed(tc) = release_network_vni(&tc, &net).unwrap() else {
        panic!("expected the VNI freed")
    };
    let (_, c) = reserve_for_profile(&tc, "ens4", "vlan").unwrap();
    assert_eq!(c, 1000);
    assert_eq!(release_network_vni(&tc, &net).unwrap(), VniRelease::NotAllocated);
}

#[test]
fn release_uses_device_pool_first_and_vxlan_over_vlan() {
    let tc = tenant_config(vec![
        profile("nokia.k8s.io/sriov_ens1f0", "vxlan", "50-60"),
        profile("ens4", "vlan", "50-60"),
    ]);
    let (tc, vni) = reserve_for_profile(&tc, "nokia.k8s.io/sriov_ens1f0", "vxlan").unwrap();
    let mut net = NetworkSpec::default();
    net.options.device_pool = "nokia.k8s.io/sriov_ens1f0".into();
    net.options.host_device = "ens4".into();
    net.options.vxlan = vni;
    let VniRelease::Freed(after) = release_network_vni(&tc, &net).unwrap() else {
        panic!("expected the VNI freed")
    };
    assert_eq!(after.host_devices[0].alloc, fresh_vni_alloc());
    assert_eq!(after.host_devices[1], tc.host_devices[1]);
}

#[test]
fn release_without_a_vni_or_a_profile_changes_nothing() {
    let tc = tenant_config(vec![profile("ens4", "vlan", "1-9")]);
    assert_eq!(
        release_network_vni(&tc, &NetworkSpec::default()).unwrap(),
        VniRelease::NoVni
    );
    let mut net = NetworkSpec::default();
    net.options.host_device = "ens5".into();
    net.options.vlan = 3;
    assert_eq!(
        release_network_vni(&tc, &net).unwrap(),
        VniRelease::NoProfile {
            profile: "ens5".into(),
            vni_type: "vlan"
        }
    );
    let (alloc, freed) = release_vni(&fresh_vni_alloc(), 0, "ens4").unwrap();
    assert!(!freed, "VNI 0 stays reserved");
    assert_eq!(alloc, fresh_vni_alloc());
}

#[test]
fn only_virtual_profiles_without_alloc_get_a_fresh_map() {
    let mut tc = TenantConfig::new("tconf");
    tc.host_devices = vec![
        profile("ens3", "", ""),
        profile("ens4", "vlan", "1-9"),
        profile("ens5", "vxlan", "1-9"),
    ];
    tc.host_devices[2].alloc = reserve_vni(&fresh_vni_alloc(), "1-9", "ens5").unwrap().0;
    let kept = tc.host_devices[2].alloc.clone();
    assert!(init_profile_allocs(&mut tc));
    assert_eq!(tc.host_devices[0].alloc, "");
    assert_eq!(tc.host_devices[1].alloc.len(), 836);
    assert_eq!(tc.host_devices[2].alloc, kept);
    assert!(!init_profile_allocs(&mut tc), "a second run changes nothing");
}
