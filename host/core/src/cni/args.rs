//! `CNI_ARGS` (`K=V;K=V`): the pod identity kubelet/containerd/CRI-O pass, with libcni's `IgnoreUnknown` rule.
//!
//! Decisions: empty segments (`a=b;;c=d`, a trailing `;`) are skipped; a value may contain `=` (split at the first);
//! a key given twice keeps the last value (as libcni did); an empty value counts as absent. Errors are code 4 and
//! name `CNI_ARGS`.

use std::collections::BTreeMap;

use super::env::CNI_ARGS;
use super::error::CniError;

pub const IGNORE_UNKNOWN: &str = "IgnoreUnknown";
pub const K8S_POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";
pub const K8S_POD_NAME: &str = "K8S_POD_NAME";
pub const K8S_POD_UID: &str = "K8S_POD_UID";
pub const K8S_POD_INFRA_CONTAINER_ID: &str = "K8S_POD_INFRA_CONTAINER_ID";

const KNOWN: [&str; 5] = [
    IGNORE_UNKNOWN,
    K8S_POD_NAMESPACE,
    K8S_POD_NAME,
    K8S_POD_UID,
    K8S_POD_INFRA_CONTAINER_ID,
];

/// Parsed `CNI_ARGS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub ignore_unknown: bool,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub pod_uid: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`, or, when absent, the `CNI_CONTAINERID` given to [`CniArgs::parse`] (the
    /// original never fell back; behaviour §3.2).
    pub infra_container_id: Option<String>,
    /// Keys danm does not know, kept when `IgnoreUnknown` allowed them.
    pub other: BTreeMap<String, String>,
}

/// Who the pod is: what ADD needs from `CNI_ARGS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub infra_container_id: String,
}

impl CniArgs {
    /// Parses `CNI_ARGS`; `container_id` is `CNI_CONTAINERID`, the fallback for `K8S_POD_INFRA_CONTAINER_ID`.
    pub fn parse(cni_args: &str, container_id: Option<&str>) -> Result<CniArgs, CniError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for segment in cni_args.split(';').filter(|s| !s.trim().is_empty()) {
            let Some((key, value)) = segment.split_once('=') else {
                return Err(CniError::invalid_env(
                    CNI_ARGS,
                    format!("invalid pair {segment:?}: expected KEY=VALUE"),
                ));
            };
            if key.is_empty() {
                return Err(CniError::invalid_env(
                    CNI_ARGS,
                    format!("invalid pair {segment:?}: empty key"),
                ));
            }
            pairs.push((key, value));
        }

