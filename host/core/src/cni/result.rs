//! The CNI result in one version-free shape (the 1.1 one), read from any version 0.1.0–1.1.0 and written in any
//! supported version.
//!
//! Writing: 0.3.1/0.4.0 add `"version":"4"|"6"` to each IP; the 1.1.0 fields (interface `mtu`/`socketPath`/`pciID`,
//! route `mtu`/`advmss`/`priority`/`table`/`scope`) are only written for 1.1.0. Empty lists are omitted and `dns`
//! is always written, as libcni's Go types do.
//! Reading: 0.3.x/0.4.0/1.x share one shape (an IP's `version` is ignored; the address says it); 0.1.0/0.2.0 `ip4`/
//! `ip6` objects become IPs without an interface index, and their routes are appended. A result without
//! `cniVersion` is read by its shape.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CniError;
use super::version::CniVersion;

/// A CNI result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    /// Empty when L2 addresses are not meaningful.
    pub mac: String,
    /// 1.1.0.
    pub mtu: Option<u32>,
    /// The netns path for interfaces in the pod; empty for host interfaces.
    pub sandbox: String,
    /// 1.1.0.
    pub socket_path: Option<String>,
    /// 1.1.0.
    pub pci_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpConfig {
    /// Address and prefix length.
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
    /// Index into the result's `interfaces`.
    pub interface: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    /// 1.1.0.
    pub mtu: Option<u32>,
    /// 1.1.0.
    pub advmss: Option<u32>,
    /// 1.1.0.
    pub priority: Option<u32>,
    /// 1.1.0.
    pub table: Option<u32>,
    /// 1.1.0.
    pub scope: Option<u32>,
}

impl Route {
    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings (result `dns`, also the NPWG status `dns`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dns {
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub nameservers: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_default")]
    pub domain: String,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub search: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A result read together with the version it was written in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionedResult {
    /// As found (`""` when the result had none).
    pub cni_version: String,
    pub result: CniResult,
}

fn null_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

mod text {
    //! Addresses as the strings CNI uses (`10.0.0.5/24`, `10.0.0.1`).
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<T, D::Error>
    where
        T::Err: Display,
    {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }

    pub mod opt {
        use super::*;
        pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => s.collect_str(v),
                None => s.serialize_none(),
            }
        }
        pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error>
        where
            T::Err: Display,
        {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(s) if s.is_empty() => Ok(None),
                Some(s) => s
                    .parse()
                    .map(Some)
                    .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}"))),
            }
        }
    }
}

// ---- wire shapes ----------------------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct WireResult {
    #[serde(rename = "cniVersion", default, skip_deserializing)]
    cni_version: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    interfaces: Vec<WireInterface>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    ips: Vec<WireIp>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    routes: Vec<WireRoute>,
    #[serde(default, deserialize_with = "null_default")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct WireInterface {
    name: String,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    sandbox: String,
    #[serde(rename = "socketPath", default, skip_serializing_if = "Option::is_none")]
    socket_path: Option<String>,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pci_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none", skip_deserializing)]
    version: Option<&'static str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    #[serde(with = "text")]
    address: IpNetwork,
    #[serde(default, with = "text::opt", skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct WireRoute {
    #[serde(with = "text")]
    dst: IpNetwork,
    #[serde(default, with = "text::opt", skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<u32>,
}

#[derive(Deserialize)]
struct WireLegacy {
    #[serde(default)]
    ip4: Option<WireLegacyIp>,
    #[serde(default)]
    ip6: Option<WireLegacyIp>,
    #[serde(default, deserialize_with = "null_default")]
    dns: Dns,
}

#[derive(Deserialize)]
struct WireLegacyIp {
    #[serde(with = "text")]
    ip: IpNetwork,
    #[serde(default, with = "text::opt")]
    gateway: Option<IpAddr>,
    #[serde(default, deserialize_with = "null_default")]
    routes: Vec<WireRoute>,
}

impl From<WireRoute> for Route {
    fn from(r: WireRoute) -> Self {
        Route {
            dst: r.dst,
            gw: r.gw,
            mtu: r.mtu,
            advmss: r.advmss,
            priority: r.priority,
            table: r.table,
            scope: r.scope,
        }
    }
}

fn wire_route(r: &Route, v: CniVersion) -> WireRoute {
    let new = v.has_1_1_fields();
    WireRoute {
        dst: r.dst,
        gw: r.gw,
        mtu: r.mtu.filter(|_| new),
        advmss: r.advmss.filter(|_| new),
        priority: r.priority.filter(|_| new),
        table: r.table.filter(|_| new),
        scope: r.scope.filter(|_| new),
    }
}

