//! netwatcher's Prometheus counters.

use danm_controller_kit::MetricsRegistry;
use prometheus_client::metrics::counter::Counter;

/// Counters of netwatcher; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub reconciles: Counter,
    pub links_created: Counter,
    pub links_deleted: Counter,
    pub reconcile_errors: Counter,
    pub drift_repaired: Counter,
    pub nad_updates: Counter,
}

/// The registry netwatcher serves on `/metrics` (names `danm_netwatcher_*`) with its counters registered; the binary
/// and the metrics catalogue test both build it here.
pub fn registry() -> (MetricsRegistry, Metrics) {
    let registry = MetricsRegistry::with_prefix("danm_netwatcher");
    let metrics = Metrics::register(&registry);
    (registry, metrics)
}

impl Metrics {
    /// Fresh counters registered in `registry` (names `<prefix>_..._total`).
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = Metrics::default();
        registry.register(
            "reconciles",
            "Host link reconciliations run",
            m.reconciles.clone(),
        );
        registry.register("links_created", "Host links created", m.links_created.clone());
        registry.register("links_deleted", "Host links deleted", m.links_deleted.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciliations, failed link operations and links that cannot be made",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "drift_repaired",
            "Links recreated, replaced or brought up because the kernel drifted from an unchanged wish",
            m.drift_repaired.clone(),
        );
        registry.register(
            "nad_updates",
            "NetworkAttachmentDefinition master rewrites",
            m.nad_updates.clone(),
        );
        m
    }
}
