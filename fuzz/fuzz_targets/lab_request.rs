//! Fuzzes the lab API server's request parsing: method, path (discovery, resources, namespaces, names,
//! subresources), query (selectors, watch, dryRun), content type (JSON, merge/strategic/JSON patches, protobuf) and
//! body, through its HTTP edge exactly as served, over an in-memory store. Building a store (the built-in
//! registry, the default namespaces) costs more than most requests, so one store serves 256 inputs before it is
//! replaced: the requests in between see each other's objects, and a crash input is replayed against a fresh one.
//!
//! Input: a method byte, then `path?query` up to a newline, the content type up to the next newline, then the body.
#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

thread_local! {
    static APP: RefCell<(u32, axum::Router)> = RefCell::new((0, danm_lab::server::in_memory_router()));
}

fn app() -> axum::Router {
    APP.with(|a| {
        let mut a = a.borrow_mut();
        a.0 += 1;
        if a.0 % 256 == 0 {
            a.1 = danm_lab::server::in_memory_router();
        }
        a.1.clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let (Some(uri), Some(ct)) = (parts.next(), parts.next()) else {
        return;
    };
    let body = parts.next().unwrap_or_default().to_vec();
    let Ok(uri) = std::str::from_utf8(uri) else { return };
    let Ok(req) = Request::builder()
        .method(METHODS[usize::from(m) % METHODS.len()].clone())
        .uri(format!("/{}", uri.trim_start_matches('/')))
        .header("content-type", ct)
        .body(Body::from(body))
    else {
        return;
    };
    let app = app();
    let status = runtime().block_on(async { app.oneshot(req).await.map(|r| r.status()) });
    // Every request gets an answer; a 500 would be the server failing on a request it should judge.
    let status = status.expect("the router is infallible");
    assert_ne!(status.as_u16(), 500, "internal error");
});
