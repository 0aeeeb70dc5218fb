//! Interface names inside the pod (behaviour §4.4), checked for the kernel's rules and uniqueness
//! (behaviour §10 B18).

use std::fmt;

use crate::annotation::NetworkRef;

/// The name of the pod's first interface, whatever the network's `container_prefix` says (kubelet requires it).
pub const FIRST_INTERFACE: &str = "eth0";
/// The prefix used when a network has no `container_prefix`.
pub const DEFAULT_PREFIX: &str = "eth";
/// The kernel's limit: `IFNAMSIZ` (16) including the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// The CNI config's `namingScheme`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NamingScheme {
    /// `container_prefix` followed by the sequence id (`ext1`).
    #[default]
    Default,
    /// `namingScheme: "legacy"`: `container_prefix` exactly (`ext`).
    Legacy,
}

impl NamingScheme {
    /// The scheme a `namingScheme` value selects, as DANM read it: `legacy` (any case) is the legacy scheme, every
    /// other value (`""` included) the default one (behaviour §4.4).
    pub fn from_config(value: &str) -> Self {
        if value.eq_ignore_ascii_case("legacy") {
            NamingScheme::Legacy
        } else {
            NamingScheme::Default
        }
    }
}

/// The name of the interface with sequence id `seq` on a network with `container_prefix` (`""` = none). Not yet
/// validated; see [`assign_names`].
pub fn interface_name(seq: usize, container_prefix: &str, scheme: NamingScheme) -> String {
    if seq == 0 {
        FIRST_INTERFACE.to_owned()
    } else if container_prefix.is_empty() {
        format!("{DEFAULT_PREFIX}{seq}")
    } else if scheme == NamingScheme::Legacy {
        container_prefix.to_owned()
    } else {
        format!("{container_prefix}{seq}")
    }
}

/// What is wrong with an interface name, by the kernel's `dev_valid_name` rules (plus `%`, which the kernel would
/// expand as a template, and `lo`, which every pod already has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong { len: usize },
    DotName,
    InvalidChar(char),
    Loopback,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("it is empty"),
            NameProblem::TooLong { len } => {
                write!(
                    f,
                    "it is {len} bytes long, the kernel allows at most {MAX_IFNAME_LEN}"
                )
            }
            NameProblem::DotName => f.write_str("\".\" and \"..\" are not valid interface names"),
            NameProblem::InvalidChar(c) => write!(f, "it contains the character {c:?}, which is not allowed"),
            NameProblem::Loopback => f.write_str("\"lo\" is the pod's loopback interface"),
        }
    }
}

/// Checks one name against the kernel's rules.
pub fn validate_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(NameProblem::TooLong { len: name.len() });
    }
    if name == "." || name == ".." {
        return Err(NameProblem::DotName);
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | ':' | '%' | '\0') || c.is_whitespace())
    {
        return Err(NameProblem::InvalidChar(c));
    }
    if name == "lo" {
        return Err(NameProblem::Loopback);
    }
    Ok(())
}

/// Errors of interface naming; each names the network and the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    #[error("interface name:\"{name}\" for network:{network} is invalid: {problem}")]
    Invalid {
        network: NetworkRef,
        name: String,
        problem: NameProblem,
    },
    #[error(
        "interface name:\"{name}\" for network:{network} is already used by network:{first} in the same pod \
         (set distinct container_prefix values, or do not use namingScheme legacy for several interfaces on one network)"
    )]
    Duplicate {
        network: NetworkRef,
        name: String,
        first: NetworkRef,
    },
}

/// One connection to name: its sequence id, its network and the network's `container_prefix`.
#[derive(Clone, Debug)]
pub struct NamingInput<'a> {
    pub seq: usize,
    pub network: &'a NetworkRef,
    pub container_prefix: &'a str,
}

