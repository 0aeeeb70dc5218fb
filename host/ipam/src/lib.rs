//! danm's IPAM over the Kubernetes API: one interface, [`Ipam`], for the two modes a network can be in.
//!
//! - `bitmap`: DANM's `alloc`/`alloc6` in the network object, bit for bit ([`danm_core::ipam`] applied to a freshly
//!   read network and written back with a conditional PUT). Kept for clusters where DANM's own CNI still runs.
//! - `blocks`: DanmIpBlock objects, one per aligned block of a network's pool, each held by a node and recording an
//!   owner (a DanmEp's name) per address. A node allocates from its own blocks, claims a free block with a create
//!   when they are full, and borrows an address from another node's block when the pool has no free block left. The
//!   network object is never written, and an address is freed only by its owner.
//!
//! Every write is conditional; a lost race (HTTP 409) is re-read and redone with bounded, jittered backoff, and
//! exhausted retries are a "try again" failure.
//!
//! ```no_run
//! # async fn demo(client: kube::Client, network: danm_api::Network) -> Result<(), Box<dyn std::error::Error>> {
//! use danm_core::ipam::IpRequest;
//! use danm_ipam::{Ipam, IpamConfig, Release, Request};
//!
//! let ipam = Ipam::new(&client, "worker-1", IpamConfig::default());
//! let request = Request { ip4: IpRequest::Dynamic, ip6: IpRequest::Absent, owner: "0b5e6c1e-danmep" };
//! let (reserved, _network) = ipam.reserve(&network, &[request]).await?;
//! println!("got {}", reserved[0].ip4);
//! let release = Release { ip4: &reserved[0].ip4, ip6: "", owner: "0b5e6c1e-danmep" };
//! ipam.release(&network, &[release]).await?;
//! # Ok(()) }
//! ```

mod bitmap;
mod blocks;
pub mod migrate;
pub mod reconcile;
pub mod store;

use std::time::Duration;

use danm_api::{Network, NetworkKind};
use danm_core::ipam::blocks::{DEFAULT_BLOCK_PREFIX_V4, DEFAULT_BLOCK_PREFIX_V6, IpamMode, NetworkId};
use danm_core::ipam::{Family, IpRequest, IpamError};
use rand::Rng;

pub use blocks::BlockStats;
pub use store::{ApiError, IpamStore, block_object, network_object};

/// How often a conflicting write is retried, and the backoff between tries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Retry {
    /// 25 tries, 5 ms doubling to at most 200 ms, each jittered to 50–100 %: about 3 s in the worst case.
    fn default() -> Self {
        Retry {
            attempts: 25,
            base: Duration::from_millis(5),
            max: Duration::from_millis(200),
        }
    }
}

impl Retry {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        let jitter = rand::rng().random_range(0.5..=1.0);
        exp.mul_f64(jitter)
    }
}

/// The cluster-wide IPAM settings (the CNI config's, or a controller's flags).
#[derive(Clone, Copy, Debug)]
pub struct IpamConfig {
    /// The mode of a network that neither names one nor carries a bitmap.
    pub default_mode: IpamMode,
    pub retry: Retry,
    /// Default block prefix lengths (a network's annotations override them).
    pub block_prefix_v4: u8,
    pub block_prefix_v6: u8,
    /// How long a block of this node stays empty before it is handed back.
    pub idle: Duration,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            default_mode: IpamMode::Blocks,
            retry: Retry::default(),
            block_prefix_v4: DEFAULT_BLOCK_PREFIX_V4,
            block_prefix_v6: DEFAULT_BLOCK_PREFIX_V6,
            idle: Duration::from_secs(600),
        }
    }
}

/// Errors of API-backed IPAM.
#[derive(Debug, thiserror::Error)]
pub enum IpamApiError {
    #[error("IP address reservation failed for network:{network} with error:{source}")]
    Ipam { network: String, source: IpamError },
    #[error("{object} was modified concurrently {attempts} times in a row; giving up (try again)")]
    Conflicts { object: String, attempts: u32 },
    #[error("{object} no longer exists")]
    Gone { object: String },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// The addresses reserved for one interface (`""`, `"none"` or `ip/prefix` per family).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reserved {
    pub ip4: String,
    pub ip6: String,
}

impl Reserved {
    /// Whether anything must be released again.
    pub fn holds_addresses(&self) -> bool {
        is_real(&self.ip4) || is_real(&self.ip6)
    }
}

/// `""` and `none` are not addresses.
pub fn is_real(addr: &str) -> bool {
    !addr.is_empty() && addr != "none"
}

/// One interface's address request and who will own what it gets (its DanmEp's name).
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub ip4: IpRequest,
    pub ip6: IpRequest,
    pub owner: &'a str,
}

/// One interface's addresses to release, and who holds them (its DanmEp's name).
#[derive(Clone, Copy, Debug)]
pub struct Release<'a> {
    pub ip4: &'a str,
    pub ip6: &'a str,
    pub owner: &'a str,
}

/// Why a batch reservation failed: `index` names the request that could not be served, `None` the whole batch.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct BatchError {
    pub index: Option<usize>,
    pub error: IpamApiError,
}

