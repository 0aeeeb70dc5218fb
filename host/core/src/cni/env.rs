//! The `CNI_*` environment variables, validated per command as the CNI spec requires (errors are code 4).
//!
//! Required per command (spec 1.1 "CNI operations"): ADD and CHECK need CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME;
//! DEL needs CNI_CONTAINERID and CNI_IFNAME (CNI_NETNS is optional: the netns may be gone); GC needs CNI_PATH;
//! STATUS and VERSION need only CNI_COMMAND. An empty variable counts as missing, as in libcni. CNI_IFNAME is
//! required but otherwise ignored: danm names the pod's interfaces itself (behaviour §3.2).

use std::fmt;
use std::str::FromStr;

use super::error::{CniError, codes};

/// The six CNI verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CniCommand {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl CniCommand {
    pub const ALL: [CniCommand; 6] = [
        CniCommand::Add,
        CniCommand::Del,
        CniCommand::Check,
        CniCommand::Version,
        CniCommand::Status,
        CniCommand::Gc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
            CniCommand::Version => "VERSION",
            CniCommand::Status => "STATUS",
            CniCommand::Gc => "GC",
        }
    }

    /// The variables this command cannot run without (CNI_COMMAND itself aside).
    pub fn required_env(self) -> &'static [&'static str] {
        match self {
            CniCommand::Add | CniCommand::Check => &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME],
            CniCommand::Del => &[CNI_CONTAINERID, CNI_IFNAME],
            CniCommand::Gc => &[CNI_PATH],
            CniCommand::Status | CniCommand::Version => &[],
        }
    }
}

impl fmt::Display for CniCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniCommand {
    type Err = CniError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| CniError::new(codes::INVALID_ENV, format!("unknown CNI_COMMAND: {s}")))
    }
}

pub const CNI_COMMAND: &str = "CNI_COMMAND";
pub const CNI_CONTAINERID: &str = "CNI_CONTAINERID";
pub const CNI_NETNS: &str = "CNI_NETNS";
pub const CNI_IFNAME: &str = "CNI_IFNAME";
pub const CNI_ARGS: &str = "CNI_ARGS";
pub const CNI_PATH: &str = "CNI_PATH";

/// The validated environment of one invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniEnv {
    pub command: CniCommand,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    /// The raw `CNI_ARGS`; parse it with [`super::CniArgs::parse`].
    pub args: Option<String>,
    /// `CNI_PATH` split on `:`, empty entries dropped.
    pub path: Vec<String>,
}

