//! The command-line flags every controller shares (kubeconfig, log format, log filter), defined once.

use std::path::PathBuf;

use crate::{KitError, LogFormat};

/// Flags common to the webhook, netwatcher and svcwatcher (`#[command(flatten)]` them).
#[derive(Clone, Debug, clap::Args)]
pub struct CommonArgs {
    /// kubeconfig file; default: KUBECONFIG, ~/.kube/config, then in-cluster.
    #[arg(long, global = true, env = "DANM_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, env = "DANM_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (EnvFilter syntax, e.g. `info,danm=debug`); RUST_LOG when unset.
    #[arg(long, global = true, env = "DANM_LOG")]
    pub log: Option<String>,
}

impl CommonArgs {
    /// Installs logging as the flags say.
    pub fn init_tracing(&self) -> Result<(), KitError> {
        crate::init_tracing(self.log_format, self.log.as_deref())
    }

    /// A kube client from `--kubeconfig`, or the default configuration.
    pub async fn client(&self) -> Result<kube::Client, KitError> {
        crate::client(self.kubeconfig.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn the_common_flags_parse_with_their_defaults() {
        let cli = Cli::parse_from(["x", "--kubeconfig", "/k", "--log", "debug"]);
        assert_eq!(cli.common.kubeconfig.as_deref(), Some(std::path::Path::new("/k")));
        assert_eq!(cli.common.log.as_deref(), Some("debug"));
        assert!(matches!(cli.common.log_format, LogFormat::Text));
    }
}
