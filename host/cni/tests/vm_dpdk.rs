//! Kernel-lane tests of the DPDK VF stand-in (behaviour §4.10 item 1) on a real kernel: danm's native SR-IOV
//! backend, given a VF that a fake sysfs tree shows bound to a user-space driver, creates a dummy (VLAN 0) or
//! a VLAN link on a dummy named after the DanmEp in a real pod namespace, with the VF MAC, the PCI address as
//! alias and the addresses; DEL deletes them.
//!
//! Neither the build machines nor the lane's VM have SR-IOV hardware, so the one PF request (`set_vf`) is recorded
//! instead of sent; every other request goes to the kernel through rtnetlink and the results are read back through
//! netlink. The build machines' kernel has no dummy or 802.1q links: there these tests print why they skip; inside
//! the kernel lane's VM (`DANM_KERNEL_LANE=1`) a missing kind fails them.

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use common::skip;
use danm_cni::journal::Journal;
use danm_cni::native::{self, NativeConfig, Sysfs};
use danm_netlink::netns::{create_named, delete_named};
use danm_netlink::{
    Address, Link, LinkChange, LinkKind, MacAddr, Netlink, NetlinkError, Netns, NewAddress, NewLink, Route,
    RtNetlink, Rule, RuleInfo, Sysctl, VfConfig,
};
use ipnetwork::IpNetwork;

/// `IFA_F_TENTATIVE`: the address still waits for duplicate address detection.
const IFA_F_TENTATIVE: u32 = 0x40;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The kernel through rtnetlink, except that VF settings are recorded (and reported back): there is no SR-IOV PF
/// to send them to.
struct NoSriovHardware {
    real: RtNetlink,
    vfs: Mutex<Vec<(String, VfConfig)>>,
}

#[async_trait]
impl Netlink for NoSriovHardware {
    async fn netns_exists(&self, ns: &Netns) -> Result<bool, NetlinkError> {
        self.real.netns_exists(ns).await
    }
    async fn link(&self, ns: &Netns, name: &str) -> Result<Link, NetlinkError> {
        self.real.link(ns, name).await
    }
    async fn links(&self, ns: &Netns) -> Result<Vec<Link>, NetlinkError> {
        self.real.links(ns).await
    }
    async fn create_link(&self, ns: &Netns, link: &NewLink) -> Result<Link, NetlinkError> {
        self.real.create_link(ns, link).await
    }
    async fn set_link(&self, ns: &Netns, name: &str, change: &LinkChange) -> Result<(), NetlinkError> {
        self.real.set_link(ns, name, change).await
    }
    async fn move_link(&self, ns: &Netns, name: &str, to: &Netns) -> Result<(), NetlinkError> {
        self.real.move_link(ns, name, to).await
    }
    async fn delete_link(&self, ns: &Netns, name: &str) -> Result<(), NetlinkError> {
        self.real.delete_link(ns, name).await
    }
    async fn delete_link_group(&self, ns: &Netns, group: u32) -> Result<bool, NetlinkError> {
        self.real.delete_link_group(ns, group).await
    }
    async fn set_vf(&self, _ns: &Netns, pf: &str, vf: &VfConfig) -> Result<(), NetlinkError> {
        self.vfs.lock().unwrap().push((pf.to_owned(), vf.clone()));
        Ok(())
    }
    async fn vfs(&self, _ns: &Netns, pf: &str) -> Result<Vec<VfConfig>, NetlinkError> {
        let recorded = self.vfs.lock().unwrap();
        Ok(recorded
            .iter()
            .filter(|(p, _)| p == pf)
            .map(|(_, vf)| vf.clone())
            .collect())
    }
    async fn add_address(&self, ns: &Netns, link: &str, addr: &NewAddress) -> Result<(), NetlinkError> {
        self.real.add_address(ns, link, addr).await
    }
    async fn addresses(&self, ns: &Netns, link: &str) -> Result<Vec<Address>, NetlinkError> {
        self.real.addresses(ns, link).await
    }
    async fn delete_address(&self, ns: &Netns, link: &str, addr: IpNetwork) -> Result<(), NetlinkError> {
        self.real.delete_address(ns, link, addr).await
    }
    async fn add_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError> {
        self.real.add_route(ns, route).await
    }
    async fn routes(&self, ns: &Netns, table: u32) -> Result<Vec<Route>, NetlinkError> {
        self.real.routes(ns, table).await
    }
    async fn delete_route(&self, ns: &Netns, route: &Route) -> Result<(), NetlinkError> {
        self.real.delete_route(ns, route).await
    }
    async fn add_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError> {
        self.real.add_rule(ns, rule).await
    }
    async fn rules(&self, ns: &Netns) -> Result<Vec<RuleInfo>, NetlinkError> {
        self.real.rules(ns).await
    }
    async fn delete_rule(&self, ns: &Netns, rule: &Rule) -> Result<(), NetlinkError> {
        self.real.delete_rule(ns, rule).await
    }
    async fn set_sysctls(&self, ns: &Netns, values: &[Sysctl]) -> Result<(), NetlinkError> {
        self.real.set_sysctls(ns, values).await
    }
    async fn sysctl(&self, ns: &Netns, key: &str) -> Result<String, NetlinkError> {
        self.real.sysctl(ns, key).await
    }
    fn forget_netns(&self, ns: &Netns) {
        self.real.forget_netns(ns)
    }
}

