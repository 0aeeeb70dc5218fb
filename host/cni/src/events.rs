//! Kubernetes Events the CNI records: a failed ADD is reported on its pod (`DanmAddFailed`), best effort and
//! bounded in time, so an operator (and `kubectl danm why`) sees the cause without reading node logs.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use crate::context::Ctx;
use crate::error::Error;

/// The reason of the Event a failed ADD records on its pod.
pub const ADD_FAILED: &str = "DanmAddFailed";
/// The component named as the Event's source.
pub const COMPONENT: &str = "danm";
/// How long the Event's creation may take: the failure is already known, the runtime waits for it.
const BUDGET: Duration = Duration::from_secs(1);
/// Longest message kept (the API server's Events API caps notes at 1 KiB).
const MAX_MESSAGE: usize = 1024;

/// The Event a failed ADD of `container` records on pod `namespace/name`.
pub fn add_failed_event(
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    container: &str,
    node: &str,
    error: &str,
) -> Event {
    let now = Timestamp::now();
    let mut message = format!("ADD of sandbox {} failed: {error}", short(container));
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str("...");
    }
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            uid: uid.filter(|u| !u.is_empty()).map(str::to_owned),
            ..ObjectReference::default()
        },
        reason: Some(ADD_FAILED.into()),
        message: Some(message),
        type_: Some("Warning".into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: (!node.is_empty()).then(|| node.to_owned()),
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: (!node.is_empty()).then(|| node.to_owned()),
        ..Event::default()
    }
}

fn short(container: &str) -> &str {
    container.get(..12).unwrap_or(container)
}

/// Records a failed ADD on its pod. Never fails: an Event that cannot be written (no pod in CNI_ARGS, the API down,
/// no RBAC) is logged and dropped after at most [`BUDGET`].
pub async fn record_add_failure(ctx: &Ctx, error: &Error) {
    let Ok(pod) = ctx.args.pod() else { return };
    let event = add_failed_event(
        &pod.namespace,
        &pod.name,
        pod.uid.as_deref(),
        ctx.env.container_id(),
        &ctx.hostname,
        &error.to_string(),
    );
    match tokio::time::timeout(BUDGET, ctx.api.create_event(&event)).await {
        Ok(Ok(())) => tracing::debug!("step: failure event recorded"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record the ADD failure as an Event on the pod"),
        Err(_) => tracing::warn!("recording the ADD failure as an Event took over {BUDGET:?}; dropped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_names_the_pod_the_sandbox_and_the_cause() {
        let e = add_failed_event(
            "demo",
            "web-0",
            Some("u-1"),
            "0123456789abcdef",
            "node-a",
            "no IP left",
        );
        assert_eq!(e.reason.as_deref(), Some(ADD_FAILED));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(e.involved_object.uid.as_deref(), Some("u-1"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("demo"));
        assert!(e.metadata.name.as_deref().unwrap().starts_with("web-0."));
        assert_eq!(
            e.message.as_deref(),
            Some("ADD of sandbox 0123456789ab failed: no IP left")
        );
        assert_eq!(e.source.unwrap().host.as_deref(), Some("node-a"));
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary() {
        let e = add_failed_event("demo", "p", None, "c", "", &"é".repeat(2000));
        let m = e.message.unwrap();
        assert!(m.len() <= MAX_MESSAGE && m.ends_with("..."), "{}", m.len());
        assert!(e.involved_object.uid.is_none() && e.source.unwrap().host.is_none());
    }
}
