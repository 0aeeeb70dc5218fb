//! Everything one invocation works with: the parsed CNI inputs, the API, netlink and the backend translator, and
//! the helpers shared by ADD, DEL, CHECK and GC (network type, IPAM decision, building a delegate config).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use danm_api::{Network, NetworkSpec};
use danm_core::cni::{CniArgs, CniConfig, CniEnv, CniVersion};
use danm_core::ipam::IpRequest;
use danm_netlink::{Netlink, Netns};
use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::api::Api;
use crate::delegate::{self, Chain, DelegateEnv, PluginRunner};
use crate::error::Error;
use crate::ipam::{Ipam, IpamConfig, Retry, is_real};
use crate::native::Sysfs;
use crate::results::ResultCache;
use crate::translate::{TranslateError, TranslateRequest, Translator};

/// The inputs and services of one invocation.
pub struct Ctx {
    pub api: Arc<dyn Api>,
    pub netlink: Arc<dyn Netlink>,
    pub translator: Arc<dyn Translator>,
    pub config: CniConfig,
    pub version: CniVersion,
    pub env: CniEnv,
    pub args: CniArgs,
    /// The node's name as recorded in DanmEps (`Host`).
    pub hostname: String,
    pub retry: Retry,
    pub sysfs: Sysfs,
    /// Kubelet's root directory (device-plugin checkpoint).
    pub kubelet_root: PathBuf,
    /// `PATH` passed to delegates.
    pub process_path: String,
    /// What runs delegate plugins ([`crate::delegate::ProcessRunner`] in the binary).
    pub delegates: Arc<dyn PluginRunner>,
}

impl Ctx {
    /// The environment delegates get.
    pub fn delegate_env(&self, netns: &str) -> DelegateEnv {
        DelegateEnv {
            container_id: self.env.container_id().to_owned(),
            netns: netns.to_owned(),
            args: self.env.args.clone().unwrap_or_default(),
            cni_path: self.config.delegate_path(&self.env.path),
            path: self.process_path.clone(),
            runner: self.delegates.clone(),
        }
    }

    /// Where this node keeps its delegates' ADD results.
    pub fn results(&self) -> ResultCache {
        ResultCache::new(&self.config.result_dir)
    }
}

/// Whether danm's IPAM handles the interface (behaviour §4.5): always for plugin-served types that ask for it
/// (and for ipvlan); for static delegates only for `none` requests or real requests on a family the network
/// has a pool for.
pub fn needs_danm_ipam(
    translator: &dyn Translator,
    ty: &str,
    spec: &NetworkSpec,
    ip: &IpRequest,
    ip6: &IpRequest,
) -> bool {
    if translator.serves(ty) {
        return translator.needs_ipam(ty) || ty == "ipvlan";
    }
    let opts = &spec.options;
    *ip == IpRequest::None
        || *ip6 == IpRequest::None
        || (ip.needs_ipam() && !opts.cidr.is_empty())
        || (ip6.needs_ipam() && (!opts.allocation_pool_v6.cidr.is_empty() || !opts.net6.is_empty()))
}

/// `Some(addr)` for a real address.
pub fn real(addr: &str) -> Option<String> {
    is_real(addr).then(|| addr.to_owned())
}

/// Whether `addr` (`ip/len`) lies in the network's `cidr` or `net6`: the addresses danm allocated for a static
/// delegate (behaviour §4.12).
pub fn in_network(spec: &NetworkSpec, addr: &str) -> bool {
    let Some(ip) = addr.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()) else {
        return false;
    };
    let range = if ip.is_ipv4() {
        &spec.options.cidr
    } else {
        &spec.options.net6
    };
    range.parse::<IpNetwork>().is_ok_and(|n| n.contains(ip))
}

