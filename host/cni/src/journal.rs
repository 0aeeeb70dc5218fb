//! The undo journal of one ADD: every side effect is recorded *before* it is attempted, so a failed, cancelled or
//! timed-out ADD can be rolled back completely (links, rules, delegate DELs — B16 —, DanmEps, IPs).

use std::sync::PoisonError;
use std::sync::{Arc, Mutex};

use danm_api::NetworkKind;
use danm_netlink::{Netns, Rule};

use crate::delegate::Chain;

/// One thing to undo.
#[derive(Clone, Debug)]
pub enum Undo {
    /// Addresses reserved on a network (its bitmap or its blocks).
    Ips {
        kind: NetworkKind,
        namespace: String,
        network: String,
        ip4: String,
        ip6: String,
        /// The DanmEp name that owns them.
        owner: String,
    },
    /// A DanmEp (possibly) created; `created`: the API server confirmed its creation.
    Ep {
        namespace: String,
        name: String,
        created: bool,
    },
    /// A link (possibly) created in the pod netns.
    Link { netns: Netns, name: String },
    /// An SR-IOV VF (possibly) moved into the pod as `name`; `host_name` is its name on the host.
    Vf {
        netns: Netns,
        name: String,
        host_name: String,
    },
    /// A delegate ADD was started for `ifname`: its DEL must run even if the ADD failed (B16).
    Delegate { chain: Chain, ifname: String },
    /// A policy rule (possibly) added in the pod netns.
    Rule { netns: Netns, rule: Rule },
}

/// The journal of one interface; cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct Journal(Arc<Mutex<Vec<Undo>>>);

impl Journal {
    pub fn push(&self, undo: Undo) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(undo);
    }

    /// Records that the API server confirmed the creation of DanmEp `name`.
    pub fn confirm_ep(&self, ep: &str) {
        for undo in self.0.lock().unwrap_or_else(PoisonError::into_inner).iter_mut() {
            if let Undo::Ep { name, created, .. } = undo
                && name == ep
            {
                *created = true;
            }
        }
    }

    /// The entries, most recent first (the order to undo them in).
    pub fn take_reversed(&self) -> Vec<Undo> {
        let mut entries = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        entries.reverse();
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmed_danmep_is_marked_created_and_entries_come_back_newest_first() {
        let journal = Journal::default();
        for name in ["a", "b"] {
            journal.push(Undo::Ep {
                namespace: "ns".into(),
                name: name.into(),
                created: false,
            });
        }
        journal.confirm_ep("b");
        let created: Vec<(String, bool)> = journal
            .take_reversed()
            .into_iter()
            .filter_map(|u| match u {
                Undo::Ep { name, created, .. } => Some((name, created)),
                _ => None,
            })
            .collect();
        assert_eq!(created, [("b".to_owned(), true), ("a".to_owned(), false)]);
        assert!(journal.take_reversed().is_empty(), "taken once");
    }
}
