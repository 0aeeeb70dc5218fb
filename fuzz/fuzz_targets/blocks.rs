//! Fuzzes the `blocks` IPAM mode's decoding: a network's block layout (both families, any block size) and a
//! DanmIpBlock read from the API, then what the IPAM and the reconciler do with it (next free address, static
//! placement, the owners' addresses, the block a CIDR names, capacities).
//!
//! Input: `{"network": <network object>, "block": <DanmIpBlock spec>, "prefix": <block prefix>, "ip": <address>}`.
#![no_main]

use danm_api::{DanmIpBlockSpec, Network, NetworkKind};
use danm_core::ipam::Family;
use danm_core::ipam::blocks::{BlockLayout, NetworkId, assign_in_block, release_in_block};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(network) = serde_json::from_value::<Network>(input["network"].clone()) else {
        return;
    };
    let Ok(mut block) = serde_json::from_value::<DanmIpBlockSpec>(input["block"].clone()) else {
        return;
    };
    let prefix = input["prefix"].as_u64().unwrap_or(26).min(255) as u8;
    let ip = input["ip"].as_str().unwrap_or_default();
    let kind = network.network_kind().unwrap_or(NetworkKind::DanmNet);
    let id = NetworkId::new(kind, network.namespace().unwrap_or(""), network.name());
    for family in [Family::V4, Family::V6] {
        let Ok(layout) = BlockLayout::new(&network.spec, family, prefix) else {
            continue;
        };
        let _ = (layout.block_size(), layout.block_prefix(), layout.exhausted());
        let blocks = layout.pool_blocks();
        let (first, last) = (*blocks.start(), *blocks.end());
        // The first, the last and the block the input names: a pool has up to 2^64 blocks, never walk them all.
        let named = layout.block_of_cidr(&block.cidr);
        for b in [Some(first), Some(last), named].into_iter().flatten() {
            let _ = (
                layout.block_cidr(b),
                layout.block_name(&id, b),
                layout.capacity(b),
            );
            let _ = layout.owned(b, &block);
            if let Some((rel, addr)) = layout.next_free(b, &block) {
                assert_eq!(
                    layout.locate(&addr),
                    Some((b, rel)),
                    "{addr} is not where next_free put it"
                );
                assign_in_block(&mut block, rel, "fuzz", true);
                let _ = release_in_block(&mut block, rel, "fuzz", "now");
            }
        }
        if let Ok(ip) = ip.parse() {
            if let Ok((b, rel, text)) = layout.locate_static(ip) {
                assert_eq!(
                    layout.locate(&text),
                    Some((b, rel)),
                    "{text} is not where locate_static put it"
                );
            }
        }
        let _ = layout.locate(ip);
    }
});
