//! TenantConfig rules (behaviour §8.6, C1–C9), all violations reported.

use danm_api::TenantConfig;
use danm_guest_sdk::{Operation, Violation};

/// The largest VNI a profile's range may hold (the VNI bitmap has 5001 bits).
pub const MAX_VNI: u32 = 5000;
/// The NetworkID limit for dynamic types (DANM's documentation; netwatcher link names).
pub const MAX_NID: usize = 10;

pub fn validate(tc: &TenantConfig, op: Operation, dynamic: &[String], out: &mut Vec<Violation>) {
    if tc.host_devices.is_empty() && tc.network_ids.is_empty() {
        out.push(Violation::new(
            "C1",
            "",
            "Either hostDevices, or networkIds must be provided!",
        ));
    }
    for (i, p) in tc.host_devices.iter().enumerate() {
        let at = |f: &str| format!("hostDevices[{i}].{f}");
        if p.name.is_empty() {
            out.push(Violation::new(
                "C2",
                at("name"),
                "name attribute of a hostDevice must not be empty!",
            ));
        }
        if p.vni_type.is_empty() != p.vni_range.is_empty() {
            let f = if p.vni_type.is_empty() {
                "vniType"
            } else {
                "vniRange"
            };
            out.push(Violation::new(
                "C3",
                at(f),
                format!(
                    "vniRange and vniType attributes must be provided together for interface:{}",
                    p.name
                ),
            ));
        }
        if !p.vni_type.is_empty() && p.vni_type != "vlan" && p.vni_type != "vxlan" {
            out.push(Violation::new(
                "C4",
                at("vniType"),
                format!(
                    "{} is not in allowed vniType values: {{vlan,vxlan}} for interface:{}",
                    p.vni_type, p.name
                ),
            ));
        }
        if op == Operation::Create && !p.alloc.is_empty() {
            out.push(Violation::new(
                "C5",
                at("alloc"),
                format!(
                    "Allocation bitmask for interface: {} shall not be manually defined upon creation!",
                    p.name
                ),
            ));
        }
        match parse_vni_range(&p.vni_range) {
            Err(e) => out.push(Violation::new(
                "C6",
                at("vniRange"),
                format!(
                    "vniRange for interface:{} must be improperly formatted because its parsing fails with:{e}",
                    p.name
                ),
            )),
            Ok(ranges) => {
                if ranges.iter().any(|&(_, hi)| hi > MAX_VNI) {
                    out.push(Violation::new(
                        "C7",
                        at("vniRange"),
                        format!(
                            "vniRange for interface:{} is invalid, because it cannot contain VNIs over the maximum supported number that is:{MAX_VNI}",
                            p.name
                        ),
                    ));
                }
            }
        }
    }
    for (ty, id) in &tc.network_ids {
        let at = format!("networkIds[{ty:?}]");
        if ty.is_empty() || id.is_empty() {
            out.push(Violation::new(
                "C8",
                at,
                "neither NetworkID, nor NetworkType can be empty in a NetworkID mapping!",
            ));
            continue;
        }
        let lower = ty.to_ascii_lowercase();
        if id.chars().count() > MAX_NID && dynamic.contains(&lower) {
            out.push(Violation::new(
                "C9",
                at,
                format!(
                    "NetworkID:{id} cannot be longer than {MAX_NID} characters (otherwise VLAN and VxLAN host interface creation might fail)!"
                ),
            ));
        }
    }
}

/// cpuset syntax: comma-separated `N` or `N-M` (N ≤ M), no spaces; empty is an empty set.
pub fn parse_vni_range(s: &str) -> Result<Vec<(u32, u32)>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let num = |t: &str| -> Result<u32, String> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid number {t:?} in {s:?}"));
        }
        t.parse()
            .map_err(|_| format!("number {t:?} out of range in {s:?}"))
    };
    s.split(',')
        .map(|part| match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    Err(format!("invalid range {part:?} in {s:?}"))
                } else {
                    Ok((a, b))
                }
            }
            None => num(part).map(|n| (n, n)),
        })
        .collect()
}
