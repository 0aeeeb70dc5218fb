//! The local lab: an embedded Kubernetes-API-compatible server and a pod simulator.
//!
//! Start a server in-process with [`LabServer::start`]; the returned [`LabHandle`] gives its URL, kubeconfig and
//! a kube client, and injects faults or maps webhook services. The pod simulator ([`sim`]) turns pods into network
//! namespaces and runs a CNI config list on them exactly as kubelet/containerd do.

pub mod kubeconfig;
pub mod server;
pub mod sim;
pub mod tls;

pub use server::admission::AdmissionConfig;
pub use server::fault::Fault;
pub use server::{LabError, LabHandle, LabOptions, LabServer};
pub mod bench;
