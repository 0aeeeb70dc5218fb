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
