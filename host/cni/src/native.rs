//! Native execution of the CNI configs whose `type` the host implements (ipvlan, macvlan, sriov) over netlink, with
//! the meaning the reference plugins give their keys (`master`, `mode`, `mtu`, `vlan`, `deviceID`, `mac`,
//! `ipam.ips`). Links are created directly inside the pod netns (`IFLA_NET_NS_FD`), never created and moved. An
//! SR-IOV VF bound to a DPDK driver has no netdev: a dummy (or a VLAN on a dummy) stands in for it
//! (behaviour §4.10).

use std::path::{Path, PathBuf};

use danm_core::cni::{CniResult, Interface, IpConfig};
use danm_netlink::{
    IpvlanMode, LinkChange, LinkKind, MacAddr, MacvlanMode, Netlink, Netns, NewAddress, NewLink, VfConfig,
};
use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::error::Error;
use crate::journal::{Journal, Undo};

/// The NetworkTypes the host executes itself.
pub const NATIVE_TYPES: [&str; 3] = ["ipvlan", "macvlan", "sriov"];

/// Set to `"true"` on a DanmEp whose interface the host created itself (its translated config was native), so DEL
/// removes it without asking the backend plugin again. DanmEps without it (DANM's, older ones) are translated.
pub const NATIVE_EP_ANNOTATION: &str = "danm.k8s.io/native-interface";

/// The link group (`IFLA_GROUP`) of the plain macvlan and ipvlan links danm creates in a pod's namespace ("danm" in
/// ASCII). DEL deletes them all with one request before it knows the pod's DanmEps, so the kernel's RCU wait runs
/// while the API is asked; SR-IOV VFs (moved back to the host) and delegates' interfaces are never in it.
pub const NATIVE_LINK_GROUP: u32 = 0x6461_6e6d;

/// A parsed native config.
#[derive(Clone, Debug, PartialEq)]
pub enum NativeConfig {
    Macvlan {
        master: String,
        mode: MacvlanMode,
        mtu: Option<u32>,
        mac: Option<MacAddr>,
        ips: Vec<IpNetwork>,
    },
    Ipvlan {
        master: String,
        mode: IpvlanMode,
        mtu: Option<u32>,
        ips: Vec<IpNetwork>,
    },
    Sriov {
        device_id: String,
        vlan: u16,
        mac: Option<MacAddr>,
        mtu: Option<u32>,
        ips: Vec<IpNetwork>,
    },
}

fn str_key<'a>(config: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| config.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

fn u32_key(config: &Value, key: &str) -> Option<u32> {
    config
        .get(key)
        .and_then(Value::as_u64)
        .map(|v| v as u32)
        .filter(|v| *v > 0)
}

/// The addresses of a fakeipam block (`ipam.ips[].ipcidr`); any other IPAM type is not executable natively.
fn ipam_ips(config: &Value) -> Result<Vec<IpNetwork>, Error> {
    let Some(ipam) = config.get("ipam").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let ty = ipam.get("type").and_then(Value::as_str).unwrap_or_default();
    if !ty.is_empty() && ty != "fakeipam" {
        return Err(Error::Translated(format!(
            "natively executed configs support only fakeipam IPAM, not {ty:?}"
        )));
    }
    let mut out = Vec::new();
    for entry in ipam.get("ips").and_then(Value::as_array).into_iter().flatten() {
        let text = entry.get("ipcidr").and_then(Value::as_str).unwrap_or_default();
        out.push(
            text.parse()
                .map_err(|_| Error::Translated(format!("bad ipam address {text:?}")))?,
        );
    }
    Ok(out)
}

/// `Some` when the config's `type` is native. The type is compared case-insensitively (behaviour §10 B3).
pub fn parse(config: &Value) -> Option<Result<NativeConfig, Error>> {
    let ty = config
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !NATIVE_TYPES.contains(&ty.as_str()) {
        return None;
    }
    Some(parse_native(&ty, config))
}

