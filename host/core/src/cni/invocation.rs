//! One CNI invocation's inputs parsed together: the environment, the stdin config, the negotiated version and
//! `CNI_ARGS`, in the order the binary reads them, with the version each error is reported in.

use super::{CniArgs, CniConfig, CniEnv, CniVersion, check_command_version};

/// A parsed invocation.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub env: CniEnv,
    pub config: CniConfig,
    pub version: CniVersion,
    pub args: CniArgs,
}

impl Invocation {
    /// Parses env (through `lookup`) and stdin. `Err` carries the CNI error JSON to print, in the version the
    /// runtime asked for when it got that far.
    pub fn parse(lookup: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Invocation, String> {
        let latest = CniVersion::LATEST.as_str();
        let env = CniEnv::from_lookup(&lookup).map_err(|e| e.to_json(latest))?;
        let config = CniConfig::parse(stdin).map_err(|e| e.to_json(latest))?;
        let shown = config.cni_version.clone().unwrap_or_else(|| latest.to_owned());
        let version = config.version().map_err(|e| e.to_json(&shown))?;
        check_command_version(env.command, version).map_err(|e| e.to_json(version.as_str()))?;
        let args = CniArgs::parse(
            env.args.as_deref().unwrap_or_default(),
            env.container_id.as_deref(),
        )
        .map_err(|e| e.to_json(version.as_str()))?;
        Ok(Invocation {
            env,
            config,
            version,
            args,
        })
    }
}
