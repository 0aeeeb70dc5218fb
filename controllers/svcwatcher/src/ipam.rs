//! The IPAM reconciler as the leader runs it: a scan every interval ([`danm_ipam::reconcile::Reconciler`]), its
//! outcome as metrics (`danm_svcwatcher_ipam_*`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use danm_controller_kit::MetricsRegistry;
use danm_ipam::IpamConfig;
use danm_ipam::reconcile::{Reconciler, ScanReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The labels of a pool's gauges and counters: the network as `spec.network` names it (`DanmNet ns/name`,
/// `ClusterNetwork name`), `IPv4`/`IPv6`, and the IPAM mode (`blocks`/`bitmap`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub network: String,
    pub family: String,
    pub mode: String,
}

/// The reconciler's metrics.
#[derive(Clone)]
pub struct IpamMetrics {
    pub scans: Counter,
    pub released: Counter,
    pub danmeps_deleted: Counter,
    pub skipped_scans: Counter,
    pub action_errors: Counter,
    pub pool_size: Family<PoolLabels, Gauge<u64, AtomicU64>>,
    pub pool_used: Family<PoolLabels, Gauge<u64, AtomicU64>>,
    pub pool_allocated: Family<PoolLabels, Counter>,
    pub pool_released: Family<PoolLabels, Counter>,
    /// Each pool's used count at the previous complete scan: what the allocation/release counters are counted from.
    previous: Arc<Mutex<HashMap<PoolLabels, u64>>>,
}

impl IpamMetrics {
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = IpamMetrics {
            scans: Counter::default(),
            released: Counter::default(),
            danmeps_deleted: Counter::default(),
            skipped_scans: Counter::default(),
            action_errors: Counter::default(),
            pool_size: Family::default(),
            pool_used: Family::default(),
            pool_allocated: Family::default(),
            pool_released: Family::default(),
            previous: Arc::default(),
        };
        registry.register(
            "ipam_scans",
            "IPAM reconciler scans run, skipped ones included",
            m.scans.clone(),
        );
        registry.register(
            "ipam_addresses_released",
            "Addresses the reconciler released because no live owner held them",
            m.released.clone(),
        );
        registry.register(
            "ipam_danmeps_deleted",
            "DanmEps the reconciler deleted because their pod was gone",
            m.danmeps_deleted.clone(),
        );
        registry.register(
            "ipam_scans_skipped",
            "Reconciler scans that did nothing because a list failed",
            m.skipped_scans.clone(),
        );
        registry.register(
            "ipam_action_errors",
            "Single reconciler actions (a release, a DanmEp deletion) that failed; the scan went on",
            m.action_errors.clone(),
        );
        registry.register(
            "ipam_pool_size_addresses",
            "Addresses dynamic allocation may hand out, per network and family",
            m.pool_size.clone(),
        );
        registry.register(
            "ipam_pool_used_addresses",
            "Addresses held, per network and family",
            m.pool_used.clone(),
        );
        registry.register(
            "ipam_pool_allocated_addresses",
            "Growth of a pool's used addresses from one reconciler scan to the next (addresses taken and given back \
             between two scans are not seen)",
            m.pool_allocated.clone(),
        );
        registry.register(
            "ipam_pool_released_addresses",
            "Shrinking of a pool's used addresses from one reconciler scan to the next (releases by the CNI and by the \
             reconciler)",
            m.pool_released.clone(),
        );
        m
    }

    /// Records one scan. A skipped scan changes no pool metric; a complete one sets every pool's gauges, counts the
    /// change of each pool's use since the previous complete scan (a pool seen for the first time sets the baseline)
    /// and drops the series of pools that are gone (a deleted network).
    pub fn record(&self, report: &ScanReport) {
        self.scans.inc();
        if report.skipped.is_some() {
            self.skipped_scans.inc();
            return;
        }
        self.released.inc_by(report.addresses_released as u64);
        self.danmeps_deleted.inc_by(report.danmeps_deleted as u64);
        self.action_errors.inc_by(report.errors.len() as u64);
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = HashMap::with_capacity(report.pools.len());
        for pool in &report.pools {
            let labels = PoolLabels {
                network: pool.network.clone(),
                family: pool.family.to_string(),
                mode: pool.mode.to_string(),
            };
            let used = u64::try_from(pool.used).unwrap_or(u64::MAX);
            self.pool_size
                .get_or_create(&labels)
                .set(u64::try_from(pool.size).unwrap_or(u64::MAX));
            self.pool_used.get_or_create(&labels).set(used);
            // Create both counters so a pool's series exist (at 0) from its first scan.
            let allocated = self.pool_allocated.get_or_create(&labels).clone();
            let released = self.pool_released.get_or_create(&labels).clone();
            if let Some(&before) = previous.get(&labels) {
                if used > before {
                    allocated.inc_by(used - before);
                } else {
                    released.inc_by(before - used);
                }
            }
            seen.insert(labels, used);
        }
        for gone in previous.keys().filter(|l| !seen.contains_key(*l)) {
            self.pool_size.remove(gone);
            self.pool_used.remove(gone);
            self.pool_allocated.remove(gone);
            self.pool_released.remove(gone);
        }
        *previous = seen;
    }
}

