//! `RtNetlink`: the real [`Netlink`] implementation over rtnetlink, one cached socket per namespace.

mod parse;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::PoisonError;

use async_trait::async_trait;
use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::{
    InfoData, InfoVeth, IpVlanMode, LinkAttribute, LinkExtentMask, LinkFlags, LinkMessage, LinkVfInfo,
    MacVlanMode, VfInfo, VfInfoMac, VfInfoVlan,
};
use netlink_packet_route::route::{RouteAttribute, RouteScope};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{
    AddressMessageBuilder, Handle, LinkBridge, LinkDummy, LinkIpVlan, LinkMacVlan, LinkMessageBuilder,
    LinkUnspec, LinkVeth, LinkVlan, LinkVxlan, RouteMessageBuilder,
};

use crate::error::{NetlinkError, Op, libc_errno};
use crate::netns::{self, NsId};
use crate::types::*;
use crate::{Netlink, validate_sysctl_key};

/// The rtnetlink-backed [`Netlink`]. Cheap to create; sockets are opened on first use of each namespace and
/// cached (keyed by the namespace file's inode, so a re-created namespace at the same path gets a new socket).
/// Must be used inside a tokio runtime, and within one runtime: each socket's connection task runs on the
/// runtime that first used that namespace.
#[derive(Default)]
pub struct RtNetlink {
    host: Mutex<Option<Handle>>,
    conns: Mutex<HashMap<PathBuf, (NsId, Handle)>>,
}

impl fmt::Debug for RtNetlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.conns.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("RtNetlink")
            .field("cached_netns", &cached)
            .finish()
    }
}

fn map_err(err: rtnetlink::Error, op: Op, ns: &Netns, object: String, feature: Option<&str>) -> NetlinkError {
    match err {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            Some(code) => NetlinkError::from_errno(op, ns, object, -code.get(), feature),
            None => NetlinkError::Protocol {
                op,
                netns: ns.to_string(),
                object,
                message: "unexpected acknowledgement".to_string(),
            },
        },
        other => NetlinkError::Protocol {
            op,
            netns: ns.to_string(),
            object,
            message: other.to_string(),
        },
    }
}

fn invalid(op: Op, ns: &Netns, object: String, reason: impl fmt::Display) -> NetlinkError {
    NetlinkError::Invalid {
        op,
        netns: ns.to_string(),
        object,
        reason: reason.to_string(),
    }
}

fn route_object(route: &Route) -> String {
    let mut text = format!("route {}", route.dst);
    if let Some(gw) = route.gateway {
        text.push_str(&format!(" via {gw}"));
    }
    if let Some(dev) = &route.dev {
        text.push_str(&format!(" dev {dev}"));
    }
    text.push_str(&format!(" table {}", route.table));
    text
}

fn rule_object(rule: &Rule) -> String {
    match rule.priority {
        Some(p) => format!("rule from {} lookup {} priority {p}", rule.from, rule.table),
        None => format!("rule from {} lookup {}", rule.from, rule.table),
    }
}

fn finish<T>(builder: LinkMessageBuilder<T>, link: &NewLink, target: Option<&File>) -> LinkMessage {
    let mut builder = builder;
    if let Some(mtu) = link.mtu {
        builder = builder.mtu(mtu);
    }
    if let Some(mac) = link.mac {
        builder = builder.address(mac.0.to_vec());
    }
    if let Some(file) = target {
        builder = builder.setns_by_fd(file.as_raw_fd());
    }
    if link.up {
        builder = builder.up();
    }
    let mut msg = builder.build();
    if let Some(group) = link.group {
        msg.attributes.push(LinkAttribute::Group(group));
    }
    msg
}

fn macvlan_mode(mode: MacvlanMode) -> MacVlanMode {
    match mode {
        MacvlanMode::Private => MacVlanMode::Private,
        MacvlanMode::Vepa => MacVlanMode::Vepa,
        MacvlanMode::Bridge => MacVlanMode::Bridge,
        MacvlanMode::Passthru => MacVlanMode::Passthrough,
        MacvlanMode::Source => MacVlanMode::Source,
    }
}

