//! `FakeNetlink`: an in-memory kernel model (namespaces, links, addresses, routes, rules, sysctls, VFs) that
//! records every call and fails on demand, for unit tests of the CNI and netwatcher flows.
//!
//! The model follows the kernel where danm's flows depend on it: names are unique per namespace and at most 15
//! bytes; parents must exist; deleting a link deletes its macvlan/ipvlan/vlan/vxlan children and its veth peer
//! (in any namespace) together with their routes and per-interface sysctls; moving a link drops its addresses and
//! takes it down; an IPv4 gateway must be inside a subnet of an up device (else ENETUNREACH) and a device-only
//! route needs the device up (ENETDOWN); IPv6 addresses need `disable_ipv6` off (EACCES);
//! rules without a priority get the one just below the first non-zero rule. Kinds the kernel lacks are declared
//! with [`FakeNetlink::without_kind`] and fail like the real kernel (EOPNOTSUPP → NotSupported).
//!
//! Not modelled: routes the kernel adds by itself (connected subnets, IPv6 link-local and multicast), so a
//! flow that checks routes should look for the ones it added; sysctl defaults (a key never written reads as
//! missing); VF state other than MAC/VLAN.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::PoisonError;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ipnetwork::IpNetwork;

use crate::error::{NetlinkError, Op, libc_errno};
use crate::types::*;
use crate::{Netlink, validate_sysctl_key};

/// One call made to the fake, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    NetnsExists {
        ns: Netns,
    },
    GetLink {
        ns: Netns,
        name: String,
    },
    ListLinks {
        ns: Netns,
    },
    CreateLink {
        ns: Netns,
        link: NewLink,
    },
    SetLink {
        ns: Netns,
        name: String,
        change: LinkChange,
    },
    MoveLink {
        ns: Netns,
        name: String,
        to: Netns,
    },
    DeleteLink {
        ns: Netns,
        name: String,
    },
    DeleteLinkGroup {
        ns: Netns,
        group: u32,
    },
    /// Several links deleted in one request (`delete_links` with two names or more).
    DeleteLinks {
        ns: Netns,
        names: Vec<String>,
    },
    SetVf {
        ns: Netns,
        pf: String,
        vf: VfConfig,
    },
    GetVfs {
        ns: Netns,
        pf: String,
    },
    AddAddress {
        ns: Netns,
        link: String,
        addr: NewAddress,
    },
    ListAddresses {
        ns: Netns,
        link: String,
    },
    DeleteAddress {
        ns: Netns,
        link: String,
        addr: IpNetwork,
    },
    AddRoute {
        ns: Netns,
        route: Route,
    },
    ListRoutes {
        ns: Netns,
        table: u32,
    },
    DeleteRoute {
        ns: Netns,
        route: Route,
    },
    AddRule {
        ns: Netns,
        rule: Rule,
    },
    ListRules {
        ns: Netns,
    },
    DeleteRule {
        ns: Netns,
        rule: Rule,
    },
    SetSysctls {
        ns: Netns,
        values: Vec<Sysctl>,
    },
    ReadSysctl {
        ns: Netns,
        key: String,
    },
}

impl Call {
    pub fn op(&self) -> Op {
        match self {
            Call::NetnsExists { .. } => Op::OpenNetns,
            Call::GetLink { .. } => Op::GetLink,
            Call::ListLinks { .. } => Op::ListLinks,
            Call::CreateLink { .. } => Op::CreateLink,
            Call::SetLink { .. } => Op::SetLink,
            Call::MoveLink { .. } => Op::MoveLink,
            Call::DeleteLink { .. } | Call::DeleteLinkGroup { .. } | Call::DeleteLinks { .. } => {
                Op::DeleteLink
            }
            Call::SetVf { .. } => Op::SetVf,
            Call::GetVfs { .. } => Op::GetVfs,
            Call::AddAddress { .. } => Op::AddAddress,
            Call::ListAddresses { .. } => Op::ListAddresses,
            Call::DeleteAddress { .. } => Op::DeleteAddress,
            Call::AddRoute { .. } => Op::AddRoute,
            Call::ListRoutes { .. } => Op::ListRoutes,
            Call::DeleteRoute { .. } => Op::DeleteRoute,
            Call::AddRule { .. } => Op::AddRule,
            Call::ListRules { .. } => Op::ListRules,
            Call::DeleteRule { .. } => Op::DeleteRule,
            Call::SetSysctls { .. } => Op::WriteSysctl,
            Call::ReadSysctl { .. } => Op::ReadSysctl,
        }
    }

    /// The namespace the call ran in.
    pub fn netns(&self) -> &Netns {
        match self {
            Call::NetnsExists { ns }
            | Call::GetLink { ns, .. }
            | Call::ListLinks { ns }
            | Call::CreateLink { ns, .. }
            | Call::SetLink { ns, .. }
            | Call::MoveLink { ns, .. }
            | Call::DeleteLink { ns, .. }
            | Call::DeleteLinkGroup { ns, .. }
            | Call::DeleteLinks { ns, .. }
            | Call::SetVf { ns, .. }
            | Call::GetVfs { ns, .. }
            | Call::AddAddress { ns, .. }
            | Call::ListAddresses { ns, .. }
            | Call::DeleteAddress { ns, .. }
            | Call::AddRoute { ns, .. }
            | Call::ListRoutes { ns, .. }
            | Call::DeleteRoute { ns, .. }
            | Call::AddRule { ns, .. }
            | Call::ListRules { ns }
            | Call::DeleteRule { ns, .. }
            | Call::SetSysctls { ns, .. }
            | Call::ReadSysctl { ns, .. } => ns,
        }
    }

