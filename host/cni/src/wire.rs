//! The CNI wire format danm-cni speaks: spec versions, the error object with its codes, and results serialised per
//! version. (A bridge until `danm_core::cni` lands; the flows only use the types re-exported here.)

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::{Map, Value, json};

/// Every CNI spec version danm speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];
/// The newest supported version (used for VERSION output and errors before a config was read).
pub const LATEST: &str = "1.1.0";

/// CNI error codes (CNI spec "Error" section) plus danm's own (≥ 100).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// A generic failure of danm (API error, kernel error, ...).
    pub const DANM_FAILURE: u32 = 100;
    /// A backend plugin failed (trap, translate error).
    pub const PLUGIN_FAILURE: u32 = 101;
    /// A delegated CNI plugin failed.
    pub const DELEGATE_FAILURE: u32 = 102;
    /// The ADD did not finish within the configured deadline.
    pub const TIMEOUT: u32 = 103;
}

/// A CNI error as printed on stdout.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {code}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct WireError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl WireError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        WireError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON object of the CNI spec, declaring `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), json!(cni_version));
        obj.insert("code".into(), json!(self.code));
        obj.insert("msg".into(), json!(self.msg));
        if !self.details.is_empty() {
            obj.insert("details".into(), json!(self.details));
        }
        Value::Object(obj).to_string()
    }

    /// Reads an error object a delegate printed.
    pub fn from_json(text: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(text).ok()?;
        let code = v.get("code")?.as_u64()? as u32;
        Some(WireError {
            code,
            msg: v
                .get("msg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            details: v
                .get("details")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }
}

/// Checks that `version` is one danm supports.
pub fn check_version(version: &str) -> Result<(), WireError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(WireError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "incompatible CNI versions: config is {version:?}, plugin supports {SUPPORTED_VERSIONS:?}"
            ),
        ))
    }
}

/// The VERSION output.
pub fn version_json() -> String {
    json!({"cniVersion": LATEST, "supportedVersions": SUPPORTED_VERSIONS}).to_string()
}

/// One interface of a result.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ResultInterface {
    pub name: String,
    pub mac: String,
    pub sandbox: String,
    pub mtu: Option<u32>,
}

/// One address of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultIp {
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into the result's interfaces.
    pub interface: Option<usize>,
}

/// One route of a result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRoute {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
}

/// A CNI result in a version-independent form.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CniResult {
    pub interfaces: Vec<ResultInterface>,
    pub ips: Vec<ResultIp>,
    pub routes: Vec<ResultRoute>,
    pub dns: Value,
}

impl CniResult {
    /// Serialises the result as `version` (0.3.x/0.4.0 carry `"version"` on each IP; 1.x does not).
    pub fn to_json(&self, version: &str) -> String {
        self.to_value(version).to_string()
    }

    pub fn to_value(&self, version: &str) -> Value {
        let old = version.starts_with("0.");
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), json!(version));
        if !self.interfaces.is_empty() {
            let ifs: Vec<Value> = self
                .interfaces
                .iter()
                .map(|i| {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(i.name));
                    if !i.mac.is_empty() {
                        o.insert("mac".into(), json!(i.mac));
                    }
                    if !i.sandbox.is_empty() {
                        o.insert("sandbox".into(), json!(i.sandbox));
                    }
                    if let (Some(mtu), false) = (i.mtu, old) {
                        o.insert("mtu".into(), json!(mtu));
                    }
                    Value::Object(o)
                })
                .collect();
            obj.insert("interfaces".into(), Value::Array(ifs));
        }
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if old {
                    o.insert(
                        "version".into(),
                        json!(if ip.address.is_ipv4() { "4" } else { "6" }),
                    );
                }
                o.insert("address".into(), json!(ip.address.to_string()));
                if let Some(gw) = ip.gateway {
                    o.insert("gateway".into(), json!(gw.to_string()));
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), json!(i));
                }
                Value::Object(o)
            })
            .collect();
        obj.insert("ips".into(), Value::Array(ips));
        if !self.routes.is_empty() {
            let routes: Vec<Value> = self
                .routes
                .iter()
                .map(|r| match r.gw {
                    Some(gw) => json!({"dst": r.dst.to_string(), "gw": gw.to_string()}),
                    None => json!({"dst": r.dst.to_string()}),
                })
                .collect();
            obj.insert("routes".into(), Value::Array(routes));
        }
        if self.dns.as_object().is_some_and(|o| !o.is_empty()) {
            obj.insert("dns".into(), self.dns.clone());
        }
        Value::Object(obj)
    }

    /// Parses a result of any version 0.3.0–1.1.0 (what a delegate prints). Unknown keys are ignored.
    pub fn from_json(text: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(text).map_err(|e| format!("result is not JSON: {e}"))?;
        let mut out = CniResult {
            dns: v.get("dns").cloned().unwrap_or(Value::Null),
            ..Default::default()
        };
        for i in v
            .get("interfaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.interfaces.push(ResultInterface {
                name: str_of(i, "name"),
                mac: str_of(i, "mac"),
                sandbox: str_of(i, "sandbox"),
                mtu: i.get("mtu").and_then(Value::as_u64).map(|m| m as u32),
            });
        }
        for ip in v.get("ips").and_then(Value::as_array).into_iter().flatten() {
            let address = str_of(ip, "address");
            let address: IpNetwork = address
                .parse()
                .map_err(|e| format!("bad result address {address:?}: {e}"))?;
            let gateway = ip
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok());
            let interface = ip.get("interface").and_then(Value::as_u64).map(|i| i as usize);
            out.ips.push(ResultIp {
                address,
                gateway,
                interface,
            });
        }
        for r in v.get("routes").and_then(Value::as_array).into_iter().flatten() {
            let dst = str_of(r, "dst");
            let dst: IpNetwork = dst
                .parse()
                .map_err(|e| format!("bad result route {dst:?}: {e}"))?;
            let gw = r.get("gw").and_then(Value::as_str).and_then(|g| g.parse().ok());
            out.routes.push(ResultRoute { dst, gw });
        }
        Ok(out)
    }

    /// Appends `other`, renumbering its IPs' interface indices (spec §10 B4).
    pub fn append(&mut self, other: CniResult) {
        let offset = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + offset);
            ip
        }));
        self.routes.extend(other.routes);
        if self.dns.is_null() && !other.dns.is_null() {
            self.dns = other.dns;
        }
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}
