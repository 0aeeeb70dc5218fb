//! Helpers shared by the lab's integration tests.
#![allow(dead_code)]

use danm_lab::{LabHandle, LabOptions, LabServer};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

pub async fn lab() -> LabHandle {
    LabServer::start(LabOptions::default()).await.expect("lab starts")
}

/// Installs the real danm CRDs (from danm-api) into the lab.
pub async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, crd) in danm_api::crd::all() {
        let crd: CustomResourceDefinition =
            serde_json::from_value(crd).unwrap_or_else(|e| panic!("{file}: {e}"));
        crds.create(&PostParams::default(), &crd)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
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
