//! The CNI error object `{"cniVersion","code","msg","details"}` with the spec's well-known codes and danm's own.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::annotation::AnnotationError;
use crate::naming::NamingError;
use crate::resolve::ResolveError;

/// Error codes. 1–99 are the CNI spec's well-known codes; danm's own start at 100.
pub mod codes {
    /// Incompatible CNI version (also: the config's version does not allow CHECK/STATUS/GC).
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables, like CNI_COMMAND, CNI_CONTAINERID (and CNI_ARGS).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (stdin, a delegate's output).
    pub const DECODING_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// Try again later: a transient condition (e.g. address conflicts that exhausted their retries).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// STATUS: the plugin is not available (cannot serve ADD).
    pub const STATUS_NOT_AVAILABLE: u32 = 50;
    /// STATUS: the plugin is not available and existing containers may have limited connectivity.
    pub const STATUS_LIMITED_CONNECTIVITY: u32 = 51;

    /// A danm failure without a more specific code.
    pub const DANM_FAILURE: u32 = 100;
    /// The Kubernetes API server failed or could not be reached.
    pub const API_SERVER: u32 = 101;
    /// A backend plugin (wasm) could not be loaded, trapped or returned an error.
    pub const PLUGIN: u32 = 102;
    /// A network's address pool is exhausted.
    pub const IPAM_EXHAUSTED: u32 = 103;
    /// A delegated CNI plugin failed.
    pub const DELEGATE: u32 = 104;
    /// The operation's deadline (`timeoutSeconds`) passed; outstanding work was cancelled.
    pub const DEADLINE_EXCEEDED: u32 = 105;
    /// A kernel (netlink, netns, sysctl) operation failed.
    pub const KERNEL: u32 = 106;
    /// The pod's request is invalid: a bad interfaces annotation, or interface names that cannot be used.
    pub const INVALID_POD_REQUEST: u32 = 107;
    /// A requested network does not exist, there is no default network, or the pod's namespace may not use it.
    pub const NETWORK_UNAVAILABLE: u32 = 108;
    /// Any other IPAM refusal: a static address in use or outside the CIDR, an address asked of an L2 network.
    pub const IPAM: u32 = 109;
}

/// A CNI error as printed on stdout. `Display` shows `msg; details` as libcni does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

#[derive(Serialize)]
struct Wire<'a> {
    #[serde(rename = "cniVersion")]
    cni_version: &'a str,
    code: u32,
    msg: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    details: &'a str,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON object the plugin prints on stdout, for the negotiated (or, before negotiation, the latest) version.
    pub fn to_json(&self, cni_version: &str) -> String {
        let wire = Wire {
            cni_version,
            code: self.code,
            msg: &self.msg,
            details: &self.details,
        };
        serde_json::to_string(&wire).expect("a CNI error always serialises")
    }

    /// Reads a delegate's error output: `None` when the bytes are not a CNI error object.
    pub fn from_json(bytes: &[u8]) -> Option<CniError> {
        serde_json::from_slice(bytes).ok()
    }

    /// Error 4 naming the variable.
    pub fn invalid_env(variable: &str, msg: impl fmt::Display) -> Self {
        CniError::new(codes::INVALID_ENV, format!("{variable}: {msg}"))
    }

    /// Error 6: stdin or a delegate's output could not be decoded.
    pub fn decoding(msg: impl Into<String>) -> Self {
        CniError::new(codes::DECODING_FAILURE, msg)
    }

    /// Error 7: the network configuration is invalid.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        CniError::new(codes::INVALID_NETWORK_CONFIG, msg)
    }

    /// Error 1 for a config version danm does not implement.
    pub fn incompatible_version(requested: &str) -> Self {
        let supported: Vec<&str> = super::CniVersion::SUPPORTED.iter().map(|v| v.as_str()).collect();
        CniError::new(codes::INCOMPATIBLE_VERSION, "incompatible CNI versions")
            .with_details(format!("config is {requested:?}, plugin supports {supported:?}"))
    }
}

