//! `kubectl danm networks`: one row per network (DanmNet, TenantNetwork, ClusterNetwork, NAD) with its pools' use,
//! and the allocation map of each pool (blocks, or fixed-size segments of a bitmap) that the SVG picture draws.
//! Everything here works on objects already read from the cluster.

use std::net::IpAddr;

use danm_api::{Network, NetworkAttachmentDefinition, annotations};
use danm_core::ipam::blocks::{BlockLayout, DEFAULT_BLOCK_PREFIX_V4, DEFAULT_BLOCK_PREFIX_V6, IpamMode};
use danm_core::ipam::{Family, FamilyUsage};
use danm_ipam::BlockStats;
use serde::Serialize;

use super::table;

/// The addresses of one family of a pool: how many the pool has and how many are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PoolUse {
    pub used: u64,
    pub free: u64,
    pub size: u64,
}

impl PoolUse {
    pub fn new(used: u64, size: u64) -> Self {
        PoolUse {
            used,
            free: size.saturating_sub(used),
            size,
        }
    }

    /// Nothing left for a dynamic request.
    pub fn exhausted(&self) -> bool {
        self.size > 0 && self.free == 0
    }
}

/// One line of `kubectl danm networks`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NetworkRow {
    /// DanmNet, TenantNetwork, ClusterNetwork or NetworkAttachmentDefinition.
    pub kind: String,
    /// Empty for ClusterNetworks.
    pub namespace: String,
    pub name: String,
    /// The backend: the network's NetworkType (empty = ipvlan), or the NAD config's `type`.
    #[serde(rename = "type")]
    pub network_type: String,
    pub cidr: String,
    pub net6: String,
    /// `bitmap` or `blocks`; absent for NADs (danm's IPAM does not serve them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipam_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<PoolUse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<PoolUse>,
    /// `vlan 200`, `vxlan 1000`, or empty.
    pub vni: String,
    pub host_device: String,
    /// What could not be read (an undecodable bitmap, an unknown IPAM mode), with the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl NetworkRow {
    /// `namespace/name`, or the bare name of a cluster-scoped object.
    pub fn reference(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    /// The use of `family`'s pool.
    pub fn pool(&self, family: Family) -> Option<PoolUse> {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }
}

/// One rectangle of the pool picture: a DanmIpBlock (blocks mode) or a fixed-size segment of the bitmap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    pub cidr: String,
    /// The node holding the block; `None` for a bitmap segment.
    pub node: Option<String>,
    pub used: u64,
    /// Addresses dynamic allocation may hand out in the cell.
    pub capacity: u64,
}

/// The allocation map of one family of one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolMap {
    /// `DanmNet ns/name`, `ClusterNetwork name`.
    pub network: String,
    pub family: String,
    pub mode: String,
    /// The range the map covers (`cidr`, or the IPv6 pool CIDR).
    pub space: String,
    /// Blocks mode: how many blocks the pool spans (claimed or not); bitmap mode: addresses per segment.
    pub unit: u64,
    pub cells: Vec<Cell>,
}

/// A network's row and its pool maps.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkView {
    pub row: NetworkRow,
    pub maps: Vec<PoolMap>,
}

fn vni(o: &danm_api::NetworkOptions) -> String {
    match (o.vlan, o.vxlan) {
        (0, 0) => String::new(),
        (vlan, 0) => format!("vlan {vlan}"),
        (0, vxlan) => format!("vxlan {vxlan}"),
        (vlan, vxlan) => format!("vlan {vlan}, vxlan {vxlan}"),
    }
}

/// The IPAM mode of a network with the cluster default `default`.
pub fn mode_of(network: &Network, default: IpamMode) -> Result<IpamMode, String> {
    IpamMode::of_network(network.metadata.annotations.as_ref(), &network.spec, default)
        .map_err(|e| format!("annotation {}: {e}", annotations::IPAM_MODE))
}

