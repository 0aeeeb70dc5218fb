//! The lab server driven by kube-rs: CRUD, conflicts, selectors, watches, a controller, concurrency, bad requests,
//! faults, persistence, TLS with a token.

mod common;

use common::*;
use danm_lab::{Fault, LabOptions, LabServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{Controller, controller::Action, watcher};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn danmnets_support_create_get_list_update_patch_and_delete() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    let api = danmnets(&client, "default");

    let created = api
        .create(&PostParams::default(), &danmnet("a", "10.0.0.0/24"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let rv1: u64 = meta.resource_version.as_deref().unwrap().parse().unwrap();

    let got = api.get("a").await.unwrap();
    assert_eq!(got.spec.options.cidr, "10.0.0.0/24");
    assert_eq!(api.list(&ListParams::default()).await.unwrap().items.len(), 1);

    let mut upd = got.clone();
    upd.spec.options.cidr = "10.0.1.0/24".into();
    let upd = api.replace("a", &PostParams::default(), &upd).await.unwrap();
    let rv2: u64 = upd.metadata.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    assert_eq!(upd.metadata.generation, Some(2));

    let p = json!({"metadata": {"labels": {"team": "blue"}}});
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["team"], "blue");
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "a metadata-only change keeps the generation"
    );

    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/Options/cidr", "value": "10.0.2.0/24"}
    ]))
    .unwrap();
    let patched = api
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.spec.options.cidr, "10.0.2.0/24");

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api.get("a").await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, "danmnets.danm.k8s.io \"a\" not found");
        }
        e => panic!("expected 404, got {e}"),
    }
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_is_a_409_conflict_status() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    let api = danmnets(&client, "default");
    let first = api
        .create(&PostParams::default(), &danmnet("x", "10.0.0.0/24"))
        .await
        .unwrap();
    let mut newer = first.clone();
    newer.spec.options.cidr = "10.9.0.0/24".into();
    api.replace("x", &PostParams::default(), &newer).await.unwrap();

    let mut stale = first.clone();
    stale.spec.options.cidr = "10.8.0.0/24".into();
    match api
        .replace("x", &PostParams::default(), &stale)
        .await
        .unwrap_err()
    {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.is_failure());
            assert_eq!(
                s.message,
                "Operation cannot be fulfilled on danmnets.danm.k8s.io \"x\": the object has been modified; please apply your changes to the latest version and try again"
            );
        }
        e => panic!("expected 409, got {e}"),
    }
    // A merge patch carrying the stale resourceVersion is a precondition too.
    let p =
        json!({"metadata": {"resourceVersion": first.metadata.resource_version}, "spec": {"NetworkID": "y"}});
    let err = api
        .patch("x", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
    // Creating it again is AlreadyExists.
    let err = api
        .create(&PostParams::default(), &danmnet("x", "10.0.0.0/24"))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists"));
    assert_eq!(api.get("x").await.unwrap().spec.options.cidr, "10.9.0.0/24");
}

#[tokio::test]
async fn fifty_concurrent_conditional_updates_have_exactly_one_winner() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let base: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "race"}, "data": {"winner": "none"}})).unwrap();
    let base = api.create(&PostParams::default(), &base).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (api, mut obj, barrier) = (api.clone(), base.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            obj.data
                .as_mut()
                .unwrap()
                .insert("winner".into(), format!("w{i}"));
            barrier.wait().await;
            api.replace("race", &PostParams::default(), &obj)
                .await
                .map(|o| (i, o))
        }));
    }
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(w) => winners.push(w),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "Conflict" => conflicts += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 49));
    let (i, won) = &winners[0];
    let now = api.get("race").await.unwrap();
    assert_eq!(now.data.unwrap()["winner"], format!("w{i}"));
    assert_eq!(now.metadata.resource_version, won.metadata.resource_version);
    let base_rv: u64 = base.metadata.resource_version.unwrap().parse().unwrap();
    let won_rv: u64 = won.metadata.resource_version.clone().unwrap().parse().unwrap();
    assert_eq!(won_rv, base_rv + 1, "losers did not bump the resourceVersion");
}

async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<watcher::Event<danm_api::Network>>,
) -> watcher::Event<danm_api::Network> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("event in time")
        .unwrap()
}

#[tokio::test]
async fn a_watcher_sees_create_update_and_delete_in_order() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    let api = danmnets(&client, "default");
    let stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut stream = stream;
        while let Some(ev) = stream.try_next().await.unwrap() {
            let _ = tx.send(ev);
        }
    });
    // The initial list (empty) ends with InitDone.
    loop {
        if matches!(next(&mut rx).await, watcher::Event::InitDone) {
            break;
        }
    }
    api.create(&PostParams::default(), &danmnet("w", "10.0.0.0/24"))
        .await
        .unwrap();
    let p = json!({"spec": {"Options": {"cidr": "10.0.5.0/24"}}});
    api.patch("w", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    match next(&mut rx).await {
        watcher::Event::Apply(o) => assert_eq!(o.spec.options.cidr, "10.0.0.0/24"),
        e => panic!("expected the create, got {e:?}"),
    }
    match next(&mut rx).await {
        watcher::Event::Apply(o) => assert_eq!(o.spec.options.cidr, "10.0.5.0/24"),
        e => panic!("expected the update, got {e:?}"),
    }
    match next(&mut rx).await {
        watcher::Event::Delete(o) => assert_eq!(o.metadata.name.as_deref(), Some("w")),
        e => panic!("expected the delete, got {e:?}"),
    }
    task.abort();
}

