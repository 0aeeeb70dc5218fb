//! The plain data types of the netlink layer: namespaces, links, addresses, routes, rules, sysctls, VFs.
//!
//! They carry no kernel handles, so the real implementation and the fake share them and tests can compare them.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnetwork::IpNetwork;

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;

/// Where the `ip netns` tool keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/var/run/netns";

/// A network namespace: the one this process runs in, or a namespace file
/// (`/var/run/netns/<name>`, `/proc/<pid>/ns/net`, a CNI_NETNS path).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Netns {
    /// The namespace of this process (the host namespace for the CNI and netwatcher).
    Host,
    /// A namespace file.
    Path(PathBuf),
}

impl Netns {
    /// A namespace file at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Netns::Path(path.into())
    }

    /// A namespace made by `ip netns add <name>`: `/var/run/netns/<name>`.
    pub fn named(name: &str) -> Self {
        Netns::Path(Path::new(NETNS_RUN_DIR).join(name))
    }

    /// The namespace of process `pid`: `/proc/<pid>/ns/net`.
    pub fn of_pid(pid: u32) -> Self {
        Netns::Path(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    /// The namespace file, if this is not the host namespace.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Netns::Host => None,
            Netns::Path(path) => Some(path),
        }
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netns::Host => f.write_str("host netns"),
            Netns::Path(path) => write!(f, "netns {}", path.display()),
        }
    }
}

/// An Ethernet hardware address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `00:00:00:00:00:00`, which SR-IOV tools use for "no MAC".
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }

    /// Reads the first six bytes of a hardware address attribute; `None` for other lengths.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The text was not six `:`-separated hex bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex bytes separated by ':'")]
pub struct InvalidMac(pub String);

impl FromStr for MacAddr {
    type Err = InvalidMac;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| InvalidMac(s.to_string()))?;
            if part.is_empty() || part.len() > 2 {
                return Err(InvalidMac(s.to_string()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| InvalidMac(s.to_string()))?;
        }
        if parts.next().is_some() {
            return Err(InvalidMac(s.to_string()));
        }
        Ok(MacAddr(out))
    }
}

/// Address family of an address, route or rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(ip: &IpAddr) -> Self {
        if ip.is_ipv4() { IpFamily::V4 } else { IpFamily::V6 }
    }
}

/// macvlan modes (`ip link add ... type macvlan mode <m>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MacvlanMode {
    Private,
    Vepa,
    #[default]
    Bridge,
    Passthru,
    Source,
}

impl FromStr for MacvlanMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "private" => Ok(Self::Private),
            "vepa" => Ok(Self::Vepa),
            "bridge" => Ok(Self::Bridge),
            "passthru" | "passthrough" => Ok(Self::Passthru),
            "source" => Ok(Self::Source),
            other => Err(format!("unknown macvlan mode {other:?}")),
        }
    }
}

impl fmt::Display for MacvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Private => "private",
            Self::Vepa => "vepa",
            Self::Bridge => "bridge",
            Self::Passthru => "passthru",
            Self::Source => "source",
        })
    }
}

/// ipvlan modes (`ip link add ... type ipvlan mode <m>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum IpvlanMode {
    #[default]
    L2,
    L3,
    L3s,
}

impl FromStr for IpvlanMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "l2" => Ok(Self::L2),
            "l3" => Ok(Self::L3),
            "l3s" => Ok(Self::L3s),
            other => Err(format!("unknown ipvlan mode {other:?}")),
        }
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::L2 => "l2",
            Self::L3 => "l3",
            Self::L3s => "l3s",
        })
    }
}

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OperState {
    #[default]
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
}

/// VxLAN parameters as read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VxlanInfo {
    pub vni: u32,
    /// UDP destination port (4789 for danm's links).
    pub port: u16,
    /// Multicast group or unicast remote (`IFLA_VXLAN_GROUP`/`GROUP6`).
    pub group: Option<IpAddr>,
    pub local: Option<IpAddr>,
    /// Index of the underlay device (`IFLA_VXLAN_LINK`), in the link's namespace.
    pub underlay_index: Option<u32>,
    pub learning: bool,
    pub l2miss: bool,
    pub l3miss: bool,
}