fn ipvlan_mode(mode: IpvlanMode) -> IpVlanMode {
    match mode {
        IpvlanMode::L2 => IpVlanMode::L2,
        IpvlanMode::L3 => IpVlanMode::L3,
        IpvlanMode::L3s => IpVlanMode::L3S,
    }
}

fn rule_message(rule: &Rule) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = match rule.from {
        IpNetwork::V4(_) => AddressFamily::Inet,
        IpNetwork::V6(_) => AddressFamily::Inet6,
    };
    msg.header.src_len = rule.from.prefix();
    msg.header.action = RuleAction::ToTable;
    msg.header.table = u8::try_from(rule.table).unwrap_or(0);
    msg.attributes.push(RuleAttribute::Source(rule.from.ip()));
    msg.attributes.push(RuleAttribute::Table(rule.table));
    if let Some(priority) = rule.priority {
        msg.attributes.push(RuleAttribute::Priority(priority));
    }
    msg
}

impl RtNetlink {
    pub fn new() -> Self {
        Self::default()
    }

    /// The netlink handle for `ns`, opening (from a thread inside `ns`) and caching a socket if needed.
    async fn handle(&self, op: Op, ns: &Netns) -> Result<Handle, NetlinkError> {
        match ns {
            Netns::Host => {
                if let Some(handle) = self.host.lock().unwrap_or_else(PoisonError::into_inner).clone() {
                    return Ok(handle);
                }
                let (conn, handle, _) =
                    rtnetlink::new_connection().map_err(|source| NetlinkError::Netns {
                        op,
                        netns: ns.to_string(),
                        source,
                    })?;
                tokio::spawn(conn);
                *self.host.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle.clone());
                Ok(handle)
            }
            Netns::Path(path) => {
                let id = netns::identity(op, ns, path)?;
                if let Some((cached, handle)) = self
                    .conns
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(path)
                    && *cached == id
                {
                    return Ok(handle.clone());
                }
                let runtime = tokio::runtime::Handle::current();
                let (conn, handle) = netns::run_in(op, ns, move || {
                    // The socket is created here, inside `ns`, and registered with the caller's runtime.
                    let _guard = runtime.enter();
                    rtnetlink::new_connection().map(|(conn, handle, _)| (conn, handle))
                })
                .await?
                .map_err(|source| NetlinkError::Netns {
                    op,
                    netns: ns.to_string(),
                    source,
                })?;
                tokio::spawn(conn);
                let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
                // Drop sockets of namespaces that are gone or were replaced: they keep dead namespaces alive.
                conns.retain(|p, (cached, _)| netns::identity(op, ns, p).is_ok_and(|now| now == *cached));
                conns.insert(path.clone(), (id, handle.clone()));
                Ok(handle)
            }
        }
    }

    async fn link_message(
        handle: &Handle,
        op: Op,
        ns: &Netns,
        name: &str,
        what: &str,
    ) -> Result<LinkMessage, NetlinkError> {
        let mut stream = handle.link().get().match_name(name).execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => Err(NetlinkError::from_errno(
                op,
                ns,
                format!("{what} {name}"),
                libc_errno::ENODEV,
                None,
            )),
            Err(err) => Err(map_err(err, op, ns, format!("{what} {name}"), None)),
        }
    }

    /// A route's message as far as adding and deleting share it: destination, gateway, output device, table.
    async fn route_message(
        handle: &Handle,
        op: Op,
        ns: &Netns,
        route: &Route,
        object: &str,
    ) -> Result<RouteMessageBuilder<IpAddr>, NetlinkError> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.dst.network(), route.dst.prefix())
            .map_err(|err| invalid(op, ns, object.to_owned(), err))?;
        if let Some(gateway) = route.gateway {
            builder = builder
                .gateway(gateway)
                .map_err(|err| invalid(op, ns, object.to_owned(), err))?;
        }
        if let Some(dev) = &route.dev {
            let index = Self::index_of(handle, op, ns, dev, "device").await?;
            builder = builder.output_interface(index);
        }
        Ok(builder.table_id(route.table))
    }

    async fn index_of(
        handle: &Handle,
        op: Op,
        ns: &Netns,
        name: &str,
        what: &str,
    ) -> Result<u32, NetlinkError> {
        Ok(Self::link_message(handle, op, ns, name, what).await?.header.index)
    }

    async fn link_names(handle: &Handle, op: Op, ns: &Netns) -> Result<HashMap<u32, String>, NetlinkError> {
        let msgs: Vec<LinkMessage> = handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|err| map_err(err, op, ns, "links".to_string(), None))?;
        Ok(msgs
            .iter()
            .map(parse::link)
            .map(|link| (link.index, link.name))
            .collect())
    }

    fn write_sysctls(values: &[Sysctl]) -> Result<(), (String, std::io::Error)> {
        for sysctl in values {
            std::fs::write(format!("/proc/sys/{}", sysctl.key), sysctl.value.as_bytes())
                .map_err(|err| (sysctl.key.clone(), err))?;
        }
        Ok(())
    }
}