    /// Whether the call changes kernel state.
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Call::NetnsExists { .. }
                | Call::GetLink { .. }
                | Call::ListLinks { .. }
                | Call::GetVfs { .. }
                | Call::ListAddresses { .. }
                | Call::ListRoutes { .. }
                | Call::ListRules { .. }
                | Call::ReadSysctl { .. }
        )
    }

    /// The object named in errors for this call.
    fn object(&self) -> String {
        match self {
            Call::NetnsExists { .. } | Call::ListLinks { .. } => "links".to_string(),
            Call::GetLink { name, .. } | Call::SetLink { name, .. } | Call::DeleteLink { name, .. } => {
                format!("link {name}")
            }
            Call::CreateLink { link, .. } => format!("link {} ({})", link.name, link.kind.name()),
            Call::MoveLink { name, to, .. } => format!("link {name} to {to}"),
            Call::DeleteLinkGroup { group, .. } => format!("link group {group}"),
            Call::DeleteLinks { names, .. } => format!("links {}", names.join(", ")),
            Call::SetVf { pf, vf, .. } => format!("VF {} of {pf}", vf.vf),
            Call::GetVfs { pf, .. } => format!("VFs of {pf}"),
            Call::AddAddress { link, addr, .. } => format!("address {} on {link}", addr.addr),
            Call::ListAddresses { link, .. } => format!("addresses of {link}"),
            Call::DeleteAddress { link, addr, .. } => format!("address {addr} on {link}"),
            Call::AddRoute { route, .. } | Call::DeleteRoute { route, .. } => {
                format!("route {} table {}", route.dst, route.table)
            }
            Call::ListRoutes { table, .. } => format!("routes of table {table}"),
            Call::AddRule { rule, .. } | Call::DeleteRule { rule, .. } => {
                format!("rule from {} lookup {}", rule.from, rule.table)
            }
            Call::ListRules { .. } => "rules".to_string(),
            Call::SetSysctls { values, .. } => format!(
                "sysctl {}",
                values.first().map(|s| s.key.as_str()).unwrap_or_default()
            ),
            Call::ReadSysctl { key, .. } => format!("sysctl {key}"),
        }
    }
}

type Matcher = Box<dyn Fn(&Call) -> bool + Send>;

struct Failure {
    matcher: Matcher,
    errno: i32,
    remaining: Option<usize>,
}

#[derive(Clone, Debug)]
struct FakeLink {
    uid: u64,
    ns: Netns,
    index: u32,
    name: String,
    mtu: u32,
    mac: MacAddr,
    kind: LinkKind,
    /// uid of the parent (macvlan/ipvlan/vlan lower device, vxlan underlay, veth peer).
    parent: Option<u64>,
    alias: Option<String>,
    up: bool,
    addresses: Vec<Address>,
    /// SR-IOV PF: the VFs' settings.
    vfs: Option<Vec<VfConfig>>,
    group: u32,
}

#[derive(Default)]
struct NsState {
    next_index: u32,
    routes: Vec<Route>,
    rules: Vec<RuleInfo>,
    sysctls: BTreeMap<String, String>,
}

impl NsState {
    fn new() -> Self {
        let any4 = None;
        let rule = |family, priority, table| RuleInfo {
            family,
            from: any4,
            table,
            priority,
        };
        NsState {
            next_index: 2,
            routes: Vec::new(),
            rules: vec![
                rule(IpFamily::V4, 0, 255),
                rule(IpFamily::V4, 32766, TABLE_MAIN),
                rule(IpFamily::V4, 32767, 253),
                rule(IpFamily::V6, 0, 255),
                rule(IpFamily::V6, 32766, TABLE_MAIN),
            ],
            sysctls: BTreeMap::new(),
        }
    }
}

#[derive(Default)]
struct State {
    namespaces: BTreeMap<Netns, NsState>,
    links: Vec<FakeLink>,
    calls: Vec<Call>,
    failures: Vec<Failure>,
    unsupported: BTreeSet<String>,
    next_uid: u64,
}

/// The recording fake. Clones share one model, so a test keeps a clone to inspect what the code under test did.
#[derive(Clone)]
pub struct FakeNetlink {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for FakeNetlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("FakeNetlink")
            .field("namespaces", &st.namespaces.keys().collect::<Vec<_>>())
            .field("links", &st.links.len())
            .field("calls", &st.calls.len())
            .finish()
    }
}

impl Default for FakeNetlink {
    fn default() -> Self {
        Self::new()
    }
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

fn same_address(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.ip() == b.ip() && a.prefix() == b.prefix()
}

/// The interface a per-interface sysctl key is about (`net/ipv{4,6}/conf/<if>/...`, `net/ipv4/neigh/<if>/...`).
fn sysctl_ifname(key: &str) -> Option<&str> {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        ["net", "ipv4" | "ipv6", "conf" | "neigh", ifname, _] => Some(ifname),
        _ => None,
    }
}

