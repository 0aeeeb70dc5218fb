//! Shared plumbing of danm's controllers (webhook, netwatcher, svcwatcher): tracing set-up, a Prometheus registry,
//! health/readiness endpoints, a kube client from a kubeconfig or the in-cluster environment, and HTTPS serving with
//! a certificate that is reloaded when its files change.
//!
//! ```
//! use danm_controller_kit::{MetricsRegistry, Readiness};
//! use prometheus_client::metrics::counter::Counter;
//!
//! let registry = MetricsRegistry::with_prefix("danm_example");
//! let handled: Counter = Counter::default();
//! registry.register("handled", "Requests handled", handled.clone());
//! handled.inc();
//! assert!(registry.render().contains("danm_example_handled_total 1"));
//!
//! // `health_router(ready, registry)` serves /healthz, /readyz (200 once ready) and /metrics.
//! let ready = Readiness::default();
//! ready.set(true);
//! assert!(ready.is_ready());
//! ```

pub mod args;
pub mod health;
pub mod kubeclient;
pub mod metrics;
pub mod telemetry;
pub mod tls;

pub use args::CommonArgs;
pub use health::{Readiness, health_router};
pub use kubeclient::client;
pub use metrics::MetricsRegistry;
pub use telemetry::{LogFormat, init_tracing};
pub use tls::{CertFiles, ReloadingCert, bind, serve_tls};

/// Errors of the kit.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what}")]
    Pem { what: &'static str, path: String },
    #[error("TLS configuration from {cert} and {key} is invalid: {source}")]
    Tls {
        cert: String,
        key: String,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kube client configuration failed: {0}")]
    Kube(String),
    #[error("tracing set-up failed: {0}")]
    Tracing(String),
}