#[tokio::test]
async fn a_watch_from_a_compacted_resource_version_gets_410_gone() {
    let lab = LabServer::start(LabOptions {
        history: 16,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = lab.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c0"}})).unwrap(),
        )
        .await
        .unwrap();
    for i in 1..40 {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let rv = first.metadata.resource_version.unwrap();
    let mut s = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match s.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

#[tokio::test]
async fn a_label_selected_watch_turns_relabelling_into_added_and_deleted() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let wp = WatchParams::default().labels("app in (web),tier!=db");
    let mut s = api.watch(&wp, &rv).await.unwrap().boxed();
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "l", "labels": {"app": "other"}}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let relabel = |v: &str| json!({"metadata": {"labels": {"app": v}}});
    api.patch("l", &PatchParams::default(), &Patch::Strategic(relabel("web")))
        .await
        .unwrap();
    api.patch("l", &PatchParams::default(), &Patch::Merge(relabel("none")))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        match tokio::time::timeout(Duration::from_secs(10), s.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "DELETED"]);
    let listed = api.list(&ListParams::default().labels("app=none")).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let listed = api
        .list(&ListParams::default().fields("metadata.name=l"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let listed = api
        .list(&ListParams::default().fields("metadata.name!=l"))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile: {0}")]
struct ReconcileError(#[from] kube::Error);

#[tokio::test]
async fn a_controller_reconciles_danmnets_against_the_lab() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    let api = danmnets(&client, "default");
    // The controller labels every DanmNet with its NetworkType.
    async fn reconcile(
        net: Arc<danm_api::Network>,
        api: Arc<Api<danm_api::Network>>,
    ) -> Result<Action, ReconcileError> {
        let ty = net.spec.network_type.clone();
        if net.metadata.labels.as_ref().and_then(|l| l.get("network-type")) != Some(&ty) {
            let p = json!({"metadata": {"labels": {"network-type": ty}}});
            api.patch(
                net.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(&p),
            )
            .await?;
        }
        Ok(Action::await_change())
    }
    let ctl = Controller::new_with(
        api.clone(),
        watcher::Config::default(),
        danm_api::NetworkKind::DanmNet,
    )
    .run(
        reconcile,
        |_, _, _| Action::requeue(Duration::from_millis(200)),
        Arc::new(api.clone()),
    )
    .for_each(|_| async {});
    let ctl = tokio::spawn(ctl);
    api.create(&PostParams::default(), &danmnet("c1", "10.0.0.0/24"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &danmnet("c2", "10.0.1.0/24"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let labelled = api
            .list(&ListParams::default().labels("network-type=macvlan"))
            .await
            .unwrap();
        if labelled.items.len() == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "controller did not reconcile both objects"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctl.abort();
}

#[tokio::test]
async fn an_object_with_a_finalizer_is_only_marked_until_the_finalizer_is_removed() {
    let lab = lab().await;
    let api: Api<ConfigMap> = Api::namespaced(lab.client().await.unwrap(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "f", "finalizers": ["danm.k8s.io/test"]}}))
            .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let marked = api.get("f").await.unwrap();
    assert!(marked.metadata.deletion_timestamp.is_some());
    let p = json!({"metadata": {"finalizers": null}});
    api.patch("f", &PatchParams::default(), &Patch::Merge(&p))
        .await
        .unwrap();
    assert!(matches!(api.get("f").await.unwrap_err(), kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let lab = lab().await;
    let client = lab.client().await.unwrap();
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "gone"}})).unwrap(),
    )
    .await
    .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "gone");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
    )
    .await
    .unwrap();
    nss.delete("gone", &DeleteParams::default()).await.unwrap();
    assert!(matches!(api.get("c").await.unwrap_err(), kube::Error::Api(s) if s.code == 404));
    // And nothing can be created in a namespace that does not exist.
    let err = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 404 && s.message == "namespaces \"gone\" not found")
    );
}