impl State {
    fn record(&mut self, call: Call) -> Result<(), NetlinkError> {
        let mut failed = None;
        for failure in &mut self.failures {
            if failure.remaining != Some(0) && (failure.matcher)(&call) {
                if let Some(n) = &mut failure.remaining {
                    *n -= 1;
                }
                failed = Some(failure.errno);
                break;
            }
        }
        self.failures.retain(|f| f.remaining != Some(0));
        let result = match failed {
            Some(errno) => {
                let feature = match &call {
                    Call::CreateLink { link, .. } => Some(format!("link kind {}", link.kind.name())),
                    _ => None,
                };
                Err(NetlinkError::from_errno(
                    call.op(),
                    call.netns(),
                    call.object(),
                    errno,
                    feature.as_deref(),
                ))
            }
            None => Ok(()),
        };
        self.calls.push(call);
        result
    }

    fn ns(&mut self, op: Op, ns: &Netns) -> Result<&mut NsState, NetlinkError> {
        self.namespaces
            .get_mut(ns)
            .ok_or_else(|| NetlinkError::NetnsNotFound {
                op,
                netns: ns.to_string(),
            })
    }

    fn pos(&self, ns: &Netns, name: &str) -> Option<usize> {
        self.links.iter().position(|l| &l.ns == ns && l.name == name)
    }

    fn find(&self, op: Op, ns: &Netns, name: &str, what: &str) -> Result<usize, NetlinkError> {
        self.pos(ns, name).ok_or_else(|| {
            NetlinkError::from_errno(op, ns, format!("{what} {name}"), libc_errno::ENODEV, None)
        })
    }

    fn by_uid(&self, uid: u64) -> Option<&FakeLink> {
        self.links.iter().find(|l| l.uid == uid)
    }

    fn alloc_index(&mut self, ns: &Netns) -> u32 {
        let state = self.namespaces.get_mut(ns).expect("namespace checked");
        let index = state.next_index;
        state.next_index += 1;
        index
    }

    fn alloc_mac(&mut self) -> (u64, MacAddr) {
        self.next_uid += 1;
        let uid = self.next_uid;
        let b = uid.to_be_bytes();
        (uid, MacAddr([0x02, 0xfa, 0x4b, b[5], b[6], b[7]]))
    }

    fn view(&self, link: &FakeLink) -> Link {
        let parent = link.parent.and_then(|uid| self.by_uid(uid));
        let mut kind = link.kind.clone();
        if let (LinkKind::Vxlan(info), Some(parent)) = (&mut kind, parent) {
            info.underlay_index = Some(parent.index);
        }
        let parent_index = match &link.kind {
            LinkKind::Vxlan(_) => None,
            _ => parent.map(|p| p.index),
        };
        Link {
            index: link.index,
            name: link.name.clone(),
            mtu: link.mtu,
            mac: Some(link.mac),
            kind,
            parent_index,
            link_netnsid: parent.filter(|p| p.ns != link.ns).map(|_| 0),
            alias: link.alias.clone(),
            oper_state: if link.up { OperState::Up } else { OperState::Down },
            up: link.up,
            flags: if link.up { 1 } else { 0 },
            group: link.group,
        }
    }

    /// Removes the link with `uid` and everything the kernel removes with it.
    fn remove_link(&mut self, uid: u64) {
        let Some(pos) = self.links.iter().position(|l| l.uid == uid) else {
            return;
        };
        let link = self.links.remove(pos);
        if let Some(state) = self.namespaces.get_mut(&link.ns) {
            state
                .routes
                .retain(|r| r.dev.as_deref() != Some(link.name.as_str()));
            state
                .sysctls
                .retain(|key, _| sysctl_ifname(key) != Some(link.name.as_str()));
        }
        let dependants: Vec<u64> = self
            .links
            .iter()
            .filter(|l| l.parent == Some(uid) || (link.kind == LinkKind::Veth && link.parent == Some(l.uid)))
            .map(|l| l.uid)
            .collect();
        for dependant in dependants {
            self.remove_link(dependant);
        }
    }

    fn insert_link(&mut self, mut link: FakeLink) -> usize {
        if self
            .links
            .iter()
            .any(|l| l.ns == link.ns && l.index == link.index)
            || link.index == 0
        {
            link.index = self.alloc_index(&link.ns);
        }
        self.links.push(link);
        self.links.len() - 1
    }
}