/// What kind of link, with the kind-specific facts danm checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// No `IFLA_INFO_KIND`: a physical NIC, loopback, an SR-IOV VF.
    Device,
    Veth,
    Bridge,
    Dummy,
    Macvlan {
        mode: MacvlanMode,
    },
    Ipvlan {
        mode: IpvlanMode,
    },
    Vlan {
        id: u16,
    },
    Vxlan(VxlanInfo),
    /// Any other kind, by its kernel name (`ifb`, `macvtap`, ...).
    Other(String),
}

impl LinkKind {
    /// The kernel's kind name (`IFLA_INFO_KIND`); empty for [`LinkKind::Device`].
    pub fn name(&self) -> &str {
        match self {
            LinkKind::Device => "",
            LinkKind::Veth => "veth",
            LinkKind::Bridge => "bridge",
            LinkKind::Dummy => "dummy",
            LinkKind::Macvlan { .. } => "macvlan",
            LinkKind::Ipvlan { .. } => "ipvlan",
            LinkKind::Vlan { .. } => "vlan",
            LinkKind::Vxlan(_) => "vxlan",
            LinkKind::Other(name) => name,
        }
    }
}

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    pub kind: LinkKind,
    /// `IFLA_LINK`: the lower device (macvlan/ipvlan/vlan parent, veth peer). Its index is in the namespace named by
    /// [`Link::link_netnsid`] when that is set, else in the link's own namespace.
    pub parent_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: set when the parent/peer lives in another namespace.
    pub link_netnsid: Option<i32>,
    pub alias: Option<String>,
    pub oper_state: OperState,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Raw `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_GROUP` (0 is every link's default group).
    pub group: u32,
}

/// VxLAN parameters for a new link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanSpec {
    pub vni: u32,
    /// UDP destination port; danm uses 4789.
    pub port: u16,
    pub group: Option<IpAddr>,
    pub local: Option<IpAddr>,
    /// The underlay device by name, in the namespace the request runs in.
    pub underlay: Option<String>,
    pub learning: bool,
    pub l2miss: bool,
    pub l3miss: bool,
}

impl VxlanSpec {
    /// VNI `vni` on port 4789, learning/l2miss/l3miss on (netwatcher's settings, behaviour §6).
    pub fn new(vni: u32) -> Self {
        VxlanSpec {
            vni,
            port: 4789,
            group: None,
            local: None,
            underlay: None,
            learning: true,
            l2miss: true,
            l3miss: true,
        }
    }
}

/// The kind of a new link and its kind-specific parameters. Parent names are resolved in the namespace the
/// request runs in (the `ns` argument of [`crate::Netlink::create_link`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewLinkKind {
    Macvlan {
        parent: String,
        mode: MacvlanMode,
    },
    Ipvlan {
        parent: String,
        mode: IpvlanMode,
    },
    Vlan {
        parent: String,
        id: u16,
    },
    Vxlan(VxlanSpec),
    Dummy,
    Bridge,
    /// A veth pair; the peer goes into `peer_netns` if given, else next to the link.
    Veth {
        peer: String,
        peer_netns: Option<Netns>,
    },
}

impl NewLinkKind {
    pub fn name(&self) -> &'static str {
        match self {
            NewLinkKind::Macvlan { .. } => "macvlan",
            NewLinkKind::Ipvlan { .. } => "ipvlan",
            NewLinkKind::Vlan { .. } => "vlan",
            NewLinkKind::Vxlan(_) => "vxlan",
            NewLinkKind::Dummy => "dummy",
            NewLinkKind::Bridge => "bridge",
            NewLinkKind::Veth { .. } => "veth",
        }
    }

    /// The parent/underlay link name, if this kind has one.
    pub fn parent(&self) -> Option<&str> {
        match self {
            NewLinkKind::Macvlan { parent, .. }
            | NewLinkKind::Ipvlan { parent, .. }
            | NewLinkKind::Vlan { parent, .. } => Some(parent),
            NewLinkKind::Vxlan(spec) => spec.underlay.as_deref(),
            _ => None,
        }
    }
}

