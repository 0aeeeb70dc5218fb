//! The local lab: an embedded Kubernetes-API-compatible server and a pod simulator.
//!
//! Start a server in-process with [`LabServer::start`]; the returned [`LabHandle`] gives its URL, kubeconfig and
//! a kube client, and injects faults or maps webhook services. The pod simulator ([`sim`]) turns pods into network
//! namespaces and runs a CNI config list on them exactly as kubelet/containerd do.
//!
//! ```
//! # #[tokio::main] async fn main() {
//! use danm_lab::{LabOptions, LabServer};
//! use k8s_openapi::api::core::v1::Namespace;
//!
//! let lab = LabServer::start(LabOptions::default()).await.unwrap();
//! let namespaces: kube::Api<Namespace> = kube::Api::all(lab.client().await.unwrap());
//! let demo: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": "demo"}})).unwrap();
//! namespaces.create(&Default::default(), &demo).await.unwrap();
//! assert_eq!(namespaces.get("demo").await.unwrap().metadata.name.as_deref(), Some("demo"));
//! # }
//! ```

pub mod kubeconfig;
pub mod server;
pub mod sim;
pub mod tls;

pub use server::admission::AdmissionConfig;
pub use server::fault::Fault;
pub use server::{LabError, LabHandle, LabOptions, LabServer};
pub mod bench;
pub mod chaos;
