//! The HTTP side: an axum router with the three admission paths plus `/healthz`, `/readyz` and `/metrics`.
//! Protocol errors (empty or malformed bodies) are HTTP 400 with the reason as text; judged requests are HTTP 200
//! with an AdmissionReview.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use danm_controller_kit::{MetricsRegistry, Readiness, health_router};

use crate::admit::{Endpoint, Webhook};

/// Largest accepted body: Kubernetes objects are at most 1.5 MiB in etcd; the review wraps object and oldObject.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The webhook's router.
pub fn router(webhook: Arc<Webhook>, ready: Readiness, metrics: MetricsRegistry) -> Router {
    let mut r = Router::new();
    for ep in Endpoint::ALL {
        let wh = Arc::clone(&webhook);
        r = r.route(ep.path(), post(move |body: Bytes| serve(wh, ep, body)));
    }
    r.layer(DefaultBodyLimit::max(MAX_BODY))
        .merge(health_router(ready, metrics))
}

async fn serve(webhook: Arc<Webhook>, endpoint: Endpoint, body: Bytes) -> Response {
    match webhook.handle(endpoint, &body).await {
        Ok(h) => axum::Json(h.response).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
