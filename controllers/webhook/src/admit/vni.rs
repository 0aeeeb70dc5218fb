//! VNI reservation and release in the TenantConfig (behaviour §8.4) with conditional writes: a 409 re-reads
//! the TenantConfig and recomputes on the fresh copy, a bounded number of times with jittered backoff
//! (behaviour §10 B8).
//!
//! Within one webhook process the writes to one TenantConfig wait in a queue ([`WriteQueues`]): concurrent
//! reviews would otherwise all compute from the same copy, all but one fail with 409, and under a steady stream of
//! TenantNetwork creates (~100/s in the load benchmark) a review could lose every one of its attempts. In the queue a
//! review conflicts at most once with its own process (its copy predates the writes queued before it) and re-reads
//! at once; only conflicts with other replicas back off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use danm_api::{NetworkSpec, TenantConfig};
use danm_core::vni::{self, VniError, VniRelease};

use super::Webhook;
use crate::cluster::ClusterError;

/// Why a VNI could not be reserved or released.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VniFailure {
    #[error("{0}")]
    Vni(#[from] VniError),
    #[error("{0}")]
    Cluster(#[from] ClusterError),
    #[error("TenantConfig {name} kept changing: gave up after {attempts} conflicting writes")]
    TooManyConflicts { name: String, attempts: u32 },
}

/// One async lock per TenantConfig name, held while this process writes that TenantConfig.
#[derive(Debug, Default)]
pub(crate) struct WriteQueues(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl WriteQueues {
    /// Waits for this process's earlier writes to TenantConfig `name`; the write may go while the guard lives.
    pub(crate) async fn enter(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let queue = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .clone();
        queue.lock_owned().await
    }
}

/// What a release did.
#[derive(Debug, PartialEq)]
pub(crate) enum Released {
    Freed(u32),
    Nothing,
    NoProfile { profile: String, vni_type: &'static str },
}

impl Webhook {
    /// After a 409 on a TenantConfig: the first one is this process's own earlier write (the copy was read before
    /// the queue let this review in), so the fresh copy is read at once; later ones come from another replica and
    /// back off.
    async fn after_conflict(&self, conflicts: &mut u32) {
        if *conflicts > 0 {
            self.backoff(*conflicts - 1).await;
        }
        *conflicts += 1;
    }

    /// Reserves the lowest free VNI of profile `name`/`vni_type`, starting from `tc` as read.
    pub(crate) async fn reserve_vni(
        &self,
        mut tc: TenantConfig,
        name: &str,
        vni_type: &str,
    ) -> Result<u32, VniFailure> {
        let tc_name = tc.metadata.name.clone().unwrap_or_default();
        let _turn = self.tenant_config_writes.enter(&tc_name).await;
        let mut conflicts = 0;
        for attempt in 0..self.retry.attempts {
            let (new, vni) = vni::reserve_for_profile(&tc, name, vni_type)?;
            match self.cluster.replace_tenant_config(&new).await {
                Ok(_) => {
                    tracing::info!(tenantconfig = %tc_name, profile = %name, vni_type, vni, "reserved VNI");
                    return Ok(vni);
                }
                Err(ClusterError::Conflict { .. }) => {
                    tracing::debug!(tenantconfig = %tc_name, attempt, "conflict reserving a VNI; re-reading");
                    self.after_conflict(&mut conflicts).await;
                    tc = self.cluster.get_tenant_config(&tc_name).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(VniFailure::TooManyConflicts {
            name: tc_name,
            attempts: self.retry.attempts,
        })
    }

    /// Frees the VNI of a TenantNetwork spec (profile = device_pool or host_device; vxlan if set, else vlan).
    pub(crate) async fn release_vni(
        &self,
        mut tc: TenantConfig,
        spec: &NetworkSpec,
    ) -> Result<Released, VniFailure> {
        let tc_name = tc.metadata.name.clone().unwrap_or_default();
        let _turn = self.tenant_config_writes.enter(&tc_name).await;
        let mut conflicts = 0;
        for _ in 0..self.retry.attempts {
            let new = match vni::release_network_vni(&tc, spec)? {
                VniRelease::NoVni | VniRelease::NotAllocated => return Ok(Released::Nothing),
                VniRelease::NoProfile { profile, vni_type } => {
                    return Ok(Released::NoProfile { profile, vni_type });
                }
                VniRelease::Freed(new) => new,
            };
            match self.cluster.replace_tenant_config(&new).await {
                Ok(_) => {
                    let vni = if spec.options.vxlan != 0 {
                        spec.options.vxlan
                    } else {
                        spec.options.vlan
                    };
                    tracing::info!(tenantconfig = %tc_name, vni, "released VNI");
                    return Ok(Released::Freed(vni));
                }
                Err(ClusterError::Conflict { .. }) => {
                    self.after_conflict(&mut conflicts).await;
                    tc = self.cluster.get_tenant_config(&tc_name).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(VniFailure::TooManyConflicts {
            name: tc_name,
            attempts: self.retry.attempts,
        })
    }
}
