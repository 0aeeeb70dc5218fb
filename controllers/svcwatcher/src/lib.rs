//! svcwatcher: EndpointSlices (one per address family) and the legacy Endpoints of selectorless Services that
//! select pods by DANM network (behaviour §7, with §10 B13/B14 fixed), leader-elected with a Lease.
//!
//! The core is pure: [`selection::selection`] reads a Service's annotations and [`desired::desired_endpoints`]
//! computes its objects from the DanmEps and pods of its namespace. [`controller`] runs it level-triggered per
//! Service (Service, Pod and DanmEp changes map to the Services they can affect); [`leader`] is the Lease lock.
//! The leader also runs the IPAM reconciler ([`ipam`]).
//!
//! ```
//! use danm_svcwatcher::selection;
//! use k8s_openapi::api::core::v1::Service;
//!
//! // DANM's demo Service: no spec.selector; the pods are chosen by labels and by network.
//! let svc: Service = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "vnf-internal", "namespace": "example-vnf", "annotations": {
//!         "danm.k8s.io/selector": "{\"app\":\"loadbalancer\"}",
//!         "danm.k8s.io/network": "internal"}},
//!     "spec": {"ports": [{"port": 80}]}
//! }))
//! .unwrap();
//! let chosen = selection(&svc).unwrap().expect("svcwatcher manages it");
//! assert_eq!(chosen.selector["app"], "loadbalancer");
//! assert!(chosen.selects_network(danm_api::NetworkKind::DanmNet, "internal"));
//! ```

pub mod desired;
pub mod selection;

pub use desired::{DesiredEndpoints, desired_endpoints};
pub use selection::{Selection, selection};
pub mod controller;
pub mod ipam;
pub mod leader;

/// The registry svcwatcher serves on `/metrics` (names `danm_svcwatcher_*`) with the Service controller's and the
/// IPAM reconciler's metrics registered; the binary and the metrics catalogue test both build it here.
pub fn metrics_registry() -> (
    danm_controller_kit::MetricsRegistry,
    controller::Metrics,
    ipam::IpamMetrics,
) {
    let registry = danm_controller_kit::MetricsRegistry::with_prefix("danm_svcwatcher");
    let metrics = controller::Metrics::register(&registry);
    let ipam = ipam::IpamMetrics::register(&registry);
    (registry, metrics, ipam)
}
