//! Every kernel call danm makes (links, addresses, routes, rules, sysctls, netns) behind one trait.
//!
//! [`Netlink`] is the narrow async trait the CNI and netwatcher are written against. [`RtNetlink`] implements it
//! over rtnetlink; [`FakeNetlink`] keeps an in-memory model of namespaces, links, addresses, routes, rules and
//! sysctls, records every call and can be told to fail, so the CNI and netwatcher flows are unit-tested on it.
//!
//! Every operation names the namespace it runs in ([`Netns::Host`] or a namespace file). The real implementation
//! never moves a runtime thread into another namespace: it opens one netlink socket per namespace from a
//! short-lived thread that joined it (a socket stays bound to the namespace it was created in), and writes
//! namespaced sysctls from such a thread too (see [`netns`]).
//!
//! ```
//! use danm_netlink::{FakeNetlink, MacvlanMode, Netlink, Netns, NewLink};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let nl = FakeNetlink::new();
//! nl.add_device(&Netns::Host, "ens1", 1500);
//! let pod = Netns::path("/var/run/netns/pod1");
//! nl.add_netns(pod.clone());
//! // A macvlan made on the host's ens1, directly inside the pod's namespace.
//! let link = NewLink::macvlan("eth0", "ens1", MacvlanMode::Bridge).in_netns(pod.clone());
//! nl.create_link(&Netns::Host, &link).await.unwrap();
//! assert!(nl.find_link(&pod, "eth0").await.unwrap().is_some());
//! # });
//! ```

pub mod error;
pub mod fake;
pub mod netns;
pub mod rtnl;
pub mod types;

use async_trait::async_trait;
use ipnetwork::IpNetwork;

pub use error::{NetlinkError, Op, libc_errno as errno};
pub use fake::{Call, FakeNetlink};
pub use rtnl::RtNetlink;
pub use types::*;

/// The kernel operations danm needs. Names are link names in `ns`; errors are [`NetlinkError`]s whose
/// [`NetlinkError::is_not_found`] / [`NetlinkError::is_exists`] tell "missing" and "already there" apart.
#[async_trait]
pub trait Netlink: Send + Sync {
    /// Whether `ns` exists (the host namespace always does).
    async fn netns_exists(&self, ns: &Netns) -> Result<bool, NetlinkError>;

    /// The link `name` in `ns`; NotFound if there is none.
    async fn link(&self, ns: &Netns, name: &str) -> Result<Link, NetlinkError>;

    /// All links of `ns`, by index.
    async fn links(&self, ns: &Netns) -> Result<Vec<Link>, NetlinkError>;

    /// Creates `link`. The request runs in `ns`, where the parent/underlay is looked up; the link is created in
    /// `link.netns` if set (directly, with `IFLA_NET_NS_FD`), else in `ns`. Returns the link as read back from the
    /// namespace it was created in. A kind the kernel lacks gives [`NetlinkError::NotSupported`].
    async fn create_link(&self, ns: &Netns, link: &NewLink) -> Result<Link, NetlinkError>;

    /// Applies `change` to link `name` in one request (MAC, MTU, name, alias, then up/down).
    async fn set_link(&self, ns: &Netns, name: &str, change: &LinkChange) -> Result<(), NetlinkError>;

    /// Moves link `name` from `ns` into `to`, keeping its name. (Slow in the kernel: prefer
    /// [`NewLink::in_netns`] at creation.)
    async fn move_link(&self, ns: &Netns, name: &str, to: &Netns) -> Result<(), NetlinkError>;

    /// Deletes link `name` in `ns`; NotFound if it is missing (see [`Netlink::delete_link_if_exists`]).
    async fn delete_link(&self, ns: &Netns, name: &str) -> Result<(), NetlinkError>;

    /// Sets the MAC and/or VLAN of VF `vf.vf` through its PF `pf` (`IFLA_VFINFO_LIST`).
    async fn set_vf(&self, ns: &Netns, pf: &str, vf: &VfConfig) -> Result<(), NetlinkError>;

    /// The VFs of PF `pf` as the kernel reports them (`IFLA_VFINFO_LIST`, asked for with `RTEXT_FILTER_VF`): each
    /// VF's MAC and VLAN. Empty for a link without SR-IOV VFs.
    async fn vfs(&self, ns: &Netns, pf: &str) -> Result<Vec<VfConfig>, NetlinkError>;