/// One interface that failed during ADD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceFailure {
    /// The network, as operators name it (e.g. `ClusterNetwork:external` or its NPWG name).
    pub network: String,
    /// The interface name in the pod (empty if the failure came before naming).
    pub ifname: String,
    pub error: CniError,
}

impl CniError {
    /// Error 105 for a passed deadline, with DANM's text and the configured number of seconds
    /// (behaviour §10 B1).
    pub fn deadline_exceeded(seconds: u64) -> Self {
        CniError::new(
            codes::DEADLINE_EXCEEDED,
            format!("CNI operation timed-out after {seconds} seconds"),
        )
    }

    /// One error for a pod whose interfaces failed, the one way the CNI renders it: `msg` says the pod's network
    /// could not be set up and has one line per failed interface, each starting `CNI operation for network:` as in
    /// DANM (behaviour §4.1); `details` holds the same as a JSON array (`network`, `interface`, `code`, `cause`) for
    /// tools. The code is the failures' common code, or 100 when they differ. An empty list gives a plain 100.
    pub fn from_failures(failures: &[InterfaceFailure]) -> Self {
        let code = match failures.split_first() {
            Some((first, rest)) if rest.iter().all(|f| f.error.code == first.error.code) => first.error.code,
            _ => codes::DANM_FAILURE,
        };
        if failures.is_empty() {
            return CniError::new(code, "CNI network could not be set up");
        }
        let lines: Vec<String> = failures
            .iter()
            .map(|f| {
                let interface = if f.ifname.is_empty() {
                    String::new()
                } else {
                    format!(" interface:{}", f.ifname)
                };
                format!(
                    "CNI operation for network:{}{interface} failed with:{}",
                    f.network, f.error
                )
            })
            .collect();
        let details: Vec<serde_json::Value> = failures
            .iter()
            .map(|f| {
                serde_json::json!({"network": f.network, "interface": f.ifname, "code": f.error.code,
                                   "cause": f.error.to_string()})
            })
            .collect();
        CniError::new(
            code,
            format!("CNI network could not be set up: {}", lines.join("\n")),
        )
        .with_details(serde_json::Value::Array(details).to_string())
    }
}

impl From<AnnotationError> for CniError {
    fn from(e: AnnotationError) -> Self {
        CniError::new(codes::INVALID_POD_REQUEST, e.to_string())
    }
}

impl From<NamingError> for CniError {
    fn from(e: NamingError) -> Self {
        CniError::new(codes::INVALID_POD_REQUEST, e.to_string())
    }
}