/// A link to create. Build with the constructors and the chained setters:
/// `NewLink::macvlan("eth1", "ens1f0", MacvlanMode::Bridge).mtu(1450).in_netns(pod_ns)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLink {
    pub name: String,
    pub kind: NewLinkKind,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    /// Create the link directly inside this namespace (`IFLA_NET_NS_FD` at creation) instead of the request's
    /// namespace. The parent stays where it is.
    pub netns: Option<Netns>,
    /// `IFLA_IFALIAS`, set right after creation (the kernel ignores it in a create request).
    pub alias: Option<String>,
    /// Bring the link up as part of the creation.
    pub up: bool,
    /// `IFLA_GROUP` at creation: links that share a group can be deleted together with one request
    /// ([`crate::Netlink::delete_link_group`]).
    pub group: Option<u32>,
}

impl NewLink {
    pub fn new(name: impl Into<String>, kind: NewLinkKind) -> Self {
        NewLink {
            name: name.into(),
            kind,
            mtu: None,
            mac: None,
            netns: None,
            alias: None,
            up: false,
            group: None,
        }
    }

    pub fn macvlan(name: impl Into<String>, parent: impl Into<String>, mode: MacvlanMode) -> Self {
        Self::new(
            name,
            NewLinkKind::Macvlan {
                parent: parent.into(),
                mode,
            },
        )
    }

    pub fn ipvlan(name: impl Into<String>, parent: impl Into<String>, mode: IpvlanMode) -> Self {
        Self::new(
            name,
            NewLinkKind::Ipvlan {
                parent: parent.into(),
                mode,
            },
        )
    }

    pub fn vlan(name: impl Into<String>, parent: impl Into<String>, id: u16) -> Self {
        Self::new(
            name,
            NewLinkKind::Vlan {
                parent: parent.into(),
                id,
            },
        )
    }

    pub fn vxlan(name: impl Into<String>, spec: VxlanSpec) -> Self {
        Self::new(name, NewLinkKind::Vxlan(spec))
    }

    pub fn dummy(name: impl Into<String>) -> Self {
        Self::new(name, NewLinkKind::Dummy)
    }

    pub fn bridge(name: impl Into<String>) -> Self {
        Self::new(name, NewLinkKind::Bridge)
    }

    pub fn veth(name: impl Into<String>, peer: impl Into<String>) -> Self {
        Self::new(
            name,
            NewLinkKind::Veth {
                peer: peer.into(),
                peer_netns: None,
            },
        )
    }

    /// For a veth: put the peer into `ns`.
    pub fn peer_in(mut self, ns: Netns) -> Self {
        if let NewLinkKind::Veth { peer_netns, .. } = &mut self.kind {
            *peer_netns = Some(ns);
        }
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    pub fn in_netns(mut self, ns: Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    pub fn up(mut self) -> Self {
        self.up = true;
        self
    }

    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }
}

/// Changes to an existing link, applied in one request. The kernel applies them in the order MAC, MTU, name,
/// alias, up/down, so `LinkChange::new().name("eth1").up(true)` renames a down link and then brings it up.
/// (Kernels before 6.2 refuse to rename a link that is up, with EBUSY: rename before bringing it up; a change
/// that renames and asks for down takes the link down first.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub name: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub alias: Option<String>,
    pub up: Option<bool>,
}

