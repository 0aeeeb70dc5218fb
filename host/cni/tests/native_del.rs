//! DEL of an interface the host created itself: the DanmEp written by ADD records it, so DEL removes the link without
//! asking the backend plugin again; a DanmEp without the record (DANM's, or an older danm's) is still translated.
//! Flows on the recording netlink fake against the in-process lab API server and the real plugins.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::lab::{Call, Services, ctx, lab, plugins};
use danm_api::{DanmEp, NetworkKind};
use danm_cni::ipam::Retry;
use danm_cni::native::{NATIVE_EP_ANNOTATION, Sysfs};
use danm_cni::run::dispatch;
use danm_cni::translate::{TranslateError, TranslateRequest, Translator};
use danm_netlink::{FakeNetlink, Netlink, Netns};
use kube::api::PostParams;
use serde_json::json;

const NS: &str = "default";
const NETNS: &str = "/var/run/netns/nativedel";

/// The real plugins, counting translations.
struct Counting {
    inner: Arc<dyn Translator>,
    translations: AtomicUsize,
}

impl Translator for Counting {
    fn serves(&self, t: &str) -> bool {
        self.inner.serves(t)
    }
    fn needs_ipam(&self, t: &str) -> bool {
        self.inner.needs_ipam(t)
    }
    fn needs_device_pool(&self, t: &str) -> bool {
        self.inner.needs_device_pool(t)
    }
    fn translate(&self, t: &str, req: &TranslateRequest) -> Result<String, TranslateError> {
        self.translations.fetch_add(1, Ordering::SeqCst);
        self.inner.translate(t, req)
    }
    fn validate(
        &self,
        t: &str,
        network_json: &str,
    ) -> Result<Vec<danm_api::validation::Violation>, TranslateError> {
        self.inner.validate(t, network_json)
    }
}

#[tokio::test]
async fn del_of_a_native_interface_needs_no_translation_and_an_unrecorded_danmep_is_still_translated() {
    let Some(real) = plugins() else {
        common::skip_without_plugins();
        return;
    };
    let lab = lab().await;
    let counting = Arc::new(Counting {
        inner: real,
        translations: AtomicUsize::new(0),
    });
    let fake = Arc::new(FakeNetlink::new());
    fake.add_device(&Netns::Host, "ens1", 1500);
    fake.add_netns(Netns::path(NETNS));
    let tmp = tempfile::tempdir().unwrap();
    let svc = Services {
        api: lab.cni.clone(),
        netlink: fake.clone(),
        translator: counting.clone(),
        sysfs: Sysfs {
            root: tmp.path().join("sys"),
        },
        kubelet_root: tmp.path().join("kubelet"),
        retry: Retry::default(),
        delegates: Arc::new(danm_cni::delegate::ProcessRunner),
    };
    lab.network(
        NetworkKind::DanmNet,
        NS,
        "mv",
        json!({"NetworkID": "mv", "NetworkType": "macvlan", "Options": {"host_device": "ens1", "cidr": "10.44.0.0/24"}}),
    )
    .await;
    let pod_links = || async {
        fake.links(&Netns::path(NETNS))
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.name != "lo")
            .count()
    };

    // Recorded: ADD translates once and marks the DanmEp; DEL translates nothing and removes the link.
    lab.pod(NS, "a", Some(json!([{"network": "mv", "ip": "dynamic"}])), &[])
        .await;
    dispatch(ctx(&svc, &Call::new("ADD", NS, "a", "ca", NETNS)), Ok(()))
        .await
        .expect("ADD");
    assert_eq!(counting.translations.load(Ordering::SeqCst), 1);
    let eps = lab.eps(NS).await;
    assert_eq!(eps.len(), 1);
    let recorded = eps[0].metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        recorded.get(NATIVE_EP_ANNOTATION).map(String::as_str),
        Some("true")
    );
    assert_eq!(pod_links().await, 1);
    dispatch(ctx(&svc, &Call::new("DEL", NS, "a", "ca", NETNS)), Ok(()))
        .await
        .expect("DEL");
    assert_eq!(
        counting.translations.load(Ordering::SeqCst),
        1,
        "DEL asked no plugin"
    );
    assert_eq!(pod_links().await, 0);
    assert!(lab.eps(NS).await.is_empty());

    // Unrecorded (as DANM wrote DanmEps): DEL translates to learn that the interface is native, then removes it.
    lab.pod(NS, "b", Some(json!([{"network": "mv", "ip": "dynamic"}])), &[])
        .await;
    dispatch(ctx(&svc, &Call::new("ADD", NS, "b", "cb", NETNS)), Ok(()))
        .await
        .expect("ADD");
    let mut ep: DanmEp = lab.eps(NS).await.remove(0);
    ep.metadata.annotations = None;
    let eps: kube::Api<DanmEp> = kube::Api::namespaced(lab.client.clone(), NS);
    eps.replace(&ep.metadata.name.clone().unwrap(), &PostParams::default(), &ep)
        .await
        .unwrap();
    let before = counting.translations.load(Ordering::SeqCst);
    dispatch(ctx(&svc, &Call::new("DEL", NS, "b", "cb", NETNS)), Ok(()))
        .await
        .expect("DEL");
    assert_eq!(counting.translations.load(Ordering::SeqCst), before + 1);
    assert_eq!(pod_links().await, 0);
    assert!(lab.eps(NS).await.is_empty());
}
