//! Finding the built plugins and making plugin sets in temporary directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use danm_wasm::{PluginSet, RuntimeConfig};
use tempfile::TempDir;

pub const REAL: [&str; 5] = ["ipvlan", "macvlan", "sriov", "bridge", "rules"];

/// The directory holding the built plugins: `$DANM_PLUGIN_DIR`, else `<repo>/target-plugins` (what `make guests`
/// / `guests/build.sh` fill). Panics, telling how to build them, when they are missing: these tests never skip.
pub fn plugin_dir() -> PathBuf {
    let dir = std::env::var_os("DANM_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target-plugins"));
    for name in REAL {
        let f = dir.join(format!("{name}.wasm"));
        assert!(
            f.is_file(),
            "plugin {} is missing: build the plugins first with `make guests` (or guests/build.sh), \
             or point DANM_PLUGIN_DIR at a directory holding them",
            f.display()
        );
    }
    dir
}

/// A real plugin file.
pub fn real(name: &str) -> PathBuf {
    plugin_dir().join(format!("{name}.wasm"))
}

/// A misbehaving test plugin (`<plugin dir>/test/<name>.wasm`).
pub fn test_plugin(name: &str) -> PathBuf {
    let f = plugin_dir().join("test").join(format!("{name}.wasm"));
    assert!(
        f.is_file(),
        "test plugin {} is missing: run `make guests` (or guests/build.sh)",
        f.display()
    );
    f
}

/// A cache shared by the tests of this binary, so each plugin is compiled once per run.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("danm-wasm-test-cache")
}

/// A temporary plugin directory holding copies of `files`.
pub fn dir_with(files: &[PathBuf]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::copy(f, dir.path().join(f.file_name().unwrap())).unwrap();
    }
    dir
}

pub fn config(dir: &Path, cache: Option<PathBuf>) -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: cache,
        ..RuntimeConfig::with_plugin_dir(dir)
    }
}

/// The real plugins plus `extra`, loaded with the shared cache.
pub fn set_with(extra: &[PathBuf]) -> (TempDir, PluginSet) {
    let mut files: Vec<PathBuf> = REAL.iter().map(|n| real(n)).collect();
    files.extend_from_slice(extra);
    let dir = dir_with(&files);
    let set = PluginSet::load(config(dir.path(), Some(shared_cache()))).unwrap();
    (dir, set)
}
