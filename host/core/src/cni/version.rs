//! CNI spec versions: the supported set, VERSION output, negotiation and per-command version rules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::env::CniCommand;
use super::error::{CniError, codes};

/// A spec version danm implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first.
    pub const SUPPORTED: [CniVersion; 4] = [
        CniVersion::V0_3_1,
        CniVersion::V0_4_0,
        CniVersion::V1_0_0,
        CniVersion::V1_1_0,
    ];
    /// The newest supported version.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Results of 0.3.x and 0.4.0 carry `"version":"4"|"6"` on each IP; 1.x results do not.
    pub fn ips_carry_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// The result fields added in 1.1.0 (interface `mtu`/`socketPath`/`pciID`, route `mtu`/`advmss`/`priority`/
    /// `table`/`scope`).
    pub fn has_1_1_fields(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniVersion {
    type Err = CniError;
    /// Exactly one of the supported version strings; anything else is error 1 (incompatible version).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| CniError::incompatible_version(s))
    }
}

impl Serialize for CniVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CniVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: CniError| serde::de::Error::custom(e.to_string()))
    }
}

/// The VERSION command's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// danm's answer: the newest version as `cniVersion` (as libcni's skel does) and every supported version.
    pub fn danm() -> Self {
        VersionInfo {
            cni_version: CniVersion::LATEST.as_str().to_owned(),
            supported_versions: CniVersion::SUPPORTED
                .iter()
                .map(|v| v.as_str().to_owned())
                .collect(),
        }
    }

    /// The answer to a VERSION request whose stdin carried `requested` (`{"cniVersion":...}`): the same list, with
    /// `cniVersion` echoing the request when danm supports it, else the newest.
    pub fn answering(requested: Option<&str>) -> Self {
        let mut info = Self::danm();
        if let Some(v) = requested.and_then(|r| r.parse::<CniVersion>().ok()) {
            info.cni_version = v.as_str().to_owned();
        }
        info
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("version info always serialises")
    }
}

/// Picks the version to speak. The config's `cniVersion` is the version the runtime expects the answer in (a runtime
/// that understands `cniVersions` has already chosen one and written it there), so when it is present it must be
/// supported. Without it, the highest version of `cniVersions` danm supports is chosen. Neither, or nothing in
/// common → error 1.
pub fn negotiate(cni_version: Option<&str>, cni_versions: Option<&[String]>) -> Result<CniVersion, CniError> {
    match (cni_version.filter(|v| !v.is_empty()), cni_versions) {
        (Some(v), _) => v.parse(),
        (None, Some(list)) => list
            .iter()
            .filter_map(|v| v.parse::<CniVersion>().ok())
            .max()
            .ok_or_else(|| CniError::incompatible_version(&list.join(","))),
        (None, None) => Err(
            CniError::new(codes::INCOMPATIBLE_VERSION, "incompatible CNI versions")
                .with_details("the network configuration has neither cniVersion nor cniVersions"),
        ),
    }
}