impl From<IpamApiError> for BatchError {
    fn from(error: IpamApiError) -> Self {
        BatchError { index: None, error }
    }
}

impl From<ApiError> for BatchError {
    fn from(error: ApiError) -> Self {
        IpamApiError::from(error).into()
    }
}

/// The identity of a network object.
pub fn network_id(network: &Network) -> NetworkId {
    let kind = network.network_kind().unwrap_or(NetworkKind::DanmNet);
    NetworkId::new(kind, network.namespace().unwrap_or_default(), network.name())
}

/// IPAM for one node: picks each network's mode and runs the matching allocator.
pub struct Ipam<'a> {
    store: &'a dyn IpamStore,
    node: &'a str,
    config: IpamConfig,
}

impl<'a> Ipam<'a> {
    pub fn new(store: &'a dyn IpamStore, node: &'a str, config: IpamConfig) -> Self {
        Ipam { store, node, config }
    }

    /// The mode of `network` (see [`IpamMode::of_network`]).
    pub fn mode(&self, network: &Network) -> Result<IpamMode, IpamError> {
        IpamMode::of_network(
            network.metadata.annotations.as_ref(),
            &network.spec,
            self.config.default_mode,
        )
    }

    /// Reserves the addresses of several interfaces of one pod on one network. `network` is a copy read earlier.
    /// Either every request is served, or nothing is held afterwards. Returns the addresses in request order and the
    /// network as last written (bitmap mode) or as given (blocks mode).
    pub async fn reserve(
        &self,
        network: &Network,
        requests: &[Request<'_>],
    ) -> Result<(Vec<Reserved>, Network), BatchError> {
        let mode = self.mode(network).map_err(|source| IpamApiError::Ipam {
            network: network.name().to_owned(),
            source,
        })?;
        match mode {
            IpamMode::Bitmap => bitmap::reserve_batch(self.store, network, requests, self.config.retry).await,
            IpamMode::Blocks => {
                let reserved = blocks::Blocks::new(self.store, self.node, &self.config, network)
                    .reserve_batch(requests)
                    .await?;
                Ok((reserved, network.clone()))
            }
        }
    }

    /// Releases the addresses of several interfaces on `network` (a copy read in this invocation; a bitmap write
    /// that meets a 409 reads it again). In blocks mode an address is freed only if `owner` holds it. Returns
    /// whether anything was freed; addresses outside the network's ranges are skipped.
    pub async fn release(&self, network: &Network, addresses: &[Release<'_>]) -> Result<bool, IpamApiError> {
        if !addresses.iter().any(|a| is_real(a.ip4) || is_real(a.ip6)) {
            return Ok(false);
        }
        let mode = self.mode(network).map_err(|source| IpamApiError::Ipam {
            network: network.name().to_owned(),
            source,
        })?;
        match mode {
            IpamMode::Bitmap => {
                bitmap::release_batch(self.store, network.clone(), addresses, self.config.retry).await
            }
            IpamMode::Blocks => {
                blocks::Blocks::new(self.store, self.node, &self.config, network)
                    .release_batch(addresses)
                    .await
            }
        }
    }

    /// Releases addresses on the network `kind`/`namespace`/`name`, read now. A network that is gone has nothing to
    /// release (`Ok(false)`).
    pub async fn release_on(
        &self,
        kind: NetworkKind,
        namespace: &str,
        name: &str,
        addresses: &[Release<'_>],
    ) -> Result<bool, IpamApiError> {
        if !addresses.iter().any(|a| is_real(a.ip4) || is_real(a.ip6)) {
            return Ok(false);
        }
        match self.store.get_network(kind, namespace, name).await? {
            Some(network) => self.release(&network, addresses).await,
            None => Ok(false),
        }
    }

    /// Whether the network's IPAM holds `addr` for `owner`: its bit is set (bitmap mode, which records no owner), or
    /// its block records `owner` (blocks mode). Addresses outside the network's ranges are not danm's: `true`.
    pub async fn holds(&self, network: &Network, addr: &str, owner: &str) -> Result<bool, IpamApiError> {
        let mode = self.mode(network).map_err(|source| IpamApiError::Ipam {
            network: network.name().to_owned(),
            source,
        })?;
        match mode {
            IpamMode::Bitmap => Ok(danm_core::ipam::release(&network.spec, addr, "").1),
            IpamMode::Blocks => {
                let blocks = blocks::Blocks::new(self.store, self.node, &self.config, network);
                Ok(blocks
                    .owner_of(addr)
                    .await?
                    .is_none_or(|held| held.as_deref() == Some(owner)))
            }
        }
    }

    /// The blocks of a network in blocks mode, per family (for `danmctl ipam show`, the lab and checks).
    pub async fn block_stats(&self, network: &Network) -> Result<Vec<BlockStats>, IpamApiError> {
        let blocks = blocks::Blocks::new(self.store, self.node, &self.config, network);
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            out.extend(blocks.stats(family).await?);
        }
        Ok(out)
    }
}
