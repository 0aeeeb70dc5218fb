//! Finding the built plugins and making plugin sets in temporary directories.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use danm_wasm::{PluginSet, RuntimeConfig, TranslateRequest};
use serde_json::json;
use tempfile::TempDir;

pub const REAL: [&str; 5] = ["ipvlan", "macvlan", "sriov", "bridge", "rules"];

/// The directory holding the built plugins: `$DANM_PLUGIN_DIR` (set by the Makefile), else `<repo>/build/plugins`
/// (what `make guests` and `guests/build.sh` fill). Panics, telling how to build them, when they are missing: these
/// tests never skip.
pub fn plugin_dir() -> PathBuf {
    let dir = danm_testkit::fixtures::plugin_dir();
    for name in REAL {
        find(&dir, name);
    }
    dir
}

/// `<dir>/<name>.wasm`, or the cargo artefact name `<dir>/danm_guest_<name>.wasm`.
fn find(dir: &Path, name: &str) -> PathBuf {
    let candidates = [
        dir.join(format!("{name}.wasm")),
        dir.join(format!("danm_guest_{name}.wasm")),
    ];
    candidates.iter().find(|f| f.is_file()).cloned().unwrap_or_else(|| {
        panic!(
            "plugin {name} is missing from {}: build the plugins first with `make guests` (or guests/build.sh), \
             or point DANM_PLUGIN_DIR / DANM_TEST_PLUGIN_DIR at directories holding them",
            dir.display()
        )
    })
}

/// A real plugin file.
pub fn real(name: &str) -> PathBuf {
    find(&plugin_dir(), name)
}

/// A misbehaving test plugin: `$DANM_TEST_PLUGIN_DIR` (set by the Makefile), else `<repo>/build/test-plugins`.
pub fn test_plugin(name: &str) -> PathBuf {
    let dir = danm_testkit::fixtures::test_plugin_dir();
    let f = dir.join(format!("{name}.wasm"));
    assert!(
        f.is_file(),
        "test plugin {} is missing: run `make guests` (or guests/build.sh)",
        f.display()
    );
    f
}

/// A temporary plugin directory holding copies of `files`, each named `<plugin>.wasm`.
pub fn dir_with(files: &[PathBuf]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        let name = f
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_start_matches("danm_guest_")
            .to_owned();
        std::fs::copy(f, dir.path().join(name)).unwrap();
    }
    dir
}

/// A cache shared by the tests of this binary, so each plugin is compiled once per run.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("danm-wasm-test-cache")
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

/// A DanmNet of NetworkType `ty` to translate for `eth1` with an IPv4 address.
pub fn request(ty: &str) -> TranslateRequest {
    TranslateRequest {
        network_json: json!({"kind":"DanmNet","metadata":{"name":"n","namespace":"ns"},
                             "spec":{"NetworkID":"n","NetworkType":ty,"Options":{"host_device":"ens3"}}})
        .to_string(),
        interface_name: "eth1".into(),
        ip4: Some("10.0.0.5/24".into()),
        cni_version: "1.0.0".into(),
        pod_namespace: "ns".into(),
        pod_name: "p".into(),
        ..Default::default()
    }
}

/// After a failure the same set must still translate with a healthy plugin.
pub fn still_healthy(set: &PluginSet) {
    let cfg = set
        .translate(&request("macvlan"))
        .expect("the host stays healthy after a misbehaving plugin");
    assert!(cfg.contains("\"type\":\"macvlan\""), "{cfg}");
}
