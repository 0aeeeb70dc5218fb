//! Admission through the lab: mutating and validating webhooks registered as admissionregistration.k8s.io/v1
//! objects are called with AdmissionReview v1 (HTTP and HTTPS with a caBundle), patches applied, denials returned.

mod common;

use axum::Json;
use axum::routing::post;
use base64::Engine;
use common::*;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// A webhook double: `/mutate` labels objects `admitted=yes`; `/validate` denies networks whose NetworkID is "bad".
async fn webhook(
    tls: Option<&danm_lab::tls::CertBundle>,
) -> (String, Arc<Mutex<Vec<Value>>>, tokio::sync::watch::Sender<bool>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = axum::Router::new()
        .route(
            "/mutate",
            post(move |Json(review): Json<Value>| async move {
                s1.lock().unwrap().push(review.clone());
                let req = &review["request"];
                let op = if req["object"]["metadata"]["labels"].is_object() {
                    json!([{"op": "add", "path": "/metadata/labels/admitted", "value": "yes"}])
                } else {
                    json!([{"op": "add", "path": "/metadata/labels", "value": {"admitted": "yes"}}])
                };
                let patch = base64::engine::general_purpose::STANDARD.encode(op.to_string());
                Json(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": req["uid"], "allowed": true, "patchType": "JSONPatch", "patch": patch}}))
            }),
        )
        .route(
            "/validate",
            post(move |Json(review): Json<Value>| async move {
                s2.lock().unwrap().push(review.clone());
                let req = &review["request"];
                let bad = req["object"]["spec"]["NetworkID"] == "bad";
                let mut resp = json!({"uid": req["uid"], "allowed": !bad});
                if bad {
                    resp["status"] = json!({"code": 403, "message": "NetworkID \"bad\" is reserved"});
                }
                Json(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let cfg = tls.map(|b| danm_lab::tls::server_config(&b.cert_pem, &b.key_pem).unwrap());
    let scheme = if cfg.is_some() { "https" } else { "http" };
    tokio::spawn(danm_lab::server::serve(listener, app, cfg, rx));
    (format!("{scheme}://{addr}"), seen, tx)
}

fn configs(client_config: Value) -> (MutatingWebhookConfiguration, ValidatingWebhookConfiguration) {
    let with_path = |p: &str| {
        let mut c = client_config.clone();
        if let Some(u) = c.get("url").and_then(Value::as_str) {
            c["url"] = json!(format!("{u}{p}"));
        } else {
            c["service"]["path"] = json!(p);
        }
        c
    };
    let rules = json!([{"operations": ["CREATE", "UPDATE"], "apiGroups": ["danm.k8s.io"], "apiVersions": ["v1"],
        "resources": ["danmnets"], "scope": "Namespaced"}]);
    let m = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "danm-mutate"},
        "webhooks": [{"name": "mutate.danm.k8s.io", "clientConfig": with_path("/mutate"), "rules": rules,
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail"}]
    }))
    .unwrap();
    let v = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "danm-validate"},
        "webhooks": [{"name": "validate.danm.k8s.io", "clientConfig": with_path("/validate"), "rules": rules,
            "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail"}]
    }))
    .unwrap();
    (m, v)
}

async fn register(client: &kube::Client, cc: Value) {
    let (m, v) = configs(cc);
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &m)
        .await
        .unwrap();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &v)
        .await
        .unwrap();
}

async fn exercise(client: &kube::Client, seen: &Arc<Mutex<Vec<Value>>>) {
    let api = danmnets(client, "default");
    let created = api
        .create(&PostParams::default(), &danmnet("good", "10.0.0.0/24"))
        .await
        .unwrap();
    assert_eq!(
        created.metadata.labels.unwrap()["admitted"],
        "yes",
        "the mutating webhook's patch was applied"
    );
    let err = api
        .create(&PostParams::default(), &danmnet("bad", "10.0.0.0/24"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                "admission webhook \"validate.danm.k8s.io\" denied the request: NetworkID \"bad\" is reserved"
            );
        }
        e => panic!("expected a denial, got {e}"),
    }
    assert!(matches!(api.get("bad").await.unwrap_err(), kube::Error::Api(s) if s.code == 404));
    let reviews = seen.lock().unwrap().clone();
    let first = &reviews[0]["request"];
    assert_eq!(reviews[0]["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(first["operation"], "CREATE");
    assert_eq!(
        first["resource"],
        json!({"group": "danm.k8s.io", "version": "v1", "resource": "danmnets"})
    );
    assert_eq!(first["namespace"], "default");
    assert_eq!(first["object"]["spec"]["NetworkID"], "good");
    // The validating webhook saw the mutated object.
    let validated = reviews.iter().find(|r| {
        r["request"]["object"]["spec"]["NetworkID"] == "good"
            && r["request"]["object"]["metadata"]["labels"]["admitted"] == "yes"
    });
    assert!(validated.is_some());
    // Other resources are not sent to the webhooks.
    let before = seen.lock().unwrap().len();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(seen.lock().unwrap().len(), before);
}

#[tokio::test]
async fn webhooks_registered_by_url_mutate_and_deny_danmnets() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    let (url, seen, _stop) = webhook(None).await;
    register(&client, json!({"url": url})).await;
    exercise(&client, &seen).await;
}

#[tokio::test]
async fn webhooks_behind_a_service_are_reached_over_tls_with_their_ca_bundle() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    let certs = danm_lab::tls::generate(&["danm-webhook.kube-system.svc", "127.0.0.1"]).unwrap();
    let (url, seen, _stop) = webhook(Some(&certs)).await;
    lab.map_webhook_service("kube-system/danm-webhook", &url);
    let ca = base64::engine::general_purpose::STANDARD.encode(&certs.ca_pem);
    register(
        &client,
        json!({"service": {"namespace": "kube-system", "name": "danm-webhook"}, "caBundle": ca}),
    )
    .await;
    exercise(&client, &seen).await;
}

#[tokio::test]
async fn an_unreachable_webhook_with_failure_policy_fail_rejects_the_request() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    register(&client, json!({"url": "http://127.0.0.1:9/"})).await;
    let err = danmnets(&client, "default")
        .create(&PostParams::default(), &danmnet("a", "10.0.0.0/24"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (500, "InternalError"));
            assert!(
                s.message
                    .contains("failed calling webhook \"mutate.danm.k8s.io\""),
                "{}",
                s.message
            );
        }
        e => panic!("expected 500, got {e}"),
    }
}