fn parse_native(ty: &str, config: &Value) -> Result<NativeConfig, Error> {
    let ips = ipam_ips(config)?;
    let mtu = u32_key(config, "mtu");
    let mac = match str_key(config, &["mac"]) {
        Some(m) => Some(
            m.parse::<MacAddr>()
                .map_err(|e| Error::Translated(e.to_string()))?,
        ),
        None => None,
    };
    match ty {
        "macvlan" => {
            let master = str_key(config, &["master"])
                .ok_or_else(|| Error::Translated("macvlan without master".into()))?;
            let mode = match str_key(config, &["mode"]) {
                Some(m) => m.parse().map_err(Error::Translated)?,
                None => MacvlanMode::Bridge,
            };
            Ok(NativeConfig::Macvlan {
                master: master.to_owned(),
                mode,
                mtu,
                mac,
                ips,
            })
        }
        "ipvlan" => {
            let master = str_key(config, &["master"])
                .ok_or_else(|| Error::Translated("ipvlan without master".into()))?;
            let mode = match str_key(config, &["mode"]) {
                Some(m) => m.parse().map_err(Error::Translated)?,
                None => IpvlanMode::L2,
            };
            Ok(NativeConfig::Ipvlan {
                master: master.to_owned(),
                mode,
                mtu,
                ips,
            })
        }
        _ => {
            let device_id = str_key(config, &["deviceID", "deviceId", "DeviceID"])
                .ok_or_else(|| Error::Translated("sriov without deviceID".into()))?;
            let vlan = config.get("vlan").and_then(Value::as_u64).unwrap_or(0) as u16;
            Ok(NativeConfig::Sriov {
                device_id: device_id.to_owned(),
                vlan,
                mac,
                mtu,
                ips,
            })
        }
    }
}

/// The user-space drivers whose VFs get a dummy in the pod instead of a netdev (behaviour §4.10 item 1).
pub const DPDK_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

/// Where SR-IOV devices are looked up (`/sys`, or a fake tree in tests).
#[derive(Clone, Debug)]
pub struct Sysfs {
    pub root: PathBuf,
}

impl Default for Sysfs {
    fn default() -> Self {
        Sysfs {
            root: PathBuf::from("/sys"),
        }
    }
}

impl Sysfs {
    fn device(&self, pci: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(pci)
    }

    fn single_entry(dir: &Path) -> Option<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        names.sort();
        names.into_iter().next()
    }

    /// The netdev name of a VF (`<pci>/net/<name>`).
    pub fn vf_netdev(&self, pci: &str) -> Result<String, Error> {
        Self::single_entry(&self.device(pci).join("net")).ok_or_else(|| {
            Error::Sriov(format!(
                "device {pci} has no network interface in sysfs (bound to a user-space driver?)"
            ))
        })
    }

    /// The user-space (DPDK) driver `pci` is bound to, if `<pci>/driver` resolves to `vfio-pci`,
    /// `uio_pci_generic` or `igb_uio`.
    pub fn dpdk_driver(&self, pci: &str) -> Option<String> {
        let target = std::fs::read_link(self.device(pci).join("driver")).ok()?;
        let driver = target.file_name()?.to_string_lossy().into_owned();
        DPDK_DRIVERS.contains(&driver.as_str()).then_some(driver)
    }

    /// The PF's netdev name (`<pci>/physfn/net/<name>`).
    pub fn pf_name(&self, pci: &str) -> Result<String, Error> {
        Self::single_entry(&self.device(pci).join("physfn/net"))
            .ok_or_else(|| Error::Sriov(format!("failed to get the name of the sriov PF for device {pci}")))
    }

    /// The VF index of `pci` under its PF (`physfn/virtfn<N>` pointing back at the device).
    pub fn vf_index(&self, pci: &str) -> Result<u32, Error> {
        let physfn = self.device(pci).join("physfn");
        let entries = std::fs::read_dir(&physfn).map_err(|e| Error::Sriov(format!("device {pci}: {e}")))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_prefix("virtfn").and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let target = std::fs::read_link(entry.path()).ok();
            if target
                .as_ref()
                .and_then(|t| t.file_name())
                .is_some_and(|f| f == pci)
            {
                return Ok(n);
            }
        }
        Err(Error::Sriov(format!("device {pci} is not a VF of its PF")))
    }
}

