//! netwatcher: keeps the host VLAN/VxLAN links that DANM networks and NetworkAttachmentDefinitions need
//! (behaviour §6, with §10 B15 fixed).
//!
//! The core is pure: [`source`] turns watched objects into [`source::LinkSource`]s, [`desired::desired_links`]
//! computes the reference-counted set of wanted links, and [`plan::plan`] diffs it against the kernel's links.
//! [`reconciler::LinkReconciler`] executes plans over the `Netlink` trait; [`watch`] feeds it from the API
//! (level-triggered: every change, start-up, and a periodic resync all run the same full reconciliation).
//!
//! ```
//! use danm_api::NetworkKind;
//! use danm_netwatcher::{LinkSource, SourceKind, SourceRef, desired_links};
//!
//! let network = |name: &str| LinkSource {
//!     owner: SourceRef::new(SourceKind::Network(NetworkKind::DanmNet), Some("default"), name),
//!     network_id: "shared".to_owned(),
//!     host_device: "eth1".to_owned(),
//!     vlan: 0,
//!     vxlan: 50,
//! };
//! // Two networks on one VxLAN: one host link, kept until its last owner goes.
//! let desired = desired_links(&[network("a"), network("b")]);
//! assert!(desired.problems.is_empty());
//! assert_eq!(desired.links.len(), 1);
//! assert_eq!(desired.links.values().next().unwrap().owners.len(), 2);
//! ```

pub mod desired;
pub mod metrics;
pub mod plan;
pub mod reconciler;
pub mod source;
pub mod watch;

pub use desired::{Desired, DesiredLink, LinkSpec, desired_links};
pub use metrics::Metrics;
pub use plan::{Action, Plan, plan};
pub use reconciler::{LinkReconciler, Outcome, ReconcileError};
pub use source::{LinkSource, NadView, SourceKind, SourceRef, nad_view, network_source};