impl FakeNetlink {
    /// A model with the host namespace holding only `lo`.
    pub fn new() -> Self {
        let fake = FakeNetlink {
            state: Arc::new(Mutex::new(State::default())),
        };
        fake.add_netns(Netns::Host);
        fake
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an empty namespace (with `lo`), as `ip netns add` would. Adding an existing one does nothing.
    pub fn add_netns(&self, ns: Netns) {
        let mut st = self.lock();
        if st.namespaces.contains_key(&ns) {
            return;
        }
        st.namespaces.insert(ns.clone(), NsState::new());
        let (uid, _) = st.alloc_mac();
        st.links.push(FakeLink {
            uid,
            ns,
            index: 1,
            name: "lo".to_string(),
            mtu: 65536,
            mac: MacAddr::default(),
            kind: LinkKind::Device,
            parent: None,
            alias: None,
            up: true,
            addresses: Vec::new(),
            vfs: None,
            group: 0,
        });
    }

    /// Removes a namespace: its virtual links are destroyed (with everything that depends on them), physical
    /// devices ([`LinkKind::Device`]) return to the host namespace, as in the kernel.
    pub fn remove_netns(&self, ns: &Netns) {
        let mut st = self.lock();
        let members: Vec<(u64, bool)> = st
            .links
            .iter()
            .filter(|l| &l.ns == ns)
            .map(|l| (l.uid, l.kind == LinkKind::Device && l.name != "lo"))
            .collect();
        for (uid, physical) in members {
            if physical {
                let index = st.alloc_index(&Netns::Host);
                if let Some(link) = st.links.iter_mut().find(|l| l.uid == uid) {
                    link.ns = Netns::Host;
                    link.index = index;
                    link.up = false;
                    link.addresses.clear();
                }
            } else {
                st.remove_link(uid);
            }
        }
        st.namespaces.remove(ns);
    }

    /// Adds a physical device (kind [`LinkKind::Device`]), up, with the given MTU. Returns its index.
    pub fn add_device(&self, ns: &Netns, name: &str, mtu: u32) -> u32 {
        self.add_device_with(ns, name, mtu, None)
    }

    /// Adds an SR-IOV PF with `total_vfs` VFs (all without MAC or VLAN). Returns its index.
    pub fn add_sriov_pf(&self, ns: &Netns, name: &str, mtu: u32, total_vfs: u32) -> u32 {
        let vfs = (0..total_vfs)
            .map(|vf| VfConfig {
                vf,
                ..VfConfig::default()
            })
            .collect();
        self.add_device_with(ns, name, mtu, Some(vfs))
    }

    fn add_device_with(&self, ns: &Netns, name: &str, mtu: u32, vfs: Option<Vec<VfConfig>>) -> u32 {
        self.add_netns(ns.clone());
        let mut st = self.lock();
        let (uid, mac) = st.alloc_mac();
        let index = st.alloc_index(ns);
        st.links.push(FakeLink {
            uid,
            ns: ns.clone(),
            index,
            name: name.to_string(),
            mtu,
            mac,
            kind: LinkKind::Device,
            parent: None,
            alias: None,
            up: true,
            addresses: Vec::new(),
            vfs,
            group: 0,
        });
        index
    }

    /// Makes creating links of `kind` (`"ipvlan"`, `"vlan"`, `"dummy"`...) fail as on a kernel without the driver.
    pub fn without_kind(&self, kind: &str) -> &Self {
        self.lock().unsupported.insert(kind.to_string());
        self
    }

    /// The first `times` calls (or all, with `None`) matching `matcher` fail with kernel errno `errno`, before
    /// touching the model. The call is still recorded.
    pub fn fail_when(
        &self,
        matcher: impl Fn(&Call) -> bool + Send + 'static,
        errno: i32,
        times: Option<usize>,
    ) -> &Self {
        self.lock().failures.push(Failure {
            matcher: Box::new(matcher),
            errno,
            remaining: times,
        });
        self
    }

    /// Removes all injected failures.
    pub fn clear_failures(&self) {
        self.lock().failures.clear();
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls that change state, in order.
    pub fn mutations(&self) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.is_mutation())
            .cloned()
            .collect()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// The settings of VF `vf` of PF `pf`.
    pub fn vf(&self, ns: &Netns, pf: &str, vf: u32) -> Option<VfConfig> {
        let st = self.lock();
        let pos = st.pos(ns, pf)?;
        st.links[pos].vfs.as_ref()?.iter().find(|c| c.vf == vf).cloned()
    }

    /// The namespaces in the model.
    pub fn namespaces(&self) -> Vec<Netns> {
        self.lock().namespaces.keys().cloned().collect()
    }

    /// The value last written to sysctl `key` in `ns`.
    pub fn sysctl_value(&self, ns: &Netns, key: &str) -> Option<String> {
        self.lock().namespaces.get(ns)?.sysctls.get(key).cloned()
    }
}

fn kernel(op: Op, ns: &Netns, object: String, errno: i32) -> NetlinkError {
    NetlinkError::from_errno(op, ns, object, errno, None)
}

#[async_trait]
impl Netlink for FakeNetlink {
    async fn netns_exists(&self, ns: &Netns) -> Result<bool, NetlinkError> {
        let mut st = self.lock();
        st.record(Call::NetnsExists { ns: ns.clone() })?;
        Ok(st.namespaces.contains_key(ns))
    }

    async fn link(&self, ns: &Netns, name: &str) -> Result<Link, NetlinkError> {
        let op = Op::GetLink;
        let mut st = self.lock();
        st.record(Call::GetLink {
            ns: ns.clone(),
            name: name.to_string(),
        })?;
        st.ns(op, ns)?;
        let pos = st.find(op, ns, name, "link")?;
        Ok(st.view(&st.links[pos]))
    }

    async fn links(&self, ns: &Netns) -> Result<Vec<Link>, NetlinkError> {
        let mut st = self.lock();
        st.record(Call::ListLinks { ns: ns.clone() })?;
        st.ns(Op::ListLinks, ns)?;
        let mut links: Vec<Link> = st
            .links
            .iter()
            .filter(|l| &l.ns == ns)
            .map(|l| st.view(l))
            .collect();
        links.sort_by_key(|l| l.index);
        Ok(links)
    }