/// Why this kernel cannot run these tests (a link kind it lacks), probed once in a scratch namespace.
fn missing_kind() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        common::missing_link_kinds(
            "the DPDK stand-in",
            vec![NewLink::dummy("p0"), NewLink::vlan("p0.5", "p0", 5)],
        )
    })
    .clone()
}

/// One test's world: a pod namespace (removed on drop), a fake sysfs tree with PF 0000:05:00.0 (`ens5f0`) and its
/// VF 0000:05:00.1 bound to `driver`, and the kernel without SR-IOV hardware.
struct World {
    name: String,
    pod: Netns,
    nl: NoSriovHardware,
    sysfs: Sysfs,
    _tmp: tempfile::TempDir,
}

impl World {
    fn new(driver: &str) -> Option<World> {
        if !danm_testkit::fixtures::root_or_skip("network namespaces") {
            return None;
        }
        if let Some(why) = missing_kind() {
            skip(&why);
            return None;
        }
        let name = format!(
            "dpdk-{}-{}",
            std::process::id() % 10000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let _ = delete_named(&name);
        let pod = create_named(&name).expect("pod netns");
        let tmp = tempfile::tempdir().unwrap();
        fake_sysfs(tmp.path(), driver);
        Some(World {
            name,
            pod,
            nl: NoSriovHardware {
                real: RtNetlink::new(),
                vfs: Mutex::default(),
            },
            sysfs: Sysfs {
                root: tmp.path().to_owned(),
            },
            _tmp: tmp,
        })
    }

    async fn links(&self) -> Vec<Link> {
        self.nl
            .links(&self.pod)
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.name != "lo")
            .collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.nl.forget_netns(&self.pod);
        let _ = delete_named(&self.name);
    }
}

/// `<root>/bus/pci/devices/0000:05:00.0/net/ens5f0`, VF `0000:05:00.1` as its `virtfn0` with `physfn` back, and the
/// VF's `driver` pointing at `<root>/bus/pci/drivers/<driver>` (no `net/`: a user-space driver has no netdev).
fn fake_sysfs(root: &Path, driver: &str) {
    let devs = root.join("bus/pci/devices");
    let drivers = root.join("bus/pci/drivers").join(driver);
    std::fs::create_dir_all(devs.join("0000:05:00.0/net/ens5f0")).unwrap();
    std::fs::create_dir_all(devs.join("0000:05:00.1")).unwrap();
    std::fs::create_dir_all(&drivers).unwrap();
    std::os::unix::fs::symlink(devs.join("0000:05:00.0"), devs.join("0000:05:00.1/physfn")).unwrap();
    std::os::unix::fs::symlink("../0000:05:00.1", devs.join("0000:05:00.0/virtfn0")).unwrap();
    std::os::unix::fs::symlink(&drivers, devs.join("0000:05:00.1/driver")).unwrap();
}

fn config(vlan: u16, mac: &str, ips: &[&str]) -> NativeConfig {
    NativeConfig::Sriov {
        device_id: "0000:05:00.1".into(),
        vlan,
        mac: Some(mac.parse().unwrap()),
        mtu: None,
        ips: ips.iter().map(|a| a.parse().unwrap()).collect(),
    }
}