/// The block prefix of `family` on a network in blocks mode: its annotation, else danm's default (as the IPAM
/// reads it).
pub fn block_prefix(network: &Network, family: Family) -> Result<u8, String> {
    let (key, default, width) = match family {
        Family::V4 => (annotations::BLOCK_PREFIX_V4, DEFAULT_BLOCK_PREFIX_V4, 32),
        Family::V6 => (annotations::BLOCK_PREFIX_V6, DEFAULT_BLOCK_PREFIX_V6, 128),
    };
    match network.metadata.annotations.as_ref().and_then(|a| a.get(key)) {
        None => Ok(default),
        Some(text) => match text.parse::<u8>() {
            Ok(p) if p <= width => Ok(p),
            _ => Err(format!(
                "annotation {key}: {text:?} is not a prefix length of {family}"
            )),
        },
    }
}

/// The row and maps of a danm network. `blocks` are its DanmIpBlocks' statistics (blocks mode; ignored in bitmap
/// mode).
pub fn network_view(network: &Network, default_mode: IpamMode, blocks: &[BlockStats]) -> NetworkView {
    let o = &network.spec.options;
    let id = danm_ipam::network_id(network).to_string();
    let mut row = NetworkRow {
        kind: network.kind.clone(),
        namespace: network.namespace().unwrap_or_default().to_owned(),
        name: network.name().to_owned(),
        network_type: network.spec.backend(),
        cidr: o.cidr.clone(),
        net6: o.net6.clone(),
        ipam_mode: None,
        ipv4: None,
        ipv6: None,
        vni: vni(o),
        host_device: if o.host_device.is_empty() {
            o.device_pool.clone()
        } else {
            o.host_device.clone()
        },
        problem: None,
    };
    let mut maps = Vec::new();
    let mode = match mode_of(network, default_mode) {
        Ok(m) => m,
        Err(problem) => {
            row.problem = Some(problem);
            return NetworkView { row, maps };
        }
    };
    row.ipam_mode = Some(mode.to_string());
    match mode {
        IpamMode::Bitmap => match danm_core::ipam::usage(&network.spec) {
            Ok(u) => {
                for f in [u.v4, u.v6].into_iter().flatten() {
                    let pool = PoolUse::new(f.pool_size - f.pool_free, f.pool_size);
                    match f.family {
                        Family::V4 => row.ipv4 = Some(pool),
                        Family::V6 => row.ipv6 = Some(pool),
                    }
                    if let Some(map) = bitmap_map(&id, &f) {
                        maps.push(map);
                    }
                }
            }
            Err(e) => row.problem = Some(format!("alloc/alloc6: {e}")),
        },
        IpamMode::Blocks => {
            for family in [Family::V4, Family::V6] {
                let present = match family {
                    Family::V4 => !o.cidr.is_empty(),
                    Family::V6 => !o.net6.is_empty(),
                };
                if !present {
                    continue;
                }
                let layout = block_prefix(network, family)
                    .and_then(|p| BlockLayout::new(&network.spec, family, p).map_err(|e| e.to_string()));
                let layout = match layout {
                    Ok(l) => l,
                    Err(e) => {
                        row.problem = Some(format!("{family}: {e}"));
                        continue;
                    }
                };
                let size: u128 = layout.pool_blocks().map(|b| layout.capacity(b)).sum();
                let mine: Vec<&BlockStats> = blocks.iter().filter(|b| b.family == family).collect();
                let used: u64 = mine.iter().map(|b| b.used as u64).sum();
                let pool = PoolUse::new(used, u64::try_from(size).unwrap_or(u64::MAX));
                match family {
                    Family::V4 => row.ipv4 = Some(pool),
                    Family::V6 => row.ipv6 = Some(pool),
                }
                let space = match family {
                    Family::V4 => o.cidr.clone(),
                    Family::V6 => o.allocation_pool_v6.cidr.clone(),
                };
                maps.push(PoolMap {
                    network: id.clone(),
                    family: family.to_string(),
                    mode: mode.to_string(),
                    space,
                    unit: layout.pool_blocks().count() as u64,
                    cells: mine
                        .iter()
                        .map(|b| Cell {
                            cidr: b.cidr.clone(),
                            node: Some(b.node.clone()),
                            used: b.used as u64,
                            capacity: u64::try_from(b.capacity).unwrap_or(u64::MAX),
                        })
                        .collect(),
                });
            }
        }
    }
    NetworkView { row, maps }
}

/// At most this many segments are drawn of one bitmap.
const MAX_SEGMENTS: u128 = 256;
/// The smallest segment: as large as a default block, so both modes draw alike.
const MIN_SEGMENT: u128 = 64;

fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn text_of(family: Family, n: u128) -> String {
    match family {
        Family::V4 => std::net::Ipv4Addr::from(n as u32).to_string(),
        Family::V6 => std::net::Ipv6Addr::from(n).to_string(),
    }
}

/// A bitmap pool cut into aligned segments of at least 64 addresses, at most 256 of them: each segment's allocated
/// addresses and its pool addresses that are not reserved (network, broadcast, gateways).
pub fn bitmap_map(network: &str, f: &FamilyUsage) -> Option<PoolMap> {
    let (base, bits) = match f.family {
        Family::V4 => {
            let n = danm_core::ipam::parse_v4_cidr(&f.cidr).ok()?;
            (u128::from(u32::from(n.network())), 32 - u32::from(n.prefix()))
        }
        Family::V6 => {
            let n = danm_core::ipam::parse_v6_cidr(&f.cidr).ok()?;
            (u128::from(n.network()), 128 - u32::from(n.prefix()))
        }
    };
    let space = if bits >= 127 { u128::MAX / 2 } else { 1u128 << bits };
    let mut seg = MIN_SEGMENT.min(space);
    while space / seg > MAX_SEGMENTS {
        seg *= 2;
    }
    let (pool_lo, pool_hi) = (num(f.pool_start), num(f.pool_end));
    let reserved: Vec<u128> = f.reserved.iter().map(|r| num(r.addr)).collect();
    let overlap = |lo: u128, hi: u128, a: u128, b: u128| -> u128 {
        let (s, e) = (lo.max(a), hi.min(b));
        if s > e { 0 } else { e - s + 1 }
    };
    let cells = (0..space / seg)
        .map(|i| {
            let lo = base + i * seg;
            let hi = lo + seg - 1;
            let in_pool = overlap(lo, hi, pool_lo, pool_hi);
            let reserved_in_pool = reserved
                .iter()
                .filter(|&&r| r >= lo.max(pool_lo) && r <= hi.min(pool_hi))
                .count() as u128;
            let used: u128 = f
                .allocated
                .iter()
                .map(|&(a, b)| overlap(lo, hi, num(a), num(b)))
                .sum();
            let prefix = match f.family {
                Family::V4 => 32 - seg.trailing_zeros(),
                Family::V6 => 128 - seg.trailing_zeros(),
            };
            Cell {
                cidr: format!("{}/{prefix}", text_of(f.family, lo)),
                node: None,
                used: used as u64,
                capacity: in_pool.saturating_sub(reserved_in_pool) as u64,
            }
        })
        .collect();
    Some(PoolMap {
        network: network.to_owned(),
        family: f.family.to_string(),
        mode: IpamMode::Bitmap.to_string(),
        space: f.cidr.clone(),
        unit: u64::try_from(seg).unwrap_or(u64::MAX),
        cells,
    })
}

/// The row of a NetworkAttachmentDefinition: its config's `type` (a conflist's first plugin's), `master` and
/// `vlan`, and the `ipam` section's `subnet`/`range` when it names one; danm's IPAM does not serve it.
pub fn nad_row(nad: &NetworkAttachmentDefinition) -> NetworkRow {
    let mut row = NetworkRow {
        kind: danm_api::nad::NAD_KIND.into(),
        namespace: nad.metadata.namespace.clone().unwrap_or_default(),
        name: nad.metadata.name.clone().unwrap_or_default(),
        network_type: String::new(),
        cidr: String::new(),
        net6: String::new(),
        ipam_mode: None,
        ipv4: None,
        ipv6: None,
        vni: String::new(),
        host_device: String::new(),
        problem: None,
    };
    let config: serde_json::Value = match serde_json::from_str(&nad.spec.config) {
        Ok(v) => v,
        Err(e) => {
            row.problem = Some(format!("spec.config is not JSON: {e}"));
            return row;
        }
    };
    let plugin = config.get("plugins").and_then(|p| p.get(0)).unwrap_or(&config);
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    row.network_type = text(plugin.get("type"));
    row.host_device = text(plugin.get("master"));
    if let Some(vlan) = plugin.get("vlan").and_then(|v| v.as_u64()) {
        row.vni = format!("vlan {vlan}");
    }
    let ipam = plugin.get("ipam");
    let subnet = text(ipam.and_then(|i| i.get("subnet")));
    let ranges = ipam
        .and_then(|i| i.get("ranges"))
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .flat_map(|set| set.as_array().into_iter().flatten())
        .filter_map(|r| r.get("subnet").and_then(|s| s.as_str()));
    for s in std::iter::once(subnet.as_str())
        .chain(ranges)
        .filter(|s| !s.is_empty())
    {
        let slot = if s.contains(':') {
            &mut row.net6
        } else {
            &mut row.cidr
        };
        if slot.is_empty() {
            s.clone_into(slot);
        }
    }
    row
}

