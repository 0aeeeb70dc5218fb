//! Executes link plans over the [`Netlink`] trait in one namespace, and tells drift repair from ordinary changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::PoisonError;
use std::sync::{Arc, Mutex};

use danm_netlink::{LinkChange, Netlink, NetlinkError, Netns};
use tracing::{info, warn};

use crate::desired::{Desired, LinkSpec};
use crate::metrics::Metrics;
use crate::plan::{Action, DeleteReason, plan};

/// Errors that stop a whole reconciliation (single link failures are reported in [`Outcome::errors`]).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("cannot list the links of the {netns}: {source}")]
    ListLinks {
        netns: String,
        #[source]
        source: NetlinkError,
    },
}

/// What one reconciliation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub created: Vec<String>,
    pub deleted: Vec<String>,
    /// Links fixed although what was wanted of them had not changed since the previous reconciliation.
    pub drift_repaired: Vec<String>,
    /// Failed operations and links that cannot be made, as messages naming the link and its networks.
    pub errors: Vec<String>,
}

/// Keeps the kernel's links in `netns` equal to a [`Desired`] set.
pub struct LinkReconciler {
    netlink: Arc<dyn Netlink>,
    netns: Netns,
    metrics: Metrics,
    /// What each link was last successfully reconciled to: a later fix of an unchanged wish is drift.
    settled: Mutex<BTreeMap<String, LinkSpec>>,
}

impl std::fmt::Debug for LinkReconciler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkReconciler")
            .field("netns", &self.netns)
            .finish()
    }
}

