//! The webhook's Prometheus metrics: requests (count and latency by path, operation, kind, verdict) and plugin calls
//! (latency by plugin).

use std::time::Duration;

use danm_controller_kit::MetricsRegistry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    path: String,
    operation: String,
    kind: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

fn latency_buckets() -> Histogram {
    // 100 µs .. ~3.3 s
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 16,
    ))
}

/// The webhook's metric families.
#[derive(Debug)]
pub struct WebhookMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    plugin_latency: Family<PluginLabels, Histogram, fn() -> Histogram>,
}

impl WebhookMetrics {
    /// The registry the webhook serves on `/metrics` (names `danm_webhook_*`) with these families registered; the
    /// binary and the tests build it here.
    pub fn registry() -> (MetricsRegistry, Self) {
        let registry = MetricsRegistry::with_prefix("danm_webhook");
        let metrics = WebhookMetrics::register(&registry);
        (registry, metrics)
    }

    /// Creates the families and registers them (`danm_webhook_requests_total`, `..._request_duration_seconds`,
    /// `..._plugin_call_duration_seconds`).
    pub fn register(registry: &MetricsRegistry) -> Self {
        let m = WebhookMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_buckets),
            plugin_latency: Family::new_with_constructor(latency_buckets),
        };
        registry.register("requests", "Admission reviews handled", m.requests.clone());
        registry.register(
            "request_duration_seconds",
            "Time to judge one admission review",
            m.latency.clone(),
        );
        registry.register(
            "plugin_call_duration_seconds",
            "Time of one plugin call",
            m.plugin_latency.clone(),
        );
        m
    }

    pub fn observe_request(&self, path: &str, operation: &str, kind: &str, verdict: &str, took: Duration) {
        let labels = RequestLabels {
            path: path.to_owned(),
            operation: operation.to_owned(),
            kind: kind.to_owned(),
            verdict: verdict.to_owned(),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn observe_plugin(&self, plugin: &str, took: Duration) {
        self.plugin_latency
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .observe(took.as_secs_f64());
    }
}
