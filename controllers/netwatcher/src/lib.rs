//! netwatcher: keeps the host VLAN/VxLAN links that DANM networks and NetworkAttachmentDefinitions need
//! (behaviour §6, with §10 B15 fixed).
//!
//! The core is pure: [`source`] turns watched objects into [`source::LinkSource`]s, [`desired::desired_links`]
//! computes the reference-counted set of wanted links, and [`plan::plan`] diffs it against the kernel's links.
//! [`reconciler::LinkReconciler`] executes plans over the `Netlink` trait; [`watch`] feeds it from the API
//! (level-triggered: every change, start-up, and a periodic resync all run the same full reconciliation).

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
