//! The IPAM reconciler: owners are the truth. A leader-elected controller scans the cluster and, after a grace
//! period, deletes DanmEps whose pod no longer exists and releases what no live owner holds: block addresses whose
//! DanmEp or IPAMClaim is gone, and (bitmap mode) set bits that neither a DanmEp nor an IPAMClaim's `status.ips`
//! holds. Something is acted on only when it was seen in that
//! state by two scans at least the grace period apart, so an ADD in flight (which reserves before it writes its
//! DanmEp) is never touched; and a scan whose view is incomplete (a list failed) does nothing at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use danm_api::{DanmEp, DanmIpBlock, Network, NetworkKind};
use danm_core::ipam::Family;
use danm_core::ipam::blocks::{BlockLayout, IpamMode, NetworkId};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};

use crate::store::{ApiError, IpamStore};
use crate::{Ipam, IpamConfig, Release, is_real};

/// What the reconciler reads and deletes besides IPAM's own objects.
#[async_trait]
pub trait Inventory: IpamStore {
    /// The UIDs of every pod.
    async fn pod_uids(&self) -> Result<HashSet<String>, ApiError>;
    /// Every DanmEp.
    async fn danmeps(&self) -> Result<Vec<DanmEp>, ApiError>;
    /// Every network of the three kinds.
    async fn networks(&self) -> Result<Vec<Network>, ApiError>;
    /// Deletes a DanmEp; `Ok(false)` if it was gone.
    async fn delete_danmep(&self, namespace: &str, name: &str) -> Result<bool, ApiError>;
    /// Every IPAMClaim, `namespace/name` to its `status.ips`; `None` when the cluster has no IPAMClaim CRD (then no
    /// claim's block addresses are touched). Required, not defaulted: a wrapper that forgot to pass it on would keep
    /// deleted claims' addresses forever.
    async fn ipam_claims(&self) -> Result<Option<Claims>, ApiError>;
    /// Creates a core/v1 Event (in its `metadata.namespace`).
    async fn create_event(&self, event: &Event) -> Result<(), ApiError>;
}