async fn raw(
    lab: &danm_lab::LabHandle,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let client = lab.client().await.unwrap();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body.as_bytes().to_vec())
        .unwrap();
    match client.request_text(req).await {
        Ok(t) => (200, serde_json::from_str(&t).unwrap_or(serde_json::Value::Null)),
        Err(kube::Error::Api(s)) => (s.code, serde_json::to_value(&*s).unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

#[tokio::test]
async fn bad_requests_get_status_errors() {
    let lab = lab().await;
    let json = "application/json";
    let (code, s) = raw(
        &lab,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json,
        "{not json",
    )
    .await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let (code, s) = raw(&lab, "GET", "/apis/nope.example.com/v1/widgets", json, "").await;
    assert_eq!((code, s["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) = raw(&lab, "GET", "/api/v1/namespaces/default/widgets", json, "").await;
    assert_eq!(code, 404);
    let wrong_kind = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
    let (code, s) = raw(
        &lab,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json,
        wrong_kind,
    )
    .await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let nameless = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#;
    let (code, s) = raw(
        &lab,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json,
        nameless,
    )
    .await;
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")));
    let (code, _) = raw(
        &lab,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/none",
        "text/plain",
        "{}",
    )
    .await;
    assert_eq!(code, 415);
    let (code, _) = raw(
        &lab,
        "PUT",
        "/api/v1/namespaces/default/configmaps/none",
        json,
        "[1,2]",
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = raw(
        &lab,
        "GET",
        "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20b",
        json,
        "",
    )
    .await;
    assert_eq!(code, 400);
    // The server is still healthy.
    let (code, _) = raw(&lab, "GET", "/api/v1/namespaces", json, "").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn injected_faults_fail_exactly_the_next_writes() {
    let lab = lab().await;
    let api: Api<ConfigMap> = Api::namespaced(lab.client().await.unwrap(), "default");
    lab.inject(Fault::fail_writes("configmaps", 2, 500));
    let cm = |n: &str| serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": n}})).unwrap();
    for n in ["a", "b"] {
        let err = api.create(&PostParams::default(), &cm(n)).await.unwrap_err();
        assert!(matches!(err, kube::Error::Api(s) if s.code == 500 && s.reason == "InternalError"));
    }
    api.create(&PostParams::default(), &cm("c")).await.unwrap();
    lab.inject(Fault::fail_writes("configmaps", 1, 409));
    let err = api.create(&PostParams::default(), &cm("d")).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"));
    lab.inject(Fault::latency("configmaps", Duration::from_millis(150)));
    let t = std::time::Instant::now();
    api.get("c").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    lab.clear_faults();
}

#[tokio::test]
async fn a_persistent_lab_keeps_its_objects_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LabOptions {
        state_dir: Some(dir.path().into()),
        ..Default::default()
    };
    let lab = LabServer::start(opts.clone()).await.unwrap();
    let client = lab.client().await.unwrap();
    install_crds(&client).await;
    let created = danmnets(&client, "default")
        .create(&PostParams::default(), &danmnet("p", "10.0.0.0/24"))
        .await
        .unwrap();
    let cm = serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": "gone"}})).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm).await.unwrap();
    cms.delete("gone", &DeleteParams::default()).await.unwrap();
    let rv_before = lab.resource_version();
    lab.shutdown().await;

    let lab = LabServer::start(opts).await.unwrap();
    let client = lab.client().await.unwrap();
    let again = danmnets(&client, "default").get("p").await.unwrap();
    assert_eq!(again.metadata.uid, created.metadata.uid);
    assert_eq!(again.spec.options.cidr, "10.0.0.0/24");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert!(matches!(cms.get("gone").await.unwrap_err(), kube::Error::Api(s) if s.code == 404));
    let mut next = again.clone();
    next.spec.network_id = "q".into();
    let next = danmnets(&client, "default")
        .replace("p", &PostParams::default(), &next)
        .await
        .unwrap();
    let rv: u64 = next.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > rv_before, "resourceVersions keep growing after a restart");
}

#[tokio::test]
async fn a_tls_lab_with_a_token_rejects_anonymous_requests() {
    let lab = LabServer::start(LabOptions {
        tls: true,
        token: Some("s3cret".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(lab.url().starts_with("https://"));
    let client = lab.client().await.unwrap();
    let nss: Api<Namespace> = Api::all(client);
    assert!(nss.get("default").await.is_ok());
    // Same server, no token.
    let mut cfg = kube::Config::new(lab.url().parse().unwrap());
    cfg.root_cert = Some(vec![pem_to_der(lab.ca_pem().unwrap())]);
    let anon: Api<Namespace> = Api::all(kube::Client::try_from(cfg).unwrap());
    assert!(matches!(anon.get("default").await.unwrap_err(), kube::Error::Api(s) if s.code == 401));
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

#[tokio::test]
async fn manifests_applied_at_start_make_the_danm_crds_servable() {
    let lab = lab().await;
    let crds = danm_testkit::fixtures::workspace_dir().join("deploy/crds");
    let applied = lab.apply_manifests(&crds).unwrap();
    assert!(
        applied.contains(&"customresourcedefinition/danmnets.danm.k8s.io".to_string()),
        "{applied:?}"
    );
    // Applying again replaces instead of failing.
    assert_eq!(lab.apply_manifests(&crds).unwrap(), applied);
    let client = lab.client().await.unwrap();
    let created = danmnets(&client, "default")
        .create(&PostParams::default(), &danmnet("m", "10.0.0.0/24"))
        .await;
    assert_eq!(created.unwrap().spec.options.cidr, "10.0.0.0/24");
}
