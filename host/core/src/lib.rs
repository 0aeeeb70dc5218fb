//! The pure core of danm: annotation parsing, network resolution, interface naming, IPAM bitmaps and CNI types.
pub mod annotation;
pub mod cni;
pub mod ipam;
pub mod naming;
pub mod resolve;
pub mod vni;