    async fn create_link(&self, ns: &Netns, link: &NewLink) -> Result<Link, NetlinkError> {
        let op = Op::CreateLink;
        let call = Call::CreateLink {
            ns: ns.clone(),
            link: link.clone(),
        };
        let object = call.object();
        let mut st = self.lock();
        st.record(call)?;
        st.ns(op, ns)?;
        let home = link.netns.clone().unwrap_or_else(|| ns.clone());
        st.ns(op, &home)?;
        let parent = match link.kind.parent() {
            Some(parent) => Some(st.find(op, ns, parent, "parent link")?),
            None => None,
        };
        if st.unsupported.contains(link.kind.name()) {
            let feature = format!("link kind {}", link.kind.name());
            return Err(NetlinkError::from_errno(
                op,
                ns,
                object,
                libc_errno::EOPNOTSUPP,
                Some(&feature),
            ));
        }
        if !valid_ifname(&link.name) {
            return Err(kernel(op, ns, object, libc_errno::EINVAL));
        }
        if st.pos(&home, &link.name).is_some() {
            return Err(kernel(op, ns, object, libc_errno::EEXIST));
        }
        let parent_mtu = parent.map(|p| st.links[p].mtu);
        let mtu = match (link.mtu, parent_mtu, &link.kind) {
            (
                Some(mtu),
                Some(max),
                NewLinkKind::Macvlan { .. } | NewLinkKind::Ipvlan { .. } | NewLinkKind::Vlan { .. },
            ) if mtu > max => {
                return Err(kernel(op, ns, object, libc_errno::EINVAL));
            }
            (Some(mtu), _, _) => mtu,
            (
                None,
                Some(max),
                NewLinkKind::Macvlan { .. } | NewLinkKind::Ipvlan { .. } | NewLinkKind::Vlan { .. },
            ) => max,
            (None, _, NewLinkKind::Vxlan(_)) => parent_mtu.map_or(1450, |m| m.saturating_sub(50)),
            (None, _, _) => 1500,
        };
        let kind = match &link.kind {
            NewLinkKind::Macvlan { mode, .. } => LinkKind::Macvlan { mode: *mode },
            NewLinkKind::Ipvlan { mode, .. } => LinkKind::Ipvlan { mode: *mode },
            NewLinkKind::Vlan { id, .. } => {
                if *id == 0 || *id > 4094 {
                    return Err(kernel(op, ns, object, libc_errno::ERANGE));
                }
                LinkKind::Vlan { id: *id }
            }
            NewLinkKind::Vxlan(spec) => LinkKind::Vxlan(VxlanInfo {
                vni: spec.vni,
                port: spec.port,
                group: spec.group,
                local: spec.local,
                underlay_index: None,
                learning: spec.learning,
                l2miss: spec.l2miss,
                l3miss: spec.l3miss,
            }),
            NewLinkKind::Dummy => LinkKind::Dummy,
            NewLinkKind::Bridge => LinkKind::Bridge,
            NewLinkKind::Veth { .. } => LinkKind::Veth,
        };
        // A veth peer is checked before anything is created, as the kernel creates both or neither.
        let peer = match &link.kind {
            NewLinkKind::Veth { peer, peer_netns } => {
                let peer_home = peer_netns.clone().unwrap_or_else(|| home.clone());
                st.ns(op, &peer_home)?;
                if !valid_ifname(peer) {
                    return Err(kernel(op, ns, object, libc_errno::EINVAL));
                }
                if st.pos(&peer_home, peer).is_some() || (peer_home == home && *peer == link.name) {
                    return Err(kernel(op, ns, object, libc_errno::EEXIST));
                }
                Some((peer.clone(), peer_home))
            }
            _ => None,
        };
        let (uid, default_mac) = st.alloc_mac();
        let index = st.alloc_index(&home);
        let parent_uid = parent.map(|p| st.links[p].uid);
        let pos = st.insert_link(FakeLink {
            uid,
            ns: home.clone(),
            index,
            name: link.name.clone(),
            mtu,
            mac: link.mac.unwrap_or(default_mac),
            kind,
            parent: parent_uid,
            alias: link.alias.clone(),
            up: link.up,
            addresses: Vec::new(),
            vfs: None,
            group: link.group.unwrap_or(0),
        });
        if let Some((peer_name, peer_home)) = peer {
            let (peer_uid, peer_mac) = st.alloc_mac();
            let peer_index = st.alloc_index(&peer_home);
            st.insert_link(FakeLink {
                uid: peer_uid,
                ns: peer_home,
                index: peer_index,
                name: peer_name,
                mtu,
                mac: peer_mac,
                kind: LinkKind::Veth,
                parent: Some(uid),
                alias: None,
                up: false,
                addresses: Vec::new(),
                vfs: None,
                group: 0,
            });
            st.links[pos].parent = Some(peer_uid);
        }
        let pos = st.pos(&home, &link.name).expect("just inserted");
        Ok(st.view(&st.links[pos]))
    }

    async fn set_link(&self, ns: &Netns, name: &str, change: &LinkChange) -> Result<(), NetlinkError> {
        let op = Op::SetLink;
        let object = format!("link {name}");
        let mut st = self.lock();
        st.record(Call::SetLink {
            ns: ns.clone(),
            name: name.to_string(),
            change: change.clone(),
        })?;
        st.ns(op, ns)?;
        let pos = st.find(op, ns, name, "link")?;
        if let Some(mtu) = change.mtu {
            let max = st.links[pos]
                .parent
                .and_then(|uid| st.by_uid(uid))
                .filter(|_| {
                    matches!(
                        st.links[pos].kind,
                        LinkKind::Macvlan { .. } | LinkKind::Ipvlan { .. } | LinkKind::Vlan { .. }
                    )
                })
                .map(|p| p.mtu);
            if mtu < 68 || max.is_some_and(|max| mtu > max) {
                return Err(kernel(op, ns, object, libc_errno::EINVAL));
            }
        }
        if let Some(new_name) = &change.name
            && new_name != name
        {
            if !valid_ifname(new_name) {
                return Err(kernel(op, ns, object, libc_errno::EINVAL));
            }
            if st.pos(ns, new_name).is_some() {
                return Err(kernel(op, ns, object, libc_errno::EEXIST));
            }
        }
        if let Some(mac) = change.mac {
            st.links[pos].mac = mac;
        }
        if let Some(mtu) = change.mtu {
            st.links[pos].mtu = mtu;
        }
        if let Some(new_name) = &change.name
            && new_name != name
        {
            st.links[pos].name = new_name.clone();
            let state = st.ns(op, ns)?;
            let moved: Vec<(String, String)> = state
                .sysctls
                .iter()
                .filter(|(key, _)| sysctl_ifname(key) == Some(name))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            for (key, value) in moved {
                state.sysctls.remove(&key);
                let renamed = key.replacen(&format!("/{name}/"), &format!("/{new_name}/"), 1);
                state.sysctls.insert(renamed, value);
            }
            for route in &mut state.routes {
                if route.dev.as_deref() == Some(name) {
                    route.dev = Some(new_name.clone());
                }
            }
        }
        if let Some(alias) = &change.alias {
            st.links[pos].alias = if alias.is_empty() {
                None
            } else {
                Some(alias.clone())
            };
        }
        if let Some(up) = change.up {
            st.links[pos].up = up;
        }
        Ok(())
    }