/// Executes a native config: creates the interface `ifname` inside `pod` and configures it. Every created object
/// is recorded in `journal` before it is created, so a cancelled or failed ADD can undo it. `ep_name` is the
/// interface's DanmEp name (a DPDK VF with a VLAN gets a dummy named after it).
pub async fn add(
    netlink: &dyn Netlink,
    sysfs: &Sysfs,
    pod: &Netns,
    ifname: &str,
    config: &NativeConfig,
    journal: &Journal,
    ep_name: &str,
) -> Result<CniResult, Error> {
    let ips = match config {
        NativeConfig::Macvlan {
            master,
            mode,
            mtu,
            mac,
            ips,
        } => {
            let mut link = NewLink::macvlan(ifname, master.clone(), *mode)
                .in_netns(pod.clone())
                .group(NATIVE_LINK_GROUP);
            if let Some(mtu) = mtu {
                link = link.mtu(*mtu);
            }
            if let Some(mac) = mac {
                link = link.mac(*mac);
            }
            journal.push(Undo::Link {
                netns: pod.clone(),
                name: ifname.to_owned(),
            });
            netlink
                .create_link(&Netns::Host, &link)
                .await
                .map_err(|e| Error::kernel(format!("cannot create macvlan {ifname} on {master}"), e))?;
            ips
        }
        NativeConfig::Ipvlan {
            master,
            mode,
            mtu,
            ips,
        } => {
            let mut link = NewLink::ipvlan(ifname, master.clone(), *mode)
                .in_netns(pod.clone())
                .group(NATIVE_LINK_GROUP);
            if let Some(mtu) = mtu {
                link = link.mtu(*mtu);
            }
            journal.push(Undo::Link {
                netns: pod.clone(),
                name: ifname.to_owned(),
            });
            netlink.create_link(&Netns::Host, &link).await.map_err(|e| {
                Error::kernel(
                    format!("cannot create ipvlan {ifname} on host device {master}"),
                    e,
                )
            })?;
            ips
        }
        NativeConfig::Sriov {
            device_id,
            vlan,
            mac,
            mtu,
            ips,
        } => {
            // A VF bound to a user-space (DPDK) driver has no netdev; a dummy stands in for it after the VF setup.
            let dpdk_driver = sysfs.dpdk_driver(device_id);
            let vf_name = match dpdk_driver {
                Some(_) => String::new(),
                None => sysfs.vf_netdev(device_id)?,
            };
            let pf = sysfs.pf_name(device_id)?;
            let vf = sysfs.vf_index(device_id)?;
            netlink
                .set_vf(
                    &Netns::Host,
                    &pf,
                    &VfConfig {
                        vf,
                        mac: *mac,
                        vlan: Some(*vlan),
                        qos: 0,
                    },
                )
                .await
                .map_err(|e| Error::kernel(format!("cannot set VF {vf} of PF {pf}"), e))?;
            if let Some(driver) = dpdk_driver {
                let mac = match mac {
                    Some(mac) => Some(*mac),
                    None => vf_mac(netlink, &pf, vf).await,
                };
                let stand_in = DpdkStandIn {
                    ifname,
                    ep_name,
                    pci: device_id,
                    driver: &driver,
                    vlan: *vlan,
                    mac,
                    mtu: *mtu,
                    ips,
                };
                dpdk_stand_in(netlink, pod, &stand_in, journal).await?;
                return finish(netlink, pod, ifname, ips).await;
            }
            journal.push(Undo::Vf {
                netns: pod.clone(),
                name: ifname.to_owned(),
                host_name: vf_name.clone(),
            });
            netlink
                .set_link(&Netns::Host, &vf_name, &LinkChange::new().up(false))
                .await
                .map_err(|e| Error::kernel(format!("cannot set VF {vf_name} down"), e))?;
            netlink
                .move_link(&Netns::Host, &vf_name, pod)
                .await
                .map_err(|e| Error::kernel(format!("cannot move VF {vf_name} into the pod"), e))?;
            // The alias remembers the VF's host name, so DEL can give it back under that name.
            let mut change = LinkChange::new().name(ifname).alias(vf_name.clone());
            if let Some(mtu) = mtu {
                change = change.mtu(*mtu);
            }
            netlink
                .set_link(pod, &vf_name, &change)
                .await
                .map_err(|e| Error::kernel(format!("cannot rename VF {vf_name} to {ifname}"), e))?;
            ips
        }
    };
    finish(netlink, pod, ifname, ips).await
}

