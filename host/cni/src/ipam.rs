//! The CNI's IPAM vocabulary: [`danm_ipam`]'s interface, used by the flows; `Ctx::ipam` configures it for this node
//! from the CNI config (`ipamMode`, block sizes, idle time).

pub use danm_ipam::{BatchError, Ipam, IpamApiError, IpamConfig, Release, Request, Reserved, Retry, is_real};
