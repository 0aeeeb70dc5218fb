//! fakeipam: the IPAM plugin that echoes the addresses danm chose back to a delegate (behaviour §4.7), for
//! every supported CNI version.

use ipnetwork::IpNetwork;
use serde::Deserialize;

use danm_core::cni::{CniError, CniResult, CniVersion, IpConfig, VersionInfo, codes, negotiate};

#[derive(Deserialize)]
struct Config {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    ipam: Option<Ipam>,
}

#[derive(Deserialize)]
struct Ipam {
    #[serde(default)]
    ips: Vec<IpEntry>,
}

#[derive(Deserialize)]
struct IpEntry {
    #[serde(default)]
    ipcidr: String,
}

/// What fakeipam prints on success (nothing for DEL/CHECK/GC/STATUS).
pub type Output = Option<String>;

/// Runs one fakeipam command. Errors carry the config's cniVersion when it could be read.
pub fn run(command: &str, stdin: &[u8]) -> Result<Output, (String, CniError)> {
    if command == "VERSION" {
        return Ok(Some(VersionInfo::danm().to_json()));
    }
    let latest = CniVersion::LATEST.as_str().to_string();
    let config: Config = serde_json::from_slice(stdin).map_err(|e| {
        (
            latest.clone(),
            CniError::decoding(format!("fakeipam could not decode its config: {e}")),
        )
    })?;
    let version = config.cni_version.clone();
    let shown = if version.is_empty() {
        latest
    } else {
        version.clone()
    };
    let fail = |err: CniError| (shown.clone(), err);
    let negotiated = negotiate(Some(&version), None).map_err(fail)?;
    match command {
        "ADD" => {
            let entries = config.ipam.map(|i| i.ips).unwrap_or_default();
            if entries.is_empty() {
                return Err(fail(CniError::new(
                    codes::INVALID_NETWORK_CONFIG,
                    "No IP was passed to fake IPAM",
                )));
            }
            let mut result = CniResult::default();
            for entry in entries {
                let address: IpNetwork = entry.ipcidr.parse().map_err(|_| {
                    fail(CniError::new(
                        codes::INVALID_NETWORK_CONFIG,
                        format!("Unable to parse the given IpamConfig.IpCidr: {}", entry.ipcidr),
                    ))
                })?;
                result.ips.push(IpConfig {
                    address,
                    gateway: None,
                    interface: None,
                });
            }
            Ok(Some(result.to_json(negotiated)))
        }
        "DEL" | "CHECK" | "GC" | "STATUS" => Ok(None),
        other => Err(fail(CniError::new(
            codes::INVALID_ENV,
            format!("unknown CNI_COMMAND {other:?}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn add(stdin: &str) -> Result<Value, (String, CniError)> {
        run("ADD", stdin.as_bytes()).map(|o| serde_json::from_str(&o.unwrap()).unwrap())
    }

    #[test]
    fn add_echoes_the_ips_as_a_result_of_every_supported_version() {
        for v in CniVersion::SUPPORTED.map(|v| v.as_str()) {
            let out = add(&format!(
                r#"{{"cniVersion":"{v}","name":"n","ipam":{{"type":"fakeipam","ips":[{{"ipcidr":"10.0.0.5/24","version":4}},{{"ipcidr":"2001:db8::5/64","version":6}}]}}}}"#
            ))
            .unwrap();
            assert_eq!(out["cniVersion"], v);
            let ips = out["ips"].as_array().unwrap();
            assert_eq!(ips.len(), 2);
            assert_eq!(ips[0]["address"], "10.0.0.5/24");
            assert_eq!(ips[1]["address"], "2001:db8::5/64");
            if v.starts_with("0.") {
                assert_eq!(ips[0]["version"], "4");
                assert_eq!(ips[1]["version"], "6");
            } else {
                assert!(ips[0].get("version").is_none());
            }
            assert!(out.get("interfaces").is_none() && out.get("routes").is_none());
        }
    }

    #[test]
    fn add_without_ips_is_the_no_ip_error() {
        let (v, err) = add(r#"{"cniVersion":"0.3.1","ipam":{"type":"fakeipam","ips":[]}}"#).unwrap_err();
        assert_eq!(v, "0.3.1");
        assert_eq!(err.msg, "No IP was passed to fake IPAM");
        let (_, err) = add(r#"{"cniVersion":"1.0.0"}"#).unwrap_err();
        assert_eq!(err.msg, "No IP was passed to fake IPAM");
    }

    #[test]
    fn add_with_a_bad_cidr_names_it() {
        let (_, err) =
            add(r#"{"cniVersion":"1.1.0","ipam":{"ips":[{"ipcidr":"10.0.0.300/24"}]}}"#).unwrap_err();
        assert_eq!(
            err.msg,
            "Unable to parse the given IpamConfig.IpCidr: 10.0.0.300/24"
        );
        assert_eq!(err.code, codes::INVALID_NETWORK_CONFIG);
    }

    #[test]
    fn del_check_gc_and_status_succeed_silently() {
        for cmd in ["DEL", "CHECK", "GC", "STATUS"] {
            assert_eq!(
                run(cmd, br#"{"cniVersion":"1.1.0","ipam":{"ips":[]}}"#).unwrap(),
                None
            );
        }
    }

    #[test]
    fn an_unsupported_version_is_error_one() {
        let (_, err) =
            add(r#"{"cniVersion":"0.2.0","ipam":{"ips":[{"ipcidr":"10.0.0.5/24"}]}}"#).unwrap_err();
        assert_eq!(err.code, codes::INCOMPATIBLE_VERSION);
    }

    #[test]
    fn bad_json_is_a_decode_failure() {
        let (_, err) = add("{not json").unwrap_err();
        assert_eq!(err.code, codes::DECODING_FAILURE);
    }

    #[test]
    fn version_lists_every_supported_version() {
        let out: Value = serde_json::from_str(&run("VERSION", b"").unwrap().unwrap()).unwrap();
        assert_eq!(
            out["supportedVersions"],
            serde_json::json!(["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }
}