/// The common end of every native ADD: the addresses (IPv6 with NODAD), link up, and the result.
async fn finish(
    netlink: &dyn Netlink,
    pod: &Netns,
    ifname: &str,
    ips: &[IpNetwork],
) -> Result<CniResult, Error> {
    for ip in ips {
        netlink
            .add_address(pod, ifname, &NewAddress::new(*ip))
            .await
            .map_err(|e| Error::kernel(format!("cannot add {ip} to {ifname}"), e))?;
    }
    netlink
        .set_link(pod, ifname, &LinkChange::new().up(true))
        .await
        .map_err(|e| Error::kernel(format!("cannot set {ifname} up"), e))?;
    let link = netlink
        .link(pod, ifname)
        .await
        .map_err(|e| Error::kernel(format!("cannot read {ifname}"), e))?;
    let sandbox = pod.file().map(|p| p.display().to_string()).unwrap_or_default();
    Ok(CniResult {
        interfaces: vec![Interface {
            name: ifname.to_owned(),
            mac: link.mac.map(|m| m.to_string()).unwrap_or_default(),
            mtu: Some(link.mtu),
            sandbox,
            ..Interface::default()
        }],
        ips: ips
            .iter()
            .map(|a| IpConfig {
                address: *a,
                gateway: None,
                interface: Some(0),
            })
            .collect(),
        ..CniResult::default()
    })
}

/// What stands in for a DPDK-bound VF in the pod.
struct DpdkStandIn<'a> {
    ifname: &'a str,
    ep_name: &'a str,
    pci: &'a str,
    driver: &'a str,
    vlan: u16,
    mac: Option<MacAddr>,
    mtu: Option<u32>,
    ips: &'a [IpNetwork],
}

/// The MAC of VF `vf` as its PF `pf` reports it; `None` (logged) when it cannot be read.
async fn vf_mac(netlink: &dyn Netlink, pf: &str, vf: u32) -> Option<MacAddr> {
    match netlink.vfs(&Netns::Host, pf).await {
        Ok(vfs) => vfs.into_iter().find(|c| c.vf == vf).and_then(|c| c.mac),
        Err(e) => {
            tracing::warn!(pf, vf, error = %e, "cannot read the VF's MAC from its PF");
            None
        }
    }
}

/// The name of the dummy under a DPDK VF's VLAN link: the first 14 characters of the DanmEp name.
pub fn dpdk_dummy_name(ep_name: &str) -> String {
    ep_name.chars().take(14).collect()
}

