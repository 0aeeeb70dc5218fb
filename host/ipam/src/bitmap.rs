//! The `bitmap` mode: [`danm_core::ipam`] applied to a freshly read network and persisted with a conditional PUT;
//! on HTTP 409 the network is re-read and the step redone (DANM's behaviour, with bounded retries). Owners are not
//! recorded: the bitmap has no room for them.

use danm_api::{Network, NetworkKind};
use danm_core::ipam;

use crate::store::{ApiError, IpamStore, network_object};
use crate::{BatchError, IpamApiError, Release, Request, Reserved, Retry};

/// Reserves the addresses of several interfaces with a single conditional write: every request is applied in order
/// to the bitmap read last, and the whole batch is written once (re-read and redone on 409). `network` is a copy
/// read earlier, used for the first try. Either every request is served and written, or nothing is.
pub(crate) async fn reserve_batch(
    store: &dyn IpamStore,
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
        for (index, req) in requests.iter().enumerate() {
            let res = ipam::reserve(&spec, &req.ip4, &req.ip6).map_err(|source| BatchError {
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
        match store.replace_network(&updated).await {
            Ok(written) => return Ok((reserved, written)),
            Err(ApiError::Conflict { .. }) => {
                tracing::debug!(network = %object, attempt, "IPAM conflict, re-reading");
                tokio::time::sleep(retry.delay(attempt)).await;
                current = store
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

/// Releases the addresses of several interfaces with one conditional write. `read` is a copy of the network read
/// earlier in this invocation, used for the first try (a 409 means it was stale: the network is read again). A
/// network that is gone has nothing to release (`Ok(false)`); addresses outside its ranges are skipped.
pub(crate) async fn release_batch(
    store: &dyn IpamStore,
    read: Network,
    addresses: &[Release<'_>],
    retry: Retry,
) -> Result<bool, IpamApiError> {
    let kind = read.network_kind().unwrap_or(NetworkKind::DanmNet);
    let namespace = read.namespace().unwrap_or_default().to_owned();
    let name = read.name().to_owned();
    let object = network_object(kind, &namespace, &name);
    let mut read = Some(read);
    for attempt in 0..retry.attempts {
        let current = match read.take() {
            Some(network) => network,
            None => match store.get_network(kind, &namespace, &name).await? {
                Some(network) => network,
                None => return Ok(false),
            },
        };
        let mut spec = current.spec.clone();
        for a in addresses {
            spec = ipam::release(&spec, a.ip4, a.ip6).0;
        }
        if spec == current.spec {
            return Ok(false);
        }
        let mut updated = current;
        updated.spec = spec;
        match store.replace_network(&updated).await {
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
