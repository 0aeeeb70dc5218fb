//! ADD: interfaces, names, routes, results and the rollback of failed ADDs.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_connects_two_macvlan_networks_in_annotation_order_and_del_leaves_nothing() {
    let Some(w) = world().await else { return };
    let mgmt = w.macvlan("mgmt", json!({})).await;
    let ext = w
        .danmnet(
            "ext",
            json!({"NetworkID":"ext","NetworkType":"macvlan","Options":{"host_device":"ens1","cidr":"10.20.0.0/24",
                   "net6":"fd20::/64","container_prefix":"ext","routes":{"10.30.0.0/24":"10.20.0.1"},"rt_tables":10}}),
        )
        .await;
    w.lab
        .pod(
            NS,
            "p1",
            Some(json!([{"network":"mgmt","ip":"dynamic"},
                        {"network":"ext","ip":"dynamic","ip6":"dynamic","proutes":{"10.40.0.0/24":"10.20.0.1"}}])),
            &[("app", "web")],
        )
        .await;
    let out = w.run(&w.call("ADD", "p1", "c1")).await.unwrap().unwrap();
    let result: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], "eth0");
    assert_eq!(result["interfaces"][1]["name"], "ext1");
    assert_eq!(result["ips"][0]["address"], "10.10.0.1/24");
    assert_eq!(result["ips"][0]["interface"], 0);
    assert_eq!(
        result["ips"][1]["address"], "10.20.0.2/24",
        "the gateway .1 is reserved"
    );
    assert_eq!(result["ips"][1]["interface"], 1);
    assert_eq!(result["ips"][2]["address"], "fd20::1/64");

    // Links: macvlan directly in the pod netns on ens1, bridge mode, addresses, up.
    let eth0 = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert_eq!(
        eth0.kind,
        LinkKind::Macvlan {
            mode: MacvlanMode::Bridge
        }
    );
    assert!(eth0.up);
    let creates: Vec<_> = w
        .fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, NlCall::CreateLink { .. }))
        .collect();
    assert!(
        creates
            .iter()
            .all(|c| matches!(c, NlCall::CreateLink { link, .. } if link.netns == Some(w.pod_ns.clone())))
    );
    assert!(
        !w.fake
            .calls()
            .iter()
            .any(|c| matches!(c, NlCall::MoveLink { .. })),
        "no create-then-move"
    );
    let addrs: Vec<String> = w
        .fake
        .addresses(&w.pod_ns, "ext1")
        .await
        .unwrap()
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    assert!(
        addrs.contains(&"10.20.0.2/24".to_owned()) && addrs.contains(&"fd20::1/64".to_owned()),
        "{addrs:?}"
    );
    assert!(
        w.fake
            .addresses(&w.pod_ns, "ext1")
            .await
            .unwrap()
            .iter()
            .filter(|a| a.addr.is_ipv6())
            .all(|a| a.nodad)
    );
    // Post-processing: sysctls, network routes in main, proutes in table 10 with the source rule.
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/all/disable_ipv6")
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/eth0/disable_ipv6")
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/ext1/accept_ra")
            .as_deref(),
        Some("0")
    );
    // Neighbours learn the IPv6 address at once (unsolicited neighbour advertisements when it comes up).
    assert_eq!(
        w.fake
            .sysctl_value(&w.pod_ns, "net/ipv6/conf/ext1/ndisc_notify")
            .as_deref(),
        Some("1")
    );
    let main = w.fake.routes(&w.pod_ns, TABLE_MAIN).await.unwrap();
    assert!(
        main.iter()
            .any(|r| r.dst.to_string() == "10.30.0.0/24" && r.dev.as_deref() == Some("ext1")),
        "{main:?}"
    );
    let t10 = w.fake.routes(&w.pod_ns, 10).await.unwrap();
    assert!(t10.iter().any(|r| r.dst.to_string() == "10.40.0.0/24"), "{t10:?}");
    let rules = w.fake.rules(&w.pod_ns).await.unwrap();
    assert!(
        rules
            .iter()
            .any(|r| r.table == 10 && r.from.map(|f| f.to_string()) == Some("10.20.0.0/24".into())),
        "{rules:?}"
    );

    // DanmEps: one per interface, labelled, recording pod, CID, netns, host, apiType.
    let eps = w.lab.eps(NS).await;
    assert_eq!(eps.len(), 2);
    for ep in &eps {
        let l = ep.metadata.labels.clone().unwrap();
        assert_eq!(l.get("app").map(String::as_str), Some("web"));
        assert_eq!(l.get(labels::CONTAINER_ID).map(String::as_str), Some("c1"));
        assert_eq!(ep.spec.cid, "c1");
        assert_eq!(ep.spec.pod, "p1");
        assert_eq!(ep.spec.netns, w.netns_path);
        assert_eq!(ep.spec.host, "node1");
        assert_eq!(ep.spec.api_type, "DanmNet");
        assert_eq!(ep.metadata.name.as_deref(), Some(ep.spec.endpoint_id.as_str()));
    }
    // network-status annotation.
    let pod = w.lab.get_pod(NS, "p1").await;
    let status: Value =
        serde_json::from_str(&pod.metadata.annotations.unwrap()[danm_api::NETWORK_STATUS_ANNOTATION])
            .unwrap();
    assert_eq!(status[0]["interface"], "eth0");
    assert_eq!(status[0]["default"], true);
    assert_eq!(status[1]["name"], "default/ext");

    // CHECK passes, then notices a missing interface.
    w.run(&w.call("CHECK", "p1", "c1")).await.unwrap();
    // The native links carry danm's link group, so DEL deletes them with its first kernel request, before it has
    // listed the DanmEps (and before any address is released).
    for ifname in ["eth0", "ext1"] {
        let link = w.fake.link(&w.pod_ns, ifname).await.unwrap();
        assert_eq!(link.group, danm_cni::native::NATIVE_LINK_GROUP, "{ifname}");
    }
    w.fake.clear_calls();
    // DEL removes everything, and again (idempotent).
    w.run(&w.call("DEL", "p1", "c1")).await.unwrap();
    assert_eq!(
        w.fake.mutations().first(),
        Some(&NlCall::DeleteLinkGroup {
            ns: w.pod_ns.clone(),
            group: danm_cni::native::NATIVE_LINK_GROUP
        }),
        "{:?}",
        w.fake.mutations()
    );
    assert!(
        !w.fake
            .mutations()
            .iter()
            .any(|c| matches!(c, NlCall::DeleteLink { .. } | NlCall::SetLink { .. })),
        "the group covered every link: none is deleted again by name {:?}",
        w.fake.mutations()
    );
    w.run(&w.call("DEL", "p1", "c1")).await.unwrap();
    w.assert_nothing_left(&[&mgmt, &ext]).await;
    assert!(
        !w.fake
            .rules(&w.pod_ns)
            .await
            .unwrap()
            .iter()
            .any(|r| r.table == 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_converted_to_every_supported_version() {
    let Some(w) = world().await else { return };
    w.macvlan("default", json!({})).await;
    w.lab.pod(NS, "pv", None, &[]).await;
    for (i, v) in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
        let cid = format!("cv{i}");
        let mut call = w.call("ADD", "pv", &cid);
        call.config = json!({"cniVersion": v, "name": "danm", "type": "danm"});
        let out: Value = serde_json::from_str(&w.run(&call).await.unwrap().unwrap()).unwrap();
        assert_eq!(out["cniVersion"], *v);
        assert_eq!(
            out["ips"][0]["version"].as_str(),
            v.starts_with("0.").then_some("4"),
            "{v}: {out}"
        );
        let mut del = w.call("DEL", "pv", &cid);
        del.config = call.config.clone();
        w.run(&del).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_annotation_the_namespace_default_danmnet_wins_over_the_clusternetwork() {
    let Some(w) = world().await else { return };
    w.macvlan("default", json!({})).await;
    w.lab
        .network(NetworkKind::ClusterNetwork, NS, "default",
                 json!({"NetworkID":"cdef","NetworkType":"macvlan","Options":{"host_device":"ens1","cidr":"10.99.0.0/24"}}))
        .await;
    w.pod("p2", json!([])).await;
    let out: Value =
        serde_json::from_str(&w.run(&w.call("ADD", "p2", "c2")).await.unwrap().unwrap()).unwrap();
    assert_eq!(out["ips"][0]["address"], "10.10.0.1/24");
    assert_eq!(w.lab.eps(NS).await[0].spec.api_type, "DanmNet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_annotation_and_no_default_network_is_refused() {
    let Some(w) = world().await else { return };
    w.lab.pod(NS, "p3", None, &[]).await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p3", "c3")).await);
    assert_eq!(code, codes::NETWORK_UNAVAILABLE);
    assert!(msg.contains("no suitable default network"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_tenants_refusal_and_unknown_networks_fail_before_anything_is_done() {
    let Some(w) = world().await else { return };
    let mgmt = w.macvlan("mgmt", json!({})).await;
    let cn = w
        .lab
        .network(
            NetworkKind::ClusterNetwork,
            NS,
            "only-a",
            json!({"NetworkID":"onlya","NetworkType":"macvlan","AllowedTenants":["a"],
                        "Options":{"host_device":"ens1","cidr":"10.50.0.0/24"}}),
        )
        .await;
    w.pod(
        "p4",
        json!([{"network":"mgmt","ip":"dynamic"},{"clusterNetwork":"only-a","ip":"dynamic"},
                {"network":"nope"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p4", "c4")).await);
    assert_eq!(code, codes::NETWORK_UNAVAILABLE);
    assert!(msg.contains("not in the AllowedTenants whitelist"), "{msg}");
    assert!(
        msg.contains("requested network:nope of type:DanmNet in namespace:default does not exist"),
        "{msg}"
    );
    w.assert_nothing_left(&[&mgmt, &cn]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_annotation_is_an_invalid_pod_request() {
    let Some(w) = world().await else { return };
    w.pod("p5", json!([{"network":"a","clusterNetwork":"b"}])).await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p5", "c5")).await);
    assert_eq!(code, codes::INVALID_POD_REQUEST);
    assert!(msg.contains("invalid number of network references:2"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_backend_plugin_fails_the_add_with_the_plugin_code() {
    let Some(w) = world().await else { return };
    if !w.svc.translator.serves("trap") {
        common::skip_without_plugins();
        return;
    }
    let mgmt = w.macvlan("mgmt", json!({})).await;
    let trap = w
        .danmnet(
            "trapnet",
            json!({"NetworkID":"trapnet","NetworkType":"trap","Options":{"cidr":"10.70.0.0/24"}}),
        )
        .await;
    w.pod(
        "p9",
        json!([{"network":"mgmt","ip":"dynamic"},{"network":"trapnet","ip":"dynamic"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p9", "c9")).await);
    assert_eq!(code, codes::PLUGIN, "{msg}");
    assert!(msg.contains("trap"), "{msg}");
    w.assert_nothing_left(&[&mgmt, &trap]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kernel_failure_on_one_of_three_interfaces_rolls_back_everything() {
    let Some(w) = world().await else { return };
    let a = w.macvlan("a", json!({})).await;
    let b = w.macvlan("b", json!({"cidr": "10.11.0.0/24"})).await;
    let c = w.macvlan("c", json!({"cidr": "10.12.0.0/24"})).await;
    w.fake.fail_when(
        |c| matches!(c, NlCall::AddAddress { link, .. } if link == "eth1"),
        22,
        None,
    );
    w.pod(
        "p10",
        json!([{"network":"a","ip":"dynamic"},{"network":"b","ip":"dynamic"},
                {"network":"c","ip":"dynamic"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p10", "c10")).await);
    assert_eq!(code, codes::KERNEL, "{msg}");
    assert!(msg.contains("interface:eth1"), "{msg}");
    w.assert_nothing_left(&[&a, &b, &c]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipvlan_uses_l2_mode_on_the_host_device_vlan_or_vxlan_link() {
    let Some(w) = world().await else { return };
    w.fake.add_device(&Netns::Host, "ext.500", 1500);
    w.fake.add_device(&Netns::Host, "vx_ext2", 1450);
    for (name, id, opts) in [
        (
            "plain",
            "plain",
            json!({"host_device":"ens1","cidr":"10.21.0.0/24"}),
        ),
        (
            "vlan",
            "ext",
            json!({"host_device":"ens1","vlan":500,"cidr":"10.22.0.0/24"}),
        ),
        (
            "vxlan",
            "ext2",
            json!({"host_device":"ens1","vxlan":50,"cidr":"10.23.0.0/24"}),
        ),
    ] {
        w.danmnet(
            name,
            json!({"NetworkID":id,"NetworkType":"ipvlan","Options":opts}),
        )
        .await;
    }
    w.pod(
        "p17",
        json!([{"network":"plain","ip":"dynamic"},{"network":"vlan","ip":"dynamic"},
                {"network":"vxlan","ip":"dynamic"}]),
    )
    .await;
    w.run(&w.call("ADD", "p17", "c17")).await.unwrap();
    let parents: Vec<String> = w
        .fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            NlCall::CreateLink { link, .. } => match link.kind {
                danm_netlink::NewLinkKind::Ipvlan { parent, mode } => {
                    assert_eq!(mode, IpvlanMode::L2);
                    Some(format!("{}@{parent}", link.name))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    let mut parents = parents;
    parents.sort();
    assert_eq!(parents, ["eth0@ens1", "eth1@ext.500", "eth2@vx_ext2"]);
    w.run(&w.call("DEL", "p17", "c17")).await.unwrap();
    assert!(w.pod_links().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_that_breaks_its_backends_rules_fails_add_with_the_violations_and_leaves_nothing() {
    let Some(w) = world().await else { return };
    // Created without the webhook, which would have refused it: an MTU no link can have.
    let bad = w.macvlan("badmtu", json!({"mtu": 10})).await;
    let good = w.macvlan("mgmt", json!({"cidr": "10.11.0.0/24"})).await;
    w.pod(
        "p-bad",
        json!([{"network":"mgmt","ip":"dynamic"},{"network":"badmtu","ip":"dynamic"}]),
    )
    .await;
    let (code, msg) = code_of(w.run(&w.call("ADD", "p-bad", "c-bad")).await);
    assert_eq!(code, codes::INVALID_NETWORK_CONFIG, "{msg}");
    assert!(
        msg.contains("badmtu") && msg.contains("mtu"),
        "the violation is listed: {msg}"
    );
    w.assert_nothing_left(&[&bad, &good]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_without_an_address_gets_no_routes_and_proutes_need_rt_tables() {
    let Some(w) = world().await else { return };
    // `ip: none` on a network with routes: nothing to route from, so no route is added (behaviour §4.10).
    w.macvlan(
        "routed",
        json!({"routes": {"10.70.0.0/24": "10.10.0.254"}, "rt_tables": 30}),
    )
    .await;
    // Policy routes on a network without rt_tables are ignored (DANM's rule).
    w.danmnet(
        "notable",
        json!({"NetworkID":"notable","NetworkType":"macvlan","Options":{"host_device":"ens1","cidr":"10.13.0.0/24"}}),
    )
    .await;
    w.pod(
        "p-none",
        json!([{"network":"routed","ip":"none"},
               {"network":"notable","ip":"dynamic","proutes":{"10.71.0.0/24":"10.13.0.1"}}]),
    )
    .await;
    w.run(&w.call("ADD", "p-none", "c-none")).await.unwrap();
    let routes = w.fake.routes(&w.pod_ns, danm_netlink::TABLE_MAIN).await.unwrap();
    assert!(
        !routes.iter().any(|r| r.dst.to_string() == "10.70.0.0/24"),
        "no route for an interface without an address: {routes:?}"
    );
    assert!(w.fake.routes(&w.pod_ns, 30).await.unwrap().is_empty());
    let rules = w.fake.rules(&w.pod_ns).await.unwrap();
    assert!(
        !rules
            .iter()
            .any(|r| r.from.is_some_and(|f| f.to_string().starts_with("10.13."))),
        "no policy rule without rt_tables: {rules:?}"
    );
    w.run(&w.call("DEL", "p-none", "c-none")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_danmep_records_the_pod_uid_and_the_infra_container_and_native_results_their_sandbox_and_mac() {
    let Some(w) = world().await else { return };
    w.macvlan("mgmt", json!({})).await;
    let pod = w.pod("p-ids", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    let out: Value = serde_json::from_str(
        &w.run(&w.call("ADD", "p-ids", "sandbox-7"))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    let ep = &w.lab.eps(NS).await[0];
    let uid = pod.metadata.uid.clone().unwrap();
    assert_ne!(uid, "sandbox-7");
    assert_eq!(ep.spec.pod_uid, uid, "PodUID is the pod's UID");
    assert_eq!(ep.spec.cid, "sandbox-7", "CID is the infra container's id");
    let ep_labels = ep.metadata.labels.clone().unwrap();
    assert_eq!(ep_labels[labels::POD_UID], uid);
    assert_eq!(ep_labels[labels::CONTAINER_ID], "sandbox-7");
    // The result of a host-made interface names its sandbox and the MAC the pod sees.
    let link = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert_eq!(out["interfaces"][0]["sandbox"], w.netns_path.as_str());
    assert_eq!(
        out["interfaces"][0]["mac"],
        link.mac.map(|m| m.to_string()).unwrap_or_default()
    );
    w.run(&w.call("DEL", "p-ids", "sandbox-7")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_types_are_case_insensitive_and_an_empty_one_is_ipvlan() {
    let Some(w) = world().await else { return };
    w.danmnet(
        "upper",
        json!({"NetworkID":"upper","NetworkType":"MacVlan","Options":{"host_device":"ens1","cidr":"10.14.0.0/24"}}),
    )
    .await;
    w.danmnet(
        "plain",
        json!({"NetworkID":"plain","Options":{"host_device":"ens1","cidr":"10.15.0.0/24"}}),
    )
    .await;
    w.pod(
        "p-types",
        json!([{"network":"upper","ip":"dynamic"},{"network":"plain","ip":"dynamic"}]),
    )
    .await;
    w.run(&w.call("ADD", "p-types", "c-types")).await.unwrap();
    let eth0 = w.fake.link(&w.pod_ns, "eth0").await.unwrap();
    assert!(matches!(eth0.kind, LinkKind::Macvlan { .. }), "{:?}", eth0.kind);
    let second = w
        .fake
        .links(&w.pod_ns)
        .await
        .unwrap()
        .into_iter()
        .find(|l| l.name != "lo" && l.name != "eth0")
        .unwrap();
    assert!(
        matches!(second.kind, LinkKind::Ipvlan { .. }),
        "{:?}",
        second.kind
    );
    w.run(&w.call("DEL", "p-types", "c-types")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_cannot_delete_its_danmep_leaves_the_addresses_to_whoever_removes_it() {
    // Found by `danm-lab chaos`: a rollback released the addresses of a DanmEp whose deletion had failed, so the
    // DEL, GC or reconciler that later removed the DanmEp released them a second time; in bitmap mode (no owner per
    // address) that frees an address another pod got in between.
    let Some(w) = world().await else { return };
    let net = w.macvlan("mgmt", json!({})).await;
    w.pod("p21", json!([{"network":"mgmt","ip":"dynamic"}])).await;
    w.fake
        .fail_when(|c| matches!(c, NlCall::AddAddress { .. }), 22, None);
    // The DanmEp's create goes through; its deletion by the rollback fails.
    w.lab
        .handle
        .inject(Fault::fail_writes("danmeps", 10, 500).after(1));
    let (code, msg) = code_of(w.run(&w.call("ADD", "p21", "c21")).await);
    assert_eq!(code, codes::KERNEL, "{msg}");
    w.lab.handle.clear_faults();
    w.fake.clear_failures();
    let eps = w.lab.eps(NS).await;
    assert_eq!(eps.len(), 1, "the DanmEp the rollback could not delete is there");
    let (alloc, _, owners) = w.lab.holdings(&net).await;
    if common::lab::ipam_mode() == "blocks" {
        assert_eq!(owners, 1, "its address is still owned by it");
    } else {
        assert_ne!(alloc, net.spec.options.alloc, "its address is still reserved");
    }
    // The DEL kubelet sends after a failed ADD removes the DanmEp and releases its address, once.
    w.run(&w.call("DEL", "p21", "c21")).await.unwrap();
    w.assert_nothing_left(&[&net]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_and_cluster_networks_give_addresses_and_take_them_back() {
    let Some(w) = world().await else { return };
    let tn = w
        .lab
        .network(
            NetworkKind::TenantNetwork,
            NS,
            "tenant",
            json!({"NetworkID":"tenant","NetworkType":"macvlan",
                   "Options":{"host_device":"ens1","cidr":"10.51.0.0/24"}}),
        )
        .await;
    let cn = w
        .lab
        .network(
            NetworkKind::ClusterNetwork,
            NS,
            "shared",
            json!({"NetworkID":"shared","NetworkType":"macvlan",
                   "Options":{"host_device":"ens1","cidr":"10.52.0.0/24"}}),
        )
        .await;
    w.pod(
        "p-tc",
        json!([{"tenantNetwork":"tenant","ip":"dynamic"},{"clusterNetwork":"shared","ip":"dynamic"}]),
    )
    .await;
    let out = w.run(&w.call("ADD", "p-tc", "c-tc")).await.unwrap().unwrap();
    assert!(out.contains("10.51.0.") && out.contains("10.52.0."), "{out}");
    for net in [&tn, &cn] {
        let (alloc, _, owners) = w.lab.holdings(net).await;
        assert!(
            alloc != net.spec.options.alloc || owners == 1,
            "{} holds the pod's address",
            net.name()
        );
    }
    w.run(&w.call("DEL", "p-tc", "c-tc")).await.unwrap();
    w.assert_nothing_left(&[&tn, &cn]).await;
}
