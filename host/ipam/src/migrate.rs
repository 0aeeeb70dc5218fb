//! Online migration of a network from the `bitmap` mode to the `blocks` mode, owners taken from its DanmEps.
//!
//! 1. Read the network (bitmap mode) and its DanmEps; compare the bitmap's allocated addresses with the DanmEps'
//!    addresses. Any disagreement (an address allocated without a DanmEp, or a DanmEp whose address the bitmap does
//!    not hold) refuses the migration with a report: the operator repairs first (`danmctl ipam free`, or the
//!    reconciler).
//! 2. Write the blocks: every block that holds a DanmEp's address is created, or merged into (owners already there
//!    are kept). Re-running after an interruption merges the same owners again.
//! 3. Switch the network with one conditional write (resourceVersion of step 1): annotation `blocks`, bitmaps
//!    removed. If DANM's CNI or danm allocated in the bitmap meanwhile, the write meets a 409 and the migration
//!    starts over from step 1, so no allocation made during the migration is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use danm_api::{DanmEp, DanmIpBlock, DanmIpBlockSpec, Network, NetworkKind, labels};
use danm_core::ipam::blocks::{BlockLayout, IpamMode, NetworkId, node_label};
use danm_core::ipam::{Family, IpamError};

use crate::store::{ApiError, IpamStore};
use crate::{IpamConfig, is_real, network_id};

/// What a migration found or did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub network: String,
    /// Addresses moved into blocks (one per DanmEp address).
    pub addresses: usize,
    /// Blocks created or updated.
    pub blocks_written: usize,
    /// The network was already in blocks mode: nothing to do.
    pub already_blocks: bool,
    /// Tries of the final switch (more than one when the bitmap changed during the migration).
    pub attempts: u32,
}

