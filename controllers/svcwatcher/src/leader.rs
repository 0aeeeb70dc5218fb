//! Leader election with a `coordination.k8s.io/v1` Lease (behaviour §10 B13: no Endpoints lock), written
//! against kube's `Api<Lease>` with conditional (resourceVersion) replaces.
//!
//! Like client-go, expiry is judged on the local clock: a candidate takes over when the Lease record has not
//! changed for `lease_duration` since it first saw it, so clock skew between nodes does not matter.

use std::future::Future;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::{info, warn};

/// Lease lock settings. Defaults: lease 10 s and renew deadline 5 s as DANM; retry 2 s (DANM: 3 s).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a Lease is valid without renewal.
    pub lease_duration: Duration,
    /// The leader gives up when it could not renew for this long (must be below `lease_duration`).
    pub renew_deadline: Duration,
    /// How often candidates retry and the leader renews.
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// How [`LeaderElector::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadershipEnd {
    /// Renewal failed for longer than the renew deadline; the work was stopped.
    Lost,
    /// The work finished by itself; the Lease was released.
    WorkDone,
}

/// One candidate.
pub struct LeaderElector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The Lease resourceVersion last seen held by someone else, and when it was first seen.
    observed: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector").field("cfg", &self.cfg).finish()
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 409)
}

impl LeaderElector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.cfg.identity
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.cfg.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    /// One attempt: create the Lease, renew it if held, or take it over if it expired. `Ok(true)` = leader now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let me = self.cfg.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(err) if is_conflict(&err) => Ok(false),
                Err(err) => Err(err),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder != me {
            let rv = lease.metadata.resource_version.clone().unwrap_or_default();
            let duration = spec.lease_duration_seconds.map_or(self.cfg.lease_duration, |s| {
                Duration::from_secs(u64::try_from(s).unwrap_or(0))
            });
            let expired = {
                let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
                match observed.as_ref() {
                    Some((seen, at)) if *seen == rv => holder.is_empty() || at.elapsed() >= duration,
                    _ => {
                        *observed = Some((rv, Instant::now()));
                        holder.is_empty()
                    }
                }
            };
            if !expired {
                return Ok(false);
            }
            info!(previous = %holder, lease = %self.cfg.name, "lease expired; taking it over");
            spec.holder_identity = Some(me);
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(self.duration_secs());
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if is_conflict(&err) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the Lease up (holder cleared) if this candidate holds it, so another takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        self.api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
            .map(drop)
    }

    /// Waits until leader, then runs `work` while renewing; stops `work` when renewal fails for longer than the
    /// renew deadline.
    pub async fn run<F>(&self, work: F) -> LeadershipEnd
    where
        F: Future<Output = ()> + Send,
    {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => warn!(error = %err, "leader election attempt failed"),
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
        info!(identity = %self.cfg.identity, lease = %self.cfg.name, "became the leader");
        let mut last_renew = Instant::now();
        let renew = async {
            loop {
                tokio::time::sleep(self.cfg.retry_period).await;
                match self.try_acquire_or_renew().await {
                    Ok(true) => last_renew = Instant::now(),
                    Ok(false) => {
                        warn!("the lease was taken by another candidate");
                        return;
                    }
                    Err(err) => warn!(error = %err, "lease renewal failed"),
                }
                if last_renew.elapsed() > self.cfg.renew_deadline {
                    return;
                }
            }
        };
        tokio::select! {
            () = work => {
                if let Err(err) = self.release().await {
                    warn!(error = %err, "cannot release the lease");
                }
                LeadershipEnd::WorkDone
            }
            () = renew => {
                warn!(identity = %self.cfg.identity, "lost leadership");
                LeadershipEnd::Lost
            }
        }
    }
}
