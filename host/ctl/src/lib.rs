//! danmctl's library: the commands of `danmctl` (network files, IPAM on a cluster, plugin checks) and of the
//! `kubectl danm` plugin, shared by the two binaries.

pub mod file;
pub mod ipam;
pub mod kubectl;
pub mod online;
pub mod plugins;
pub mod usage;