const CURRENT_SHAPE: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const LEGACY_SHAPE: [&str; 2] = ["0.1.0", "0.2.0"];

impl CniResult {
    /// The result as a JSON value in `version`'s shape.
    pub fn to_value(&self, version: CniVersion) -> Value {
        let new = version.has_1_1_fields();
        let wire = WireResult {
            cni_version: version.as_str().to_owned(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| WireInterface {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    mtu: i.mtu.filter(|_| new),
                    sandbox: i.sandbox.clone(),
                    socket_path: i.socket_path.clone().filter(|_| new),
                    pci_id: i.pci_id.clone().filter(|_| new),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| WireIp {
                    version: version.ips_carry_version().then_some(if ip.address.is_ipv4() {
                        "4"
                    } else {
                        "6"
                    }),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self.routes.iter().map(|r| wire_route(r, version)).collect(),
            dns: self.dns.clone(),
        };
        serde_json::to_value(wire).expect("a CNI result always serialises")
    }

    /// The result as the JSON text printed on stdout.
    pub fn to_json(&self, version: CniVersion) -> String {
        self.to_value(version).to_string()
    }

    /// Reads a result of any version 0.1.0–1.1.0 (a delegate's stdout, a `prevResult`). Errors are code 6.
    pub fn parse(bytes: &[u8]) -> Result<VersionedResult, CniError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decoding(format!("the CNI result is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// [`CniResult::parse`] on an already decoded value.
    pub fn from_value(value: Value) -> Result<VersionedResult, CniError> {
        let Value::Object(object) = &value else {
            return Err(CniError::decoding("the CNI result is not a JSON object"));
        };
        let cni_version = match object.get("cniVersion") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(CniError::decoding("the CNI result's cniVersion is not a string")),
        };
        let legacy = if cni_version.is_empty() {
            object.contains_key("ip4") || object.contains_key("ip6")
        } else if LEGACY_SHAPE.contains(&cni_version.as_str()) {
            true
        } else if CURRENT_SHAPE.contains(&cni_version.as_str()) {
            false
        } else {
            return Err(CniError::decoding(format!(
                "the CNI result has unsupported cniVersion {cni_version:?}"
            )));
        };
        let bad = |e: serde_json::Error| {
            CniError::decoding(format!(
                "the CNI result (cniVersion {cni_version:?}) could not be decoded: {e}"
            ))
        };
        let result = if legacy {
            let wire: WireLegacy = serde_json::from_value(value.clone()).map_err(bad)?;
            let mut result = CniResult {
                dns: wire.dns,
                ..CniResult::default()
            };
            for ip in [wire.ip4, wire.ip6].into_iter().flatten() {
                result.ips.push(IpConfig {
                    address: ip.ip,
                    gateway: ip.gateway,
                    interface: None,
                });
                result.routes.extend(ip.routes.into_iter().map(Route::from));
            }
            result
        } else {
            let wire: WireResult = serde_json::from_value(value.clone()).map_err(bad)?;
            CniResult {
                interfaces: wire
                    .interfaces
                    .into_iter()
                    .map(|i| Interface {
                        name: i.name,
                        mac: i.mac,
                        mtu: i.mtu,
                        sandbox: i.sandbox,
                        socket_path: i.socket_path,
                        pci_id: i.pci_id,
                    })
                    .collect(),
                ips: wire
                    .ips
                    .into_iter()
                    .map(|ip| IpConfig {
                        address: ip.address,
                        gateway: ip.gateway,
                        interface: ip.interface,
                    })
                    .collect(),
                routes: wire.routes.into_iter().map(Route::from).collect(),
                dns: wire.dns,
            }
        };
        Ok(VersionedResult { cni_version, result })
    }

    /// The last address of one family (`v6` false: IPv4), as DANM recorded a delegate's address in the DanmEp
    /// (behaviour §4.7). `interface` restricts it to IPs of that interface index (IPs without an index count
    /// too).
    pub fn last_address(&self, v6: bool, interface: Option<usize>) -> Option<IpNetwork> {
        self.ips
            .iter()
            .filter(|ip| ip.address.is_ipv6() == v6)
            .filter(|ip| interface.is_none() || ip.interface.is_none() || ip.interface == interface)
            .map(|ip| ip.address)
            .next_back()
    }

    /// The same result with only what `version` can carry (the 1.1.0 fields dropped for older versions): what a
    /// consumer of that version reads back.
    pub fn restricted_to(&self, version: CniVersion) -> CniResult {
        let mut r = self.clone();
        if !version.has_1_1_fields() {
            for i in &mut r.interfaces {
                (i.mtu, i.socket_path, i.pci_id) = (None, None, None);
            }
            for route in &mut r.routes {
                *route = Route::new(route.dst, route.gw);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests;
