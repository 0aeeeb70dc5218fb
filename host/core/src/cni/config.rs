//! The danm CNI network configuration (stdin): DANM's keys (behaviour §3.1) plus danm's own; unknown keys are
//! ignored.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CniError;
use super::result::{CniResult, VersionedResult};
use super::version::{CniVersion, negotiate};
use crate::naming::NamingScheme;

pub const DEFAULT_CNI_DIR: &str = "/etc/cni/net.d";
pub use danm_api::DEFAULT_PLUGIN_DIR;
/// Where the CNI keeps its delegates' ADD results (for their CHECK and DEL `prevResult`).
pub const DEFAULT_RESULT_DIR: &str = "/var/lib/cni/danm/results";
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;

/// One entry of GC's `cni.dev/valid-attachments`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    #[serde(default)]
    pub ifname: String,
}

/// The parsed config. Build it with [`CniConfig::parse`], which also validates it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CniConfig {
    /// The version the runtime speaks; see [`CniConfig::version`].
    #[serde(rename = "cniVersion", default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<String>,
    /// CNI 1.1 negotiation list.
    #[serde(rename = "cniVersions", default, skip_serializing_if = "Option::is_none")]
    pub cni_versions: Option<Vec<String>>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// Kubeconfig used for every API call (its token file is re-read on each call).
    #[serde(default)]
    pub kubeconfig: String,
    /// Directory of the static delegates' configs (`<NetworkID>.conf` / `.conflist`).
    #[serde(rename = "cniDir", default = "default_cni_dir")]
    pub cni_dir: String,
    /// `legacy`, or anything else for the default scheme (behaviour §4.4); see [`CniConfig::naming_scheme`].
    #[serde(rename = "namingScheme", default)]
    pub naming_scheme: String,
    /// danm: directory of the backend plugins (`*.wasm`).
    #[serde(rename = "pluginDir", default = "default_plugin_dir")]
    pub plugin_dir: String,
    /// danm: where precompiled plugins are cached; `None` = the binary's default.
    #[serde(rename = "cacheDir", default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
    /// danm: where delegates' ADD results are kept for their CHECK and DEL (`<dir>/<containerID>/<ifname>.json`).
    #[serde(rename = "resultDir", default = "default_result_dir")]
    pub result_dir: String,
    /// danm: an optional log file (logs also go to stderr, never to stdout).
    #[serde(rename = "logFile", default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// danm: a tracing filter such as `info` or `danm=debug`.
    #[serde(rename = "logLevel", default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// danm: the deadline of one ADD/DEL/CHECK, after which outstanding work is cancelled (behaviour §10 B1).
    #[serde(rename = "timeoutSeconds", default = "default_timeout")]
    pub timeout_seconds: u64,
    /// danm: the IPAM mode of networks that neither name one (`danm.k8s.io/ipam-mode`) nor carry a bitmap:
    /// `blocks` (the default) or `bitmap`.
    #[serde(rename = "ipamMode", default, skip_serializing_if = "Option::is_none")]
    pub ipam_mode: Option<String>,
    /// danm: the default prefix length of IPv4 blocks (`blocks` mode); 26 when unset.
    #[serde(rename = "ipamBlockPrefix", default, skip_serializing_if = "Option::is_none")]
    pub ipam_block_prefix: Option<u8>,
    /// danm: the default prefix length of IPv6 blocks (`blocks` mode); 122 when unset.
    #[serde(rename = "ipamBlockPrefix6", default, skip_serializing_if = "Option::is_none")]
    pub ipam_block_prefix6: Option<u8>,
    /// danm: seconds a block of this node stays empty before it is handed back; 600 when unset.
    #[serde(rename = "ipamIdleSeconds", default, skip_serializing_if = "Option::is_none")]
    pub ipam_idle_seconds: Option<u64>,
    /// danm: overrides `CNI_PATH` for finding delegate binaries.
    #[serde(rename = "cniPath", default, skip_serializing_if = "Option::is_none")]
    pub cni_path: Option<String>,
    /// The previous plugin's result in a chain (ADD), or the ADD result (CHECK/DEL).
    #[serde(rename = "prevResult", default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// Capability arguments from the runtime, passed through.
    #[serde(rename = "runtimeConfig", default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Value>,
    /// GC: the attachments that are still valid. libcni also sends the older name `cni.dev/attachments`.
    #[serde(
        rename = "cni.dev/valid-attachments",
        alias = "cni.dev/attachments",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// GC is disabled for this network (CNI 1.1 `disableGC`, which a runtime honours itself and may pass on): a GC
    /// call then removes nothing.
    #[serde(rename = "disableGC", default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_gc: bool,
}