/// Scans every `interval` until `stop` resolves.
pub async fn run(
    client: kube::Client,
    grace: Duration,
    interval: Duration,
    metrics: IpamMetrics,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut reconciler = Reconciler::new(IpamConfig::default(), grace);
    let mut tick = tokio::time::interval(interval);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                let report = reconciler.scan(&client, k8s_openapi::jiff::Timestamp::now()).await;
                report.log();
                metrics.record(&report);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use danm_core::ipam::Family as IpFamily;
    use danm_core::ipam::blocks::IpamMode;
    use danm_ipam::reconcile::PoolUse;

    use super::*;

    fn scan(pools: &[(&str, u128)]) -> ScanReport {
        ScanReport {
            pools: pools
                .iter()
                .map(|&(network, used)| PoolUse {
                    network: network.to_owned(),
                    family: IpFamily::V4,
                    mode: IpamMode::Blocks,
                    size: 254,
                    used,
                })
                .collect(),
            ..ScanReport::default()
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn pool_counters_count_the_change_of_use_between_scans_from_a_baseline() {
        let registry = MetricsRegistry::with_prefix("danm_svcwatcher");
        let m = IpamMetrics::register(&registry);
        m.record(&scan(&[("DanmNet demo/internal", 5)]));
        m.record(&scan(&[("DanmNet demo/internal", 9)]));
        m.record(&scan(&[("DanmNet demo/internal", 7)]));
        let text = registry.render();
        let labels = r#"{network="DanmNet demo/internal",family="IPv4",mode="blocks"}"#;
        // The first scan is the baseline: its 5 held addresses are not counted as allocated.
        assert_eq!(
            line(
                &text,
                &format!("danm_svcwatcher_ipam_pool_allocated_addresses_total{labels}")
            ),
            Some(format!("danm_svcwatcher_ipam_pool_allocated_addresses_total{labels} 4").as_str()),
            "{text}"
        );
        assert_eq!(
            line(
                &text,
                &format!("danm_svcwatcher_ipam_pool_released_addresses_total{labels}")
            ),
            Some(format!("danm_svcwatcher_ipam_pool_released_addresses_total{labels} 2").as_str()),
            "{text}"
        );
        assert_eq!(
            line(&text, "danm_svcwatcher_ipam_pool_used_addresses{"),
            Some(format!("danm_svcwatcher_ipam_pool_used_addresses{labels} 7").as_str()),
        );
        assert_eq!(m.scans.get(), 3);
    }

    #[test]
    fn a_deleted_network_loses_its_series_and_a_skipped_scan_changes_no_pool() {
        let registry = MetricsRegistry::with_prefix("danm_svcwatcher");
        let m = IpamMetrics::register(&registry);
        m.record(&scan(&[("DanmNet demo/a", 1), ("DanmNet demo/b", 2)]));
        m.record(&ScanReport {
            skipped: Some("listing DanmEps failed".into()),
            ..ScanReport::default()
        });
        let text = registry.render();
        assert!(text.contains("DanmNet demo/b"), "{text}");
        m.record(&scan(&[("DanmNet demo/a", 1)]));
        let text = registry.render();
        assert!(!text.contains("DanmNet demo/b"), "{text}");
        assert!(text.contains("DanmNet demo/a"), "{text}");
        assert_eq!((m.scans.get(), m.skipped_scans.get()), (3, 1));
    }
}
