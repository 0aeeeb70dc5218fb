//! The IPAM reconciler as the leader runs it: a scan every interval ([`danm_ipam::reconcile::Reconciler`]), its
//! outcome as metrics (`danm_svcwatcher_ipam_*`).

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use danm_controller_kit::MetricsRegistry;
use danm_ipam::IpamConfig;
use danm_ipam::reconcile::{Reconciler, ScanReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The labels of a pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub network: String,
    pub family: String,
    pub mode: String,
}

/// The reconciler's metrics.
#[derive(Clone)]
pub struct IpamMetrics {
    pub released: Counter,
    pub danmeps_deleted: Counter,
    pub skipped_scans: Counter,
    pub pool_size: Family<PoolLabels, Gauge<u64, AtomicU64>>,
    pub pool_used: Family<PoolLabels, Gauge<u64, AtomicU64>>,
}

impl IpamMetrics {
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = IpamMetrics {
            released: Counter::default(),
            danmeps_deleted: Counter::default(),
            skipped_scans: Counter::default(),
            pool_size: Family::default(),
            pool_used: Family::default(),
        };
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
            "ipam_pool_size_addresses",
            "Addresses dynamic allocation may hand out, per network and family",
            m.pool_size.clone(),
        );
        registry.register(
            "ipam_pool_used_addresses",
            "Addresses held, per network and family",
            m.pool_used.clone(),
        );
        m
    }

    fn record(&self, report: &ScanReport) {
        if report.skipped.is_some() {
            self.skipped_scans.inc();
            return;
        }
        self.released.inc_by(report.addresses_released as u64);
        self.danmeps_deleted.inc_by(report.danmeps_deleted as u64);
        for pool in &report.pools {
            let labels = PoolLabels {
                network: pool.network.clone(),
                family: pool.family.to_string(),
                mode: pool.mode.to_string(),
            };
            self.pool_size
                .get_or_create(&labels)
                .set(u64::try_from(pool.size).unwrap_or(u64::MAX));
            self.pool_used
                .get_or_create(&labels)
                .set(u64::try_from(pool.used).unwrap_or(u64::MAX));
        }
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
