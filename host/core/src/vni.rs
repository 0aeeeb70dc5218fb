//! TenantConfig VNI bookkeeping (behaviour §1.4, §8.4): the 5001-bit VNI bitmap of an interface profile,
//! `vniRange` parsing (cpuset syntax), and reservation/release of VLAN ids and VxLAN VNIs. Pure; the webhook
//! does the conditional writes and bounded retries (§10 B8).

use std::ops::RangeInclusive;

use danm_api::{NetworkSpec, TenantConfig};

use crate::ipam::Bitmap;

/// The largest VNI a profile range may contain.
pub const MAX_VNI: u32 = 5000;
/// Bits in a profile's `alloc`: bit n = VNI n, for n in 0..=5000.
pub const VNI_BITS: u64 = MAX_VNI as u64 + 1;
/// Bytes of a profile's `alloc` (626; 836 base64 characters).
pub const VNI_BYTES: usize = (VNI_BITS as usize).div_ceil(8);

/// Errors of the VNI layer, with DANM's wording (behaviour §8.4, §8.6 C6/C7).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VniError {
    /// C6: the range is not comma-separated `N` or `N-M` (no spaces, N ≤ M).
    #[error("vniRange:{range} of interface profile is invalid: {reason}")]
    InvalidRange { range: String, reason: String },
    /// C7: a VNI above 5000.
    #[error("vniRange:{range} contains VNI:{vni}, but VNIs bigger than {MAX_VNI} are not supported")]
    VniTooBig { range: String, vni: u64 },
    /// No profile with that name and vniType.
    #[error(
        "VNI cannot be reserved because selected interface does not exist in TenantConfig (interface:{profile}, \
         vniType:{vni_type})"
    )]
    NoSuchProfile { profile: String, vni_type: String },
    /// The profile's `alloc` is empty or not a 626-byte DANM bitmap.
    #[error("VNI allocations for interface:{profile} is corrupt! Are you running without webhook?")]
    CorruptAlloc { profile: String },
    /// Every VNI of the range is taken.
    #[error(
        "VNI cannot be allocated from interface profile:{profile} because the whole range is already reserved"
    )]
    Exhausted { profile: String },
}

/// A fresh VNI bitmap: 5001 bits with bit 0 set (VNI 0 is never handed out).
pub fn fresh_vni_bitmap() -> Bitmap {
    let mut bm = Bitmap::new(VNI_BITS).expect("5001 bits is below the maximum");
    bm.set(0);
    bm
}

/// The base64 text of [`fresh_vni_bitmap`] (836 characters, starting `gAAAAAAAAAAA`).
pub fn fresh_vni_alloc() -> String {
    fresh_vni_bitmap().encode()
}

/// Parses a `vniRange` in cpuset syntax (`2000-2500,2601,2650-2700`; no spaces; `N-M` needs N ≤ M; every VNI ≤ 5000)
/// into ascending, merged, non-overlapping ranges. The empty string is the empty set.
pub fn parse_vni_range(text: &str) -> Result<Vec<RangeInclusive<u32>>, VniError> {
    let invalid = |reason: String| VniError::InvalidRange {
        range: text.to_owned(),
        reason,
    };
    let number = |s: &str| -> Result<u64, VniError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("{s:?} is not a number")));
        }
        let n: u64 = s.parse().unwrap_or(u64::MAX);
        if n > u64::from(MAX_VNI) {
            return Err(VniError::VniTooBig {
                range: text.to_owned(),
                vni: n,
            });
        }
        Ok(n)
    };
    let mut ranges = Vec::new();
    if text.is_empty() {
        return Ok(ranges);
    }
    for part in text.split(',') {
        let (lo, hi) = match part.split_once('-') {
            None => {
                let n = number(part)?;
                (n, n)
            }
            Some((a, b)) => {
                let (lo, hi) = (number(a)?, number(b)?);
                if lo > hi {
                    return Err(invalid(format!("range {part:?} has its start above its end")));
                }
                (lo, hi)
            }
        };
        ranges.push((lo as u32)..=(hi as u32));
    }
    ranges.sort_by_key(|r| *r.start());
    let mut merged: Vec<RangeInclusive<u32>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if *r.start() <= last.end().saturating_add(1) => {
                if r.end() > last.end() {
                    *last = *last.start()..=*r.end();
                }
            }
            _ => merged.push(r),
        }
    }
    Ok(merged)
}