    async fn move_link(&self, ns: &Netns, name: &str, to: &Netns) -> Result<(), NetlinkError> {
        let op = Op::MoveLink;
        let object = format!("link {name} to {to}");
        let mut st = self.lock();
        st.record(Call::MoveLink {
            ns: ns.clone(),
            name: name.to_string(),
            to: to.clone(),
        })?;
        st.ns(op, ns)?;
        st.ns(op, to)?;
        let pos = st.find(op, ns, name, "link")?;
        if to == ns {
            return Ok(());
        }
        if st.pos(to, name).is_some() {
            return Err(kernel(op, ns, object, libc_errno::EEXIST));
        }
        let state = st.ns(op, ns)?;
        state.routes.retain(|r| r.dev.as_deref() != Some(name));
        state.sysctls.retain(|key, _| sysctl_ifname(key) != Some(name));
        let mut link = st.links.remove(pos);
        link.ns = to.clone();
        link.up = false;
        link.addresses.clear();
        st.insert_link(link);
        Ok(())
    }

    async fn delete_link(&self, ns: &Netns, name: &str) -> Result<(), NetlinkError> {
        let op = Op::DeleteLink;
        let mut st = self.lock();
        st.record(Call::DeleteLink {
            ns: ns.clone(),
            name: name.to_string(),
        })?;
        st.ns(op, ns)?;
        let pos = st.find(op, ns, name, "link")?;
        if st.links[pos].kind == LinkKind::Device {
            // The kernel refuses to delete physical devices and loopback.
            return Err(kernel(op, ns, format!("link {name}"), libc_errno::EOPNOTSUPP));
        }
        let uid = st.links[pos].uid;
        st.remove_link(uid);
        Ok(())
    }

    /// As the real one: fewer than two links go by name; more are deleted together, all or none (the kernel
    /// deletes a link group in one step and refuses the whole group if it holds a physical device); names that do
    /// not exist are skipped.
    async fn delete_links(&self, ns: &Netns, names: &[String]) -> Result<(), NetlinkError> {
        if names.len() < 2 {
            return self.delete_links_one_by_one(ns, names).await;
        }
        let op = Op::DeleteLink;
        let mut st = self.lock();
        st.record(Call::DeleteLinks {
            ns: ns.clone(),
            names: names.to_vec(),
        })?;
        if st.ns(op, ns).is_err() {
            return Ok(());
        }
        let members: Vec<usize> = names.iter().filter_map(|n| st.pos(ns, n)).collect();
        if let Some(&dev) = members.iter().find(|&&i| st.links[i].kind == LinkKind::Device) {
            let name = st.links[dev].name.clone();
            return Err(kernel(op, ns, format!("link {name}"), libc_errno::EOPNOTSUPP));
        }
        let uids: Vec<u64> = members.iter().map(|&i| st.links[i].uid).collect();
        for uid in uids {
            st.remove_link(uid);
        }
        Ok(())
    }

    async fn delete_link_group(&self, ns: &Netns, group: u32) -> Result<bool, NetlinkError> {
        let op = Op::DeleteLink;
        let mut st = self.lock();
        st.record(Call::DeleteLinkGroup {
            ns: ns.clone(),
            group,
        })?;
        if group == 0 || st.ns(op, ns).is_err() {
            return Ok(false);
        }
        let members: Vec<usize> = (0..st.links.len())
            .filter(|&i| st.links[i].ns == *ns && st.links[i].group == group)
            .collect();
        if members.iter().any(|&i| st.links[i].kind == LinkKind::Device) {
            // The kernel deletes all of a group or nothing, and cannot delete physical devices.
            return Err(kernel(
                op,
                ns,
                format!("link group {group}"),
                libc_errno::EOPNOTSUPP,
            ));
        }
        let uids: Vec<u64> = members.iter().map(|&i| st.links[i].uid).collect();
        for uid in &uids {
            st.remove_link(*uid);
        }
        Ok(!uids.is_empty())
    }

