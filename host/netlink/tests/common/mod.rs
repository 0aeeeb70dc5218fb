//! Test namespaces shared by the real-kernel test files: made per test, removed on drop, skipped without root.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use danm_netlink::Netns;
use danm_netlink::netns::{create_named, delete_named};
use ipnetwork::IpNetwork;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Whether this runs inside the kernel lane (`DANM_KERNEL_LANE=1`), where a missing capability is a failure.
pub fn in_kernel_lane() -> bool {
    std::env::var("DANM_KERNEL_LANE").is_ok_and(|v| v == "1")
}

/// A namespace that is removed when dropped.
pub struct TestNs {
    pub name: String,
    pub ns: Netns,
}

impl TestNs {
    /// A fresh namespace named `<prefix>-<pid>-<n>`.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let ns = create_named(&name)
            .map_err(|err| format!("cannot create a network namespace ({err}); needs root"))?;
        Ok(TestNs { name, ns })
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = delete_named(&self.name);
    }
}

/// `$n` fresh namespaces named after `$prefix`, or a printed skip (a failure in the kernel lane).
macro_rules! namespaces {
    ($prefix:expr, $n:expr) => {{
        let mut all = Vec::new();
        for _ in 0..$n {
            match $crate::common::TestNs::new($prefix) {
                Ok(ns) => all.push(ns),
                Err(reason) => {
                    assert!(!$crate::common::in_kernel_lane(), "kernel lane: {reason}");
                    eprintln!("skipping: {reason}");
                    return;
                }
            }
        }
        all
    }};
}

pub fn net(text: &str) -> IpNetwork {
    text.parse().unwrap()
}
