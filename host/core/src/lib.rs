//! The pure core of danm: annotation parsing, network resolution, interface naming, IPAM bitmaps and CNI types.
pub mod annotation;
pub mod naming;
pub mod resolve;
pub mod cni;
