//! Watch streams: newline-delimited JSON events (ADDED/MODIFIED/DELETED/BOOKMARK/ERROR) replayed from the store's
//! bounded history and then followed live; 410 Gone for a resourceVersion older than the history.

use super::Shared;
use super::registry::ResourceDef;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::EventType;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::PoisonError;
use std::time::Duration;
use tokio::sync::mpsc;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);

fn line(type_: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

struct Filter {
    def: ResourceDef,
    version: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }

    fn in_scope(&self, ns: &str) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|n| !self.def.namespaced || n == ns)
    }

    fn out(&self, mut o: Value) -> Value {
        o["apiVersion"] = json!(self.def.api_version(&self.version));
        o
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.def.kind, "apiVersion": self.def.api_version(&self.version), "metadata": meta})
    }
}

/// Starts a watch and returns its streaming response.
pub fn serve(
    sh: Arc<Shared>,
    def: ResourceDef,
    version: String,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &HashMap<String, String>,
) -> Response {
    let f = Filter {
        def,
        version,
        namespace,
        labels,
        fields,
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true" || b == "1");
    let send_initial = query.get("sendInitialEvents").is_some_and(|b| b == "true");
    let rv_param = query.get("resourceVersion").cloned().unwrap_or_default();

    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial = Vec::new();
    let start = {
        let st = sh.store.lock().unwrap_or_else(PoisonError::into_inner);
        if rv_param.is_empty() || rv_param == "0" || send_initial {
            for o in st.list(&f.def, f.namespace.as_deref(), &f.labels, &f.fields) {
                initial.push(line("ADDED", &f.out(o)));
            }
            if send_initial && bookmarks {
                initial.push(line("BOOKMARK", &f.bookmark(st.rv(), true)));
            }
            Ok(st.rv())
        } else {
            match rv_param.parse::<u64>() {
                Ok(rv) if rv < st.pruned_rv() => Err(ApiError::expired(rv, st.pruned_rv() + 1)),
                Ok(rv) => Ok(rv),
                Err(_) => Err(ApiError::bad_request(format!(
                    "invalid resource version: {rv_param:?}"
                ))),
            }
        }
    };
    let start = match start {
        Ok(s) => s,
        Err(e) if e.code == 410 => {
            // As kube-apiserver: a 200 stream whose only event is an ERROR carrying the 410 Status.
            let body = line("ERROR", &e.to_status());
            return (StatusCode::OK, [("content-type", "application/json")], body).into_response();
        }
        Err(e) => return e.into_response(),
    };
    tokio::spawn(pump(sh, f, start, initial, tx, timeout, bookmarks));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn pump(
    sh: Arc<Shared>,
    f: Filter,
    mut last: u64,
    initial: Vec<Bytes>,
    tx: mpsc::Sender<Bytes>,
    timeout: Duration,
    bookmarks: bool,
) {
    for b in initial {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rv_rx = sh.rv_tx.subscribe();
    let mut shutdown = sh.shutdown.clone();
    let mut tick = tokio::time::interval(BOOKMARK_EVERY);
    tick.tick().await;
    loop {
        let mut out = Vec::new();
        let expired = {
            let st = sh.store.lock().unwrap_or_else(PoisonError::into_inner);
            if last < st.pruned_rv() {
                Some(line(
                    "ERROR",
                    &ApiError::expired(last, st.pruned_rv() + 1).to_status(),
                ))
            } else {
                collect(&st, &f, &mut last, &mut out);
                None
            }
        };
        if let Some(b) = expired {
            let _ = tx.send(b).await;
            return;
        }
        for b in out {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        tokio::select! {
            r = rv_rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(deadline) => return,
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                if bookmarks && tx.send(line("BOOKMARK", &f.bookmark(last, false))).await.is_err() {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

fn collect(st: &super::store::Store, f: &Filter, last: &mut u64, out: &mut Vec<Bytes>) {
    {
        {
            for ev in st.events_after(*last) {
                *last = ev.rv;
                if ev.gr.0 != f.def.group || ev.gr.1 != f.def.plural || !f.in_scope(&ev.namespace) {
                    continue;
                }
                let now_match = f.matches(&ev.object);
                let (ty, obj) = match ev.type_ {
                    EventType::Modified => {
                        let was = ev.old.as_ref().is_some_and(|o| f.matches(o));
                        match (was, now_match) {
                            (true, true) => ("MODIFIED", &ev.object),
                            (false, true) => ("ADDED", &ev.object),
                            (true, false) => ("DELETED", &ev.object),
                            (false, false) => continue,
                        }
                    }
                    EventType::Added if now_match => ("ADDED", &ev.object),
                    EventType::Deleted if now_match => ("DELETED", &ev.object),
                    _ => continue,
                };
                out.push(line(ty, &f.out(obj.clone())));
            }
            *last = (*last).max(st.rv());
        }
    }
}