    async fn set_vf(&self, ns: &Netns, pf: &str, vf: &VfConfig) -> Result<(), NetlinkError> {
        let op = Op::SetVf;
        let object = format!("VF {} of {pf}", vf.vf);
        let mut st = self.lock();
        st.record(Call::SetVf {
            ns: ns.clone(),
            pf: pf.to_string(),
            vf: vf.clone(),
        })?;
        st.ns(op, ns)?;
        if vf.mac.is_none() && vf.vlan.is_none() {
            return Err(NetlinkError::Invalid {
                op,
                netns: ns.to_string(),
                object,
                reason: "neither MAC nor VLAN given".to_string(),
            });
        }
        let pos = st.find(op, ns, pf, "PF")?;
        let Some(vfs) = st.links[pos].vfs.as_mut() else {
            return Err(kernel(op, ns, object, libc_errno::EOPNOTSUPP));
        };
        let Some(entry) = vfs.iter_mut().find(|c| c.vf == vf.vf) else {
            return Err(kernel(op, ns, object, libc_errno::EINVAL));
        };
        if let Some(mac) = vf.mac {
            entry.mac = Some(mac);
        }
        if let Some(vlan) = vf.vlan {
            if vlan > 4095 {
                return Err(kernel(op, ns, object, libc_errno::EINVAL));
            }
            entry.vlan = Some(vlan);
            entry.qos = vf.qos;
        }
        Ok(())
    }

    async fn vfs(&self, ns: &Netns, pf: &str) -> Result<Vec<VfConfig>, NetlinkError> {
        let op = Op::GetVfs;
        let mut st = self.lock();
        st.record(Call::GetVfs {
            ns: ns.clone(),
            pf: pf.to_string(),
        })?;
        st.ns(op, ns)?;
        let pos = st.find(op, ns, pf, "PF")?;
        Ok(st.links[pos].vfs.clone().unwrap_or_default())
    }

    async fn add_address(&self, ns: &Netns, link: &str, addr: &NewAddress) -> Result<(), NetlinkError> {
        let op = Op::AddAddress;
        let object = format!("address {} on {link}", addr.addr);
        let mut st = self.lock();
        st.record(Call::AddAddress {
            ns: ns.clone(),
            link: link.to_string(),
            addr: addr.clone(),
        })?;
        st.ns(op, ns)?;
        let pos = st.find(op, ns, link, "link")?;
        if addr.addr.is_ipv6() {
            let key = format!("net/ipv6/conf/{link}/disable_ipv6");
            if st.ns(op, ns)?.sysctls.get(&key).map(String::as_str) == Some("1") {
                return Err(kernel(op, ns, object, libc_errno::EACCES));
            }
        }
        let flags = if addr.nodad { 0x02 | 0x80 } else { 0x80 };
        let entry = Address {
            addr: addr.addr,
            scope: Scope::Universe,
            nodad: addr.nodad,
            flags,
        };
        let addresses = &mut st.links[pos].addresses;
        match addresses.iter_mut().find(|a| same_address(&a.addr, &addr.addr)) {
            Some(existing) if addr.replace => *existing = entry,
            Some(_) => return Err(kernel(op, ns, object, libc_errno::EEXIST)),
            None => addresses.push(entry),
        }
        Ok(())
    }

    async fn addresses(&self, ns: &Netns, link: &str) -> Result<Vec<Address>, NetlinkError> {
        let op = Op::ListAddresses;
        let mut st = self.lock();
        st.record(Call::ListAddresses {
            ns: ns.clone(),
            link: link.to_string(),
        })?;
        st.ns(op, ns)?;
        let pos = st.find(op, ns, link, "link")?;
        Ok(st.links[pos].addresses.clone())
    }

    async fn delete_address(&self, ns: &Netns, link: &str, addr: IpNetwork) -> Result<(), NetlinkError> {
        let op = Op::DeleteAddress;
        let mut st = self.lock();
        st.record(Call::DeleteAddress {
            ns: ns.clone(),
            link: link.to_string(),
            addr,
        })?;
        st.ns(op, ns)?;
        let pos = st.find(op, ns, link, "link")?;
        let addresses = &mut st.links[pos].addresses;
        let before = addresses.len();
        addresses.retain(|a| !same_address(&a.addr, &addr));
        if addresses.len() == before {
            return Err(kernel(
                op,
                ns,
                format!("address {addr} on {link}"),
                libc_errno::EADDRNOTAVAIL,
            ));
        }
        Ok(())
    }

    async fn add_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError> {
        let op = Op::AddRoute;
        let object = format!("route {} table {}", route.dst, route.table);
        let mut st = self.lock();
        st.record(Call::AddRoute {
            ns: ns.clone(),
            route: route.clone(),
        })?;
        st.ns(op, ns)?;
        if route
            .gateway
            .is_some_and(|gw| gw.is_ipv4() != route.dst.is_ipv4())
        {
            return Err(kernel(op, ns, object, libc_errno::EINVAL));
        }
        match &route.dev {
            Some(dev) => {
                let pos = st.find(op, ns, dev, "device")?;
                let link = &st.links[pos];
                if !link.up && route.gateway.is_none() {
                    return Err(kernel(op, ns, object, libc_errno::ENETDOWN));
                }
                if let Some(IpAddr::V4(gw)) = route.gateway {
                    let reachable = link.up
                        && link.addresses.iter().any(|a| match a.addr {
                            IpNetwork::V4(net) => net.contains(gw),
                            IpNetwork::V6(_) => false,
                        });
                    if !reachable {
                        return Err(kernel(op, ns, object, libc_errno::ENETUNREACH));
                    }
                }
            }
            None if route.gateway.is_none() => return Err(kernel(op, ns, object, libc_errno::EINVAL)),
            None => {}
        }
        let dst = IpNetwork::new(route.dst.network(), route.dst.prefix()).expect("prefix already valid");
        let state = st.ns(op, ns)?;
        if state
            .routes
            .iter()
            .any(|r| r.dst == dst && r.table == route.table)
        {
            return Err(kernel(op, ns, object, libc_errno::EEXIST));
        }
        state.routes.push(Route { dst, ..route.clone() });
        Ok(())
    }

