//! Replays DANM's acceptance corpus of admission cases through the offline `review` command, with API faults and
//! strict RFC 6902 patch application when the `jsonpatch` Python package is installed. The corpus is a test
//! fixture kept outside the repository; the test skips when it is absent.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_acceptance_corpus_passes_through_the_review_command() {
    let root = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..");
    let script = root.join("../shared/acceptance/replay_webhook.py");
    if !script.exists() {
        eprintln!("skipping: {} is missing", script.display());
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipping: python3 is not installed");
        return;
    }
    let plugins = std::env::var_os("DANM_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("build/plugins"));
    let has_wasm = std::fs::read_dir(&plugins)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "wasm"))
        })
        .unwrap_or(false);
    assert!(
        has_wasm,
        "the wasm plugins are missing in {}: run `make guests` first",
        plugins.display()
    );
    let bin = env!("CARGO_BIN_EXE_danm-webhook");
    let cmd = format!(
        "{bin} review --plugin-dir '{}' --endpoint {{endpoint}} --request {{request}} --objects {{objects}} --objects-out {{objects_out}}",
        plugins.display()
    );
    let strict = Command::new("python3")
        .args(["-c", "import jsonpatch"])
        .status()
        .is_ok_and(|s| s.success());
    if !strict {
        eprintln!(
            "note: python package jsonpatch missing, patches are applied leniently (pip install jsonpatch)"
        );
    }
    for format in ["json", "json-list", "yaml"] {
        let mut c = Command::new("python3");
        c.arg(&script)
            .args(["--with-faults", "-v", "--objects-format", format, "--cmd", &cmd]);
        if strict {
            c.arg("--strict-patch");
        }
        let out = c.output().expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or("").to_owned();
        eprintln!("replay ({format}): {last}");
        assert!(
            out.status.success(),
            "replay failed ({format}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(last.ends_with(" 0 failed"), "{last}");
    }
}