impl LinkChange {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }

    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = Some(alias.into());
        self
    }

    pub fn up(mut self, up: bool) -> Self {
        self.up = Some(up);
        self
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Route/address scope (`RT_SCOPE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    #[default]
    Universe,
    Site,
    Link,
    Host,
    Nowhere,
    Other(u8),
}

impl Scope {
    pub fn to_u8(self) -> u8 {
        match self {
            Scope::Universe => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
            Scope::Other(v) => v,
        }
    }

    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Scope::Universe,
            200 => Scope::Site,
            253 => Scope::Link,
            254 => Scope::Host,
            255 => Scope::Nowhere,
            v => Scope::Other(v),
        }
    }
}

/// An address to add to a link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAddress {
    /// Address and prefix length (host bits are kept: `10.0.0.5/24`).
    pub addr: IpNetwork,
    /// `IFA_F_NODAD`: skip IPv6 duplicate address detection (danm sets it on every IPv6 address).
    pub nodad: bool,
    /// Replace an existing equal address (`NLM_F_REPLACE`) instead of failing with Exists.
    pub replace: bool,
}

impl NewAddress {
    /// `addr`; IPv6 addresses get `IFA_F_NODAD`, as danm wants them.
    pub fn new(addr: IpNetwork) -> Self {
        NewAddress {
            addr,
            nodad: addr.is_ipv6(),
            replace: false,
        }
    }

    pub fn nodad(mut self, nodad: bool) -> Self {
        self.nodad = nodad;
        self
    }

    pub fn replace(mut self) -> Self {
        self.replace = true;
        self
    }
}

/// An address as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub addr: IpNetwork,
    pub scope: Scope,
    /// `IFA_F_NODAD` is set.
    pub nodad: bool,
    /// Raw `IFA_F_*` flags (`IFA_FLAGS`, or the header's 8 bits).
    pub flags: u32,
}

/// A route to add, or one read back. `dev` is a link name in the route's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    /// [`TABLE_MAIN`] for the main table.
    pub table: u32,
    pub scope: Scope,
}

impl Route {
    /// `dst` in the main table, scope universe, no gateway or device yet.
    pub fn new(dst: IpNetwork) -> Self {
        Route {
            dst,
            gateway: None,
            dev: None,
            table: TABLE_MAIN,
            scope: Scope::Universe,
        }
    }

    pub fn via(mut self, gateway: IpAddr) -> Self {
        self.gateway = Some(gateway);
        self
    }

    pub fn dev(mut self, dev: impl Into<String>) -> Self {
        self.dev = Some(dev.into());
        self
    }

    pub fn table(mut self, table: u32) -> Self {
        self.table = table;
        self
    }

    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.dst.ip())
    }
}

/// A policy rule `from <cidr> lookup <table>`, to add or delete. Without a priority the kernel picks one
/// (just below the first non-zero one) on add, and delete removes the first matching rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub from: IpNetwork,
    pub table: u32,
    pub priority: Option<u32>,
}

impl Rule {
    pub fn new(from: IpNetwork, table: u32) -> Self {
        Rule {
            from,
            table,
            priority: None,
        }
    }

    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of(&self.from.ip())
    }
}

/// A rule as the kernel reports it (both families; includes the default `local`, `main`, `default` rules).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    pub family: IpFamily,
    /// `None` for `from all`.
    pub from: Option<IpNetwork>,
    pub table: u32,
    pub priority: u32,
}

impl RuleInfo {
    /// Whether this is the rule `rule` describes (priority compared only if `rule` has one).
    pub fn matches(&self, rule: &Rule) -> bool {
        self.from == Some(rule.from)
            && self.table == rule.table
            && rule.priority.is_none_or(|p| p == self.priority)
    }
}

/// One sysctl write. `key` is the path below `/proc/sys` with `/` separators (`net/ipv6/conf/eth0/accept_ra`),
/// so interface names containing dots (`net1.100`) are unambiguous.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
}

impl Sysctl {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Sysctl {
            key: key.into(),
            value: value.into(),
        }
    }

    /// `net/ipv6/conf/<ifname>/<name>` = `value`.
    pub fn ipv6_conf(ifname: &str, name: &str, value: impl Into<String>) -> Self {
        Self::new(format!("net/ipv6/conf/{ifname}/{name}"), value)
    }

    /// `net/ipv4/conf/<ifname>/<name>` = `value`. (`arp_notify` = 1 makes the kernel send a gratuitous ARP
    /// when the link comes up or its MAC changes, which covers DANM's log-only gratuitous ARP.)
    pub fn ipv4_conf(ifname: &str, name: &str, value: impl Into<String>) -> Self {
        Self::new(format!("net/ipv4/conf/{ifname}/{name}"), value)
    }
}

/// SR-IOV settings of one VF, set through its PF (`IFLA_VFINFO_LIST`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VfConfig {
    pub vf: u32,
    pub mac: Option<MacAddr>,
    /// VLAN id (0 clears it).
    pub vlan: Option<u16>,
    /// 802.1p priority for the VLAN tag.
    pub qos: u32,
}
