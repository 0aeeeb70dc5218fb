//! `danmctl plugins` end to end: the built binary on the built plugins (`make guests` / `guests/build.sh` fill
//! `DANM_PLUGIN_DIR` and `DANM_TEST_PLUGIN_DIR`, default `build/plugins` and `build/test-plugins`). Missing plugins
//! fail the tests with instructions, never skip them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn env_dir(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        danm_testkit::fixtures::workspace_dir()
            .join("host/ctl")
            .join(default)
    })
}

/// A directory holding exactly the five real plugins, named `<name>.wasm`.
fn plugin_dir() -> tempfile::TempDir {
    let src = env_dir("DANM_PLUGIN_DIR", "../../build/plugins");
    let dir = tempfile::tempdir().unwrap();
    for n in ["ipvlan", "macvlan", "sriov", "bridge", "rules"] {
        let f = [
            src.join(format!("{n}.wasm")),
            src.join(format!("danm_guest_{n}.wasm")),
        ]
        .into_iter()
        .find(|f| f.is_file())
        .unwrap_or_else(|| panic!("no {n} plugin in {}: run `make guests` first", src.display()));
        std::fs::copy(f, dir.path().join(format!("{n}.wasm"))).unwrap();
    }
    dir
}

fn danmctl(args: &[&str], dir: &Path) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_danmctl"))
        .arg("plugins")
        .args(args)
        .arg("--plugin-dir")
        .arg(dir)
        // A cache shared by these tests, so each plugin is compiled once per run.
        .env(
            "DANM_PLUGIN_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("danmctl-plugin-cache"),
        )
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

const NET: &str = "\
apiVersion: danm.k8s.io/v1
kind: DanmNet
metadata:
  name: external
  namespace: default
spec:
  NetworkID: external
  NetworkType: macvlan
  Options:
    host_device: ens3
    cidr: 10.0.0.0/24
    vlan: 200
";

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn list_shows_file_kind_types_version_and_digest() {
    let (ok, out, err) = danmctl(&["list"], plugin_dir().path());
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("macvlan.wasm"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<_> = line.split_whitespace().collect();
    assert_eq!(&cols[..4], ["macvlan.wasm", "backend", "macvlan", "0.1.0"]);
    assert_eq!(cols[4].len(), 64);
    assert!(
        out.lines()
            .any(|l| l.starts_with("rules.wasm") && l.contains(" rules ")),
        "{out}"
    );
}

#[test]
fn translate_prints_the_cni_config() {
    let tmp = tempfile::tempdir().unwrap();
    let net = file(&tmp, "net.yaml", NET);
    let (ok, out, err) = danmctl(
        &[
            "translate",
            "-f",
            net.to_str().unwrap(),
            "--ifname",
            "ext1",
            "--ip",
            "10.0.0.5/24",
        ],
        plugin_dir().path(),
    );
    assert!(ok, "{err}");
    let cfg: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cfg["type"], "macvlan");
    assert_eq!(cfg["master"], "external.200");
    assert_eq!(cfg["ipam"]["ips"][0]["ipcidr"], "10.0.0.5/24");
}

#[test]
fn validate_accepts_a_valid_network_and_lists_violations_of_an_invalid_one() {
    let tmp = tempfile::tempdir().unwrap();
    let good = file(&tmp, "good.yaml", NET);
    let (ok, out, err) = danmctl(&["validate", "-f", good.to_str().unwrap()], plugin_dir().path());
    assert!(ok, "{out}{err}");
    let bad = file(
        &tmp,
        "bad.yaml",
        &format!("{NET}    mode: sideways\n    routes:\n      10.1.0.0/16: 10.9.0.1\n"),
    );
    let (ok, out, err) = danmctl(&["validate", "-f", bad.to_str().unwrap()], plugin_dir().path());
    assert!(!ok);
    assert!(
        out.contains(r#"[V3] spec.Options.routes["10.1.0.0/16"]"#) && out.contains("[MODE]"),
        "{out}"
    );
    assert!(err.contains("2 violation(s)"), "{err}");
}

#[test]
fn check_reports_every_broken_plugin() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = plugin_dir();
    let test_plugins = env_dir("DANM_TEST_PLUGIN_DIR", "../../build/test-plugins");
    std::fs::copy(
        plugins.path().join("macvlan.wasm"),
        tmp.path().join("macvlan.wasm"),
    )
    .unwrap();
    for name in ["dupe.wasm", "oldwit.wasm"] {
        std::fs::copy(test_plugins.join(name), tmp.path().join(name)).unwrap_or_else(|e| {
            panic!(
                "{name} in {}: {e}; run `make guests` first",
                test_plugins.display()
            )
        });
    }
    let (ok, out, _) = danmctl(&["check"], tmp.path());
    assert!(!ok);
    assert!(
        out.contains("claimed by two plugins") && out.contains("dupe.wasm"),
        "{out}"
    );
    assert!(
        out.contains("danm:plugin@0.0.9") && out.contains("danm:plugin@0.1.0"),
        "{out}"
    );
}
