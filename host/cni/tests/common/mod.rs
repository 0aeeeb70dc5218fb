//! The CNI tests' helpers: the shared test kit's fixtures, namespaces and processes under the names these tests
//! use; the lab harness in [`lab`], the `danm` binary on a test node in [`node`].
#![allow(dead_code)]

pub mod installer;
pub mod lab;
pub mod node;

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use danm_testkit::fixtures::{in_kernel_lane, is_root, skip_kernel_feature as skip};
#[allow(unused_imports)]
pub use danm_testkit::kernel::missing_link_kinds;
#[allow(unused_imports)]
pub use danm_testkit::process::{cmd, cmd_ok, run_plugin};

/// A named namespace with its loopback up (as a runtime hands it to CNI), deleted on drop.
pub struct Netns(danm_testkit::netns::TestNs);

impl Netns {
    pub fn new(name: &str) -> Self {
        Netns(
            danm_testkit::netns::TestNs::named(name)
                .unwrap_or_else(|e| panic!("{e}"))
                .with_lo_up(),
        )
    }
}

impl std::ops::Deref for Netns {
    type Target = danm_testkit::netns::TestNs;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// A test cannot run because the plugins are not built: it says so and skips, or fails when they are required.
pub fn skip_without_plugins() {
    danm_testkit::fixtures::skip(
        "the backend plugins are not built: run `make guests` (or set DANM_PLUGIN_DIR)",
    );
}

/// Root and, for each path, that it exists (Debian's CNI plugins, libcni's sources); otherwise a printed skip, or a
/// failure where fixtures are required (CI installs all of them).
pub fn root_and(paths: &[&str]) -> bool {
    if !danm_testkit::fixtures::root_or_skip("network namespaces") {
        return false;
    }
    if let Some(missing) = paths.iter().find(|p| !std::path::Path::new(p).exists()) {
        danm_testkit::fixtures::skip(&format!(
            "{missing} is missing (scripts/setup.sh installs containernetworking-plugins, golang-go and \
             golang-github-appc-cni-dev)"
        ));
        return false;
    }
    true
}

/// Host links a test made (the parents netwatcher or the node would own), deleted on drop in order, however the test
/// ends.
pub struct HostLinks(pub Vec<String>);

impl Drop for HostLinks {
    fn drop(&mut self) {
        for l in &self.0 {
            cmd(&["ip", "link", "del", l]);
        }
    }
}

/// A host veth pair `parent`/`peer`, both up, and on `parent` the VxLAN link `vxlink` with id `vni` (netwatcher's
/// job, done by hand): the parents of macvlan and vxlan-parented networks.
pub fn veth_and_vxlan(parent: &str, peer: &str, vxlink: &str, vni: u32) {
    cmd_ok(&["ip", "link", "add", parent, "type", "veth", "peer", "name", peer]);
    cmd_ok(&["ip", "link", "set", parent, "up"]);
    cmd_ok(&["ip", "link", "set", peer, "up"]);
    let vni = vni.to_string();
    cmd_ok(&[
        "ip", "link", "add", vxlink, "type", "vxlan", "id", &vni, "dstport", "4789", "dev", parent,
    ]);
    cmd_ok(&["ip", "link", "set", vxlink, "up"]);
}

/// The links of namespace `ns` other than its loopback (none when the namespace is gone).
pub fn links_in(ns: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .expect("run ip");
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap().to_owned())
        })
        .filter(|n| n != "lo")
        .collect()
}
