//! Helpers shared by the lab's integration tests.
#![allow(dead_code)]

use danm_lab::{LabHandle, LabOptions, LabServer};
use kube::api::Api;

#[allow(unused_imports)] // not every test binary installs CRDs
pub use danm_testkit::lab::install_crds;

pub async fn lab() -> LabHandle {
    LabServer::start(LabOptions::default()).await.expect("lab starts")
}

pub fn danmnet(name: &str, cidr: &str) -> danm_api::Network {
    let spec = danm_api::NetworkSpec {
        network_id: name.to_string(),
        network_type: "macvlan".to_string(),
        options: danm_api::NetworkOptions {
            cidr: cidr.to_string(),
            ..Default::default()
        },
        ..Default::default()
    };
    danm_api::Network::new(danm_api::NetworkKind::DanmNet, Some("default"), name, spec)
}

pub fn danmnets(client: &kube::Client, ns: &str) -> Api<danm_api::Network> {
    Api::namespaced_with(client.clone(), ns, &danm_api::NetworkKind::DanmNet)
}
