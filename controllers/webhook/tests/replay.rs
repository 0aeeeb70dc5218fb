//! Replays DANM's acceptance corpus of admission cases through the offline `review` command, with API faults and
//! strict RFC 6902 patch application when the `jsonpatch` Python package is installed. The corpus is a test
//! fixture kept outside the repository; the test skips when it is absent.

use std::process::Command;

#[test]
fn the_acceptance_corpus_passes_through_the_review_command() {
    let Some(acceptance) = danm_testkit::fixtures::acceptance_dir() else {
        return;
    };
    let script = acceptance.join("replay_webhook.py");
    if Command::new("python3").arg("--version").output().is_err() {
        danm_testkit::fixtures::skip("python3 is not installed");
        return;
    }
    let Some(plugins) = danm_testkit::fixtures::plugins_or_skip() else {
        return;
    };
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