        let mut args = CniArgs::default();
        // IgnoreUnknown applies to every pair, wherever it appears.
        for (key, value) in pairs.iter().filter(|(k, _)| *k == IGNORE_UNKNOWN) {
            args.ignore_unknown = parse_bool(value).ok_or_else(|| {
                CniError::invalid_env(
                    CNI_ARGS,
                    format!("{key}={value} is not a boolean (1, 0, true or false)"),
                )
            })?;
        }
        for (key, value) in pairs {
            let value = (!value.is_empty()).then(|| value.to_owned());
            match key {
                IGNORE_UNKNOWN => {}
                K8S_POD_NAMESPACE => args.pod_namespace = value,
                K8S_POD_NAME => args.pod_name = value,
                K8S_POD_UID => args.pod_uid = value,
                K8S_POD_INFRA_CONTAINER_ID => args.infra_container_id = value,
                _ if args.ignore_unknown => {
                    args.other.insert(key.to_owned(), value.unwrap_or_default());
                }
                _ => {
                    return Err(CniError::invalid_env(
                        CNI_ARGS,
                        format!(
                            "unknown key {key:?} (known: {}; set IgnoreUnknown=1 to allow others)",
                            KNOWN.join(", ")
                        ),
                    ));
                }
            }
        }
        if args.infra_container_id.is_none() {
            args.infra_container_id = container_id.filter(|c| !c.is_empty()).map(str::to_owned);
        }
        Ok(args)
    }

    /// The pod identity ADD needs: namespace and name are required, and a sandbox id (from `CNI_ARGS` or the
    /// `CNI_CONTAINERID` fallback).
    pub fn pod(&self) -> Result<PodRef, CniError> {
        let need = |value: &Option<String>, key: &str| {
            value
                .clone()
                .ok_or_else(|| CniError::invalid_env(CNI_ARGS, format!("{key} is missing")))
        };
        Ok(PodRef {
            namespace: need(&self.pod_namespace, K8S_POD_NAMESPACE)?,
            name: need(&self.pod_name, K8S_POD_NAME)?,
            uid: self.pod_uid.clone(),
            infra_container_id: need(&self.infra_container_id, K8S_POD_INFRA_CONTAINER_ID)?,
        })
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::codes;

    const KUBELET: &str = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1";

    #[test]
    fn kubelets_args_give_the_pod_identity() {
        let args = CniArgs::parse(KUBELET, Some("other")).unwrap();
        assert!(args.ignore_unknown);
        let pod = args.pod().unwrap();
        assert_eq!(
            pod,
            PodRef {
                namespace: "ns1".into(),
                name: "web-0".into(),
                uid: Some("u-1".into()),
                infra_container_id: "abc".into()
            }
        );
    }

    #[test]
    fn the_infra_container_id_falls_back_to_cni_containerid() {
        let args = CniArgs::parse("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p", Some("cid-1")).unwrap();
        assert_eq!(args.pod().unwrap().infra_container_id, "cid-1");
        let args = CniArgs::parse(
            "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=",
            Some("cid-1"),
        )
        .unwrap();
        assert_eq!(
            args.infra_container_id.as_deref(),
            Some("cid-1"),
            "an empty value is absent"
        );
        let args = CniArgs::parse("K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p", None).unwrap();
        let e = args.pod().unwrap_err();
        assert!(
            e.msg.contains(K8S_POD_INFRA_CONTAINER_ID) && e.msg.contains(CNI_ARGS),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_without_ignore_unknown() {
        let e = CniArgs::parse("K8S_POD_NAME=p;FOO=bar", None).unwrap_err();
        assert_eq!(e.code, codes::INVALID_ENV);
        assert!(e.msg.contains("CNI_ARGS") && e.msg.contains("FOO"), "{e}");
    }

    #[test]
    fn ignore_unknown_anywhere_in_the_list_allows_and_keeps_unknown_keys() {
        for s in [
            "FOO=bar;IgnoreUnknown=1",
            "IgnoreUnknown=true;FOO=bar",
            "FOO=bar;IgnoreUnknown=TRUE",
        ] {
            let args = CniArgs::parse(s, None).unwrap();
            assert_eq!(args.other.get("FOO").map(String::as_str), Some("bar"), "{s}");
        }
        let e = CniArgs::parse("FOO=bar;IgnoreUnknown=0", None).unwrap_err();
        assert!(e.msg.contains("FOO"), "{e}");
        let e = CniArgs::parse("FOO=bar;IgnoreUnknown=false", None).unwrap_err();
        assert!(e.msg.contains("FOO"), "{e}");
    }

    #[test]
    fn a_non_boolean_ignore_unknown_is_an_error() {
        let e = CniArgs::parse("IgnoreUnknown=yes", None).unwrap_err();
        assert!(e.msg.contains("IgnoreUnknown=yes"), "{e}");
    }

    #[test]
    fn empty_args_and_empty_segments_are_fine() {
        assert_eq!(CniArgs::parse("", None).unwrap(), CniArgs::default());
        let args = CniArgs::parse(";K8S_POD_NAME=p;;K8S_POD_NAMESPACE=n;", None).unwrap();
        assert_eq!(
            (args.pod_name.as_deref(), args.pod_namespace.as_deref()),
            (Some("p"), Some("n"))
        );
    }

    #[test]
    fn a_segment_without_equals_or_key_is_an_error() {
        let e = CniArgs::parse("K8S_POD_NAME", None).unwrap_err();
        assert!(e.msg.contains("invalid pair \"K8S_POD_NAME\""), "{e}");
        let e = CniArgs::parse("=x", None).unwrap_err();
        assert!(e.msg.contains("empty key"), "{e}");
    }

    #[test]
    fn values_may_contain_equals_and_the_last_duplicate_wins() {
        let args = CniArgs::parse("IgnoreUnknown=1;X=a=b;K8S_POD_NAME=p1;K8S_POD_NAME=p2", None).unwrap();
        assert_eq!(args.other["X"], "a=b");
        assert_eq!(args.pod_name.as_deref(), Some("p2"));
    }

    #[test]
    fn keys_are_case_sensitive() {
        assert!(CniArgs::parse("k8s_pod_name=p", None).is_err());
    }

    #[test]
    fn namespace_and_name_are_required_for_the_pod() {
        let e = CniArgs::parse("K8S_POD_NAME=p", Some("c"))
            .unwrap()
            .pod()
            .unwrap_err();
        assert!(e.msg.contains(K8S_POD_NAMESPACE), "{e}");
        let e = CniArgs::parse("K8S_POD_NAMESPACE=n", Some("c"))
            .unwrap()
            .pod()
            .unwrap_err();
        assert!(e.msg.contains(K8S_POD_NAME), "{e}");
    }
}