/// Why a migration did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{network} does not exist")]
    NoNetwork { network: String },
    #[error("{network}: {source}")]
    Ipam {
        network: String,
        #[source]
        source: IpamError,
    },
    #[error(
        "{network}: the bitmap and the DanmEps disagree, nothing was migrated; \
         allocated without a DanmEp: [{}]; DanmEp addresses the bitmap does not hold: [{}]",
        without_ep.join(", "), without_bit.join(", ")
    )]
    Disagree {
        network: String,
        without_ep: Vec<String>,
        without_bit: Vec<String>,
    },
    #[error("{network}: the bitmap kept changing during {attempts} tries; try again")]
    Busy { network: String, attempts: u32 },
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Migrates `kind`/`namespace`/`name` to blocks. `list_eps` lists the cluster's DanmEps (all of them, or those of
/// the network's namespace; others are ignored); it is called again on every try. `stop_after_blocks` interrupts after that many block writes (tests of
/// a re-run).
pub async fn migrate(
    store: &dyn IpamStore,
    config: &IpamConfig,
    kind: NetworkKind,
    namespace: &str,
    name: &str,
    list_eps: impl AsyncFn() -> Result<Vec<DanmEp>, ApiError>,
    stop_after_blocks: Option<usize>,
) -> Result<MigrationReport, MigrateError> {
    let label = NetworkId::new(kind, namespace, name).to_string();
    let attempts = config.retry.attempts.max(1);
    for attempt in 1..=attempts {
        let Some(network) = store.get_network(kind, namespace, name).await? else {
            return Err(MigrateError::NoNetwork { network: label });
        };
        let mode = IpamMode::of_network(
            network.metadata.annotations.as_ref(),
            &network.spec,
            IpamMode::Bitmap,
        )
        .map_err(|source| MigrateError::Ipam {
            network: label.clone(),
            source,
        })?;
        if mode == IpamMode::Blocks {
            return Ok(MigrationReport {
                network: label,
                already_blocks: true,
                attempts: attempt,
                ..MigrationReport::default()
            });
        }
        let eps: Vec<DanmEp> = list_eps()
            .await?
            .into_iter()
            .filter(|ep| on_network(ep, kind, namespace, name))
            .collect();
        let owners = reconcile(&label, &network, &eps)?;
        let mut report = MigrationReport {
            network: label.clone(),
            addresses: owners.len(),
            attempts: attempt,
            ..MigrationReport::default()
        };
        report.blocks_written = write_blocks(store, config, &network, &owners, stop_after_blocks).await?;
        if stop_after_blocks.is_some_and(|n| report.blocks_written >= n) {
            return Ok(report);
        }
        let mut switched = network.clone();
        switched
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                danm_api::annotations::IPAM_MODE.to_owned(),
                IpamMode::Blocks.as_str().to_owned(),
            );
        switched.spec.options.alloc.clear();
        switched.spec.options.alloc6.clear();
        match store.replace_network(&switched).await {
            Ok(_) => return Ok(report),
            Err(ApiError::Conflict { .. }) => {
                tracing::info!(network = %label, attempt, "the network changed during the migration; again");
                tokio::time::sleep(config.retry.delay(attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(MigrateError::Busy {
        network: label,
        attempts,
    })
}

/// Whether a DanmEp is an interface of the network.
fn on_network(ep: &DanmEp, kind: NetworkKind, namespace: &str, name: &str) -> bool {
    ep.spec.network_name == name
        && NetworkKind::from_api_type(&ep.spec.api_type).ok() == Some(kind)
        && (!kind.namespaced() || ep.metadata.namespace.as_deref() == Some(namespace))
}

/// One address to move: its owner and the node its DanmEp is on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Owned {
    addr: IpAddr,
    owner: String,
    node: String,
}

/// The bitmap's allocated addresses against the DanmEps' addresses.
fn reconcile(label: &str, network: &Network, eps: &[DanmEp]) -> Result<Vec<Owned>, MigrateError> {
    let usage = danm_core::ipam::usage(&network.spec).map_err(|source| MigrateError::Ipam {
        network: label.to_owned(),
        source,
    })?;
    let mut allocated: BTreeSet<IpAddr> = [&usage.v4, &usage.v6]
        .into_iter()
        .flatten()
        .flat_map(|f| f.allocated_addrs())
        .collect();
    let mut owned = Vec::new();
    let mut without_bit = Vec::new();
    for ep in eps {
        let iface = &ep.spec.interface;
        for addr in [&iface.address, &iface.address_ipv6] {
            if !is_real(addr) {
                continue;
            }
            let Some(ip) = addr.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()) else {
                continue;
            };
            if allocated.remove(&ip) {
                owned.push(Owned {
                    addr: ip,
                    owner: ep.metadata.name.clone().unwrap_or_default(),
                    node: ep.spec.host.clone(),
                });
            } else if in_ranges(network, ip) {
                without_bit.push(format!(
                    "{ip} ({})",
                    ep.metadata.name.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    if !allocated.is_empty() || !without_bit.is_empty() {
        return Err(MigrateError::Disagree {
            network: label.to_owned(),
            without_ep: allocated.iter().map(IpAddr::to_string).collect(),
            without_bit,
        });
    }
    owned.sort();
    Ok(owned)
}

/// Whether an address lies in a range the network's bitmaps cover (a delegate's own addresses do not).
fn in_ranges(network: &Network, ip: IpAddr) -> bool {
    let family = if ip.is_ipv4() { Family::V4 } else { Family::V6 };
    BlockLayout::new(&network.spec, family, 0)
        .ok()
        .and_then(|l| l.offset_of(ip))
        .is_some()
}

/// A block's layout and the addresses to move into it (offset, owner).
type BlockMembers<'a> = (BlockLayout, Vec<(u32, &'a Owned)>);

/// Creates or merges into every block that holds an owned address; returns how many were written.
async fn write_blocks(
    store: &dyn IpamStore,
    config: &IpamConfig,
    network: &Network,
    owned: &[Owned],
    stop_after: Option<usize>,
) -> Result<usize, MigrateError> {
    let id = network_id(network);
    let label = id.to_string();
    let mut per_block: BTreeMap<(u8, u64), BlockMembers<'_>> = BTreeMap::new();
    for o in owned {
        let (family, prefix, fam) = if o.addr.is_ipv4() {
            (Family::V4, config.block_prefix_v4, 4)
        } else {
            (Family::V6, config.block_prefix_v6, 6)
        };
        let prefix = block_prefix(network, family).unwrap_or(prefix);
        let layout =
            BlockLayout::new(&network.spec, family, prefix).map_err(|source| MigrateError::Ipam {
                network: label.clone(),
                source,
            })?;
        let Some((b, rel)) = layout.locate(&o.addr.to_string()) else {
            continue;
        };
        per_block
            .entry((fam, b))
            .or_insert_with(|| (layout.clone(), Vec::new()))
            .1
            .push((rel, o));
    }
    let mut written = 0;
    for ((_, b), (layout, members)) in per_block {
        if stop_after.is_some_and(|n| written >= n) {
            break;
        }
        let name = layout.block_name(&id, b);
        for attempt in 0..config.retry.attempts {
            let merged = match store.get_block(&name).await? {
                Some(mut block) => {
                    let before = block.spec.owners.clone();
                    for (rel, o) in &members {
                        block.spec.owners.entry(*rel).or_insert_with(|| o.owner.clone());
                    }
                    if block.spec.owners == before {
                        break;
                    }
                    block.spec.empty_since.clear();
                    store.replace_block(&block).await.map(|_| ())
                }
                None => {
                    let node = members[0].1.node.clone();
                    let spec = DanmIpBlockSpec {
                        network: label.clone(),
                        network_uid: network.metadata.uid.clone().unwrap_or_default(),
                        cidr: layout.block_cidr(b),
                        node: node.clone(),
                        owners: members.iter().map(|(rel, o)| (*rel, o.owner.clone())).collect(),
                        ..DanmIpBlockSpec::default()
                    };
                    let mut block = DanmIpBlock::new(&name, spec);
                    let fam = if layout.family == Family::V4 { "v4" } else { "v6" };
                    block.metadata.labels = Some(BTreeMap::from([
                        (labels::NETWORK_ID.to_owned(), id.label()),
                        (labels::FAMILY.to_owned(), fam.to_owned()),
                        (labels::NODE.to_owned(), node_label(&node)),
                    ]));
                    store.create_block(&block).await.map(|_| ())
                }
            };
            match merged {
                Ok(()) => {
                    written += 1;
                    break;
                }
                Err(ApiError::Conflict { .. } | ApiError::AlreadyExists { .. }) => {
                    tokio::time::sleep(config.retry.delay(attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(written)
}

/// A network's block-prefix annotation for a family, when set and valid.
fn block_prefix(network: &Network, family: Family) -> Option<u8> {
    let key = match family {
        Family::V4 => danm_api::annotations::BLOCK_PREFIX_V4,
        Family::V6 => danm_api::annotations::BLOCK_PREFIX_V6,
    };
    network.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}