#[async_trait]
impl Inventory for kube::Client {
    async fn pod_uids(&self) -> Result<HashSet<String>, ApiError> {
        let api: kube::Api<Pod> = kube::Api::all(self.clone());
        let pods = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| ApiError::from_kube("Pods".into(), e))?;
        Ok(pods.items.into_iter().filter_map(|p| p.metadata.uid).collect())
    }

    async fn danmeps(&self) -> Result<Vec<DanmEp>, ApiError> {
        let api: kube::Api<DanmEp> = kube::Api::all(self.clone());
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| ApiError::from_kube("DanmEps".into(), e))
    }

    async fn networks(&self) -> Result<Vec<Network>, ApiError> {
        let mut all = Vec::new();
        for kind in NetworkKind::ALL {
            let api: kube::Api<Network> = kube::Api::all_with(self.clone(), &kind);
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| ApiError::from_kube(format!("{kind}s"), e))?;
            all.extend(list.items);
        }
        Ok(all)
    }

    async fn ipam_claims(&self) -> Result<Option<Claims>, ApiError> {
        let api: kube::Api<danm_api::IpamClaim> = kube::Api::all(self.clone());
        match api.list(&ListParams::default()).await {
            Ok(list) => Ok(Some(
                list.items
                    .into_iter()
                    .map(|c| {
                        let m = c.metadata;
                        let name = format!(
                            "{}/{}",
                            m.namespace.unwrap_or_default(),
                            m.name.unwrap_or_default()
                        );
                        (name, c.status.ips)
                    })
                    .collect(),
            )),
            // No IPAMClaim CRD: leave claim-owned addresses alone rather than guess.
            Err(e) => match ApiError::from_kube("IPAMClaims".into(), e) {
                ApiError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn delete_danmep(&self, namespace: &str, name: &str) -> Result<bool, ApiError> {
        let api: kube::Api<DanmEp> = kube::Api::namespaced(self.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(true),
            Err(e) => match ApiError::from_kube(format!("DanmEp {namespace}/{name}"), e) {
                ApiError::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
    async fn create_event(&self, event: &Event) -> Result<(), ApiError> {
        let namespace = event.metadata.namespace.as_deref().unwrap_or("default");
        let api: kube::Api<Event> = kube::Api::namespaced(self.clone(), namespace);
        api.create(&PostParams::default(), event)
            .await
            .map(|_| ())
            .map_err(|e| ApiError::from_kube(format!("Event in {namespace}"), e))
    }
}

/// IPAMClaims by `namespace/name`, each with its `status.ips` (`ip/prefix` as the CNI writes them).
pub type Claims = HashMap<String, Vec<String>>;

/// Pool size and use of one network and family (for metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolUse {
    pub network: String,
    pub family: Family,
    pub mode: IpamMode,
    /// Addresses dynamic allocation may hand out.
    pub size: u128,
    /// Addresses held.
    pub used: u128,
}

/// What one scan did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// `Some(reason)`: the view was incomplete and nothing was done.
    pub skipped: Option<String>,
    pub danmeps_deleted: usize,
    pub addresses_released: usize,
    /// Orphans seen for the first time (acted on in a later scan, after the grace period).
    pub waiting: usize,
    pub pools: Vec<PoolUse>,
    /// Errors of single actions (the scan goes on after them).
    pub errors: Vec<String>,
}

impl ScanReport {
    /// Logs the scan: one summary line, and a warning per failed action.
    pub fn log(&self) {
        tracing::info!(
            released = self.addresses_released,
            danmeps_deleted = self.danmeps_deleted,
            waiting = self.waiting,
            skipped = self.skipped.as_deref().unwrap_or(""),
            errors = self.errors.len(),
            "IPAM reconciler scan"
        );
        for e in &self.errors {
            tracing::warn!(error = %e, "IPAM reconciler");
        }
    }
}

/// Something the reconciler may act on once it has been seen long enough.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Suspect {
    /// A DanmEp (namespace, name) whose pod does not exist.
    Ep(String, String),
    /// A block address (block name, offset) whose owner does not exist, with that owner.
    Owned(String, u32, String),
    /// A set bit (network, address) that no DanmEp holds, in the network object of that resourceVersion. A bitmap
    /// records no owner: a bit released and reserved again by another pod between two scans looks the same, and that
    /// pod's ADD may not have written its DanmEp yet. Every reservation and release rewrites the network object, so a
    /// bit counts as the same suspect only while the object is unchanged.
    Bit(NetworkId, IpAddr, String),
}

/// The reconciler's memory between scans: when each suspect was first seen.
pub struct Reconciler {
    config: IpamConfig,
    grace: Duration,
    first_seen: HashMap<Suspect, Timestamp>,
}

impl Reconciler {
    pub fn new(config: IpamConfig, grace: Duration) -> Self {
        Reconciler {
            config,
            grace,
            first_seen: HashMap::new(),
        }
    }

    /// One scan at `now`.
    pub async fn scan(&mut self, cluster: &dyn Inventory, now: Timestamp) -> ScanReport {
        let mut report = ScanReport::default();
        let view = futures_join(cluster).await;
        let (pods, eps, networks, blocks) = match view {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "IPAM reconciler: the view is incomplete; doing nothing this scan");
                report.skipped = Some(e.to_string());
                return report;
            }
        };
        let mut seen = HashSet::new();
        let ipam = Ipam::new(cluster, "", self.config);
        let by_id: BTreeMap<NetworkId, &Network> =
            networks.iter().map(|n| (crate::network_id(n), n)).collect();

        // 1. DanmEps whose pod is gone.
        let mut live_eps = Vec::new();
        for ep in &eps {
            let ns = ep.metadata.namespace.clone().unwrap_or_default();
            let name = ep.metadata.name.clone().unwrap_or_default();
            if ep.spec.pod_uid.is_empty() || pods.contains(&ep.spec.pod_uid) {
                live_eps.push(ep);
                continue;
            }
            let suspect = Suspect::Ep(ns.clone(), name.clone());
            if !self.due(&suspect, now, created(ep), &mut seen) {
                report.waiting += 1;
                live_eps.push(ep);
                continue;
            }
            // The DanmEp goes first, then its addresses (a crash in between leaks, never double-frees).
            // Only a DanmEp this scan deleted has its addresses released here: one already gone was deleted by
            // someone else (a DEL, GC), who releases them; a second release in bitmap mode, which records no
            // owner, could free an address another pod holds by now.
            match cluster.delete_danmep(&ns, &name).await {
                Ok(true) => {
                    report.danmeps_deleted += 1;
                    tracing::info!(danmep = %format!("{ns}/{name}"), pod = ep.spec.pod, "deleted a DanmEp whose pod is gone");
                    let kind = NetworkKind::from_api_type(&ep.spec.api_type).unwrap_or(NetworkKind::DanmNet);
                    if let Some(network) = by_id.get(&NetworkId::new(kind, &ns, &ep.spec.network_name)) {
                        let addresses = [&ep.spec.interface.address, &ep.spec.interface.address_ipv6]
                            .into_iter()
                            .filter(|a| is_real(a))
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ");
                        record(
                            cluster,
                            network,
                            DANMEP_DELETED,
                            format!(
                                "deleted DanmEp {ns}/{name} of pod {} (gone), releasing {addresses}",
                                ep.spec.pod
                            ),
                        )
                        .await;
                    }
                }
                Ok(false) => {
                    tracing::info!(danmep = %format!("{ns}/{name}"), "a DanmEp whose pod is gone was deleted by someone else first; its addresses are theirs to release");
                    continue;
                }
                Err(e) => {
                    report.errors.push(e.to_string());
                    live_eps.push(ep);
                    continue;
                }
            }
            let kind = NetworkKind::from_api_type(&ep.spec.api_type).unwrap_or(NetworkKind::DanmNet);
            let id = NetworkId::new(kind, &ns, &ep.spec.network_name);
            if let Some(network) = by_id.get(&id) {
                let iface = &ep.spec.interface;
                let release = Release {
                    ip4: &iface.address,
                    ip6: &iface.address_ipv6,
                    owner: &name,
                };
                match ipam.release(network, &[release]).await {
                    Ok(true) => {
                        report.addresses_released += [&iface.address, &iface.address_ipv6]
                            .iter()
                            .filter(|a| is_real(a))
                            .count();
                        tracing::info!(network = %id, danmep = %format!("{ns}/{name}"), ip4 = iface.address,
                            ip6 = iface.address_ipv6, "released the addresses of a DanmEp whose pod is gone");
                    }
                    Ok(false) => {}
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }
        let owners: HashSet<&str> = live_eps
            .iter()
            .filter_map(|ep| ep.metadata.name.as_deref())
            .collect();

        // 2. Block addresses whose owner is gone: a DanmEp, or an IPAMClaim (when the claims could be listed).
        let (claims, claims_known) = match cluster.ipam_claims().await {
            Ok(claims) => (claims, true),
            Err(e) => {
                report.errors.push(e.to_string());
                (None, false)
            }
        };
        for block in &blocks {
            for (rel, owner) in &block.spec.owners {
                let live = match owner.strip_prefix(danm_api::ipamclaim::CLAIM_OWNER_PREFIX) {
                    Some(claim) => claims.as_ref().is_none_or(|c| c.contains_key(claim)),
                    None => owners.contains(owner.as_str()),
                };
                if live {
                    continue;
                }
                let suspect = Suspect::Owned(block.name().to_owned(), *rel, owner.clone());
                if !self.due(&suspect, now, None, &mut seen) {
                    report.waiting += 1;
                    continue;
                }
                match self.free_owned(cluster, block.name(), *rel, owner).await {
                    Ok(true) => {
                        report.addresses_released += 1;
                        tracing::info!(
                            block = block.name(),
                            offset = rel,
                            owner,
                            "released an address whose owner is gone"
                        );
                        if let Some(network) = networks
                            .iter()
                            .find(|n| crate::network_id(n).to_string() == block.spec.network)
                        {
                            record(
                                cluster,
                                network,
                                ADDRESS_RELEASED,
                                format!(
                                    "released offset {rel} of block {} ({}): its owner {owner} is gone",
                                    block.name(),
                                    block.spec.cidr
                                ),
                            )
                            .await;
                        }
                    }
                    Ok(false) => {}
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }

        // 3. Bitmap bits no DanmEp and no IPAMClaim holds. A claim does not record its network: its addresses are
        // held in every bitmap-mode network whose range has them. Without the claims, no bit is freed.
        let claimed = claimed_addresses(claims.as_ref());
        let mut due_bits = Vec::new();
        for network in &networks {
            let id = crate::network_id(network);
            let Ok(mode) = ipam.mode(network) else { continue };
            if mode != IpamMode::Bitmap {
                continue;
            }
            let Ok(usage) = danm_core::ipam::usage(&network.spec) else {
                continue;
            };
            let held = held_addresses(live_eps.iter().copied(), &id);
            for family in [&usage.v4, &usage.v6].into_iter().flatten() {
                for addr in family.allocated_addrs() {
                    if held.contains(&addr) || claimed.contains(&addr) {
                        continue;
                    }
                    let version = network.metadata.resource_version.clone().unwrap_or_default();
                    if self.due(&Suspect::Bit(id.clone(), addr, version), now, None, &mut seen) {
                        due_bits.push((id.clone(), addr));
                    } else {
                        report.waiting += 1;
                    }
                }
            }
        }
        // The view is as old as the scan: before a bit is freed, the DanmEps and the claims are read again, and a bit
        // some DanmEp or claim holds by now (an ADD that reserved it while the scan ran) is kept.
        let fresh = if due_bits.is_empty() {
            Ok((Vec::new(), HashSet::new()))
        } else if !claims_known {
            Err(ApiError::Request {
                object: "IPAMClaims".into(),
                reason: "not listed in this scan".into(),
            })
        } else {
            match tokio::join!(cluster.danmeps(), cluster.ipam_claims()) {
                (Ok(eps), Ok(claims)) => Ok((eps, claimed_addresses(claims.as_ref()))),
                (Err(e), _) | (_, Err(e)) => Err(e),
            }
        };
        match fresh {
            Err(e) => {
                tracing::warn!(error = %e, bits = due_bits.len(), "IPAM reconciler: cannot re-read the DanmEps and IPAMClaims; no bit is freed this scan");
                report.errors.push(e.to_string());
            }
            Ok((fresh, claimed)) => {
                for (id, addr) in due_bits {
                    if held_addresses(fresh.iter(), &id).contains(&addr) || claimed.contains(&addr) {
                        continue;
                    }
                    let text = addr.to_string();
                    let release = Release {
                        ip4: if addr.is_ipv4() { &text } else { "" },
                        ip6: if addr.is_ipv6() { &text } else { "" },
                        owner: "",
                    };
                    match ipam
                        .release_on(id.kind, &id.namespace, &id.name, &[release])
                        .await
                    {
                        Ok(true) => {
                            report.addresses_released += 1;
                            tracing::info!(network = %id, address = %addr, "released a bit no DanmEp holds");
                            if let Some(network) = by_id.get(&id) {
                                record(
                                    cluster,
                                    network,
                                    ADDRESS_RELEASED,
                                    format!(
                                        "released {addr}: no DanmEp or IPAMClaim held it in two scans {}s apart",
                                        self.grace.as_secs()
                                    ),
                                )
                                .await;
                            }
                        }
                        Ok(false) => {}
                        Err(e) => report.errors.push(e.to_string()),
                    }
                }
            }
        }

        // Suspects not seen in this scan start again from zero.
        self.first_seen.retain(|s, _| seen.contains(s));
        // Pool use as the scan leaves it.
        let (networks, blocks) = if report.addresses_released > 0 {
            match tokio::join!(cluster.networks(), cluster.list_blocks("")) {
                (Ok(n), Ok(b)) => (n, b),
                _ => (networks, blocks),
            }
        } else {
            (networks, blocks)
        };
        report.pools = pool_use(&networks, &blocks, &ipam, &self.config);
        report
    }

    /// Whether `suspect` has been seen for the grace period (and the object itself, when its creation time is
    /// known, is older than that). Records it as seen.
    fn due(
        &mut self,
        suspect: &Suspect,
        now: Timestamp,
        created: Option<Timestamp>,
        seen: &mut HashSet<Suspect>,
    ) -> bool {
        seen.insert(suspect.clone());
        let first = *self.first_seen.entry(suspect.clone()).or_insert(now);
        let grace = self.grace.as_secs() as i64;
        let old_enough = |t: Timestamp| now.as_second() - t.as_second() >= grace;
        old_enough(first) && first != now && created.is_none_or(old_enough)
    }

    /// Frees offset `rel` of a block if `owner` still holds it.
    async fn free_owned(
        &self,
        store: &dyn IpamStore,
        name: &str,
        rel: u32,
        owner: &str,
    ) -> Result<bool, ApiError> {
        for attempt in 0..self.config.retry.attempts {
            let Some(mut block) = store.get_block(name).await? else {
                return Ok(false);
            };
            if block.spec.owners.get(&rel).map(String::as_str) != Some(owner) {
                return Ok(false);
            }
            block.spec.owners.remove(&rel);
            if block.spec.owners.is_empty() {
                block.spec.empty_since = Timestamp::now().to_string();
            }
            match store.replace_block(&block).await {
                Ok(_) => return Ok(true),
                Err(ApiError::Conflict { .. }) => tokio::time::sleep(self.config.retry.delay(attempt)).await,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::Conflict {
            object: crate::block_object(name),
        })
    }
}

type View = (HashSet<String>, Vec<DanmEp>, Vec<Network>, Vec<DanmIpBlock>);

/// Reads the whole view; any failure makes it incomplete.
async fn futures_join(cluster: &dyn Inventory) -> Result<View, ApiError> {
    let (pods, eps, networks, blocks) = tokio::join!(
        cluster.pod_uids(),
        cluster.danmeps(),
        cluster.networks(),
        cluster.list_blocks("")
    );
    Ok((pods?, eps?, networks?, blocks?))
}

fn created(ep: &DanmEp) -> Option<Timestamp> {
    ep.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Pool size and use per network and family.
fn pool_use(
    networks: &[Network],
    blocks: &[DanmIpBlock],
    ipam: &Ipam<'_>,
    config: &IpamConfig,
) -> Vec<PoolUse> {
    let mut out = Vec::new();
    for network in networks {
        let id = crate::network_id(network);
        let Ok(mode) = ipam.mode(network) else { continue };
        for family in [Family::V4, Family::V6] {
            let prefix = match family {
                Family::V4 => config.block_prefix_v4,
                Family::V6 => config.block_prefix_v6,
            };
            let Ok(layout) = BlockLayout::new(&network.spec, family, prefix) else {
                continue;
            };
            let size: u128 = layout.pool_blocks().map(|b| layout.capacity(b)).sum();
            let used = match mode {
                IpamMode::Blocks => blocks
                    .iter()
                    .filter(|b| {
                        b.spec.network == id.to_string() && layout.block_of_cidr(&b.spec.cidr).is_some()
                    })
                    .map(|b| b.spec.owners.len() as u128)
                    .sum(),
                IpamMode::Bitmap => danm_core::ipam::usage(&network.spec)
                    .ok()
                    .and_then(|u| match family {
                        Family::V4 => u.v4,
                        Family::V6 => u.v6,
                    })
                    .map_or(0, |f| u128::from(f.allocated_count)),
            };
            out.push(PoolUse {
                network: id.to_string(),
                family,
                mode,
                size,
                used,
            });
        }
    }
    out
}

/// The addresses DanmEps of network `id` hold: those of its own interfaces, and those of NPWG attachments whose
/// addresses danm's IPAM allocated from it (`danm.k8s.io/ipam-network: <Kind>/<namespace>/<name>`).
fn held_addresses<'a>(eps: impl Iterator<Item = &'a DanmEp>, id: &NetworkId) -> HashSet<IpAddr> {
    eps.filter(|ep| {
        if let Some((kind, namespace, name)) = ep.ipam_pool() {
            return NetworkKind::from_api_type(kind)
                .is_ok_and(|kind| NetworkId::new(kind, namespace, name) == *id);
        }
        let kind = NetworkKind::from_api_type(&ep.spec.api_type).unwrap_or(NetworkKind::DanmNet);
        NetworkId::new(
            kind,
            ep.metadata.namespace.as_deref().unwrap_or_default(),
            &ep.spec.network_name,
        ) == *id
    })
    .flat_map(|ep| [&ep.spec.interface.address, &ep.spec.interface.address_ipv6])
    .filter_map(|a| a.split('/').next().and_then(|a| a.parse().ok()))
    .collect()
}

/// Every address in the claims' `status.ips`.
fn claimed_addresses(claims: Option<&Claims>) -> HashSet<IpAddr> {
    claims
        .into_iter()
        .flat_map(|c| c.values())
        .flatten()
        .filter_map(|a| a.split('/').next().and_then(|a| a.parse().ok()))
        .collect()
}

/// The reason of the Event recorded on a network when the reconciler deletes a DanmEp whose pod is gone.
pub const DANMEP_DELETED: &str = "DanmEpDeleted";
/// The reason of the Event recorded on a network when the reconciler frees an address no live owner holds.
pub const ADDRESS_RELEASED: &str = "DanmAddressReleased";

/// The Event the reconciler records on `network` (Normal, source `danm-ipam-reconciler`).
pub fn network_event(network: &Network, reason: &str, message: String) -> Event {
    let now = Timestamp::now();
    let kind = network.network_kind().unwrap_or(NetworkKind::DanmNet);
    let namespace = network
        .namespace()
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default");
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{:x}", network.name(), now.as_nanosecond())),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(danm_api::API_VERSION.to_owned()),
            kind: Some(kind.as_str().to_owned()),
            name: Some(network.name().to_owned()),
            namespace: network.namespace().filter(|ns| !ns.is_empty()).map(str::to_owned),
            uid: network.metadata.uid.clone(),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message),
        type_: Some("Normal".to_owned()),
        source: Some(EventSource {
            component: Some(RECONCILER.to_owned()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(RECONCILER.to_owned()),
        ..Event::default()
    }
}

const RECONCILER: &str = "danm-ipam-reconciler";

/// Records an Event on `network`; a failure is logged, never an error of the scan.
async fn record(cluster: &dyn Inventory, network: &Network, reason: &str, message: String) {
    if let Err(e) = cluster
        .create_event(&network_event(network, reason, message))
        .await
    {
        tracing::warn!(network = network.name(), error = %e, "cannot record a reconciler Event");
    }
}