/// behaviour §4.10 item 1: vlan 0 → a dummy named as the interface; otherwise a dummy named after the DanmEp
/// (up, with the interface's IPv6 sysctls) and a VLAN link on it named as the interface. The interface gets
/// the VF MAC (the config's `mac`, else what the PF reports for the VF; when set and not all-zero) and the
/// PCI address as alias; [`finish`] adds the addresses and brings it up.
async fn dpdk_stand_in(
    netlink: &dyn Netlink,
    pod: &Netns,
    s: &DpdkStandIn<'_>,
    journal: &Journal,
) -> Result<(), Error> {
    tracing::info!(
        pci = s.pci,
        driver = s.driver,
        ifname = s.ifname,
        vlan = s.vlan,
        "DPDK VF: a dummy stands in for it"
    );
    let mut link = if s.vlan == 0 {
        NewLink::dummy(s.ifname)
    } else {
        let base = dpdk_dummy_name(s.ep_name);
        journal.push(Undo::Link {
            netns: pod.clone(),
            name: base.clone(),
        });
        netlink
            .create_link(pod, &NewLink::dummy(base.clone()).up())
            .await
            .map_err(|e| {
                Error::kernel(
                    format!("cannot create the dummy {base} for DPDK device {}", s.pci),
                    e,
                )
            })?;
        let ip6 = s
            .ips
            .iter()
            .find(|a| a.is_ipv6())
            .map(|a| a.to_string())
            .unwrap_or_default();
        netlink
            .set_sysctls(pod, &crate::post::ipv6_sysctls(&base, &ip6))
            .await
            .map_err(|e| Error::kernel(format!("sysctls of the dummy {base}"), e))?;
        NewLink::vlan(s.ifname, base, s.vlan)
    };
    link = link.alias(s.pci);
    if let Some(mac) = s.mac.filter(|m| !m.is_zero()) {
        link = link.mac(mac);
    }
    if let Some(mtu) = s.mtu {
        link = link.mtu(mtu);
    }
    journal.push(Undo::Link {
        netns: pod.clone(),
        name: s.ifname.to_owned(),
    });
    netlink.create_link(pod, &link).await.map_err(|e| {
        Error::kernel(
            format!(
                "cannot create the {} {} for DPDK device {}",
                link.kind.name(),
                s.ifname,
                s.pci
            ),
            e,
        )
    })?;
    Ok(())
}

/// Removes a natively created interface: deletes the link, or (`vf`) gives an SR-IOV VF back to the host under its
/// original name (`host_name`, else the alias set at ADD). The stand-in of a DPDK VF (a dummy, or a VLAN on a dummy)
/// is deleted instead, with its dummy. Missing links and namespaces are not errors.
pub async fn remove(
    netlink: &dyn Netlink,
    pod: &Netns,
    name: &str,
    vf: bool,
    host_name: Option<&str>,
) -> Result<(), Error> {
    if !vf {
        return netlink
            .delete_link_if_exists(pod, name)
            .await
            .map(|_| ())
            .map_err(|e| Error::kernel(format!("cannot delete {name}"), e));
    }
    let link = match netlink.find_link(pod, name).await {
        Ok(Some(link)) => link,
        Ok(None) => return Ok(()),
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(Error::kernel(format!("cannot read {name}"), e)),
    };
    if matches!(link.kind, LinkKind::Dummy | LinkKind::Vlan { .. }) {
        return remove_dpdk_stand_in(netlink, pod, &link).await;
    }
    let host_name = host_name
        .map(str::to_owned)
        .or(link.alias.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("vf{}", link.index));
    netlink
        .set_link(pod, name, &LinkChange::new().up(false).name(host_name.clone()))
        .await
        .map_err(|e| Error::kernel(format!("cannot rename {name} back to {host_name}"), e))?;
    netlink
        .move_link(pod, &host_name, &Netns::Host)
        .await
        .map_err(|e| Error::kernel(format!("cannot return VF {host_name} to the host"), e))
}

/// Deletes a DPDK VF's stand-in: the dummy, or the VLAN link and the dummy under it.
async fn remove_dpdk_stand_in(
    netlink: &dyn Netlink,
    pod: &Netns,
    link: &danm_netlink::Link,
) -> Result<(), Error> {
    let mut doomed = vec![link.name.clone()];
    if matches!(link.kind, LinkKind::Vlan { .. })
        && let Some(parent) = link.parent_index.filter(|_| link.link_netnsid.is_none())
    {
        let links = netlink
            .links(pod)
            .await
            .map_err(|e| Error::kernel(format!("cannot list the links of {pod}"), e))?;
        if let Some(dummy) = links
            .into_iter()
            .find(|l| l.index == parent && l.kind == LinkKind::Dummy)
        {
            doomed.push(dummy.name);
        }
    }
    for name in doomed {
        netlink
            .delete_link_if_exists(pod, &name)
            .await
            .map_err(|e| Error::kernel(format!("cannot delete {name}"), e))?;
    }
    Ok(())
}

/// Whether ADD recorded that the host created the DanmEp's interface itself.
pub fn recorded_native(ep: &danm_api::DanmEp) -> bool {
    ep.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NATIVE_EP_ANNOTATION))
        .is_some_and(|v| v == "true")
}