/// Names every connection of a pod, in the given order, and checks each name and their uniqueness.
pub fn assign_names(inputs: &[NamingInput<'_>], scheme: NamingScheme) -> Result<Vec<String>, NamingError> {
    let mut names: Vec<String> = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let name = interface_name(input.seq, input.container_prefix, scheme);
        validate_name(&name).map_err(|problem| NamingError::Invalid {
            network: input.network.clone(),
            name: name.clone(),
            problem,
        })?;
        if let Some(j) = names.iter().position(|n| *n == name) {
            return Err(NamingError::Duplicate {
                network: inputs[i].network.clone(),
                name,
                first: inputs[j].network.clone(),
            });
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use danm_api::NetworkKind;

    fn net(name: &str) -> NetworkRef {
        NetworkRef::new(NetworkKind::DanmNet, name)
    }

    fn names(prefixes: &[&str], scheme: NamingScheme) -> Result<Vec<String>, NamingError> {
        let networks: Vec<NetworkRef> = (0..prefixes.len()).map(|i| net(&format!("n{i}"))).collect();
        let inputs: Vec<NamingInput<'_>> = prefixes
            .iter()
            .enumerate()
            .map(|(seq, p)| NamingInput {
                seq,
                network: &networks[seq],
                container_prefix: p,
            })
            .collect();
        assign_names(&inputs, scheme)
    }

    #[test]
    fn two_unprefixed_networks_are_eth0_and_eth1() {
        // behaviour §11 [CNI] 3
        assert_eq!(names(&["", ""], NamingScheme::Default).unwrap(), ["eth0", "eth1"]);
    }

    #[test]
    fn prefixes_get_the_sequence_id_and_unprefixed_ones_get_eth() {
        // behaviour §11 [CNI] 4: [a(ext), b(int), c] → eth0, int1, eth2
        assert_eq!(
            names(&["ext", "int", ""], NamingScheme::Default).unwrap(),
            ["eth0", "int1", "eth2"]
        );
        // behaviour §4.4 example: [mgmt, external(ext), internal(int)] → eth0, ext1, int2
        assert_eq!(
            names(&["", "ext", "int"], NamingScheme::Default).unwrap(),
            ["eth0", "ext1", "int2"]
        );
    }

    #[test]
    fn legacy_naming_uses_the_prefix_exactly() {
        // behaviour §11 [CNI] 5
        assert_eq!(
            names(&["", "ext"], NamingScheme::Legacy).unwrap(),
            ["eth0", "ext"]
        );
        assert_eq!(
            names(&["", "", "ext"], NamingScheme::Legacy).unwrap(),
            ["eth0", "eth1", "ext"]
        );
    }

    #[test]
    fn the_first_interface_is_eth0_whatever_its_prefix() {
        // behaviour §11 [CNI] 6
        assert_eq!(interface_name(0, "foo", NamingScheme::Default), "eth0");
        assert_eq!(interface_name(0, "foo", NamingScheme::Legacy), "eth0");
    }

    #[test]
    fn legacy_naming_with_one_prefix_twice_is_a_duplicate_naming_both_networks() {
        let err = names(&["", "ext", "ext"], NamingScheme::Legacy).unwrap_err();
        assert_eq!(
            err,
            NamingError::Duplicate {
                network: net("n2"),
                name: "ext".into(),
                first: net("n1")
            }
        );
        let text = err.to_string();
        assert!(
            text.contains("\"ext\"") && text.contains("DanmNet:n2") && text.contains("DanmNet:n1"),
            "{text}"
        );
    }

    #[test]
    fn a_prefix_that_collides_with_the_default_names_is_a_duplicate() {
        // "eth" + 1 on the second network and legacy "eth1" on the third
        let err = names(&["", "", "eth1"], NamingScheme::Legacy).unwrap_err();
        assert!(
            matches!(err, NamingError::Duplicate { ref name, .. } if name == "eth1"),
            "{err}"
        );
        let err = names(&["", "eth0"], NamingScheme::Legacy).unwrap_err();
        assert!(
            matches!(err, NamingError::Duplicate { ref name, .. } if name == "eth0"),
            "{err}"
        );
    }

    #[test]
    fn a_name_longer_than_15_bytes_is_rejected_with_network_and_name() {
        let err = names(&["", "averyverylongpfx"], NamingScheme::Default).unwrap_err();
        match &err {
            NamingError::Invalid {
                network,
                name,
                problem: NameProblem::TooLong { len: 17 },
            } => {
                assert_eq!((network, name.as_str()), (&net("n1"), "averyverylongpfx1"));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains("at most 15"), "{err}");
        // exactly 15 bytes is fine
        assert_eq!(
            names(&["", "abcdefghijklmn"], NamingScheme::Default).unwrap()[1],
            "abcdefghijklmn1"
        );
        // the limit counts bytes, not characters
        assert!(matches!(
            validate_name("ééééééééé"),
            Err(NameProblem::TooLong { len: 18 })
        ));
    }

    #[test]
    fn the_kernels_invalid_names_are_rejected() {
        assert_eq!(validate_name(""), Err(NameProblem::Empty));
        assert_eq!(validate_name("."), Err(NameProblem::DotName));
        assert_eq!(validate_name(".."), Err(NameProblem::DotName));
        assert_eq!(validate_name("a/b"), Err(NameProblem::InvalidChar('/')));
        assert_eq!(validate_name("a:b"), Err(NameProblem::InvalidChar(':')));
        assert_eq!(validate_name("a b"), Err(NameProblem::InvalidChar(' ')));
        assert_eq!(validate_name("a\tb"), Err(NameProblem::InvalidChar('\t')));
        assert_eq!(validate_name("net%d"), Err(NameProblem::InvalidChar('%')));
        assert_eq!(validate_name("lo"), Err(NameProblem::Loopback));
        assert_eq!(validate_name("..."), Ok(()));
        assert_eq!(validate_name("vx_ext.500"), Ok(()));
        let err = names(&["", "a/"], NamingScheme::Legacy).unwrap_err();
        assert!(err.to_string().contains("'/'"), "{err}");
    }

    #[test]
    fn legacy_selects_the_legacy_scheme_and_any_other_value_the_default_one() {
        assert_eq!(NamingScheme::from_config("legacy"), NamingScheme::Legacy);
        assert_eq!(NamingScheme::from_config("LEGACY"), NamingScheme::Legacy);
        assert_eq!(NamingScheme::from_config(""), NamingScheme::Default);
        assert_eq!(NamingScheme::from_config("legacyy"), NamingScheme::Default);
        assert_eq!(NamingScheme::from_config("awesome"), NamingScheme::Default);
    }
}