/// The inputs of a delegate config.
#[derive(Clone, Debug)]
pub struct ConfigInput<'a> {
    pub network: &'a Network,
    pub ty: &'a str,
    pub ifname: &'a str,
    pub ip4: &'a str,
    pub ip6: &'a str,
    /// danm allocated the addresses (static delegates then get fakeipam).
    pub danm_ipam: bool,
    pub device_id: Option<&'a str>,
    pub parent: Option<String>,
    pub pod_namespace: &'a str,
    pub pod_name: &'a str,
    /// Run the backend's rules on the network before translating (ADD: a network that got in while the webhook was
    /// bypassed fails with its violations; DEL and CHECK take the network as it is).
    pub validate: bool,
}

/// The CNI config of an interface: the backend plugin's translation when a plugin serves the type, else the static
/// config from `cniDir` (with fakeipam when danm allocated the addresses).
pub async fn build_config(ctx: &Ctx, input: &ConfigInput<'_>) -> Result<Chain, Error> {
    if ctx.translator.serves(input.ty) {
        let req = TranslateRequest {
            network_json: serde_json::to_string(input.network).map_err(|e| Error::Other(e.to_string()))?,
            interface_name: input.ifname.to_owned(),
            ip4: real(input.ip4),
            ip6: real(input.ip6),
            parent: input.parent.clone(),
            device_id: input.device_id.map(str::to_owned),
            cni_version: ctx.version.as_str().to_owned(),
            pod_namespace: input.pod_namespace.to_owned(),
            pod_name: input.pod_name.to_owned(),
        };
        // Plugin calls are synchronous (wasmtime, whose WASI layer blocks on tokio itself): run them on a plain
        // thread outside the runtime and await the answer.
        let (translator, ty, validate) = (ctx.translator.clone(), input.ty.to_owned(), input.validate);
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let outcome = if validate {
                match translator.validate(&ty, &req.network_json) {
                    Ok(violations) if violations.is_empty() => Ok(translator.translate(&ty, &req)),
                    Ok(violations) => Err(violations),
                    Err(e) => Ok(Err(e)),
                }
            } else {
                Ok(translator.translate(&ty, &req))
            };
            let _ = tx.send(outcome);
        });
        let plugin_err = |source: TranslateError| Error::Plugin {
            network_type: input.ty.to_owned(),
            source,
        };
        let text = rx
            .await
            .map_err(|_| plugin_err(TranslateError::Panicked))?
            .map_err(|violations| Error::InvalidNetwork {
                network: input.network.name().to_owned(),
                violations,
            })?
            .map_err(plugin_err)?;
        let mut value: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Translated(format!("backend {} returned invalid JSON: {e}", input.ty)))?;
        let Some(map) = value.as_object_mut() else {
            return Err(Error::Translated(format!(
                "backend {} did not return a JSON object",
                input.ty
            )));
        };
        delegate::ensure_version(map, ctx.version.as_str());
        return Ok(Chain::single(value));
    }
    let ipam = if input.danm_ipam {
        delegate::fakeipam_block(input.ip4, input.ip6)
    } else {
        None
    };
    delegate::load_static(
        &ctx.config.cni_dir,
        &input.network.spec.network_id,
        input.ty,
        ipam.as_ref(),
    )
}

/// The namespace of a netns path.
pub fn netns_of(path: &str) -> Netns {
    Netns::path(path)
}

/// IPAM, as this invocation configures it.
impl Ctx {
    /// The cluster-wide IPAM settings of this invocation.
    pub fn ipam_config(&self) -> IpamConfig {
        let defaults = IpamConfig::default();
        let config = &self.config;
        IpamConfig {
            // Validated when the config was parsed.
            default_mode: config.ipam_mode().unwrap_or(defaults.default_mode),
            retry: self.retry,
            block_prefix_v4: config.ipam_block_prefix.unwrap_or(defaults.block_prefix_v4),
            block_prefix_v6: config.ipam_block_prefix6.unwrap_or(defaults.block_prefix_v6),
            idle: config
                .ipam_idle_seconds
                .map(Duration::from_secs)
                .unwrap_or(defaults.idle),
        }
    }

    /// IPAM for this node over the invocation's API client.
    pub fn ipam(&self) -> Ipam<'_> {
        Ipam::new(self.api.as_ref(), &self.hostname, self.ipam_config())
    }
}
