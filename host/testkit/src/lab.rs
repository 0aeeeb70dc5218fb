//! A lab API server for a test, holding danm's CRDs as `deploy/crds` defines them.

use danm_lab::{LabHandle, LabOptions, LabServer};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};

/// Starts a lab API server with default options and installs danm's CRDs into it.
pub async fn with_crds() -> (LabHandle, kube::Client) {
    let lab = LabServer::start(LabOptions::default())
        .await
        .expect("lab server starts");
    let client = lab.client().await.expect("lab client");
    install_crds(&client).await;
    (lab, client)
}

/// Installs the real danm CRDs (generated from danm-api's types) through `client`.
pub async fn install_crds(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (file, crd) in danm_api::crd::all() {
        let crd: CustomResourceDefinition =
            serde_json::from_value(crd).unwrap_or_else(|e| panic!("{file}: {e}"));
        crds.create(&PostParams::default(), &crd)
            .await
            .unwrap_or_else(|e| panic!("CRD {file} installs: {e}"));
    }
}
