//! `PluginError`: every way loading or calling a plugin fails, naming the plugin file, the function and the network.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a failing call happened: plugin file, exported function, and the network it was about (if any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    pub file: PathBuf,
    pub function: &'static str,
    pub network: Option<String>,
}

impl fmt::Display for CallSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin {}, function {}", self.file.display(), self.function)?;
        if let Some(n) = &self.network {
            write!(f, ", network {n}")?;
        }
        Ok(())
    }
}

/// Renders captured guest output for an error message.
pub(crate) fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; plugin stderr: {stderr}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin directory {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: std::io::Error },

    #[error("plugin {}: cannot be read: {source}", file.display())]
    Read { file: PathBuf, source: std::io::Error },

    #[error("plugin {}: not a loadable WebAssembly component: {message}", file.display())]
    Compile { file: PathBuf, message: String },

    #[error("plugin {}: exports no danm:plugin interface (it exports: {exports})", file.display())]
    NotAPlugin { file: PathBuf, exports: String },

    #[error("plugin {}: built for danm:plugin@{found}, but this host supports danm:plugin@{supported}", file.display())]
    WitVersion {
        file: PathBuf,
        found: String,
        supported: String,
    },

    #[error("plugin {}: cannot be linked: {message}", file.display())]
    Link { file: PathBuf, message: String },

    #[error("NetworkType {network_type} is claimed by two plugins: {} and {}", first.display(), second.display())]
    DuplicateType {
        network_type: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("two rules plugins: {} and {}", first.display(), second.display())]
    DuplicateRules { first: PathBuf, second: PathBuf },

    #[error(
        "{site}: did not finish within its deadline of {timeout:?}{}",
        stderr_suffix(stderr)
    )]
    Timeout {
        site: CallSite,
        timeout: Duration,
        stderr: String,
    },

    #[error("{site}: exceeded its memory limit of {limit} bytes{}", stderr_suffix(stderr))]
    MemoryLimit {
        site: CallSite,
        limit: usize,
        stderr: String,
    },

    #[error("{site}: ran out of fuel{}", stderr_suffix(stderr))]
    OutOfFuel { site: CallSite, stderr: String },

    #[error("{site}: trapped: {message}{}", stderr_suffix(stderr))]
    Trap {
        site: CallSite,
        message: String,
        stderr: String,
    },

    #[error("{site}: returned {size} bytes, more than the limit of {limit}")]
    OutputTooLarge {
        site: CallSite,
        size: usize,
        limit: usize,
    },

    #[error("{site}: returned a CNI config that is not a JSON object with a string \"type\": {message}")]
    InvalidOutput { site: CallSite, message: String },

    #[error("{site}: refused the attachment [{code}]: {message}")]
    Refused {
        site: CallSite,
        code: String,
        message: String,
    },

    #[error("no plugin in {} serves NetworkType {network_type}", dir.display())]
    NoBackend { network_type: String, dir: PathBuf },

    #[error("no rules plugin in {}", dir.display())]
    NoRules { dir: PathBuf },

    #[error("plugin cache {}: {source}", dir.display())]
    Cache { dir: PathBuf, source: std::io::Error },

    #[error("plugin runtime: {message}")]
    Engine { message: String },
}

impl PluginError {
    /// The plugin file the error is about, if it is about one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            PluginError::Read { file, .. }
            | PluginError::Compile { file, .. }
            | PluginError::NotAPlugin { file, .. }
            | PluginError::WitVersion { file, .. }
            | PluginError::Link { file, .. } => Some(file),
            PluginError::DuplicateType { second, .. } | PluginError::DuplicateRules { second, .. } => {
                Some(second)
            }
            PluginError::Timeout { site, .. }
            | PluginError::MemoryLimit { site, .. }
            | PluginError::OutOfFuel { site, .. }
            | PluginError::Trap { site, .. }
            | PluginError::OutputTooLarge { site, .. }
            | PluginError::InvalidOutput { site, .. }
            | PluginError::Refused { site, .. } => Some(&site.file),
            _ => None,
        }
    }
}