async fn addresses(w: &World, name: &str) -> Vec<Address> {
    w.nl.addresses(&w.pod, name)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| !matches!(a.addr.ip(), IpAddr::V6(v6) if v6.segments()[0] == 0xfe80))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpdk_vf_without_vlan_becomes_a_dummy_with_the_vf_mac_pci_alias_and_addresses_in_the_pod() {
    let Some(w) = World::new("vfio-pci") else { return };
    let cfg = config(0, "02:00:00:00:05:01", &["10.205.0.5/24", "fd05::5/64"]);
    let result = native::add(
        &w.nl,
        &w.sysfs,
        &w.pod,
        "eth1",
        &cfg,
        &Journal::default(),
        "ep-dpdk-0",
    )
    .await
    .unwrap();
    let mac: MacAddr = "02:00:00:00:05:01".parse().unwrap();
    assert_eq!(
        w.nl.vfs.lock().unwrap().as_slice(),
        [(
            "ens5f0".to_owned(),
            VfConfig {
                vf: 0,
                mac: Some(mac),
                vlan: Some(0),
                qos: 0
            }
        )]
    );
    let link = w.nl.link(&w.pod, "eth1").await.unwrap();
    assert_eq!(link.kind, LinkKind::Dummy);
    assert_eq!(link.mac, Some(mac));
    assert_eq!(link.alias.as_deref(), Some("0000:05:00.1"));
    assert!(link.up);
    assert_eq!(result.interfaces[0].mac, "02:00:00:00:05:01");
    let mut addrs: Vec<String> = addresses(&w, "eth1")
        .await
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    addrs.sort();
    assert_eq!(addrs, ["10.205.0.5/24", "fd05::5/64"]);
    let v6 = addresses(&w, "eth1")
        .await
        .into_iter()
        .find(|a| a.addr.is_ipv6())
        .unwrap();
    assert!(v6.nodad && v6.flags & IFA_F_TENTATIVE == 0, "{v6:?}");
    assert_eq!(w.links().await.len(), 1, "only the dummy");

    native::remove(&w.nl, &w.pod, "eth1", true, None).await.unwrap();
    assert!(w.links().await.is_empty(), "DEL left {:?}", w.links().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpdk_vf_with_a_vlan_becomes_a_vlan_link_on_a_dummy_named_after_the_danmep() {
    let Some(w) = World::new("igb_uio") else { return };
    let ep = "5b0e7c1a-2f3d-4e5f-9a8b-7c6d5e4f3a2b";
    let cfg = config(300, "02:00:00:00:05:02", &["10.205.1.5/24"]);
    let journal = Journal::default();
    native::add(&w.nl, &w.sysfs, &w.pod, "eth2", &cfg, &journal, ep)
        .await
        .unwrap();
    let dummy_name = native::dpdk_dummy_name(ep);
    assert_eq!(dummy_name, "5b0e7c1a-2f3d-");
    let dummy = w.nl.link(&w.pod, &dummy_name).await.unwrap();
    assert_eq!(dummy.kind, LinkKind::Dummy);
    assert!(dummy.up);
    assert_eq!(
        w.nl.sysctl(&w.pod, &format!("net/ipv6/conf/{dummy_name}/disable_ipv6"))
            .await
            .unwrap(),
        "1",
        "the dummy gets the interface's IPv6 sysctls (no IPv6 here)"
    );
    let vlan = w.nl.link(&w.pod, "eth2").await.unwrap();
    assert_eq!(vlan.kind, LinkKind::Vlan { id: 300 });
    assert_eq!(vlan.parent_index, Some(dummy.index));
    assert_eq!(vlan.mac, Some("02:00:00:00:05:02".parse().unwrap()));
    assert_eq!(vlan.alias.as_deref(), Some("0000:05:00.1"));
    assert!(vlan.up);
    let addrs: Vec<String> = addresses(&w, "eth2")
        .await
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    assert_eq!(addrs, ["10.205.1.5/24"]);
    assert_eq!(w.nl.vfs.lock().unwrap()[0].1.vlan, Some(300));

    // A failed ADD's rollback undoes the journal: the VLAN link, then the dummy.
    for undo in journal.take_reversed() {
        let danm_cni::journal::Undo::Link { netns, name } = undo else {
            panic!("unexpected {undo:?}")
        };
        native::remove(&w.nl, &netns, &name, false, None).await.unwrap();
    }
    assert!(w.links().await.is_empty(), "rollback left {:?}", w.links().await);

    // DEL of the VF removes the VLAN link and its dummy.
    native::add(&w.nl, &w.sysfs, &w.pod, "eth2", &cfg, &Journal::default(), ep)
        .await
        .unwrap();
    assert_eq!(w.links().await.len(), 2);
    native::remove(&w.nl, &w.pod, "eth2", true, None).await.unwrap();
    assert!(w.links().await.is_empty(), "DEL left {:?}", w.links().await);
}