fn default_cni_dir() -> String {
    DEFAULT_CNI_DIR.to_owned()
}
fn default_plugin_dir() -> String {
    DEFAULT_PLUGIN_DIR.to_owned()
}
fn default_result_dir() -> String {
    DEFAULT_RESULT_DIR.to_owned()
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

impl CniConfig {
    /// Decodes (error 6) and validates (error 7) the config from stdin: `name` must be present and follow the
    /// spec's charset, `timeoutSeconds` must be positive. The version is
    /// not checked here (VERSION does not need it); call [`CniConfig::version`].
    pub fn parse(bytes: &[u8]) -> Result<CniConfig, CniError> {
        let config: CniConfig = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decoding(format!("error unmarshalling network config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), CniError> {
        if self.name.is_empty() {
            return Err(CniError::invalid_config("missing network name"));
        }
        let mut chars = self.name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(
                CniError::invalid_config("invalid characters found in network name").with_details(&self.name),
            );
        }
        self.ipam_mode()?;
        if self.ipam_block_prefix.is_some_and(|p| p > 32) || self.ipam_block_prefix6.is_some_and(|p| p > 128)
        {
            return Err(CniError::invalid_config(
                "ipamBlockPrefix must be at most 32 and ipamBlockPrefix6 at most 128",
            ));
        }
        if self.timeout_seconds == 0 {
            return Err(CniError::invalid_config("timeoutSeconds must be at least 1"));
        }
        Ok(())
    }

    /// The negotiated version (see [`negotiate`]).
    pub fn version(&self) -> Result<CniVersion, CniError> {
        negotiate(self.cni_version.as_deref(), self.cni_versions.as_deref())
    }

    /// The interface naming scheme: `legacy`, or the default one for any other value, as DANM did.
    pub fn naming_scheme(&self) -> NamingScheme {
        NamingScheme::from_config(&self.naming_scheme)
    }

    /// The cluster's default IPAM mode (`ipamMode`; `blocks` when unset).
    pub fn ipam_mode(&self) -> Result<crate::ipam::blocks::IpamMode, CniError> {
        match self.ipam_mode.as_deref() {
            None | Some("") => Ok(crate::ipam::blocks::IpamMode::Blocks),
            Some(text) => text.parse().map_err(|_| {
                CniError::invalid_config("ipamMode must be blocks or bitmap").with_details(text)
            }),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    /// The delegate search path: `cniPath` when set, else `CNI_PATH` (already split).
    pub fn delegate_path(&self, env_path: &[String]) -> Vec<String> {
        match &self.cni_path {
            Some(p) => p
                .split(':')
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect(),
            None => env_path.to_vec(),
        }
    }

    /// `prevResult`, decoded (any version).
    pub fn prev_result(&self) -> Option<Result<VersionedResult, CniError>> {
        self.prev_result.clone().map(CniResult::from_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::codes;

    #[test]
    fn danms_example_config_parses_with_defaults_and_ignores_unknown_keys() {
        let config = CniConfig::parse(
            br#"{"cniVersion":"0.3.1","name":"meta_cni","type":"danm","kubeconfig":"/etc/cni/net.d/danm-kubeconfig",
                 "kubeconfig_comment":"ignored","master":"eth1","vlan":5}"#,
        )
        .unwrap();
        assert_eq!(config.version().unwrap(), CniVersion::V0_3_1);
        assert_eq!(config.name, "meta_cni");
        assert_eq!(config.plugin_type, "danm");
        assert_eq!(config.kubeconfig, "/etc/cni/net.d/danm-kubeconfig");
        assert_eq!(config.cni_dir, "/etc/cni/net.d");
        assert_eq!(config.plugin_dir, "/etc/danm/plugins");
        assert_eq!(config.timeout(), Duration::from_secs(10));
        assert_eq!(config.naming_scheme(), NamingScheme::Default);
        assert_eq!(
            (
                config.cache_dir.as_ref(),
                config.log_file.as_ref(),
                config.cni_path.as_ref()
            ),
            (None, None, None)
        );
    }

    #[test]
    fn danms_own_keys_are_read() {
        let config = CniConfig::parse(
            br#"{"cniVersions":["1.0.0","1.1.0"],"name":"danm","type":"danm","cniDir":"/x","namingScheme":"legacy",
                 "pluginDir":"/p","cacheDir":"/c","logFile":"/l","logLevel":"debug","timeoutSeconds":3,
                 "cniPath":"/a:/b","runtimeConfig":{"portMappings":[]},"prevResult":{"cniVersion":"1.0.0"}}"#,
        )
        .unwrap();
        assert_eq!(config.version().unwrap(), CniVersion::V1_1_0);
        assert_eq!(config.cni_dir, "/x");
        assert_eq!(config.naming_scheme(), NamingScheme::Legacy);
        assert_eq!(config.plugin_dir, "/p");
        assert_eq!(config.cache_dir.as_deref(), Some("/c"));
        assert_eq!(config.log_file.as_deref(), Some("/l"));
        assert_eq!(config.log_level.as_deref(), Some("debug"));
        assert_eq!(config.timeout(), Duration::from_secs(3));
        assert_eq!(config.delegate_path(&["/env".into()]), ["/a", "/b"]);
        assert_eq!(
            config.runtime_config,
            Some(serde_json::json!({"portMappings":[]}))
        );
        assert_eq!(config.prev_result().unwrap().unwrap().cni_version, "1.0.0");
    }

    #[test]
    fn cni_path_falls_back_to_the_environment() {
        let config = CniConfig::parse(br#"{"cniVersion":"1.0.0","name":"n"}"#).unwrap();
        assert_eq!(config.delegate_path(&["/env".into()]), ["/env"]);
    }

    #[test]
    fn gc_valid_attachments_are_read_under_both_names() {
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let config = CniConfig::parse(
                format!(
                    r#"{{"cniVersion":"1.1.0","name":"n","{key}":[{{"containerID":"c1","ifname":"eth0"}}]}}"#
                )
                .as_bytes(),
            )
            .unwrap();
            assert_eq!(
                config.valid_attachments,
                Some(vec![ValidAttachment {
                    container_id: "c1".into(),
                    ifname: "eth0".into()
                }]),
                "{key}"
            );
        }
    }

    #[test]
    fn bad_json_is_a_decoding_error() {
        assert_eq!(CniConfig::parse(b"{").unwrap_err().code, codes::DECODING_FAILURE);
        assert_eq!(
            CniConfig::parse(br#"{"name":"n","timeoutSeconds":"x"}"#)
                .unwrap_err()
                .code,
            6
        );
    }

    #[test]
    fn invalid_configs_are_error_7_naming_the_problem() {
        for (config, needle) in [
            (r#"{"cniVersion":"1.0.0"}"#, "missing network name"),
            (r#"{"cniVersion":"1.0.0","name":"-x"}"#, "invalid characters"),
            (r#"{"cniVersion":"1.0.0","name":"a b"}"#, "invalid characters"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","ipamMode":"bits"}"#,
                "ipamMode",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","timeoutSeconds":0}"#,
                "timeoutSeconds",
            ),
        ] {
            let e = CniConfig::parse(config.as_bytes()).unwrap_err();
            assert_eq!(e.code, codes::INVALID_NETWORK_CONFIG, "{config}");
            assert!(e.msg.contains(needle), "{config}: {e}");
        }
    }

    #[test]
    fn a_naming_scheme_other_than_legacy_is_the_default_scheme_not_an_error() {
        // DANM treated any other value as the default scheme; failing every ADD and DEL on it broke pods.
        let config =
            CniConfig::parse(br#"{"cniVersion":"1.0.0","name":"n","namingScheme":"short"}"#).unwrap();
        assert_eq!(config.naming_scheme(), NamingScheme::Default);
    }

    #[test]
    fn an_unsupported_version_fails_negotiation_not_parsing() {
        let config = CniConfig::parse(br#"{"cniVersion":"0.2.0","name":"n"}"#).unwrap();
        assert_eq!(config.version().unwrap_err().code, codes::INCOMPATIBLE_VERSION);
    }
}