impl CniEnv {
    /// Reads and validates the variables through `get` (in the binary: `|k| std::env::var(k).ok()`).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<CniEnv, CniError> {
        let var = |name: &str| get(name).filter(|v| !v.is_empty());
        let Some(command) = var(CNI_COMMAND) else {
            return Err(missing(&[CNI_COMMAND]));
        };
        let command: CniCommand = command.parse()?;
        let absent: Vec<&str> = command
            .required_env()
            .iter()
            .copied()
            .filter(|name| var(name).is_none())
            .collect();
        if !absent.is_empty() {
            return Err(missing(&absent));
        }
        let container_id = var(CNI_CONTAINERID);
        if let Some(id) = &container_id {
            validate_container_id(id)?;
        }
        Ok(CniEnv {
            command,
            container_id,
            netns: var(CNI_NETNS),
            ifname: var(CNI_IFNAME),
            args: var(CNI_ARGS),
            path: var(CNI_PATH)
                .map(|p| {
                    p.split(':')
                        .filter(|d| !d.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Reads from `(name, value)` pairs (tests, or a captured environment).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<CniEnv, CniError> {
        let map: std::collections::BTreeMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        Self::from_lookup(|k| map.get(k).cloned())
    }

    /// The container id; present for ADD, DEL and CHECK after validation.
    pub fn container_id(&self) -> &str {
        self.container_id.as_deref().unwrap_or_default()
    }
}

fn missing(names: &[&str]) -> CniError {
    CniError::new(
        codes::INVALID_ENV,
        format!("required env variables [{}] missing", names.join(",")),
    )
}

/// The spec's rule for container ids: an alphanumeric first character, then alphanumerics, `_`, `.` or `-`.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(CniError::new(
            codes::INVALID_ENV,
            "CNI_CONTAINERID: invalid characters in containerID",
        )
        .with_details(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: [(&str, &str); 6] = [
        (CNI_COMMAND, "ADD"),
        (CNI_CONTAINERID, "abc123"),
        (CNI_NETNS, "/var/run/netns/p1"),
        (CNI_IFNAME, "eth0"),
        (CNI_ARGS, "IgnoreUnknown=1"),
        (CNI_PATH, "/opt/cni/bin::/usr/lib/cni"),
    ];

    fn env_without(command: &str, drop: &[&str]) -> Result<CniEnv, CniError> {
        CniEnv::from_pairs(
            FULL.iter()
                .filter(|(k, _)| !drop.contains(k))
                .map(|&(k, v)| if k == CNI_COMMAND { (k, command) } else { (k, v) }),
        )
    }

    #[test]
    fn a_complete_add_environment_is_read() {
        let env = env_without("ADD", &[]).unwrap();
        assert_eq!(env.command, CniCommand::Add);
        assert_eq!(env.container_id(), "abc123");
        assert_eq!(env.netns.as_deref(), Some("/var/run/netns/p1"));
        assert_eq!(env.ifname.as_deref(), Some("eth0"));
        assert_eq!(env.args.as_deref(), Some("IgnoreUnknown=1"));
        assert_eq!(env.path, ["/opt/cni/bin", "/usr/lib/cni"]);
    }

    #[test]
    fn add_and_check_need_netns_container_id_and_ifname() {
        for command in ["ADD", "CHECK"] {
            for var in [CNI_NETNS, CNI_CONTAINERID, CNI_IFNAME] {
                let e = env_without(command, &[var]).unwrap_err();
                assert_eq!(e.code, codes::INVALID_ENV);
                assert_eq!(
                    e.msg,
                    format!("required env variables [{var}] missing"),
                    "{command}"
                );
            }
            assert!(
                env_without(command, &[CNI_ARGS, CNI_PATH]).is_ok(),
                "CNI_ARGS and CNI_PATH are optional"
            );
        }
    }

    #[test]
    fn every_missing_variable_is_named_at_once() {
        let e = env_without("ADD", &[CNI_NETNS, CNI_IFNAME]).unwrap_err();
        assert_eq!(e.msg, "required env variables [CNI_NETNS,CNI_IFNAME] missing");
    }

    #[test]
    fn del_does_not_need_the_netns() {
        let env = env_without("DEL", &[CNI_NETNS, CNI_ARGS, CNI_PATH]).unwrap();
        assert_eq!(env.command, CniCommand::Del);
        assert_eq!(env.netns, None);
        assert_eq!(
            env_without("DEL", &[CNI_CONTAINERID]).unwrap_err().code,
            codes::INVALID_ENV
        );
    }

    #[test]
    fn gc_needs_only_cni_path_and_status_and_version_need_nothing() {
        assert!(env_without("GC", &[CNI_NETNS, CNI_CONTAINERID, CNI_IFNAME, CNI_ARGS]).is_ok());
        let e = env_without("GC", &[CNI_PATH]).unwrap_err();
        assert!(e.msg.contains(CNI_PATH), "{e}");
        for command in ["STATUS", "VERSION"] {
            let env = CniEnv::from_pairs([(CNI_COMMAND, command)]).unwrap();
            assert_eq!(env.command.as_str(), command);
        }
    }

    #[test]
    fn an_empty_variable_counts_as_missing() {
        let e = CniEnv::from_pairs(
            FULL.iter()
                .map(|&(k, v)| if k == CNI_NETNS { (k, "") } else { (k, v) }),
        )
        .unwrap_err();
        assert!(e.msg.contains(CNI_NETNS), "{e}");
    }

    #[test]
    fn a_missing_or_unknown_command_is_invalid_env() {
        let e = CniEnv::from_pairs([(CNI_CONTAINERID, "x")]).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (4, "required env variables [CNI_COMMAND] missing")
        );
        let e = env_without("add", &[]).unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (4, "unknown CNI_COMMAND: add"));
    }

    #[test]
    fn container_ids_follow_the_spec_charset() {
        assert!(validate_container_id("a1_b.c-d").is_ok());
        for bad in ["_abc", "-abc", "ab/c", "ab c", ""] {
            let e = validate_container_id(bad).unwrap_err();
            assert_eq!(e.code, codes::INVALID_ENV, "{bad}");
            assert!(e.msg.contains(CNI_CONTAINERID));
        }
        let e = CniEnv::from_pairs(FULL.iter().map(|&(k, v)| {
            if k == CNI_CONTAINERID {
                (k, "bad id")
            } else {
                (k, v)
            }
        }))
        .unwrap_err();
        assert_eq!(e.details, "bad id");
    }
}