/// The spec's per-command rules: CHECK needs ≥ 0.4.0, STATUS and GC need ≥ 1.1.0 (error 1, with libcni's message).
pub fn check_command_version(command: CniCommand, version: CniVersion) -> Result<(), CniError> {
    let minimum = match command {
        CniCommand::Check => CniVersion::V0_4_0,
        CniCommand::Status | CniCommand::Gc => CniVersion::V1_1_0,
        CniCommand::Add | CniCommand::Del | CniCommand::Version => return Ok(()),
    };
    if version >= minimum {
        Ok(())
    } else {
        Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!("config version does not allow {}", command.as_str()),
        )
        .with_details(format!(
            "{} needs cniVersion {minimum} or newer, the config has {version}",
            command.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_lists_all_four_supported_versions() {
        // behaviour §11 [CNI] 1, updated: every supported version is listed
        let v: serde_json::Value = serde_json::from_str(&VersionInfo::danm().to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.1.0","supportedVersions":["0.3.1","0.4.0","1.0.0","1.1.0"]})
        );
    }

    #[test]
    fn version_echoes_a_supported_requested_version() {
        assert_eq!(VersionInfo::answering(Some("0.4.0")).cni_version, "0.4.0");
        assert_eq!(VersionInfo::answering(Some("0.2.0")).cni_version, "1.1.0");
        assert_eq!(VersionInfo::answering(None).cni_version, "1.1.0");
        assert_eq!(
            VersionInfo::answering(Some("0.4.0")).supported_versions,
            VersionInfo::danm().supported_versions
        );
    }

    #[test]
    fn versions_parse_exactly_and_order_by_age() {
        for v in CniVersion::SUPPORTED {
            assert_eq!(v.as_str().parse::<CniVersion>().unwrap(), v);
        }
        assert!(CniVersion::V0_3_1 < CniVersion::V0_4_0 && CniVersion::V1_0_0 < CniVersion::V1_1_0);
        for bad in ["0.2.0", "0.3.0", "1.0", "1.2.0", "", "v1.0.0"] {
            let e = bad.parse::<CniVersion>().unwrap_err();
            assert_eq!(e.code, codes::INCOMPATIBLE_VERSION, "{bad}");
        }
    }

    #[test]
    fn an_unsupported_config_version_is_incompatible_naming_both_sides() {
        // behaviour §11 [CNI] 2, updated: only versions outside the supported set fail
        let e = negotiate(Some("0.2.0"), None).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.details.contains("0.2.0") && e.details.contains("1.1.0"), "{e}");
    }

    #[test]
    fn the_config_version_wins_when_present() {
        let list = vec!["1.1.0".to_owned()];
        assert_eq!(negotiate(Some("0.4.0"), Some(&list)).unwrap(), CniVersion::V0_4_0);
        assert_eq!(negotiate(Some("1.0.0"), None).unwrap(), CniVersion::V1_0_0);
    }

    #[test]
    fn without_cni_version_the_highest_common_cni_versions_entry_is_chosen() {
        let list: Vec<String> = ["0.3.1", "1.0.0", "2.0.0", "junk"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(negotiate(None, Some(&list)).unwrap(), CniVersion::V1_0_0);
        assert_eq!(negotiate(Some(""), Some(&list)).unwrap(), CniVersion::V1_0_0);
        let none_common = vec!["2.0.0".to_owned()];
        assert_eq!(negotiate(None, Some(&none_common)).unwrap_err().code, 1);
        assert_eq!(negotiate(None, Some(&[])).unwrap_err().code, 1);
        assert_eq!(negotiate(None, None).unwrap_err().code, 1);
    }

    #[test]
    fn check_needs_0_4_0_and_status_and_gc_need_1_1_0() {
        for v in CniVersion::SUPPORTED {
            assert_eq!(check_command_version(CniCommand::Add, v), Ok(()));
            assert_eq!(check_command_version(CniCommand::Del, v), Ok(()));
            assert_eq!(check_command_version(CniCommand::Version, v), Ok(()));
            assert_eq!(
                check_command_version(CniCommand::Check, v).is_ok(),
                v >= CniVersion::V0_4_0,
                "{v}"
            );
            assert_eq!(
                check_command_version(CniCommand::Status, v).is_ok(),
                v == CniVersion::V1_1_0,
                "{v}"
            );
            assert_eq!(
                check_command_version(CniCommand::Gc, v).is_ok(),
                v == CniVersion::V1_1_0,
                "{v}"
            );
        }
        let e = check_command_version(CniCommand::Check, CniVersion::V0_3_1).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (codes::INCOMPATIBLE_VERSION, "config version does not allow CHECK")
        );
        let e = check_command_version(CniCommand::Gc, CniVersion::V1_0_0).unwrap_err();
        assert_eq!(e.msg, "config version does not allow GC");
    }

    #[test]
    fn result_shape_rules_follow_the_version() {
        assert!(CniVersion::V0_3_1.ips_carry_version() && CniVersion::V0_4_0.ips_carry_version());
        assert!(!CniVersion::V1_0_0.ips_carry_version() && !CniVersion::V1_1_0.ips_carry_version());
        assert!(CniVersion::V1_1_0.has_1_1_fields() && !CniVersion::V1_0_0.has_1_1_fields());
    }
}
