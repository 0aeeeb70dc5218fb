//! `NetlinkError`: the one error type of the netlink layer, with the operation, namespace, object and errno.

use std::fmt;
use std::io;

/// Which kernel operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    OpenNetns,
    GetLink,
    ListLinks,
    CreateLink,
    SetLink,
    MoveLink,
    DeleteLink,
    SetVf,
    GetVfs,
    AddAddress,
    ListAddresses,
    DeleteAddress,
    AddRoute,
    ListRoutes,
    DeleteRoute,
    AddRule,
    ListRules,
    DeleteRule,
    WriteSysctl,
    ReadSysctl,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::OpenNetns => "open netns",
            Op::GetLink => "get link",
            Op::ListLinks => "list links",
            Op::CreateLink => "create link",
            Op::SetLink => "set link",
            Op::MoveLink => "move link",
            Op::DeleteLink => "delete link",
            Op::SetVf => "set VF",
            Op::GetVfs => "get VFs",
            Op::AddAddress => "add address",
            Op::ListAddresses => "list addresses",
            Op::DeleteAddress => "delete address",
            Op::AddRoute => "add route",
            Op::ListRoutes => "list routes",
            Op::DeleteRoute => "delete route",
            Op::AddRule => "add rule",
            Op::ListRules => "list rules",
            Op::DeleteRule => "delete rule",
            Op::WriteSysctl => "write sysctl",
            Op::ReadSysctl => "read sysctl",
        })
    }
}

/// An error of the netlink layer. Every variant names the operation, the namespace (as displayed by
/// [`crate::Netns`]) and the object (`link eth0`, `address 10.0.0.5/24 on eth0`, ...).
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The object does not exist (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL).
    #[error("{op}: {object} in {netns}: not found ({})", errno_text(*.errno))]
    NotFound {
        op: Op,
        netns: String,
        object: String,
        errno: i32,
    },
    /// The namespace file does not exist (any operation in a namespace that is gone).
    #[error("{op} in {netns}: the network namespace does not exist")]
    NetnsNotFound { op: Op, netns: String },
    /// The object exists already (EEXIST).
    #[error("{op}: {object} in {netns}: already exists")]
    Exists { op: Op, netns: String, object: String },
    /// The kernel lacks the feature, e.g. a link kind whose driver is not built (EOPNOTSUPP).
    #[error("{op}: {object} in {netns}: not supported by this kernel: {feature} ({})", errno_text(*.errno))]
    NotSupported {
        op: Op,
        netns: String,
        object: String,
        feature: String,
        errno: i32,
    },
    /// Any other kernel refusal.
    #[error("{op}: {object} in {netns}: kernel error: {}", errno_text(*.errno))]
    Kernel {
        op: Op,
        netns: String,
        object: String,
        errno: i32,
    },
    /// Opening or entering a namespace, or a thread for it, failed.
    #[error("{op} in {netns}: cannot enter the network namespace: {source}")]
    Netns {
        op: Op,
        netns: String,
        #[source]
        source: io::Error,
    },
    /// Reading or writing `/proc/sys/<key>` failed.
    #[error("{op}: {key} in {netns}: {source}")]
    Sysctl {
        op: Op,
        netns: String,
        key: String,
        #[source]
        source: io::Error,
    },
    /// The request is invalid before it reaches the kernel (bad sysctl key, wrong family...).
    #[error("{op}: {object} in {netns}: invalid request: {reason}")]
    Invalid {
        op: Op,
        netns: String,
        object: String,
        reason: String,
    },
    /// The netlink conversation itself failed (unexpected message, closed connection).
    #[error("{op}: {object} in {netns}: netlink protocol error: {message}")]
    Protocol {
        op: Op,
        netns: String,
        object: String,
        message: String,
    },
}

fn errno_text(errno: i32) -> String {
    format!("{} (errno {errno})", nix::errno::Errno::from_raw(errno).desc())
}

