//! The AdmissionReview protocol through the router: behaviour §11 item 101, v1beta1, and bodies that are
//! empty, malformed, of unknown kinds, or very large; plus the health and metrics endpoints.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn denials_carry_uid_and_message_and_successes_carry_no_status() {
    // behaviour §11 101
    let rig = rig(vec![]);
    let denied = create(&rig, danmnet("n", json!({"Options": {}}))).await;
    assert_eq!(denied.response["allowed"], false);
    assert!(!denied.message().is_empty());
    assert_eq!(denied.response["status"]["code"], 403);
    let ok = create(
        &rig,
        danmnet("n", json!({"NetworkID": "x", "NetworkType": "flannel"})),
    )
    .await;
    ok.assert_allowed();
    assert!(
        ok.response.get("patch").is_none(),
        "nothing to change, so no patch: {}",
        ok.response
    );
}

#[tokio::test]
async fn a_v1beta1_review_is_answered_in_v1beta1() {
    let rig = rig(vec![]);
    let mut r = review("CREATE", &danmnet("n", json!({"NetworkID": "x"})), &Value::Null);
    r["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let out = call(&rig, "/netvalidation", r).await;
    out.assert_allowed();
    assert_eq!(out.patched["spec"]["NetworkType"], "ipvlan");
}

#[tokio::test]
async fn empty_and_malformed_bodies_are_http_400_on_every_endpoint() {
    let rig = rig(vec![]);
    for path in ["/netvalidation", "/confvalidation", "/netdeletion"] {
        let (status, body) = post_raw(&rig.router, path, Vec::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, "Received review request is empty!");
        let (status, body) = post_raw(&rig.router, path, b"{\"request\": {\"uid\": ".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.as_str().unwrap().contains("not a valid AdmissionReview"),
            "{body}"
        );
        let (status, _) = post_raw(&rig.router, path, b"\x00\xff garbage".to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = post_raw(
            &rig.router,
            path,
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body, "Received review request is empty!");
    }
}

#[tokio::test]
async fn unknown_kinds_are_denied_as_not_handled() {
    let rig = rig(vec![]);
    let ep = danmep("default", "p", "n", "DanmNet");
    create(&rig, ep)
        .await
        .assert_denied("K8s API type:DanmEp is not handled by DANM webhook");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}});
    create(&rig, pod)
        .await
        .assert_denied("K8s API type:Pod is not handled");
}

#[tokio::test]
async fn a_missing_object_on_update_is_denied() {
    let rig = rig(vec![]);
    let old = json!({"extraField": "blupp"});
    let mut r = review("UPDATE", &Value::Null, &old);
    r["request"]["kind"]["kind"] = json!("DanmNet");
    let out = call(&rig, "/netvalidation", r).await;
    assert!(!out.allowed());
    assert!(!out.message().is_empty());
}

#[tokio::test]
async fn an_object_of_one_mebibyte_is_judged_without_trouble() {
    let rig = rig(vec![]);
    let big = "x".repeat(1 << 20);
    let obj = danmnet(
        "n",
        json!({"NetworkID": "x", "Options": {"container_prefix": big}}),
    );
    let out = create(&rig, obj).await;
    out.assert_allowed();
    let mut obj = danmnet("n", json!({"NetworkID": "x", "Options": {}}));
    obj["metadata"]["annotations"] = json!({"big": "y".repeat(1 << 20)});
    obj["huge"] = json!("z".repeat(1 << 20));
    create(&rig, obj)
        .await
        .assert_denied("unknown fields are not allowed:huge");
}

#[tokio::test]
async fn a_body_above_the_limit_is_refused_with_413() {
    let rig = rig(vec![]);
    let body = vec![b' '; danm_webhook::server::MAX_BODY + 1];
    let (status, _) = post_raw(&rig.router, "/netvalidation", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let rig = rig(vec![]);
    create(&rig, danmnet("n", json!({"NetworkID": "x"})))
        .await
        .assert_allowed();
    create(&rig, danmnet("n", json!({}))).await;
    for path in ["/healthz", "/readyz"] {
        let req = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let resp = tower::ServiceExt::oneshot(rig.router.clone(), req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    let text = rig.registry.render();
    assert!(
        text.contains(r#"danm_webhook_requests_total{path="/netvalidation",operation="CREATE",kind="DanmNet",verdict="allowed"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"verdict="denied""#), "{text}");
    assert!(
        text.contains(r#"danm_webhook_plugin_call_duration_seconds_count{plugin="rules"}"#),
        "{text}"
    );
    assert!(
        text.contains("danm_webhook_request_duration_seconds_bucket"),
        "{text}"
    );
}
