//! A shared Prometheus registry (`prometheus-client`) rendered in the text exposition format.

use std::sync::PoisonError;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};

/// A cloneable handle on one registry. Controllers register their metrics at start-up; `/metrics` renders it.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// A registry whose metric names all start with `prefix_`.
    pub fn with_prefix(prefix: &str) -> Self {
        MetricsRegistry {
            inner: Arc::new(Mutex::new(Registry::with_prefix(prefix))),
        }
    }

    /// Registers one metric (a counter, histogram, or a `Family` of them).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// The text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let reg = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &reg);
        out
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn registered_counters_appear_in_the_rendered_text() {
        let reg = MetricsRegistry::with_prefix("danm");
        let c: Counter = Counter::default();
        reg.register("things", "Things seen", c.clone());
        c.inc();
        let text = reg.render();
        assert!(text.contains("danm_things_total 1"), "{text}");
    }
}
