//! `/healthz`, `/readyz` and `/metrics` as an axum router any controller can merge into its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::MetricsRegistry;

/// Readiness flag: false until the controller says it is ready (e.g. plugins loaded, caches synced).
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct HealthState {
    ready: Readiness,
    metrics: MetricsRegistry,
}

/// `/healthz` (always 200 while the process serves), `/readyz` (200 when ready, else 503), `/metrics` (text format).
pub fn health_router(ready: Readiness, metrics: MetricsRegistry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(HealthState { ready, metrics })
}

async fn readyz(State(s): State<HealthState>) -> impl IntoResponse {
    if s.ready.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// What `prometheus-client` writes: OpenMetrics text (counter `# TYPE` lines without `_total`, a final `# EOF`).
/// Prometheus negotiates it like the classic text format; naming it right keeps the counters typed.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn render_metrics(State(s): State<HealthState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], s.metrics.render())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn status(router: Router, path: &str) -> StatusCode {
        router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn readyz_answers_503_until_the_controller_is_ready() {
        let ready = Readiness::default();
        let router = health_router(ready.clone(), MetricsRegistry::default());
        assert_eq!(status(router.clone(), "/healthz").await, StatusCode::OK);
        assert_eq!(
            status(router.clone(), "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        ready.set(true);
        assert_eq!(status(router.clone(), "/readyz").await, StatusCode::OK);
        assert_eq!(status(router, "/metrics").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let router = health_router(Readiness::default(), MetricsRegistry::with_prefix("danm"));
        let resp = router
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            METRICS_CONTENT_TYPE,
            "the body is prometheus-client's OpenMetrics encoding"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        assert!(body.ends_with(b"# EOF\n"), "{body:?}");
    }
}
