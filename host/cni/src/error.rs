//! The errors of the CNI flows and their mapping to CNI error codes — the one place where codes are chosen.

use danm_core::cni::{CniError, codes};
use danm_core::ipam::IpamError;
use danm_netlink::NetlinkError;

use crate::api::ApiError;
use crate::ipam::IpamApiError;
use crate::translate::TranslateError;

/// A failure of one step of a flow.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Already a CNI error (env, config, version, annotation, resolution).
    #[error("{0}")]
    Cni(CniError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Ipam(#[from] IpamApiError),
    #[error("backend plugin for NetworkType {network_type} failed: {source}")]
    Plugin {
        network_type: String,
        #[source]
        source: TranslateError,
    },
    #[error("network {network} breaks its backend's rules (was the webhook bypassed?): {}",
        violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidNetwork {
        network: String,
        violations: Vec<danm_api::validation::Violation>,
    },
    #[error("cannot load the backend plugins from {dir}: {source}")]
    PluginDir {
        dir: String,
        #[source]
        source: TranslateError,
    },
    #[error("delegated {command} to CNI plugin {plugin} for interface {ifname} failed: {message}")]
    Delegate {
        plugin: String,
        command: String,
        ifname: String,
        code: Option<u32>,
        message: String,
    },
    #[error("could not load CNI config file {file} for plugin {plugin}: {reason}")]
    StaticConfig {
        file: String,
        plugin: String,
        reason: String,
    },
    #[error("the translated CNI config is invalid: {0}")]
    Translated(String),
    #[error("{context}: {source}")]
    Kernel { context: String, source: NetlinkError },
    #[error("SR-IOV: {0}")]
    Sriov(String),
    #[error("CNI operation timed-out after {seconds} seconds; outstanding work was cancelled")]
    Deadline { seconds: u64 },
    /// Every interface that failed, in annotation order.
    #[error("{}", CniError::from_failures(&cni_failures(.0)).msg)]
    Interfaces(Vec<InterfaceFailure>),
    /// Several independent failures (GC, which goes on after each): all of them, the first one's code.
    #[error("{} failures: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<Error>),
    #[error("{0}")]
    Other(String),
}

/// One failed interface of an ADD.
#[derive(Debug)]
pub struct InterfaceFailure {
    /// `Kind:name` of the network.
    pub network: String,
    /// The interface name, when it was known.
    pub interface: String,
    pub error: Error,
}

/// The failures as the CNI error renders them (one renderer: [`CniError::from_failures`]).
fn cni_failures(failures: &[InterfaceFailure]) -> Vec<danm_core::cni::InterfaceFailure> {
    failures
        .iter()
        .map(|f| danm_core::cni::InterfaceFailure {
            network: f.network.clone(),
            ifname: f.interface.clone(),
            error: CniError::new(f.error.code(), f.error.to_string()),
        })
        .collect()
}

impl From<CniError> for Error {
    fn from(e: CniError) -> Self {
        Error::Cni(e)
    }
}

impl Error {
    pub fn kernel(context: impl Into<String>, source: NetlinkError) -> Self {
        Error::Kernel {
            context: context.into(),
            source,
        }
    }

    /// The CNI error code of this failure.
    pub fn code(&self) -> u32 {
        match self {
            Error::Cni(e) => e.code,
            Error::Api(ApiError::Conflict { .. }) => codes::TRY_AGAIN_LATER,
            Error::Api(_) => codes::API_SERVER,
            Error::Ipam(IpamApiError::Conflicts { .. }) => codes::TRY_AGAIN_LATER,
            Error::Ipam(IpamApiError::Api(ApiError::Conflict { .. })) => codes::TRY_AGAIN_LATER,
            Error::Ipam(IpamApiError::Api(_)) => codes::API_SERVER,
            Error::Ipam(IpamApiError::Gone { .. }) => codes::NETWORK_UNAVAILABLE,
            Error::Ipam(IpamApiError::Ipam { source, .. }) => match source.root() {
                IpamError::Exhausted { .. } => codes::IPAM_EXHAUSTED,
                _ => codes::IPAM,
            },
            Error::Plugin { .. } | Error::PluginDir { .. } | Error::Translated(_) => codes::PLUGIN,
            Error::Delegate { .. } => codes::DELEGATE,
            Error::StaticConfig { .. } | Error::InvalidNetwork { .. } => codes::INVALID_NETWORK_CONFIG,
            Error::Kernel { .. } | Error::Sriov(_) => codes::KERNEL,
            Error::Deadline { .. } => codes::DEADLINE_EXCEEDED,
            Error::Interfaces(failures) => CniError::from_failures(&cni_failures(failures)).code,
            Error::Several(errors) => errors.first().map_or(codes::DANM_FAILURE, Error::code),
            Error::Other(_) => codes::DANM_FAILURE,
        }
    }

    /// The CNI error object printed on stdout. Failed interfaces are rendered by [`CniError::from_failures`]: a line
    /// each in `msg`, and a JSON object each (network, interface, code, cause) in `details`.
    pub fn to_cni(&self) -> CniError {
        match self {
            Error::Cni(e) => e.clone(),
            Error::Interfaces(failures) => CniError::from_failures(&cni_failures(failures)),
            other => CniError::new(other.code(), other.to_string()),
        }
    }
}
