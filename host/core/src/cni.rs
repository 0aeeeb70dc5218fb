//! CNI protocol types for the `danm` binary: config, `CNI_ARGS`, environment, versions, results, errors, result
//! merging and the NPWG network-status annotation. No process I/O: the binary reads env/stdin and prints.
//!
//! Supported spec versions: 0.3.1, 0.4.0, 1.0.0 and 1.1.0 (results from delegates are also read in the 0.1.0/0.2.0
//! shape and converted).

pub mod args;
pub mod config;
pub mod env;
pub mod error;
pub mod invocation;
pub mod merge;
pub mod result;
pub mod status;
pub mod version;

pub use args::{CniArgs, PodRef};
pub use config::{CniConfig, ValidAttachment};
pub use env::{CniCommand, CniEnv};
pub use error::{CniError, InterfaceFailure, codes};
pub use invocation::Invocation;
pub use merge::{AttachmentResult, merge_results, normalise};
pub use result::{CniResult, Dns, Interface, IpConfig, Route, VersionedResult};
pub use status::{NetworkStatus, network_status, network_status_json, npwg_name};
pub use version::{CniVersion, VersionInfo, check_command_version, negotiate};