impl From<ResolveError> for CniError {
    fn from(e: ResolveError) -> Self {
        CniError::new(codes::NETWORK_UNAVAILABLE, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_prints_the_spec_shape_with_the_version() {
        let e = CniError::new(codes::INVALID_ENV, "CNI_NETNS: missing").with_details("ADD needs it");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.1.0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.1.0","code":4,"msg":"CNI_NETNS: missing","details":"ADD needs it"})
        );
    }

    #[test]
    fn empty_details_are_omitted() {
        let v: serde_json::Value =
            serde_json::from_str(&CniError::new(codes::DANM_FAILURE, "boom").to_json("0.3.1")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"0.3.1","code":100,"msg":"boom"})
        );
    }

    #[test]
    fn display_joins_msg_and_details_like_libcni() {
        assert_eq!(
            CniError::new(7, "bad").with_details("why").to_string(),
            "bad; why"
        );
        assert_eq!(CniError::new(7, "bad").to_string(), "bad");
    }

    #[test]
    fn a_delegates_error_output_is_read_back() {
        let e =
            CniError::from_json(br#"{"cniVersion":"0.4.0","code":11,"msg":"busy","details":"x"}"#).unwrap();
        assert_eq!(e, CniError::new(codes::TRY_AGAIN_LATER, "busy").with_details("x"));
        assert!(CniError::from_json(b"not json").is_none());
    }

    #[test]
    fn well_known_codes_have_the_spec_values() {
        let spec = [
            (codes::INCOMPATIBLE_VERSION, 1),
            (codes::UNSUPPORTED_FIELD, 2),
            (codes::UNKNOWN_CONTAINER, 3),
            (codes::INVALID_ENV, 4),
            (codes::IO_FAILURE, 5),
            (codes::DECODING_FAILURE, 6),
            (codes::INVALID_NETWORK_CONFIG, 7),
            (codes::TRY_AGAIN_LATER, 11),
            (codes::STATUS_NOT_AVAILABLE, 50),
            (codes::STATUS_LIMITED_CONNECTIVITY, 51),
        ];
        for (ours, theirs) in spec {
            assert_eq!(ours, theirs);
        }
        for ours in [
            codes::DANM_FAILURE,
            codes::API_SERVER,
            codes::PLUGIN,
            codes::IPAM_EXHAUSTED,
            codes::DELEGATE,
            codes::DEADLINE_EXCEEDED,
            codes::KERNEL,
            codes::INVALID_POD_REQUEST,
            codes::NETWORK_UNAVAILABLE,
            codes::IPAM,
        ] {
            assert!(ours >= 100, "danm's own codes start at 100: {ours}");
        }
    }

    fn failure(network: &str, ifname: &str, code: u32, msg: &str) -> InterfaceFailure {
        InterfaceFailure {
            network: network.into(),
            ifname: ifname.into(),
            error: CniError::new(code, msg),
        }
    }

    #[test]
    fn two_failed_interfaces_give_two_lines_naming_network_and_interface() {
        // behaviour §11 [CNI] 18
        let e = CniError::from_failures(&[
            failure("DanmNet:a", "eth0", codes::DELEGATE, "plugin bridge exited 1"),
            failure(
                "ClusterNetwork:b",
                "ext1",
                codes::DELEGATE,
                "plugin macvlan exited 1",
            ),
        ]);
        assert_eq!(e.code, codes::DELEGATE, "a common code is kept");
        let lines: Vec<&str> = e.msg.lines().collect();
        assert_eq!(
            lines,
            [
                "CNI network could not be set up: CNI operation for network:DanmNet:a interface:eth0 failed with:plugin bridge exited 1",
                "CNI operation for network:ClusterNetwork:b interface:ext1 failed with:plugin macvlan exited 1",
            ]
        );
        let details: serde_json::Value = serde_json::from_str(&e.details).unwrap();
        assert_eq!(details[1]["network"], "ClusterNetwork:b");
        assert_eq!(details[1]["interface"], "ext1");
        assert_eq!(details[1]["code"], codes::DELEGATE);
        assert_eq!(details[1]["cause"], "plugin macvlan exited 1");
    }

    #[test]
    fn mixed_failure_codes_give_100_and_a_failure_before_naming_has_no_interface() {
        let e = CniError::from_failures(&[
            failure("DanmNet:a", "", codes::NETWORK_UNAVAILABLE, "gone"),
            failure("DanmNet:b", "eth1", codes::TRY_AGAIN_LATER, "conflict"),
        ]);
        assert_eq!(e.code, codes::DANM_FAILURE);
        assert!(
            e.msg
                .contains(": CNI operation for network:DanmNet:a failed with:gone\n"),
            "{e}"
        );
        assert_eq!(CniError::from_failures(&[]).code, codes::DANM_FAILURE);
    }

    #[test]
    fn the_deadline_error_names_the_configured_seconds() {
        let e = CniError::deadline_exceeded(7);
        assert_eq!(
            (e.code, e.msg.as_str()),
            (
                codes::DEADLINE_EXCEEDED,
                "CNI operation timed-out after 7 seconds"
            )
        );
    }

    #[test]
    fn core_errors_map_to_their_codes_keeping_the_message() {
        let ann = crate::annotation::parse_interfaces("k", r#"[{"ipv4":"x"}]"#).unwrap_err();
        let e = CniError::from(ann);
        assert_eq!(e.code, codes::INVALID_POD_REQUEST);
        assert!(e.msg.contains("ipv4"), "{e}");
        let e = CniError::from(ResolveError::NoDefaultNetwork);
        assert_eq!(e.code, codes::NETWORK_UNAVAILABLE);
        assert!(e.msg.contains("no suitable default network"), "{e}");
    }
}
