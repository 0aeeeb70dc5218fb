//! What a test needs from the machine and the build, and the one rule for when it is missing: print why and skip,
//! or fail where the run must have it (`CI=true`, `DANM_REQUIRE_FIXTURES=1` as `make test` sets, the kernel lane).

use std::path::{Path, PathBuf};

/// Whether this process runs as root (from `/proc/self/status`, no unsafe call).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether this runs inside the kernel lane (`DANM_KERNEL_LANE=1`), where a missing capability is a failure.
pub fn in_kernel_lane() -> bool {
    std::env::var("DANM_KERNEL_LANE").is_ok_and(|v| v == "1")
}

/// Whether the run must have every fixture: under CI (`CI=true`), `make test` (`DANM_REQUIRE_FIXTURES=1`) and in
/// the kernel lane a test that would skip fails instead.
pub fn fixtures_required() -> bool {
    in_kernel_lane()
        || std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("DANM_REQUIRE_FIXTURES").is_ok_and(|v| v == "1")
}

/// A test cannot run: it prints why and the caller returns, or, where fixtures are required, it fails saying why.
pub fn skip(reason: &str) {
    assert!(!fixtures_required(), "cannot run: {reason}");
    eprintln!("skipping: {reason}");
}

/// This kernel lacks a feature the test needs (ipvlan, 802.1q, dummy links here): a printed skip, except inside the
/// kernel lane, which exists to have them and fails instead.
pub fn skip_kernel_feature(reason: &str) {
    assert!(!in_kernel_lane(), "kernel lane: {reason}");
    eprintln!("skipping: {reason}");
}

/// `true` when running as root; otherwise [`skip`]s with `needed_for` in the reason and returns `false`.
pub fn root_or_skip(needed_for: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(&format!("needs root for {needed_for}"));
    false
}

/// The real `kubectl` (Debian's package, or one in /usr/local/bin); otherwise [`skip`]s and returns `None`.
pub fn kubectl_or_skip() -> Option<PathBuf> {
    let found = ["/usr/bin/kubectl", "/usr/local/bin/kubectl"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        skip("kubectl is not installed (Debian package kubernetes-client or kubectl)");
    }
    found
}

/// The checkout this test runs from, found at run time (cargo sets `CARGO_MANIFEST_DIR` for every test and bench it
/// runs; the first ancestor holding `Cargo.lock` is the workspace). Compile-time paths would point at whichever
/// clone first built a shared target directory.
pub fn workspace_dir() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    start
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(start)
}

/// The built backend plugins: `DANM_PLUGIN_DIR` (the Makefile sets it), else `<workspace>/build/plugins`, where
/// `make guests` stages them. The directory may not exist; see [`plugins_built`].
pub fn plugin_dir() -> PathBuf {
    std::env::var_os("DANM_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("build/plugins"))
}

/// The deliberately misbehaving plugins: `DANM_TEST_PLUGIN_DIR`, else `<workspace>/build/test-plugins`.
pub fn test_plugin_dir() -> PathBuf {
    std::env::var_os("DANM_TEST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("build/test-plugins"))
}

/// Plugins built but not installed with the others: `DANM_EXTRA_PLUGIN_DIR` (the Makefile sets it), else
/// `<workspace>/build/extra-plugins`, where `make guests` stages the backend template's `host-device.wasm`.
pub fn extra_plugin_dir() -> PathBuf {
    std::env::var_os("DANM_EXTRA_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("build/extra-plugins"))
}

/// `<extra plugin dir>/<name>.wasm` when it is built; otherwise [`skip`]s saying how to build it.
pub fn extra_plugin_or_skip(name: &str) -> Option<PathBuf> {
    let file = extra_plugin_dir().join(format!("{name}.wasm"));
    if file.is_file() {
        return Some(file);
    }
    skip(&format!(
        "{} is not built: run `make guests` (or set DANM_EXTRA_PLUGIN_DIR)",
        file.display()
    ));
    None
}

/// Whether `dir` holds every real backend plugin.
pub fn plugins_built(dir: &Path) -> bool {
    ["ipvlan", "macvlan", "sriov", "bridge", "rules"]
        .iter()
        .all(|p| dir.join(format!("{p}.wasm")).is_file())
}

/// The plugin directory when the plugins are built; otherwise [`skip`]s saying how to build them.
pub fn plugins_or_skip() -> Option<PathBuf> {
    let dir = plugin_dir();
    if plugins_built(&dir) {
        return Some(dir);
    }
    skip(&format!(
        "the backend plugins are not built in {}: run `make guests` (or set DANM_PLUGIN_DIR)",
        dir.display()
    ));
    None
}

/// DANM's acceptance corpus of admission cases: `DANM_ACCEPTANCE_DIR`, else `acceptance/` in the folder beside the
/// checkout named `shared`, where CI places it. It is not part of the repository, so a developer's run without it
/// prints a skip; under `CI=true`, which always has it, its absence fails.
pub fn acceptance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("DANM_ACCEPTANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_dir().join("../shared/acceptance"));
    if dir.is_dir() {
        return Some(dir);
    }
    let reason = format!("DANM's acceptance corpus is not at {}", dir.display());
    assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "{reason}");
    eprintln!("skipping: {reason}");
    None
}
