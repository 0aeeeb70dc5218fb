//! The `blocks` mode: allocation state in DanmIpBlock objects with an owner per address (see the crate docs for the
//! order in which blocks are tried). The network object is only read.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use danm_api::{DanmIpBlock, DanmIpBlockSpec, Network, labels};
use danm_core::ipam::blocks::{
    BlockLayout, BlockRelease, NetworkId, assign_in_block, node_label, release_in_block,
};
use danm_core::ipam::{Family, IpRequest, IpamError};
use k8s_openapi::jiff::Timestamp;

use crate::store::{ApiError, IpamStore, block_object};
use crate::{BatchError, IpamApiError, IpamConfig, Release, Request, Reserved, is_real, network_id};

/// One block of a network, as `danmctl ipam show` and the lab print it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockStats {
    pub family: Family,
    pub name: String,
    pub cidr: String,
    pub node: String,
    /// Addresses with an owner.
    pub used: usize,
    /// Addresses dynamic allocation may hand out in the block.
    pub capacity: u128,
}

/// The blocks of one network, worked on by one node.
pub(crate) struct Blocks<'a> {
    store: &'a dyn IpamStore,
    node: &'a str,
    config: &'a IpamConfig,
    network: &'a Network,
    id: NetworkId,
}

fn family_label(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

impl<'a> Blocks<'a> {
    pub(crate) fn new(
        store: &'a dyn IpamStore,
        node: &'a str,
        config: &'a IpamConfig,
        network: &'a Network,
    ) -> Self {
        Blocks {
            store,
            node,
            config,
            network,
            id: network_id(network),
        }
    }

    fn ipam_err(&self, source: IpamError) -> IpamApiError {
        IpamApiError::Ipam {
            network: self.network.name().to_owned(),
            source,
        }
    }

    /// The family's layout, with the block size of the network's annotation or the cluster default.
    fn layout(&self, family: Family) -> Result<BlockLayout, IpamError> {
        let (key, default, width) = match family {
            Family::V4 => (
                danm_api::annotations::BLOCK_PREFIX_V4,
                self.config.block_prefix_v4,
                32,
            ),
            Family::V6 => (
                danm_api::annotations::BLOCK_PREFIX_V6,
                self.config.block_prefix_v6,
                128,
            ),
        };
        let prefix = match self
            .network
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
        {
            None => default,
            Some(text) => match text.parse::<u8>() {
                Ok(p) if p <= width => p,
                _ => {
                    return Err(IpamError::InvalidBlockPrefix {
                        annotation: key.to_owned(),
                        value: text.clone(),
                    });
                }
            },
        };
        BlockLayout::new(&self.network.spec, family, prefix)
    }

    /// The block index of a listed block, if it is one of this network's blocks in this layout.
    fn index(&self, layout: &BlockLayout, block: &DanmIpBlock) -> Option<u64> {
        (block.spec.network == self.id.to_string())
            .then(|| layout.block_of_cidr(&block.spec.cidr))
            .flatten()
    }

    fn selector(&self, family: Family, node: Option<&str>) -> String {
        let mut s = format!(
            "{}={},{}={}",
            labels::NETWORK_ID,
            self.id.label(),
            labels::FAMILY,
            family_label(family)
        );
        if let Some(node) = node {
            s.push_str(&format!(",{}={}", labels::NODE, node_label(node)));
        }
        s
    }

    async fn list(
        &self,
        layout: &BlockLayout,
        node: Option<&str>,
    ) -> Result<Vec<(u64, DanmIpBlock)>, IpamApiError> {
        let listed = self
            .store
            .list_blocks(&self.selector(layout.family, node))
            .await?;
        let mut blocks: Vec<(u64, DanmIpBlock)> = listed
            .into_iter()
            .filter_map(|b| self.index(layout, &b).map(|i| (i, b)))
            .filter(|(_, b)| node.is_none_or(|n| b.spec.node == n))
            .collect();
        blocks.sort_by_key(|(i, _)| *i);
        Ok(blocks)
    }

    /// A new block `b` held by this node, with `owner` at `rel`.
    fn new_block(&self, layout: &BlockLayout, b: u64, rel: u32, owner: &str, dynamic: bool) -> DanmIpBlock {
        let mut spec = DanmIpBlockSpec {
            network: self.id.to_string(),
            network_uid: self.network.metadata.uid.clone().unwrap_or_default(),
            cidr: layout.block_cidr(b),
            node: self.node.to_owned(),
            ..DanmIpBlockSpec::default()
        };
        assign_in_block(&mut spec, rel, owner, dynamic);
        let mut block = DanmIpBlock::new(&layout.block_name(&self.id, b), spec);
        block.metadata.labels = Some(BTreeMap::from([
            (labels::NETWORK_ID.to_owned(), self.id.label()),
            (labels::FAMILY.to_owned(), family_label(layout.family).to_owned()),
            (labels::NODE.to_owned(), node_label(self.node)),
        ]));
        block
    }

    /// Applies `change` to the block `name` (the copy `first` on the first try, a fresh read after a 409) and writes
    /// it conditionally. `change` returns `None` when there is nothing to write; then so does this. `Ok(None)` also
    /// when the block does not exist.
    async fn update<T>(
        &self,
        name: &str,
        first: Option<DanmIpBlock>,
        mut change: impl FnMut(&mut DanmIpBlockSpec) -> Result<Option<T>, IpamError>,
    ) -> Result<Option<T>, IpamApiError> {
        let retry = self.config.retry;
        let mut current = first;
        for attempt in 0..retry.attempts {
            let block = match current.take() {
                Some(b) => b,
                None => match self.store.get_block(name).await? {
                    Some(b) => b,
                    None => return Ok(None),
                },
            };
            let mut new = block;
            let Some(out) = change(&mut new.spec).map_err(|e| self.ipam_err(e))? else {
                return Ok(None);
            };
            match self.store.replace_block(&new).await {
                Ok(_) => return Ok(Some(out)),
                Err(ApiError::Conflict { .. }) => {
                    tracing::debug!(block = name, attempt, "block conflict, re-reading");
                    tokio::time::sleep(retry.delay(attempt)).await;
                }
                Err(ApiError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamApiError::Conflicts {
            object: block_object(name),
            attempts: retry.attempts,
        })
    }

    /// Reserves every request in order; on a failure, what the earlier requests got is released again.
    pub(crate) async fn reserve_batch(&self, requests: &[Request<'_>]) -> Result<Vec<Reserved>, BatchError> {
        let mut done = Vec::with_capacity(requests.len());
        for (index, req) in requests.iter().enumerate() {
            match self.reserve_one(req).await {
                Ok(r) => done.push(r),
                Err(error) => {
                    let held: Vec<Release<'_>> = done
                        .iter()
                        .zip(requests)
                        .map(|(r, q): (&Reserved, &Request<'_>)| Release {
                            ip4: &r.ip4,
                            ip6: &r.ip6,
                            owner: q.owner,
                        })
                        .collect();
                    if let Err(e) = self.release_batch(&held).await {
                        tracing::error!(error = %e, network = %self.id,
                            "cannot release the addresses of a failed batch; the reconciler will");
                    }
                    let index = matches!(error, IpamApiError::Ipam { .. }).then_some(index);
                    return Err(BatchError { index, error });
                }
            }
        }
        Ok(done)
    }

    async fn reserve_one(&self, req: &Request<'_>) -> Result<Reserved, IpamApiError> {
        let ip4 = self.reserve_family(Family::V4, &req.ip4, req.owner).await?;
        match self.reserve_family(Family::V6, &req.ip6, req.owner).await {
            Ok(ip6) => Ok(Reserved { ip4, ip6 }),
            Err(e) => {
                if is_real(&ip4)
                    && let Err(undo) = self.release_one(Family::V4, &ip4, req.owner).await
                {
                    tracing::error!(error = %undo, address = ip4, "cannot release an IPv4 address after the IPv6 failure");
                }
                Err(e)
            }
        }
    }

    async fn reserve_family(
        &self,
        family: Family,
        req: &IpRequest,
        owner: &str,
    ) -> Result<String, IpamApiError> {
        match req {
            IpRequest::Absent => Ok(String::new()),
            IpRequest::None => Ok("none".to_owned()),
            IpRequest::Dynamic => {
                let layout = self.layout(family).map_err(|e| self.ipam_err(e))?;
                self.dynamic(&layout, owner).await
            }
            IpRequest::Static(ip) => {
                let layout = self.layout(family).map_err(|e| self.ipam_err(e))?;
                self.fixed(&layout, *ip, owner).await
            }
        }
    }

    /// A dynamic address: from this node's blocks (those with owners first), else from a newly claimed block, else
    /// from another node's block.
    async fn dynamic(&self, layout: &BlockLayout, owner: &str) -> Result<String, IpamApiError> {
        let mut mine = self.list(layout, Some(self.node)).await?;
        mine.sort_by_key(|(i, b)| (b.spec.owners.is_empty(), *i));
        for (b, block) in &mine {
            let name = block.name().to_owned();
            let take = |spec: &mut DanmIpBlockSpec| Ok(take_next(layout, *b, spec, owner));
            if let Some(result) = self.update(&name, Some(block.clone()), take).await? {
                self.hand_back_idle(&mine, *b).await;
                return Ok(result);
            }
        }
        let all = self.list(layout, None).await?;
        if let Some(result) = self.claim(layout, &all, owner).await? {
            return Ok(result);
        }
        // Every block is held now. Read them again: ADDs running at once on this node may have claimed blocks since
        // `mine` was listed (the claims this one lost), and those have room. This node's first, then borrow.
        let mut all = self.list(layout, None).await?;
        all.sort_by_key(|(i, b)| (b.spec.node != self.node, *i));
        for (b, block) in &all {
            let take = |spec: &mut DanmIpBlockSpec| Ok(take_next(layout, *b, spec, owner));
            if let Some(result) = self.update(block.name(), Some(block.clone()), take).await? {
                if block.spec.node != self.node {
                    tracing::debug!(
                        block = block.name(),
                        holder = block.spec.node,
                        "borrowed an address"
                    );
                }
                return Ok(result);
            }
        }
        Err(self.ipam_err(layout.exhausted()))
    }

    /// Claims a block nobody holds, with a create: the lowest free one first; after a lost race, one picked by this
    /// node's name so that nodes claiming at once spread over the pool.
    async fn claim(
        &self,
        layout: &BlockLayout,
        all: &[(u64, DanmIpBlock)],
        owner: &str,
    ) -> Result<Option<String>, IpamApiError> {
        let mut taken: HashSet<u64> = all.iter().map(|(b, _)| *b).collect();
        let pool = layout.pool_blocks();
        let (lo, count) = (*pool.start(), pool.end() - pool.start() + 1);
        let spread = node_hash(self.node) % count;
        let (mut start, mut i, mut lost) = (0u64, 0u64, 0u32);
        while i < count {
            let b = lo + (start + i) % count;
            i += 1;
            if taken.contains(&b) {
                continue;
            }
            let Some((rel, result)) = layout.next_free(b, &DanmIpBlockSpec::default()) else {
                continue;
            };
            match self
                .store
                .create_block(&self.new_block(layout, b, rel, owner, true))
                .await
            {
                Ok(_) => {
                    tracing::debug!(block = %layout.block_cidr(b), network = %self.id, "claimed a block");
                    return Ok(Some(result));
                }
                // A plain 409 (the store was busy): the same block again, after a pause.
                Err(ApiError::Conflict { object }) => {
                    lost += 1;
                    if lost >= self.config.retry.attempts {
                        return Err(IpamApiError::Conflicts {
                            object,
                            attempts: lost,
                        });
                    }
                    tokio::time::sleep(self.config.retry.delay(lost)).await;
                    i -= 1;
                }
                Err(ApiError::AlreadyExists { object }) => {
                    taken.insert(b);
                    lost += 1;
                    if lost >= self.config.retry.attempts {
                        return Err(IpamApiError::Conflicts {
                            object,
                            attempts: lost,
                        });
                    }
                    if lost == 1 {
                        (start, i) = (spread, 0);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// A static address: in the block that contains it, whoever holds that block; a block nobody holds yet is
    /// created for this node.
    async fn fixed(&self, layout: &BlockLayout, ip: IpAddr, owner: &str) -> Result<String, IpamApiError> {
        let (b, rel, result) = layout.locate_static(ip).map_err(|e| self.ipam_err(e))?;
        let name = layout.block_name(&self.id, b);
        let retry = self.config.retry;
        for attempt in 0..retry.attempts {
            let assign = |spec: &mut DanmIpBlockSpec| match spec.owners.get(&rel) {
                Some(holder) if holder != owner => Err(IpamError::InUse {
                    requested: ip.to_string(),
                }),
                _ => {
                    assign_in_block(spec, rel, owner, false);
                    Ok(Some(()))
                }
            };
            if self.update(&name, None, assign).await?.is_some() {
                return Ok(result);
            }
            match self
                .store
                .create_block(&self.new_block(layout, b, rel, owner, false))
                .await
            {
                Ok(_) => return Ok(result),
                Err(ApiError::AlreadyExists { .. } | ApiError::Conflict { .. }) => {
                    tokio::time::sleep(retry.delay(attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(IpamApiError::Conflicts {
            object: block_object(&name),
            attempts: retry.attempts,
        })
    }

    /// Deletes this node's blocks that have been empty for longer than the idle time (but not `used`, which just
    /// served an allocation). Conditional on the listed version: a block someone allocated from since stays.
    async fn hand_back_idle(&self, mine: &[(u64, DanmIpBlock)], used: u64) {
        let now = Timestamp::now();
        let idle = self.config.idle.as_secs() as i64;
        for (b, block) in mine {
            if *b == used || !block.spec.owners.is_empty() {
                continue;
            }
            let Ok(since) = block.spec.empty_since.parse::<Timestamp>() else {
                continue;
            };
            if now.as_second() - since.as_second() < idle {
                continue;
            }
            let rv = block.metadata.resource_version.clone().unwrap_or_default();
            match self.store.delete_block(block.name(), &rv).await {
                Ok(_) => tracing::debug!(block = block.name(), "handed back an idle block"),
                Err(e) => tracing::debug!(block = block.name(), error = %e, "idle block not handed back"),
            }
        }
    }

    /// Releases the addresses `owner` holds; an address someone else holds stays theirs (logged).
    pub(crate) async fn release_batch(&self, addresses: &[Release<'_>]) -> Result<bool, IpamApiError> {
        let mut freed = false;
        for a in addresses {
            for (family, addr) in [(Family::V4, a.ip4), (Family::V6, a.ip6)] {
                if is_real(addr) {
                    freed |= self.release_one(family, addr, a.owner).await?;
                }
            }
        }
        Ok(freed)
    }

    async fn release_one(&self, family: Family, addr: &str, owner: &str) -> Result<bool, IpamApiError> {
        let Ok(layout) = self.layout(family) else {
            return Ok(false);
        };
        let Some((b, rel)) = layout.locate(addr) else {
            return Ok(false);
        };
        let name = layout.block_name(&self.id, b);
        let now = Timestamp::now().to_string();
        let free = |spec: &mut DanmIpBlockSpec| {
            Ok(match release_in_block(spec, rel, owner, &now) {
                BlockRelease::Freed => Some(()),
                BlockRelease::NotAllocated => None,
                BlockRelease::WrongOwner { holder } => {
                    tracing::warn!(address = addr, owner, holder, network = %self.id,
                        "not releasing an address another owner holds");
                    None
                }
            })
        };
        Ok(self.update(&name, None, free).await?.is_some())
    }

    /// Who holds `addr`: `None` when it is outside the network's ranges, `Some(None)` when nobody does.
    pub(crate) async fn owner_of(&self, addr: &str) -> Result<Option<Option<String>>, IpamApiError> {
        let family = if addr.contains(':') {
            Family::V6
        } else {
            Family::V4
        };
        let Ok(layout) = self.layout(family) else {
            return Ok(None);
        };
        let Some((b, rel)) = layout.locate(addr) else {
            return Ok(None);
        };
        let block = self.store.get_block(&layout.block_name(&self.id, b)).await?;
        Ok(Some(block.and_then(|b| b.spec.owners.get(&rel).cloned())))
    }

    /// The blocks of one family.
    pub(crate) async fn stats(&self, family: Family) -> Result<Vec<BlockStats>, IpamApiError> {
        let Ok(layout) = self.layout(family) else {
            return Ok(Vec::new());
        };
        Ok(self
            .list(&layout, None)
            .await?
            .into_iter()
            .map(|(b, block)| BlockStats {
                family,
                name: block.name().to_owned(),
                cidr: block.spec.cidr.clone(),
                node: block.spec.node.clone(),
                used: block.spec.owners.len(),
                capacity: layout.capacity(b),
            })
            .collect())
    }
}

/// Takes the next free address of block `b` for `owner`; `None` when the block is full.
fn take_next(layout: &BlockLayout, b: u64, spec: &mut DanmIpBlockSpec, owner: &str) -> Option<String> {
    let (rel, result) = layout.next_free(b, spec)?;
    assign_in_block(spec, rel, owner, true);
    Some(result)
}

fn node_hash(node: &str) -> u64 {
    node.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