    async fn routes(&self, ns: &Netns, table: u32) -> Result<Vec<Route>, NetlinkError> {
        let mut st = self.lock();
        st.record(Call::ListRoutes {
            ns: ns.clone(),
            table,
        })?;
        let state = st.ns(Op::ListRoutes, ns)?;
        Ok(state
            .routes
            .iter()
            .filter(|r| r.table == table)
            .cloned()
            .collect())
    }

    async fn delete_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError> {
        let op = Op::DeleteRoute;
        let object = format!("route {} table {}", route.dst, route.table);
        let mut st = self.lock();
        st.record(Call::DeleteRoute {
            ns: ns.clone(),
            route: route.clone(),
        })?;
        let dst = IpNetwork::new(route.dst.network(), route.dst.prefix()).expect("prefix already valid");
        let state = st.ns(op, ns)?;
        let pos = state.routes.iter().position(|r| {
            r.dst == dst
                && r.table == route.table
                && route.gateway.is_none_or(|gw| r.gateway == Some(gw))
                && route.dev.as_ref().is_none_or(|dev| r.dev.as_ref() == Some(dev))
        });
        match pos {
            Some(pos) => {
                state.routes.remove(pos);
                Ok(())
            }
            None => Err(kernel(op, ns, object, libc_errno::ESRCH)),
        }
    }

    async fn add_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError> {
        let op = Op::AddRule;
        let mut st = self.lock();
        st.record(Call::AddRule {
            ns: ns.clone(),
            rule: rule.clone(),
        })?;
        let state = st.ns(op, ns)?;
        let family = rule.family();
        let priority = match rule.priority {
            Some(p) => p,
            None => {
                let mut prios: Vec<u32> = state
                    .rules
                    .iter()
                    .filter(|r| r.family == family && r.priority > 0)
                    .map(|r| r.priority)
                    .collect();
                prios.sort_unstable();
                prios.first().map_or(0, |p| p - 1)
            }
        };
        let info = RuleInfo {
            family,
            from: Some(rule.from),
            table: rule.table,
            priority,
        };
        if state.rules.contains(&info) {
            return Err(kernel(
                op,
                ns,
                format!("rule from {} lookup {}", rule.from, rule.table),
                libc_errno::EEXIST,
            ));
        }
        state.rules.push(info);
        state.rules.sort_by_key(|r| r.priority);
        Ok(())
    }

    async fn rules(&self, ns: &Netns) -> Result<Vec<RuleInfo>, NetlinkError> {
        let mut st = self.lock();
        st.record(Call::ListRules { ns: ns.clone() })?;
        let state = st.ns(Op::ListRules, ns)?;
        let mut rules: Vec<RuleInfo> = state
            .rules
            .iter()
            .filter(|r| r.family == IpFamily::V4)
            .cloned()
            .collect();
        rules.extend(state.rules.iter().filter(|r| r.family == IpFamily::V6).cloned());
        Ok(rules)
    }

    async fn delete_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError> {
        let op = Op::DeleteRule;
        let mut st = self.lock();
        st.record(Call::DeleteRule {
            ns: ns.clone(),
            rule: rule.clone(),
        })?;
        let state = st.ns(op, ns)?;
        match state.rules.iter().position(|r| r.matches(rule)) {
            Some(pos) => {
                state.rules.remove(pos);
                Ok(())
            }
            None => Err(kernel(
                op,
                ns,
                format!("rule from {} lookup {}", rule.from, rule.table),
                libc_errno::ENOENT,
            )),
        }
    }

    async fn set_sysctls(&self, ns: &Netns, values: &[Sysctl]) -> Result<(), NetlinkError> {
        let op = Op::WriteSysctl;
        let mut st = self.lock();
        st.record(Call::SetSysctls {
            ns: ns.clone(),
            values: values.to_vec(),
        })?;
        st.ns(op, ns)?;
        for sysctl in values {
            validate_sysctl_key(&sysctl.key).map_err(|reason| NetlinkError::Invalid {
                op,
                netns: ns.to_string(),
                object: format!("sysctl {}", sysctl.key),
                reason,
            })?;
            if let Some(ifname) = sysctl_ifname(&sysctl.key)
                && ifname != "all"
                && ifname != "default"
                && st.pos(ns, ifname).is_none()
            {
                return Err(NetlinkError::Sysctl {
                    op,
                    netns: ns.to_string(),
                    key: sysctl.key.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            st.ns(op, ns)?
                .sysctls
                .insert(sysctl.key.clone(), sysctl.value.clone());
        }
        Ok(())
    }

    async fn sysctl(&self, ns: &Netns, key: &str) -> Result<String, NetlinkError> {
        let op = Op::ReadSysctl;
        let mut st = self.lock();
        st.record(Call::ReadSysctl {
            ns: ns.clone(),
            key: key.to_string(),
        })?;
        let state = st.ns(op, ns)?;
        // The fake knows only what was written; a key never written reads as missing.
        state
            .sysctls
            .get(key)
            .cloned()
            .ok_or_else(|| NetlinkError::Sysctl {
                op,
                netns: ns.to_string(),
                key: key.to_string(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })
    }
}

#[cfg(test)]
mod tests;