#[async_trait]
impl Netlink for RtNetlink {
    async fn netns_exists(&self, ns: &Netns) -> Result<bool, NetlinkError> {
        match ns {
            Netns::Host => Ok(true),
            Netns::Path(path) => match netns::identity(Op::OpenNetns, ns, path) {
                Ok(_) => Ok(true),
                Err(NetlinkError::NetnsNotFound { .. }) => Ok(false),
                Err(err) => Err(err),
            },
        }
    }

    async fn link(&self, ns: &Netns, name: &str) -> Result<Link, NetlinkError> {
        let handle = self.handle(Op::GetLink, ns).await?;
        let msg = Self::link_message(&handle, Op::GetLink, ns, name, "link").await?;
        Ok(parse::link(&msg))
    }

    async fn links(&self, ns: &Netns) -> Result<Vec<Link>, NetlinkError> {
        let handle = self.handle(Op::ListLinks, ns).await?;
        let msgs: Vec<LinkMessage> = handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|err| map_err(err, Op::ListLinks, ns, "links".to_string(), None))?;
        let mut links: Vec<Link> = msgs.iter().map(parse::link).collect();
        links.sort_by_key(|link| link.index);
        Ok(links)
    }

    async fn create_link(&self, ns: &Netns, link: &NewLink) -> Result<Link, NetlinkError> {
        let op = Op::CreateLink;
        let object = match link.kind.parent() {
            Some(parent) => format!("link {} ({} on {parent})", link.name, link.kind.name()),
            None => format!("link {} ({})", link.name, link.kind.name()),
        };
        let handle = self.handle(op, ns).await?;
        let parent = match link.kind.parent() {
            Some(parent) => Some(Self::index_of(&handle, op, ns, parent, "parent link").await?),
            None => None,
        };
        let target = match &link.netns {
            Some(target) if target != ns => Some(target.clone()),
            _ => None,
        };
        let target_file = match &target {
            Some(target) => Some(netns::open(op, target)?),
            None => None,
        };
        // A veth peer goes where asked, else next to the link; name its namespace explicitly whenever the link
        // itself leaves the request's namespace.
        let peer_target = match &link.kind {
            NewLinkKind::Veth { peer_netns, .. } => {
                let home = peer_netns
                    .clone()
                    .or_else(|| target.clone())
                    .unwrap_or_else(|| ns.clone());
                if home != *ns || target.is_some() {
                    Some(netns::open(op, &home)?)
                } else {
                    None
                }
            }
            _ => None,
        };
        let name = link.name.as_str();
        let msg = match &link.kind {
            NewLinkKind::Macvlan { mode, .. } => finish(
                LinkMacVlan::new(name, parent.unwrap_or_default(), macvlan_mode(*mode)),
                link,
                target_file.as_ref(),
            ),
            NewLinkKind::Ipvlan { mode, .. } => finish(
                LinkIpVlan::new(name, parent.unwrap_or_default(), ipvlan_mode(*mode)),
                link,
                target_file.as_ref(),
            ),
            NewLinkKind::Vlan { id, .. } => finish(
                LinkVlan::new(name, parent.unwrap_or_default(), *id),
                link,
                target_file.as_ref(),
            ),
            NewLinkKind::Vxlan(spec) => {
                let mut b = LinkVxlan::new(name, spec.vni)
                    .port(spec.port)
                    .learning(spec.learning)
                    .l2miss(spec.l2miss)
                    .l3miss(spec.l3miss);
                if let Some(index) = parent {
                    b = b.dev(index);
                }
                match spec.group {
                    Some(IpAddr::V4(group)) => b = b.group(group),
                    Some(IpAddr::V6(group)) => b = b.group6(group),
                    None => {}
                }
                match spec.local {
                    Some(IpAddr::V4(local)) => b = b.local(local),
                    Some(IpAddr::V6(local)) => b = b.local6(local),
                    None => {}
                }
                finish(b, link, target_file.as_ref())
            }
            NewLinkKind::Dummy => finish(LinkDummy::new(name), link, target_file.as_ref()),
            NewLinkKind::Bridge => finish(LinkBridge::new(name), link, target_file.as_ref()),
            NewLinkKind::Veth { peer, .. } => {
                let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new().name(peer.clone());
                if let Some(file) = &peer_target {
                    peer_msg = peer_msg.setns_by_fd(file.as_raw_fd());
                }
                let b =
                    LinkVeth::new(name, peer).set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())));
                finish(b, link, target_file.as_ref())
            }
        };
        let feature = format!("link kind {}", link.kind.name());
        handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, object.clone(), Some(&feature)))?;
        drop(target_file);
        drop(peer_target);
        let home = target.unwrap_or_else(|| ns.clone());
        if let Some(alias) = &link.alias {
            self.set_link(&home, name, &LinkChange::new().alias(alias.clone()))
                .await?;
        }
        self.link(&home, name).await
    }

    async fn set_link(&self, ns: &Netns, name: &str, change: &LinkChange) -> Result<(), NetlinkError> {
        let op = Op::SetLink;
        let object = format!("link {name}");
        let handle = self.handle(op, ns).await?;
        let mut msg = LinkMessage::default();
        match &change.name {
            Some(new_name) => {
                // IFLA_IFNAME carries the new name, so address the link by index.
                msg.header.index = Self::index_of(&handle, op, ns, name, "link").await?;
                msg.attributes.push(LinkAttribute::IfName(new_name.clone()));
                if change.up == Some(false) {
                    // The kernel renames before it applies flags, and kernels before 6.2 refuse to rename a link that
                    // is up (EBUSY): take it down first when the change asks for down anyway.
                    let mut down = LinkMessage::default();
                    down.header.index = msg.header.index;
                    down.header.change_mask |= LinkFlags::Up;
                    handle
                        .link()
                        .set(down)
                        .execute()
                        .await
                        .map_err(|err| map_err(err, op, ns, object.clone(), None))?;
                }
            }
            None => msg.attributes.push(LinkAttribute::IfName(name.to_string())),
        }
        if let Some(mac) = change.mac {
            msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
        }
        if let Some(mtu) = change.mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(alias) = &change.alias {
            msg.attributes.push(LinkAttribute::IfAlias(alias.clone()));
        }
        if let Some(up) = change.up {
            if up {
                msg.header.flags |= LinkFlags::Up;
            }
            msg.header.change_mask |= LinkFlags::Up;
        }
        handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, object, None))
    }

    async fn move_link(&self, ns: &Netns, name: &str, to: &Netns) -> Result<(), NetlinkError> {
        let op = Op::MoveLink;
        let handle = self.handle(op, ns).await?;
        let file = netns::open(op, to)?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::NetNsFd(file.as_raw_fd()));
        let result = handle.link().set(msg).execute().await;
        drop(file);
        result.map_err(|err| map_err(err, op, ns, format!("link {name} to {to}"), None))
    }

    async fn delete_link(&self, ns: &Netns, name: &str) -> Result<(), NetlinkError> {
        let op = Op::DeleteLink;
        let handle = self.handle(op, ns).await?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        handle
            .link()
            .del_with_message(msg)
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, format!("link {name}"), None))
    }

    /// Tags the links with one link group, then deletes the group with a single `RTM_DELLINK` (ifindex 0,
    /// `IFLA_GROUP`): the kernel unregisters them together and waits for one RCU grace period instead of one per
    /// link (figures: docs/performance.md §3).
    async fn delete_links(&self, ns: &Netns, names: &[String]) -> Result<(), NetlinkError> {
        if names.len() < 2 {
            return self.delete_links_one_by_one(ns, names).await;
        }
        let op = Op::DeleteLink;
        let handle = match self.handle(op, ns).await {
            Ok(h) => h,
            Err(err) if err.is_not_found() => return Ok(()),
            Err(err) => return Err(err),
        };
        // A group no link of the namespace is in yet, so the deletion takes exactly the links tagged below (on the
        // host, an administrator may have put links in groups of their own).
        let used: std::collections::BTreeSet<u32> = match self.links(ns).await {
            Ok(links) => links.iter().map(|l| l.group).collect(),
            Err(err) if err.is_not_found() => return Ok(()),
            Err(err) => return Err(err),
        };
        let group = loop {
            let g = batch_group();
            if !used.contains(&g) {
                break g;
            }
        };
        let mut tagged = 0;
        for name in names {
            let mut msg = LinkMessage::default();
            msg.attributes.push(LinkAttribute::IfName(name.to_string()));
            msg.attributes.push(LinkAttribute::Group(group));
            match handle.link().set(msg).execute().await {
                Ok(()) => tagged += 1,
                Err(err) => {
                    let err = map_err(err, op, ns, format!("link {name} (group {group})"), None);
                    if !err.is_not_found() {
                        return Err(err);
                    }
                }
            }
        }
        if tagged == 0 {
            return Ok(());
        }
        delete_group(&handle, group).await.map_err(|err| {
            map_err(
                err,
                op,
                ns,
                format!("link group {group} ({})", names.join(", ")),
                None,
            )
        })
    }

    /// One `RTM_DELLINK` with ifindex 0 and `IFLA_GROUP`: the kernel unregisters every link of the group together
    /// (one RCU grace period). `ENODEV` (no link in the group) and a namespace that is gone are `Ok(false)`.
    async fn delete_link_group(&self, ns: &Netns, group: u32) -> Result<bool, NetlinkError> {
        if group == 0 {
            return Ok(false);
        }
        let op = Op::DeleteLink;
        let handle = match self.handle(op, ns).await {
            Ok(h) => h,
            Err(err) if err.is_not_found() => return Ok(false),
            Err(err) => return Err(err),
        };
        match delete_group(&handle, group).await {
            Ok(()) => Ok(true),
            Err(err) => {
                let err = map_err(err, op, ns, format!("link group {group}"), None);
                if err.is_not_found() { Ok(false) } else { Err(err) }
            }
        }
    }

    async fn set_vf(&self, ns: &Netns, pf: &str, vf: &VfConfig) -> Result<(), NetlinkError> {
        let op = Op::SetVf;
        let object = format!("VF {} of {pf}", vf.vf);
        let mut infos = Vec::new();
        if let Some(mac) = vf.mac {
            infos.push(VfInfo::Mac(VfInfoMac::new(vf.vf, &mac.0)));
        }
        if let Some(vlan) = vf.vlan {
            infos.push(VfInfo::Vlan(VfInfoVlan::new(vf.vf, u32::from(vlan), vf.qos)));
        }
        if infos.is_empty() {
            return Err(invalid(op, ns, object, "neither MAC nor VLAN given"));
        }
        let handle = self.handle(op, ns).await?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(pf.to_string()));
        msg.attributes
            .push(LinkAttribute::VfInfoList(vec![LinkVfInfo(infos)]));
        handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, object, None))
    }

    async fn vfs(&self, ns: &Netns, pf: &str) -> Result<Vec<VfConfig>, NetlinkError> {
        let op = Op::GetVfs;
        let object = format!("VFs of {pf}");
        let handle = self.handle(op, ns).await?;
        let mut stream = handle
            .link()
            .get()
            .match_name(pf)
            .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::Vf])
            .execute();
        match stream.try_next().await {
            Ok(Some(msg)) => Ok(parse::vfs(&msg)),
            Ok(None) => Err(NetlinkError::from_errno(op, ns, object, libc_errno::ENODEV, None)),
            Err(err) => Err(map_err(err, op, ns, object, None)),
        }
    }

    async fn add_address(&self, ns: &Netns, link: &str, addr: &NewAddress) -> Result<(), NetlinkError> {
        let op = Op::AddAddress;
        let object = format!("address {} on {link}", addr.addr);
        let handle = self.handle(op, ns).await?;
        let index = Self::index_of(&handle, op, ns, link, "link").await?;
        let mut request = handle.address().add(index, addr.addr.ip(), addr.addr.prefix());
        if addr.replace {
            request = request.replace();
        }
        if addr.nodad {
            let msg = request.message_mut();
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        request
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, object, None))
    }

    async fn addresses(&self, ns: &Netns, link: &str) -> Result<Vec<Address>, NetlinkError> {
        let op = Op::ListAddresses;
        let handle = self.handle(op, ns).await?;
        let index = Self::index_of(&handle, op, ns, link, "link").await?;
        let msgs: Vec<_> = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|err| map_err(err, op, ns, format!("addresses of {link}"), None))?;
        Ok(msgs.iter().filter_map(parse::address).collect())
    }

    async fn delete_address(&self, ns: &Netns, link: &str, addr: IpNetwork) -> Result<(), NetlinkError> {
        let op = Op::DeleteAddress;
        let handle = self.handle(op, ns).await?;
        let index = Self::index_of(&handle, op, ns, link, "link").await?;
        let msg = match addr {
            IpNetwork::V4(net) => AddressMessageBuilder::<std::net::Ipv4Addr>::new()
                .index(index)
                .address(net.ip(), net.prefix())
                .build(),
            IpNetwork::V6(net) => AddressMessageBuilder::<std::net::Ipv6Addr>::new()
                .index(index)
                .address(net.ip(), net.prefix())
                .build(),
        };
        handle
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, format!("address {addr} on {link}"), None))
    }

    async fn add_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError> {
        let op = Op::AddRoute;
        let object = route_object(route);
        let handle = self.handle(op, ns).await?;
        let msg = Self::route_message(&handle, op, ns, route, &object)
            .await?
            .scope(RouteScope::from(route.scope.to_u8()))
            .build();
        handle
            .route()
            .add(msg)
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, object, None))
    }

    async fn delete_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError> {
        let op = Op::DeleteRoute;
        let object = route_object(route);
        let handle = self.handle(op, ns).await?;
        let msg = Self::route_message(&handle, op, ns, route, &object)
            .await?
            .build();
        handle
            .route()
            .del(msg)
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, object, None))
    }

    async fn routes(&self, ns: &Netns, table: u32) -> Result<Vec<Route>, NetlinkError> {
        let op = Op::ListRoutes;
        let handle = self.handle(op, ns).await?;
        let mut msgs = Vec::new();
        for request in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let part: Vec<_> = handle
                .route()
                .get(request)
                .execute()
                .try_collect()
                .await
                .map_err(|err| map_err(err, op, ns, format!("routes of table {table}"), None))?;
            msgs.extend(part);
        }
        let msgs: Vec<_> = msgs
            .into_iter()
            .filter(|m| parse::route_table(m) == table)
            .collect();
        let names = if msgs
            .iter()
            .any(|m| m.attributes.iter().any(|a| matches!(a, RouteAttribute::Oif(_))))
        {
            Self::link_names(&handle, op, ns).await?
        } else {
            HashMap::new()
        };
        Ok(msgs.iter().filter_map(|m| parse::route(m, &names)).collect())
    }

    async fn add_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError> {
        let op = Op::AddRule;
        let handle = self.handle(op, ns).await?;
        let mut request = handle.rule().add();
        *request.message_mut() = rule_message(rule);
        request
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, rule_object(rule), None))
    }

    async fn rules(&self, ns: &Netns) -> Result<Vec<RuleInfo>, NetlinkError> {
        let op = Op::ListRules;
        let handle = self.handle(op, ns).await?;
        let mut rules = Vec::new();
        for version in [rtnetlink::IpVersion::V4, rtnetlink::IpVersion::V6] {
            let msgs: Vec<RuleMessage> = handle
                .rule()
                .get(version)
                .execute()
                .try_collect()
                .await
                .map_err(|err| map_err(err, op, ns, "rules".to_string(), None))?;
            rules.extend(msgs.iter().filter_map(parse::rule));
        }
        Ok(rules)
    }

    async fn delete_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError> {
        let op = Op::DeleteRule;
        let handle = self.handle(op, ns).await?;
        handle
            .rule()
            .del(rule_message(rule))
            .execute()
            .await
            .map_err(|err| map_err(err, op, ns, rule_object(rule), None))
    }

    async fn set_sysctls(&self, ns: &Netns, values: &[Sysctl]) -> Result<(), NetlinkError> {
        let op = Op::WriteSysctl;
        for sysctl in values {
            validate_sysctl_key(&sysctl.key)
                .map_err(|reason| invalid(op, ns, format!("sysctl {}", sysctl.key), reason))?;
        }
        let result = match ns {
            Netns::Host => Self::write_sysctls(values),
            Netns::Path(_) => {
                let values = values.to_vec();
                netns::run_in(op, ns, move || Self::write_sysctls(&values)).await?
            }
        };
        result.map_err(|(key, source)| NetlinkError::Sysctl {
            op,
            netns: ns.to_string(),
            key,
            source,
        })
    }

    async fn sysctl(&self, ns: &Netns, key: &str) -> Result<String, NetlinkError> {
        let op = Op::ReadSysctl;
        validate_sysctl_key(key).map_err(|reason| invalid(op, ns, format!("sysctl {key}"), reason))?;
        let path = format!("/proc/sys/{key}");
        let result = match ns {
            Netns::Host => std::fs::read_to_string(&path),
            Netns::Path(_) => netns::run_in(op, ns, move || std::fs::read_to_string(&path)).await?,
        };
        result
            .map(|value| value.trim().to_string())
            .map_err(|source| NetlinkError::Sysctl {
                op,
                netns: ns.to_string(),
                key: key.to_string(),
                source,
            })
    }

    fn forget_netns(&self, ns: &Netns) {
        if let Netns::Path(path) = ns {
            self.conns
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(path);
        }
    }
}

/// `RTM_DELLINK` with ifindex 0 and `IFLA_GROUP`: deletes every link of `group` in the handle's namespace.
async fn delete_group(handle: &Handle, group: u32) -> Result<(), rtnetlink::Error> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::Group(group));
    handle.link().del_with_message(msg).execute().await
}

/// A link group for one batch deletion: never 0 (every link's default group), distinct per process and call.
fn batch_group() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mixed =
        (std::process::id().rotate_left(16) ^ nanos).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
    mixed.max(1)
}
