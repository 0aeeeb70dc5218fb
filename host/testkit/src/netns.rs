//! Network namespaces made for one test and removed when it drops them.

use std::sync::atomic::{AtomicU32, Ordering};

use danm_netlink::Netns;
use danm_netlink::netns::{create_named, delete_named};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A named namespace under `/var/run/netns` (as `ip netns add` makes them), deleted on drop.
#[derive(Debug)]
pub struct TestNs {
    /// Its name (`ip -n NAME ...` works).
    pub name: String,
    /// Its file, `/var/run/netns/NAME`, what a CNI runtime passes as `CNI_NETNS`.
    pub path: String,
    /// The handle danm's netlink code takes.
    pub ns: Netns,
}

impl TestNs {
    /// A fresh namespace named `<prefix>-<pid>-<n>`, unique in this process.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Self::named(&name)
    }

    /// A namespace of exactly this name; one left over by an earlier, killed run is replaced.
    pub fn named(name: &str) -> Result<Self, String> {
        let _ = delete_named(name);
        let ns = create_named(name)
            .map_err(|err| format!("cannot create network namespace {name} ({err}); needs root"))?;
        Ok(TestNs {
            name: name.to_owned(),
            path: format!("/var/run/netns/{name}"),
            ns,
        })
    }

    /// Brings its loopback up, as a container runtime does before calling CNI.
    pub fn with_lo_up(self) -> Self {
        crate::process::cmd_ok(&["ip", "-n", &self.name, "link", "set", "lo", "up"]);
        self
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let _ = delete_named(&self.name);
    }
}
