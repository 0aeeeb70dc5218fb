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

async fn render_metrics(State(s): State<HealthState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(),
    )
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
}
