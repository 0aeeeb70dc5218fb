//! Delegated interfaces: version negotiation, kept results, prevResult, deadlines and rollback.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_gets_its_own_add_result_as_prev_result_for_check_and_del() {
    let Some(w) = world().await else { return };
    let d = delegates(&w);
    let dir = d.dir.path();
    // Answers ADD with `added`; every call's stdin is kept by the fake plugins.
    let added = json!({"cniVersion":"1.0.0","interfaces":[{"name":"br-rec"},{"name":"eth0","sandbox":"/x"}],
                       "ips":[{"address":"10.88.0.9/24","interface":1}]});
    w.plugins
        .add("recorder", FakePlugin::adding(Answer::Print(added.clone())));
    static_conf(dir, "recorder", "recorder", "1.0.0");
    let net = w
        .danmnet(
            "recorder",
            json!({"NetworkID":"recorder","NetworkType":"recorder"}),
        )
        .await;
    w.pod("p30", json!([{"network":"recorder"}])).await;
    let stdin = |cmd: &str| -> Value { w.plugins.stdin("recorder", cmd, "eth0").expect("called") };
    let kept = dir.join("results/c30/eth0.json");

    w.run(&d.call(&w, "ADD", "p30", "c30", 10)).await.unwrap();
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(
        on_disk, added,
        "the delegate's own result is kept, as it printed it"
    );
    // The delegate would have made the interface; the fake kernel gets it here.
    let link = danm_netlink::NewLink::macvlan("eth0", "ens1", MacvlanMode::Bridge)
        .in_netns(w.pod_ns.clone())
        .up();
    w.fake.create_link(&Netns::Host, &link).await.unwrap();
    let addr = danm_netlink::NewAddress::new("10.88.0.9/24".parse().unwrap());
    w.fake.add_address(&w.pod_ns, "eth0", &addr).await.unwrap();

    w.run(&d.call(&w, "CHECK", "p30", "c30", 10)).await.unwrap();
    let check = stdin("CHECK");
    assert_eq!(
        check["prevResult"], added,
        "CHECK gets the delegate's ADD result: {check}"
    );
    assert_eq!(check["type"], "recorder");
    w.plugins
        .set_check("recorder", Answer::Fail(11, "deliberate check failure".into()));
    let (code, msg) = code_of(w.run(&d.call(&w, "CHECK", "p30", "c30", 10)).await);
    assert_eq!(code, codes::DANM_FAILURE, "{msg}");
    assert!(
        msg.contains("deliberate check failure") && msg.contains("eth0"),
        "{msg}"
    );

    w.run(&d.call(&w, "DEL", "p30", "c30", 10)).await.unwrap();
    assert_eq!(stdin("DEL")["prevResult"], added, "DEL gets it too");
    assert!(
        !kept.exists() && !dir.join("results/c30").exists(),
        "DEL forgets the result"
    );
    w.assert_nothing_left(&[&net]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_delegate_gets_its_result_and_it_is_not_kept() {
    let Some(w) = world().await else { return };
    let d = delegates(&w);
    let ok = w
        .danmnet(
            "okplugin",
            json!({"NetworkID":"okplugin","NetworkType":"okplugin"}),
        )
        .await;
    let f = w
        .danmnet("failing", json!({"NetworkID":"failing","NetworkType":"failing"}))
        .await;
    w.pod("p31", json!([{"network":"okplugin"},{"network":"failing"}]))
        .await;
    let (code, msg) = code_of(w.run(&d.call(&w, "ADD", "p31", "c31", 10)).await);
    assert_eq!(code, codes::DELEGATE, "{msg}");
    assert!(d.calls().contains(&"DEL eth0".to_owned()), "{:?}", d.calls());
    assert!(
        !d.dir.path().join("results/c31").exists(),
        "no result is kept for a failed ADD"
    );
    w.assert_nothing_left(&[&ok, &f]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_delegate_in_the_middle_of_three_gets_its_del_and_everything_is_rolled_back() {
    let Some(w) = world().await else { return };
    let d = delegates(&w);
    let a = w.macvlan("a", json!({})).await;
    let f = w
        .danmnet(
            "failing",
            json!({"NetworkID":"failing","NetworkType":"failing",
                                                                       "Options":{"cidr":"10.13.0.0/24"}}),
        )
        .await;
    let ok = w
        .danmnet(
            "okplugin",
            json!({"NetworkID":"okplugin","NetworkType":"okplugin"}),
        )
        .await;
    w.pod(
        "p11",
        json!([{"network":"a","ip":"dynamic"},{"network":"failing","ip":"dynamic"},
                {"network":"okplugin"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&d.call(&w, "ADD", "p11", "c11", 10)).await);
    assert_eq!(code, codes::DELEGATE, "{msg}");
    assert!(msg.contains("deliberate delegate failure"), "{msg}");
    let calls = d.calls();
    assert!(
        calls.contains(&"ADD eth1".to_owned()) && calls.contains(&"DEL eth1".to_owned()),
        "B16: {calls:?}"
    );
    assert!(
        calls.contains(&"DEL eth2".to_owned()),
        "the successful delegate is rolled back too: {calls:?}"
    );
    w.assert_nothing_left(&[&a, &f, &ok]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_past_the_deadline_is_cancelled_and_rolled_back() {
    let Some(w) = world().await else { return };
    let d = delegates(&w);
    let a = w.macvlan("a", json!({})).await;
    let s = w
        .danmnet(
            "slow",
            json!({"NetworkID":"slow","NetworkType":"slow",
                                                                   "Options":{"cidr":"10.14.0.0/24"}}),
        )
        .await;
    w.pod(
        "p12",
        json!([{"network":"a","ip":"dynamic"},{"network":"slow","ip":"dynamic"}]),
    )
    .await;
    let started = std::time::Instant::now();
    let (code, msg) = code_of(w.run(&d.call(&w, "ADD", "p12", "c12", 1)).await);
    assert_eq!(code, codes::DEADLINE_EXCEEDED, "{msg}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the slow delegate was not cancelled"
    );
    assert!(d.calls().contains(&"DEL eth1".to_owned()), "{:?}", d.calls());
    w.assert_nothing_left(&[&a, &s]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegates_address_is_recorded_in_its_danmep_and_del_runs_the_delegate() {
    let Some(w) = world().await else { return };
    let d = delegates(&w);
    w.danmnet(
        "okplugin",
        json!({"NetworkID":"okplugin","NetworkType":"okplugin"}),
    )
    .await;
    w.pod("p13", json!([{"network":"okplugin"}])).await;
    let out: Value = serde_json::from_str(
        &w.run(&d.call(&w, "ADD", "p13", "c13", 10))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out["ips"][0]["address"], "10.88.0.9/24");
    assert_eq!(w.lab.eps(NS).await[0].spec.interface.address, "10.88.0.9/24");
    w.run(&d.call(&w, "DEL", "p13", "c13", 10)).await.unwrap();
    assert_eq!(d.calls(), ["ADD eth0", "DEL eth0"]);
    assert!(w.lab.eps(NS).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_runs_at_the_highest_version_it_shares_with_danm_and_its_result_is_converted() {
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    versioned_plugin(&w, "upto100", &["0.3.1", "0.4.0", "1.0.0"], "10.89.0.7/24");
    for id in ["va", "vb"] {
        std::fs::write(
            dir.path().join(format!("{id}.conf")),
            format!(r#"{{"cniVersion":"1.1.0","name":"{id}","type":"upto100"}}"#),
        )
        .unwrap();
        w.danmnet(id, json!({"NetworkID": id, "NetworkType": "upto100"}))
            .await;
    }
    w.pod("pv2", json!([{"network":"va"},{"network":"vb"}])).await;
    let config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","cniDir": dir.path()});
    let mut add = w.call("ADD", "pv2", "cv2");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = config.clone();
    let out: Value = serde_json::from_str(&w.run(&add).await.unwrap().unwrap()).unwrap();
    assert_eq!(out["cniVersion"], "1.1.0", "{out}");
    assert_eq!(out["ips"][0]["address"], "10.89.0.7/24", "{out}");
    assert!(
        out["ips"][0].get("version").is_none(),
        "converted to the 1.x shape: {out}"
    );
    let mut del = w.call("DEL", "pv2", "cv2");
    del.cni_path = add.cni_path.clone();
    del.config = config;
    w.run(&del).await.unwrap();
    let mut calls = w.plugins.calls_of("upto100");
    calls.sort();
    assert_eq!(
        calls,
        [
            "ADD eth0 1.0.0",
            "ADD eth1 1.0.0",
            "DEL eth0 1.0.0",
            "DEL eth1 1.0.0",
            "VERSION  1.1.0"
        ],
        "VERSION is asked once for the binary, then ADD and DEL run at 1.0.0"
    );
    assert!(w.lab.eps(NS).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_that_shares_no_version_with_danm_fails_with_code_7_naming_both_lists() {
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    versioned_plugin(&w, "future", &["1.2.0", "2.0.0"], "10.89.0.8/24");
    std::fs::write(
        dir.path().join("fut.conf"),
        r#"{"cniVersion":"1.1.0","name":"fut","type":"future"}"#,
    )
    .unwrap();
    let a = w.macvlan("a", json!({})).await;
    let fut = w
        .danmnet(
            "fut",
            json!({"NetworkID":"fut","NetworkType":"future","Options":{"cidr":"10.15.0.0/24"}}),
        )
        .await;
    w.pod(
        "pv3",
        json!([{"network":"a","ip":"dynamic"},{"network":"fut","ip":"dynamic"}]),
    )
    .await;
    let mut add = w.call("ADD", "pv3", "cv3");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","cniDir": dir.path()});
    let (code, msg) = code_of(w.run(&add).await);
    assert_eq!(code, codes::INVALID_NETWORK_CONFIG, "{msg}");
    assert!(msg.contains("incompatible CNI version"), "{msg}");
    assert!(
        msg.contains(r#"plugin future supports ["1.2.0", "2.0.0"]"#),
        "{msg}"
    );
    assert!(
        msg.contains("danm asked for 1.1.0") && msg.contains(r#""1.0.0", "1.1.0"]"#),
        "{msg}"
    );
    let calls = w.plugins.calls_of("future");
    assert!(
        calls.iter().all(|c| !c.starts_with("ADD")),
        "never run at a version it does not speak: {calls:?}"
    );
    w.assert_nothing_left(&[&a, &fut]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegate_without_a_usable_version_answer_runs_at_the_requested_version_and_an_old_one_at_0_1_0() {
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // Prints nothing for VERSION: run at the requested version; it would refuse by itself if it could not.
    plugin_answering_version(&w, dir.path(), "silent", Versions::Silent);
    // libcni's rule: "unknown CNI_COMMAND: VERSION" means the plugin only knows 0.1.0.
    plugin_answering_version(&w, dir.path(), "ancient", Versions::Unknown);
    for name in ["silent", "ancient"] {
        w.danmnet(name, json!({"NetworkID": name, "NetworkType": name}))
            .await;
    }
    w.pod("pv4", json!([{"network":"silent"},{"network":"ancient"}]))
        .await;
    let mut add = w.call("ADD", "pv4", "cv4");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = json!({"cniVersion":"1.1.0","name":"danm","type":"danm","cniDir": dir.path()});
    w.run(&add).await.unwrap();
    assert_eq!(w.plugins.calls_of("silent"), ["VERSION  1.0.0", "ADD eth0 1.0.0"]);
    assert_eq!(
        w.plugins.calls_of("ancient"),
        ["VERSION  1.0.0", "ADD eth1 0.1.0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_delegate_gets_fakeipam_with_the_address_danm_allocated_in_place_of_its_own_ipam() {
    let Some(w) = world().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // A delegate that answers with the address fakeipam would echo; the config it read is kept.
    w.plugins.add(
        "recorder",
        FakePlugin::adding(Answer::Print(
            json!({"cniVersion":"1.0.0","ips":[{"address":"10.16.0.1/24"}]}),
        ))
        .versions(Versions::Supports(vec!["1.0.0".into()])),
    );
    std::fs::write(
        dir.path().join("rec.conf"),
        r#"{"cniVersion":"1.0.0","name":"rec","type":"recorder","ipam":{"type":"host-local","subnet":"192.168.0.0/24"}}"#,
    )
    .unwrap();
    w.danmnet(
        "rec",
        json!({"NetworkID":"rec","NetworkType":"recorder","Options":{"cidr":"10.16.0.0/24"}}),
    )
    .await;
    w.pod("p-rec", json!([{"network":"rec","ip":"dynamic"}])).await;
    let mut add = w.call("ADD", "p-rec", "c-rec");
    add.cni_path = vec![dir.path().display().to_string()];
    add.config = json!({"cniVersion":"1.0.0","name":"danm","type":"danm","cniDir": dir.path()});
    w.run(&add).await.unwrap();
    let given = w.plugins.stdin("recorder", "ADD", "eth0").expect("ADD ran");
    assert_eq!(given["type"], "recorder");
    assert_eq!(
        given["ipam"],
        json!({"type":"fakeipam","ips":[{"ipcidr":"10.16.0.1/24","version":4}]}),
        "its own IPAM is replaced by fakeipam carrying danm's address: {given}"
    );
    let mut del = w.call("DEL", "p-rec", "c-rec");
    del.cni_path = add.cni_path.clone();
    del.config = add.config.clone();
    w.run(&del).await.unwrap();
}
