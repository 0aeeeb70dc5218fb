//! `danm-lab bench ipam-scale` at a small size, in both IPAM modes: no duplicate, nothing held after the releases,
//! and in blocks mode no network write and a few KB per allocation. (The figures themselves come from the release
//! build; this checks that what the benchmark reports is right.)

use danm_core::ipam::blocks::IpamMode;
use danm_lab::bench::ipam_scale::{ScaleOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scale_simulation_counts_right_in_both_modes() {
    for mode in [IpamMode::Blocks, IpamMode::Bitmap] {
        let opts = ScaleOptions {
            nodes: 4,
            pods: 40,
            mode,
            cidr: "10.128.0.0/24".into(),
            // A small IPv6 range keeps the bitmap network small in a debug build.
            net6: "fd00:5ca1:e::/120".into(),
        };
        let r = run(&opts).await.expect("the simulation runs");
        assert_eq!(r.allocations, 40, "{mode}");
        assert_eq!(r.duplicates, 0, "{mode}");
        assert_eq!(r.held_after_release, 0, "{mode}");
        assert!(r.p50_ms > 0.0 && r.p99_ms >= r.p50_ms, "{mode}: {r:?}");
        match mode {
            IpamMode::Blocks => {
                assert_eq!(r.network_watch_bytes_per_allocation, 0.0);
                assert!(r.bytes_written_per_allocation < 4096.0, "{r:?}");
                // 4 nodes, one IPv4 and one IPv6 block each.
                assert_eq!(r.blocks, 8);
            }
            IpamMode::Bitmap => {
                // Every allocation rewrites the whole network, and every watcher receives it.
                assert!(r.bytes_written_per_allocation >= r.network_bytes as f64, "{r:?}");
                assert!(r.network_watch_bytes_per_allocation > 0.0, "{r:?}");
                assert_eq!(r.blocks, 0);
            }
        }
    }
}