fn load(alloc: &str, profile: &str) -> Result<Bitmap, VniError> {
    let corrupt = || VniError::CorruptAlloc {
        profile: profile.to_owned(),
    };
    let bm = Bitmap::decode(alloc).map_err(|_| corrupt())?;
    if alloc.is_empty() || bm.as_bytes().len() != VNI_BYTES {
        return Err(corrupt());
    }
    Ok(bm)
}

/// Reserves the lowest free VNI of `range` (ascending) in a profile's `alloc`. Returns the new alloc and the VNI.
pub fn reserve_vni(alloc: &str, range: &str, profile: &str) -> Result<(String, u32), VniError> {
    let ranges = parse_vni_range(range)?;
    let mut bm = load(alloc, profile)?;
    for r in ranges {
        if let Some(i) = bm.first_clear_in(*r.start() as usize, *r.end() as usize) {
            bm.set(i);
            return Ok((bm.encode(), i as u32));
        }
    }
    Err(VniError::Exhausted {
        profile: profile.to_owned(),
    })
}

/// Clears `vni` in a profile's `alloc`. Returns the new alloc and whether the bit was set. VNI 0 and VNIs above 5000
/// are left alone.
pub fn release_vni(alloc: &str, vni: u32, profile: &str) -> Result<(String, bool), VniError> {
    let mut bm = load(alloc, profile)?;
    let freed = vni != 0 && bm.clear(vni as usize);
    Ok((bm.encode(), freed))
}

/// Gives every profile that has a `vniType` and an empty `alloc` a fresh bitmap (the `/confvalidation` mutation,
/// behaviour §8.6). Returns whether anything changed.
pub fn init_profile_allocs(tc: &mut TenantConfig) -> bool {
    let mut changed = false;
    for p in tc
        .host_devices
        .iter_mut()
        .filter(|p| !p.vni_type.is_empty() && p.alloc.is_empty())
    {
        p.alloc = fresh_vni_alloc();
        changed = true;
    }
    changed
}

/// Reserves a VNI on the profile with this `name` **and** `vniType`; returns the updated TenantConfig and the VNI.
pub fn reserve_for_profile(
    tc: &TenantConfig,
    name: &str,
    vni_type: &str,
) -> Result<(TenantConfig, u32), VniError> {
    let mut new = tc.clone();
    let profile = new
        .host_devices
        .iter_mut()
        .find(|p| p.name == name && p.vni_type == vni_type)
        .ok_or_else(|| VniError::NoSuchProfile {
            profile: name.to_owned(),
            vni_type: vni_type.to_owned(),
        })?;
    let (alloc, vni) = reserve_vni(&profile.alloc, &profile.vni_range, name)?;
    profile.alloc = alloc;
    Ok((new, vni))
}

/// The outcome of releasing a network's VNI.
#[derive(Clone, Debug, PartialEq)]
pub enum VniRelease {
    /// The network has no VNI (vlan and vxlan are 0): nothing to do.
    NoVni,
    /// No profile matches: DANM logs a warning and allows the deletion.
    NoProfile { profile: String, vni_type: &'static str },
    /// The VNI's bit was already clear: nothing to write.
    NotAllocated,
    /// The updated TenantConfig to write.
    Freed(Box<TenantConfig>),
}

/// Releases the VNI of a deleted TenantNetwork (behaviour §8.4): the profile is `device_pool` if set, else
/// `host_device`; the type is `vxlan` when vxlan ≠ 0, else `vlan`.
pub fn release_network_vni(tc: &TenantConfig, spec: &NetworkSpec) -> Result<VniRelease, VniError> {
    let o = &spec.options;
    let (vni_type, vni) = match (o.vlan, o.vxlan) {
        (0, 0) => return Ok(VniRelease::NoVni),
        (_, x) if x != 0 => ("vxlan", x),
        (v, _) => ("vlan", v),
    };
    let name = if o.device_pool.is_empty() {
        &o.host_device
    } else {
        &o.device_pool
    };
    let mut new = tc.clone();
    let Some(profile) = new
        .host_devices
        .iter_mut()
        .find(|p| &p.name == name && p.vni_type == vni_type)
    else {
        return Ok(VniRelease::NoProfile {
            profile: name.clone(),
            vni_type,
        });
    };
    if vni > MAX_VNI {
        return Ok(VniRelease::NotAllocated);
    }
    let (alloc, freed) = release_vni(&profile.alloc, vni, name)?;
    if !freed {
        return Ok(VniRelease::NotAllocated);
    }
    profile.alloc = alloc;
    Ok(VniRelease::Freed(Box::new(new)))
}
