//! Fuzzes the webhook's review path: an AdmissionReview body decoded, judged and answered by
//! [`danm_webhook::Webhook::handle`] on each endpoint (`/netvalidation`, `/confvalidation`, `/netdeletion`) in
//! both IPAM modes, against an in-memory cluster holding a TenantConfig with VNI profiles, DanmEps and a block.
//! The plugins' rules run as their Rust code (the same code the `.wasm` files are built from), so each input costs
//! no wasm instance.
//!
//! Input: one byte choosing the endpoint and the IPAM mode, then the request body.
#![no_main]

use std::sync::{Arc, OnceLock};

use danm_core::ipam::blocks::IpamMode;
use danm_webhook::cluster::MemoryCluster;
use danm_webhook::validator::NativeValidator;
use danm_webhook::{Endpoint, Webhook};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn objects() -> &'static Vec<Value> {
    static OBJECTS: OnceLock<Vec<Value>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let profile = |name: &str, ty: &str, range: &str| {
            json!({"name": name, "vniType": ty, "vniRange": range, "alloc": danm_core::vni::fresh_vni_alloc()})
        };
        vec![
            json!({"apiVersion": "danm.k8s.io/v1", "kind": "TenantConfig", "metadata": {"name": "tconf"},
                "hostDevices": [profile("ens4", "vlan", "200-210"), profile("ens5", "vxlan", "1000-1010,2000")],
                "networkIds": {"macvlan": "mv", "ipvlan": "internal"}}),
            json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
                "metadata": {"name": "pod1-ext", "namespace": "default"},
                "spec": {"NetworkName": "ext", "Pod": "pod1", "apiType": "DanmNet", "Interface": {"Name": "eth0"}}}),
            json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmEp",
                "metadata": {"name": "pod2-cn", "namespace": "other"},
                "spec": {"NetworkName": "cn", "Pod": "pod2", "apiType": "ClusterNetwork", "Interface": {"Name": "eth1"}}}),
            json!({"apiVersion": "danm.k8s.io/v1", "kind": "DanmIpBlock",
                "metadata": {"name": "dn.default.ext.v4.0a000000-26"},
                "spec": {"network": "DanmNet default/ext", "cidr": "10.0.0.0/26", "node": "n1", "owners": {"5": "pod1-ext"}}}),
        ]
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let endpoint = match selector % 3 {
        0 => Endpoint::NetValidation,
        1 => Endpoint::ConfValidation,
        _ => Endpoint::NetDeletion,
    };
    let mode = if selector & 0x80 == 0 {
        IpamMode::Bitmap
    } else {
        IpamMode::Blocks
    };
    // A fresh cluster per input: the VNI bookkeeping writes the TenantConfig, and each run must start equal.
    let cluster = Arc::new(MemoryCluster::new(objects().clone()).expect("the fixed objects are valid"));
    let webhook = Webhook::new(cluster, Arc::new(NativeValidator))
        .with_ipam_mode(mode)
        .with_seed(1);
    if let Ok(handled) = runtime().block_on(webhook.handle(endpoint, body)) {
        // Every answer is an AdmissionReview whose response says allowed or not, with a patch only when allowed.
        let r = &handled.response;
        assert_eq!(r["kind"], "AdmissionReview", "{r}");
        assert!(r["response"]["allowed"].is_boolean(), "{r}");
        assert!(handled.verdict.allowed || handled.verdict.patch.is_empty(), "{r}");
    }
});
