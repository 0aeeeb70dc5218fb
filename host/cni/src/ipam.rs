//! IPAM over the API: [`danm_core::ipam`] applied to a freshly read network and persisted with a conditional PUT;
//! on HTTP 409 the network is re-read and the step redone, with bounded, jittered exponential backoff (spec §5.4,
//! §10 B8). Exhausted retries are a "try again" failure.

use std::time::Duration;

use danm_api::{Network, NetworkKind};
use danm_core::ipam::{self, IpRequest, IpamError};
use rand::Rng;

use crate::api::{Api, ApiError, network_object};

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
    fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.max);
        let jitter = rand::rng().random_range(0.5..=1.0);
        exp.mul_f64(jitter)
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

/// One interface's address request (IPv4, IPv6).
pub type Request<'a> = (&'a IpRequest, &'a IpRequest);

/// Why a batch reservation failed: `index` names the request that could not be served, `None` the whole batch.
#[derive(Debug)]
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

/// Reserves the addresses of several interfaces of one pod on one network with a single conditional write: every
/// request is applied in order to the bitmap read last, and the whole batch is written once (re-read and redone on
/// 409). `network` is a copy read earlier, used for the first try. Either every request is served and written, or
/// nothing is.
pub async fn reserve_batch(
    api: &dyn Api,
    network: &Network,
    requests: &[Request<'_>],
    retry: Retry,
) -> Result<(Vec<Reserved>, Network), BatchError> {
    let kind = network.network_kind().unwrap_or(NetworkKind::DanmNet);
    let ns = network.namespace().unwrap_or_default().to_owned();
    let name = network.name().to_owned();
    let object = network_object(kind, &ns, &name);
    let mut current = network.clone();
    for attempt in 0..retry.attempts {
        let mut spec = current.spec.clone();
        let mut reserved = Vec::with_capacity(requests.len());
        for (index, (req4, req6)) in requests.iter().enumerate() {
            let res = ipam::reserve(&spec, req4, req6).map_err(|source| BatchError {
                index: Some(index),
                error: IpamApiError::Ipam {
                    network: name.clone(),
                    source,
                },
            })?;
            spec = res.spec;
            reserved.push(Reserved {
                ip4: res.ip4,
                ip6: res.ip6,
            });
        }
        if spec == current.spec {
            return Ok((reserved, current));
        }
        let mut updated = current.clone();
        updated.spec = spec;
        match api.replace_network(&updated).await {
            Ok(written) => return Ok((reserved, written)),
            Err(ApiError::Conflict { .. }) => {
                tracing::debug!(network = %object, attempt, "IPAM conflict, re-reading");
                tokio::time::sleep(retry.delay(attempt)).await;
                current = api
                    .get_network(kind, &ns, &name)
                    .await?
                    .ok_or(IpamApiError::Gone {
                        object: object.clone(),
                    })?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(IpamApiError::Conflicts {
        object,
        attempts: retry.attempts,
    }
    .into())
}

/// Releases an interface's addresses on the network `kind`/`namespace`/`name`. A network that is gone has nothing
/// to release (`Ok(false)`); addresses outside its ranges are skipped without a write (spec §5.5).
pub async fn release(
    api: &dyn Api,
    kind: NetworkKind,
    namespace: &str,
    name: &str,
    addr4: &str,
    addr6: &str,
    retry: Retry,
) -> Result<bool, IpamApiError> {
    release_batch(api, kind, namespace, name, None, &[(addr4, addr6)], retry).await
}

/// Releases the addresses (`(v4, v6)` per interface) of several interfaces on one network with one conditional
/// write. `read` is a copy of the network read earlier in this invocation, used for the first try (a 409 means it
/// was stale: the network is read again). A network that is gone has nothing to release (`Ok(false)`); addresses
/// outside its ranges are skipped.
pub async fn release_batch(
    api: &dyn Api,
    kind: NetworkKind,
    namespace: &str,
    name: &str,
    read: Option<Network>,
    addresses: &[(&str, &str)],
    retry: Retry,
) -> Result<bool, IpamApiError> {
    if !addresses.iter().any(|(a4, a6)| is_real(a4) || is_real(a6)) {
        return Ok(false);
    }
    let object = network_object(kind, namespace, name);
    let mut read = read;
    for attempt in 0..retry.attempts {
        let current = match read.take() {
            Some(network) => network,
            None => match api.get_network(kind, namespace, name).await? {
                Some(network) => network,
                None => return Ok(false),
            },
        };
        let mut spec = current.spec.clone();
        for (addr4, addr6) in addresses {
            spec = ipam::release(&spec, addr4, addr6).0;
        }
        if spec == current.spec {
            return Ok(false);
        }
        let mut updated = current;
        updated.spec = spec;
        match api.replace_network(&updated).await {
            Ok(_) => return Ok(true),
            Err(ApiError::Conflict { .. }) => tokio::time::sleep(retry.delay(attempt)).await,
            Err(ApiError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
    Err(IpamApiError::Conflicts {
        object,
        attempts: retry.attempts,
    })
}