    /// Adds `addr` to link `link`; Exists if it is there and `addr.replace` is not set.
    async fn add_address(&self, ns: &Netns, link: &str, addr: &NewAddress) -> Result<(), NetlinkError>;

    /// The addresses of link `link` (both families).
    async fn addresses(&self, ns: &Netns, link: &str) -> Result<Vec<Address>, NetlinkError>;

    /// Removes `addr` from link `link`; NotFound if it is not there.
    async fn delete_address(&self, ns: &Netns, link: &str, addr: IpNetwork) -> Result<(), NetlinkError>;

    /// Adds `route` (its `dst` host bits are cleared); Exists if the table already has that destination.
    async fn add_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError>;

    /// The routes of table `table` (both families), devices by name.
    async fn routes(&self, ns: &Netns, table: u32) -> Result<Vec<Route>, NetlinkError>;

    /// Deletes the route to `route.dst` in `route.table` (the one through `route.gateway` and `route.dev` when they are
    /// set); NotFound if there is none.
    async fn delete_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError>;

    /// Adds the policy rule `from <rule.from> lookup <rule.table>`.
    async fn add_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError>;

    /// All policy rules of `ns` (both families).
    async fn rules(&self, ns: &Netns) -> Result<Vec<RuleInfo>, NetlinkError>;

    /// Deletes the first rule matching `rule`; NotFound if none does.
    async fn delete_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError>;

    /// Writes `values` in order, inside `ns` (one namespace entry for the whole batch); stops at the first error.
    async fn set_sysctls(&self, ns: &Netns, values: &[Sysctl]) -> Result<(), NetlinkError>;

    /// Reads sysctl `key` (path below `/proc/sys`) inside `ns`, trimmed.
    async fn sysctl(&self, ns: &Netns, key: &str) -> Result<String, NetlinkError>;

    /// Drops whatever the implementation keeps open for `ns` (the real one caches a netlink socket per namespace,
    /// which keeps the namespace alive). Call it when done with a pod's namespace in a long-lived process.
    fn forget_netns(&self, _ns: &Netns) {}

    /// The link `name`, or `None` if it does not exist.
    async fn find_link(&self, ns: &Netns, name: &str) -> Result<Option<Link>, NetlinkError> {
        match self.link(ns, name).await {
            Ok(link) => Ok(Some(link)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Deletes link `name`; `Ok(false)` if it (or its namespace) was already gone. For DEL and rollback.
    async fn delete_link_if_exists(&self, ns: &Netns, name: &str) -> Result<bool, NetlinkError> {
        match self.delete_link(ns, name).await {
            Ok(()) => Ok(true),
            Err(err) if err.is_not_found() => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Deletes the links `names` of `ns` that exist (missing ones are skipped). The kernel waits for an RCU grace
    /// period per delete request, so an implementation should delete them together; this default deletes them one
    /// by one.
    async fn delete_links(&self, ns: &Netns, names: &[String]) -> Result<(), NetlinkError> {
        self.delete_links_one_by_one(ns, names).await
    }

    /// [`Self::delete_links`] with one request per link (what implementations do for a single link).
    async fn delete_links_one_by_one(&self, ns: &Netns, names: &[String]) -> Result<(), NetlinkError> {
        for name in names {
            self.delete_link_if_exists(ns, name).await?;
        }
        Ok(())
    }

    /// Deletes every link of `ns` in link group `group` (set at creation with [`NewLink::group`]) with one request;
    /// `Ok(false)` when there was none (or the namespace is gone). Group 0, every link's default, deletes nothing.
    async fn delete_link_group(&self, ns: &Netns, group: u32) -> Result<bool, NetlinkError>;

    /// Writes one sysctl.
    async fn set_sysctl(&self, ns: &Netns, key: &str, value: &str) -> Result<(), NetlinkError> {
        self.set_sysctls(ns, &[Sysctl::new(key, value)]).await
    }
}

/// Checks a sysctl key: a relative path below `/proc/sys` without `.`/`..` components or empty parts.
pub fn validate_sysctl_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.starts_with('/') {
        return Err("must be a relative path below /proc/sys".to_string());
    }
    for part in key.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(format!("bad path component {part:?}"));
        }
    }
    Ok(())
}