impl NetlinkError {
    /// The object or its namespace is missing: what DEL treats as "already gone".
    pub fn is_not_found(&self) -> bool {
        match self {
            NetlinkError::NotFound { .. } | NetlinkError::NetnsNotFound { .. } => true,
            NetlinkError::Sysctl { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    pub fn is_exists(&self) -> bool {
        matches!(self, NetlinkError::Exists { .. })
    }

    pub fn is_not_supported(&self) -> bool {
        matches!(self, NetlinkError::NotSupported { .. })
    }

    /// The kernel errno, when the kernel (or the OS) produced the error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::NotFound { errno, .. }
            | NetlinkError::NotSupported { errno, .. }
            | NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::Exists { .. } => Some(libc_errno::EEXIST),
            NetlinkError::NetnsNotFound { .. } => Some(libc_errno::ENOENT),
            NetlinkError::Netns { source, .. } | NetlinkError::Sysctl { source, .. } => source.raw_os_error(),
            NetlinkError::Invalid { .. } | NetlinkError::Protocol { .. } => None,
        }
    }

    pub fn op(&self) -> Op {
        match self {
            NetlinkError::NotFound { op, .. }
            | NetlinkError::NetnsNotFound { op, .. }
            | NetlinkError::Exists { op, .. }
            | NetlinkError::NotSupported { op, .. }
            | NetlinkError::Kernel { op, .. }
            | NetlinkError::Netns { op, .. }
            | NetlinkError::Sysctl { op, .. }
            | NetlinkError::Invalid { op, .. }
            | NetlinkError::Protocol { op, .. } => *op,
        }
    }

    /// Builds the error for kernel errno `errno` (positive) of `op` on `object`. `feature` names what
    /// EOPNOTSUPP would mean (e.g. `link kind ipvlan`); without one, EOPNOTSUPP is a plain kernel error.
    pub fn from_errno(
        op: Op,
        netns: &crate::Netns,
        object: impl Into<String>,
        errno: i32,
        feature: Option<&str>,
    ) -> Self {
        let netns = netns.to_string();
        let object = object.into();
        match errno {
            libc_errno::ENODEV | libc_errno::ENOENT | libc_errno::ESRCH | libc_errno::EADDRNOTAVAIL => {
                NetlinkError::NotFound {
                    op,
                    netns,
                    object,
                    errno,
                }
            }
            libc_errno::EEXIST => NetlinkError::Exists { op, netns, object },
            libc_errno::EOPNOTSUPP if feature.is_some() => NetlinkError::NotSupported {
                op,
                netns,
                object,
                feature: feature.unwrap_or_default().to_string(),
                errno,
            },
            _ => NetlinkError::Kernel {
                op,
                netns,
                object,
                errno,
            },
        }
    }
}

/// Kernel errno values the layer maps (re-exported as `danm_netlink::errno`, e.g. for `FakeNetlink::fail_when`).
pub mod libc_errno {
    use nix::errno::Errno;
    pub const ENOENT: i32 = Errno::ENOENT as i32;
    pub const ESRCH: i32 = Errno::ESRCH as i32;
    pub const ENODEV: i32 = Errno::ENODEV as i32;
    pub const EEXIST: i32 = Errno::EEXIST as i32;
    pub const EOPNOTSUPP: i32 = Errno::EOPNOTSUPP as i32;
    pub const EADDRNOTAVAIL: i32 = Errno::EADDRNOTAVAIL as i32;
    pub const EINVAL: i32 = Errno::EINVAL as i32;
    pub const ENETDOWN: i32 = Errno::ENETDOWN as i32;
    pub const ENETUNREACH: i32 = Errno::ENETUNREACH as i32;
    pub const EACCES: i32 = Errno::EACCES as i32;
    pub const ERANGE: i32 = Errno::ERANGE as i32;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Netns;

    #[test]
    fn enodev_maps_to_not_found_with_the_names_in_the_message() {
        let err = NetlinkError::from_errno(
            Op::GetLink,
            &Netns::named("pod1"),
            "link eth9",
            libc_errno::ENODEV,
            None,
        );
        assert!(err.is_not_found());
        assert_eq!(err.errno(), Some(libc_errno::ENODEV));
        let text = err.to_string();
        assert!(text.contains("get link: link eth9"), "{text}");
        assert!(text.contains("/var/run/netns/pod1"), "{text}");
        assert!(text.contains("No such device"), "{text}");
    }

    #[test]
    fn eopnotsupp_with_a_feature_maps_to_not_supported() {
        let err = NetlinkError::from_errno(
            Op::CreateLink,
            &Netns::Host,
            "link ipv0",
            libc_errno::EOPNOTSUPP,
            Some("link kind ipvlan"),
        );
        assert!(err.is_not_supported());
        assert!(err.to_string().contains("link kind ipvlan"));
        let plain = NetlinkError::from_errno(
            Op::SetVf,
            &Netns::Host,
            "VF 0 of eth0",
            libc_errno::EOPNOTSUPP,
            None,
        );
        assert!(matches!(plain, NetlinkError::Kernel { errno, .. } if errno == libc_errno::EOPNOTSUPP));
    }

    #[test]
    fn eexist_maps_to_exists() {
        let err = NetlinkError::from_errno(Op::AddRoute, &Netns::Host, "route", libc_errno::EEXIST, None);
        assert!(err.is_exists());
        assert!(!err.is_not_found());
    }
}