/// The order of the table and the picture: by kind (DanmNet, TenantNetwork, ClusterNetwork, NAD), namespace, name.
pub fn order(a: &NetworkRow, b: &NetworkRow) -> std::cmp::Ordering {
    let rank = |k: &str| match k {
        "DanmNet" => 0,
        "TenantNetwork" => 1,
        "ClusterNetwork" => 2,
        _ => 3,
    };
    (rank(&a.kind), &a.namespace, &a.name).cmp(&(rank(&b.kind), &b.namespace, &b.name))
}

/// Sorts rows in [`order`].
pub fn sort(rows: &mut [NetworkRow]) {
    rows.sort_by(order);
}

fn family_cell(p: Option<PoolUse>) -> String {
    p.map_or_else(|| "-".to_owned(), |p| table::usage_cell(p.used, p.size))
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// The human table; the PROBLEM column only when a row has one.
pub fn render(rows: &[NetworkRow]) -> String {
    let problems = rows.iter().any(|r| r.problem.is_some());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.kind.clone(),
                r.reference(),
                dash(&r.network_type),
                dash(&r.cidr),
                dash(&r.net6),
                r.ipam_mode.clone().unwrap_or_else(|| "-".into()),
                family_cell(r.ipv4),
                family_cell(r.ipv6),
                dash(&r.vni),
                dash(&r.host_device),
            ];
            if problems {
                cells.push(r.problem.clone().unwrap_or_default());
            }
            cells
        })
        .collect();
    let mut headers = vec![
        "KIND",
        "NAME",
        "TYPE",
        "CIDR",
        "NET6",
        "IPAM",
        "IPV4 USED",
        "IPV6 USED",
        "VNI",
        "DEVICE",
    ];
    if problems {
        headers.push("PROBLEM");
    }
    table::render(&headers, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use danm_api::{NetworkKind, NetworkSpec};
    use serde_json::json;

    fn net(options: serde_json::Value) -> Network {
        let mut spec: NetworkSpec =
            serde_json::from_value(json!({"NetworkID": "n", "NetworkType": "macvlan", "Options": options}))
                .unwrap();
        danm_core::ipam::apply_network_defaults(&mut spec.options).unwrap();
        Network::new(NetworkKind::DanmNet, Some("demo"), "n", spec)
    }

    #[test]
    fn a_bitmap_network_counts_its_pool_and_cuts_it_into_segments() {
        let mut n = net(json!({"cidr": "10.0.0.0/24", "host_device": "ens3", "vlan": 200}));
        let (spec, _) = {
            let r = danm_core::ipam::reserve(
                &n.spec,
                &danm_core::ipam::IpRequest::Dynamic,
                &danm_core::ipam::IpRequest::Absent,
            )
            .unwrap();
            (r.spec, ())
        };
        n.spec = spec;
        let v = network_view(&n, IpamMode::Blocks, &[]);
        assert_eq!(v.row.ipam_mode.as_deref(), Some("bitmap"));
        assert_eq!(v.row.ipv4, Some(PoolUse::new(1, 254)));
        assert_eq!(v.row.vni, "vlan 200");
        assert_eq!(v.row.host_device, "ens3");
        let map = &v.maps[0];
        assert_eq!(map.cells.len(), 4, "a /24 is four segments of 64");
        assert_eq!(map.unit, 64);
        assert_eq!(map.cells[0].cidr, "10.0.0.0/26");
        assert_eq!((map.cells[0].used, map.cells[0].capacity), (1, 63));
        assert_eq!((map.cells[3].used, map.cells[3].capacity), (0, 63));
    }

    #[test]
    fn a_large_bitmap_is_drawn_in_at_most_256_segments() {
        let n = net(json!({"cidr": "10.0.0.0/16"}));
        let u = danm_core::ipam::usage(&n.spec).unwrap().v4.unwrap();
        let map = bitmap_map("DanmNet demo/n", &u).unwrap();
        assert_eq!(map.cells.len(), 256);
        assert_eq!(map.unit, 256);
        assert_eq!(map.cells[1].cidr, "10.0.1.0/24");
        assert_eq!(map.cells.iter().map(|c| c.capacity).sum::<u64>(), 65534);
    }

    #[test]
    fn a_blocks_network_sums_its_blocks_against_the_whole_pool() {
        let mut n = net(json!({"cidr": "10.0.0.0/24"}));
        // No bitmap, no annotation: the cluster default decides.
        n.spec.options.alloc.clear();
        let stats = vec![BlockStats {
            family: Family::V4,
            name: "b".into(),
            cidr: "10.0.0.0/26".into(),
            node: "worker-1".into(),
            used: 2,
            capacity: 63,
        }];
        let v = network_view(&n, IpamMode::Blocks, &stats);
        assert_eq!(v.row.ipam_mode.as_deref(), Some("blocks"));
        assert_eq!(v.row.ipv4, Some(PoolUse::new(2, 254)));
        assert_eq!(v.maps[0].cells[0].node.as_deref(), Some("worker-1"));
        assert_eq!(v.maps[0].unit, 4, "the /24 pool spans four /26 blocks");
    }

    #[test]
    fn an_unknown_ipam_mode_is_reported_with_its_annotation() {
        let mut n = net(json!({"cidr": "10.0.0.0/24"}));
        n.metadata.annotations = Some([(annotations::IPAM_MODE.to_owned(), "magic".to_owned())].into());
        let v = network_view(&n, IpamMode::Blocks, &[]);
        assert!(
            v.row
                .problem
                .as_deref()
                .unwrap()
                .starts_with("annotation danm.k8s.io/ipam-mode"),
            "{:?}",
            v.row.problem
        );
    }

    #[test]
    fn a_nad_row_reads_type_master_vlan_and_subnet_from_its_config() {
        let nad: NetworkAttachmentDefinition = serde_json::from_value(json!({
            "metadata": {"name": "vlan100", "namespace": "demo"},
            "spec": {"config": r#"{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"ens4","vlan":100,
                "ipam":{"type":"host-local","ranges":[[{"subnet":"192.168.5.0/24"}],[{"subnet":"fd00::/64"}]]}}]}"#}
        }))
        .unwrap();
        let r = nad_row(&nad);
        assert_eq!(
            (r.network_type.as_str(), r.host_device.as_str(), r.vni.as_str()),
            ("macvlan", "ens4", "vlan 100")
        );
        assert_eq!(
            (r.cidr.as_str(), r.net6.as_str()),
            ("192.168.5.0/24", "fd00::/64")
        );
        assert_eq!(r.ipam_mode, None);
    }

    #[test]
    fn rows_sort_by_kind_then_namespace_then_name_and_render_with_bars() {
        let row = |kind: &str, ns: &str, name: &str| NetworkRow {
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
            network_type: "macvlan".into(),
            cidr: String::new(),
            net6: String::new(),
            ipam_mode: None,
            ipv4: None,
            ipv6: None,
            vni: String::new(),
            host_device: String::new(),
            problem: None,
        };
        let mut rows = vec![
            row("ClusterNetwork", "", "a"),
            row("DanmNet", "b", "z"),
            row("DanmNet", "a", "z"),
        ];
        rows[0].ipv4 = Some(PoolUse::new(61, 61));
        sort(&mut rows);
        let names: Vec<String> = rows.iter().map(NetworkRow::reference).collect();
        assert_eq!(names, ["a/z", "b/z", "a"]);
        let text = render(&rows);
        assert!(text.lines().next().unwrap().starts_with("KIND "), "{text}");
        assert!(text.contains("61/61 [##########]"), "{text}");
        assert!(
            !text.contains("PROBLEM"),
            "no column for problems nobody has: {text}"
        );
        rows[1].problem = Some("alloc/alloc6: corrupt".into());
        let text = render(&rows);
        assert!(text.lines().next().unwrap().ends_with("PROBLEM"), "{text}");
        assert!(text.contains("alloc/alloc6: corrupt"), "{text}");
    }
}