impl LinkReconciler {
    pub fn new(netlink: Arc<dyn Netlink>, netns: Netns, metrics: Metrics) -> Self {
        LinkReconciler {
            netlink,
            netns,
            metrics,
            settled: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// One pass: read the links (and the VxLAN underlays' addresses), plan, execute. Errors of single links do not
    /// stop the others; they are counted and returned in the outcome.
    pub async fn reconcile(&self, desired: &Desired) -> Result<Outcome, ReconcileError> {
        self.metrics.reconciles.inc();
        let result = self.pass(desired).await;
        match &result {
            Ok(outcome) => {
                self.metrics.links_created.inc_by(outcome.created.len() as u64);
                self.metrics.links_deleted.inc_by(outcome.deleted.len() as u64);
                self.metrics
                    .drift_repaired
                    .inc_by(outcome.drift_repaired.len() as u64);
                self.metrics.reconcile_errors.inc_by(outcome.errors.len() as u64);
            }
            Err(_) => {
                self.metrics.reconcile_errors.inc();
            }
        }
        result
    }

    async fn pass(&self, desired: &Desired) -> Result<Outcome, ReconcileError> {
        let ns = &self.netns;
        let links = self
            .netlink
            .links(ns)
            .await
            .map_err(|source| ReconcileError::ListLinks {
                netns: ns.to_string(),
                source,
            })?;
        let mut addresses = BTreeMap::new();
        let underlays: BTreeSet<&str> = desired
            .links
            .values()
            .filter_map(|l| match &l.spec {
                LinkSpec::Vxlan { underlay, .. } => Some(underlay.as_str()),
                LinkSpec::Vlan { .. } => None,
            })
            .collect();
        let mut outcome = Outcome::default();
        for dev in underlays {
            if !links.iter().any(|l| l.name == dev) {
                continue;
            }
            match self.netlink.addresses(ns, dev).await {
                Ok(addrs) => {
                    addresses.insert(dev.to_owned(), addrs);
                }
                Err(err) => outcome
                    .errors
                    .push(format!("reading the addresses of {dev}: {err}")),
            }
        }
        let plan = plan(desired, &links, &addresses);
        for problem in &plan.problems {
            warn!(%problem, "host link cannot be made");
            outcome.errors.push(problem.to_string());
        }

        let settled = self
            .settled
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let unchanged = |name: &str| {
            settled
                .get(name)
                .is_some_and(|s| desired.links.get(name).map(|l| &l.spec) == Some(s))
        };
        let mut failed: BTreeSet<String> = plan
            .problems
            .iter()
            .map(|p| match p {
                crate::plan::LinkProblem::MissingParent { link, .. }
                | crate::plan::LinkProblem::NoAddress { link, .. }
                | crate::plan::LinkProblem::Foreign { link, .. } => link.clone(),
            })
            .collect();
        let deleted = |name: &String, reason: &DeleteReason, outcome: &mut Outcome| {
            match reason {
                DeleteReason::Unwanted => info!(link = %name, "deleted host link no network wants"),
                DeleteReason::Mismatch(why) => {
                    info!(link = %name, %why, "deleted host link with the wrong configuration")
                }
            }
            outcome.deleted.push(name.clone());
            if matches!(reason, DeleteReason::Mismatch(_)) && unchanged(name) {
                outcome.drift_repaired.push(name.clone());
            }
        };
        // The deletions lead the plan. Several go in one request (one RCU grace period for all, instead of one per
        // link); if that request fails they are retried one by one, so that each error names its link.
        let deletions: Vec<(&String, &DeleteReason)> = plan
            .actions
            .iter()
            .map_while(|a| match a {
                Action::Delete { name, reason } => Some((name, reason)),
                _ => None,
            })
            .collect();
        let batched = deletions.len() >= 2 && {
            let names: Vec<String> = deletions.iter().map(|(n, _)| (*n).clone()).collect();
            match self.netlink.delete_links(ns, &names).await {
                Ok(()) => true,
                Err(err) => {
                    warn!(links = %names.join(","), %err, "deleting host links together failed; one by one");
                    false
                }
            }
        };
        for (i, action) in plan.actions.iter().enumerate() {
            match action {
                Action::Delete { name, reason } if batched && i < deletions.len() => {
                    deleted(name, reason, &mut outcome)
                }
                Action::Delete { name, reason } => match self.netlink.delete_link_if_exists(ns, name).await {
                    Ok(_) => deleted(name, reason, &mut outcome),
                    Err(err) => {
                        failed.insert(name.clone());
                        outcome.errors.push(format!("deleting host link {name}: {err}"));
                    }
                },
                Action::Create {
                    link,
                    owners,
                    replaces,
                } => {
                    if failed.contains(&link.name) {
                        continue;
                    }
                    match self.netlink.create_link(ns, link).await {
                        Ok(_) => {
                            let owners: Vec<String> = owners.iter().map(ToString::to_string).collect();
                            info!(link = %link.name, kind = link.kind.name(), owners = %owners.join(","), "created host link");
                            outcome.created.push(link.name.clone());
                            if !replaces && unchanged(&link.name) {
                                outcome.drift_repaired.push(link.name.clone());
                            }
                        }
                        Err(err) => {
                            failed.insert(link.name.clone());
                            outcome
                                .errors
                                .push(format!("creating host link {}: {err}", link.name));
                        }
                    }
                }
                Action::SetUp { name } => {
                    match self.netlink.set_link(ns, name, &LinkChange::new().up(true)).await {
                        Ok(()) => {
                            info!(link = %name, "brought host link up");
                            if unchanged(name) {
                                outcome.drift_repaired.push(name.clone());
                            }
                        }
                        Err(err) => {
                            failed.insert(name.clone());
                            outcome
                                .errors
                                .push(format!("bringing host link {name} up: {err}"));
                        }
                    }
                }
                Action::SetAlias { name, alias } => {
                    if let Err(err) = self
                        .netlink
                        .set_link(ns, name, &LinkChange::new().alias(alias))
                        .await
                    {
                        outcome
                            .errors
                            .push(format!("relabelling host link {name}: {err}"));
                    }
                }
            }
        }
        for err in &outcome.errors {
            warn!(error = %err, "reconcile error");
        }
        let now: BTreeMap<String, LinkSpec> = desired
            .links
            .values()
            .filter(|l| !failed.contains(&l.name))
            .map(|l| (l.name.clone(), l.spec.clone()))
            .collect();
        *self.settled.lock().unwrap_or_else(PoisonError::into_inner) = now;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
