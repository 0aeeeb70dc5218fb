//! The pure core of danm: annotation parsing, network resolution, interface naming, IPAM bitmaps and CNI types.
//!
//! No I/O: the CNI, the webhook and the plugins all call these functions. A pod's annotation becomes interface
//! requests, and DANM's bitmap IPAM serves them:
//!
//! ```
//! use std::collections::BTreeMap;
//! use danm_core::annotation::parse_pod_annotations;
//! use danm_core::ipam::{apply_network_defaults, reserve};
//!
//! let annotations = BTreeMap::from([(
//!     "danm.k8s.io/interfaces".to_owned(),
//!     r#"[{"network":"external","ip":"dynamic"}]"#.to_owned(),
//! )]);
//! let requests = parse_pod_annotations(&annotations).unwrap();
//! assert_eq!(requests[0].network.name, "external");
//!
//! let mut spec = danm_api::NetworkSpec::default();
//! spec.options.cidr = "10.0.0.0/24".into();
//! apply_network_defaults(&mut spec.options).unwrap(); // what the webhook does at CREATE
//! let got = reserve(&spec, &requests[0].ip, &requests[0].ip6).unwrap();
//! assert_eq!(got.ip4, "10.0.0.1/24");
//! assert!(got.changed); // the new bitmap is in got.spec, to be written back conditionally
//! ```
pub mod annotation;
pub mod cni;
pub mod ipam;
pub mod naming;
pub mod resolve;
// File stamps need the host's file metadata; the rules plugin builds this crate for wasm32-wasip2 without them.
#[cfg(unix)]
pub mod stamp;
pub mod vni;
