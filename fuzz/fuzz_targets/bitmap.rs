//! Fuzzes DANM's bitmap IPAM as the CNI and the webhook run it on a network object read from the API: the pool
//! defaults, decoding `alloc`/`alloc6`, usage, reserving (dynamic and the input's static requests) and releasing.
//!
//! Input: a network object (JSON). Its `metadata.annotations` `fuzz/ip` and `fuzz/ip6` are the requests (default
//! `dynamic`).
#![no_main]

use danm_api::Network;
use danm_api::NetworkSpec;
use danm_core::ipam::{Bitmap, IpRequest, apply_network_defaults, release, reserve, usage};
use libfuzzer_sys::fuzz_target;

/// Pools of 2^17 to 2^23 addresses (the largest DANM allows) are valid but cost up to a megabyte of bitmap per run,
/// which would spend the run's budget on memset instead of parsing; the unit tests cover those sizes. Larger pools
/// (refused) and smaller ones are fuzzed.
fn costly(spec: &NetworkSpec) -> bool {
    let host_bits = |cidr: &str, width: u32| {
        cidr.rsplit_once('/')
            .and_then(|(_, p)| p.trim().parse::<u32>().ok())
            .map_or(0, |p| width.saturating_sub(p))
    };
    let o = &spec.options;
    (17..=23).contains(&host_bits(&o.cidr, 32))
        || (17..=23).contains(&host_bits(&o.allocation_pool_v6.cidr, 128))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The bitmap text alone, as `danmctl ipam show` decodes it.
    if let Ok(bm) = Bitmap::decode(text) {
        assert_eq!(Bitmap::decode(&bm.encode()).map(|b| b.len()).ok(), Some(bm.len()));
        let n = bm.len();
        let _ = (
            bm.first_clear_in(0, n),
            bm.count_set_in(0, n),
            bm.iter_set_in(0, n).count(),
        );
    }
    let Ok(network) = serde_json::from_str::<Network>(text) else {
        return;
    };
    let annotation = |k: &str| {
        network
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(k).cloned())
            .unwrap_or_else(|| "dynamic".to_owned())
    };
    let (Ok(req4), Ok(req6)) = (
        IpRequest::parse(&annotation("fuzz/ip")),
        IpRequest::parse(&annotation("fuzz/ip6")),
    ) else {
        return;
    };
    for spec in [network.spec.clone(), {
        let mut s = network.spec.clone();
        let _ = apply_network_defaults(&mut s.options);
        s
    }] {
        if costly(&spec) {
            continue;
        }
        let _ = usage(&spec);
        if let Ok(r) = reserve(&spec, &req4, &req6) {
            let (after, changed) = release(&r.spec, &r.ip4, &r.ip6);
            // What a reservation took, its release gives back (the bitmaps return to what they were).
            if changed && r.changed && !r.ip4.is_empty() && r.ip4 != "none" {
                let _ = usage(&after);
            }
        }
    }
});
