//! Smoke runs of the three load benchmarks at a small size, through the `danm-lab` binary as a user runs them
//! (`bench webhook`, `bench pods-at-once`, `bench attachments`): each must exit 0 and its JSON line must show the
//! work done and nothing wrong. They need root, the built plugins and the `danm` / `danm-webhook` binaries of the
//! same build; without them they say why and skip, and fail instead under `CI=true` or `DANM_REQUIRE_FIXTURES=1`.
//! Cost on the 2-core build machine: about 8 s (webhook, 200 req/s for 5 s), 3 s (20 pods at once), 4 s (8 pods x 4
//! attachments, both drivers).

use std::path::PathBuf;
use std::process::Command;

use danm_testkit::fixtures;
use serde_json::Value;

const LAB: &str = env!("CARGO_BIN_EXE_danm-lab");

/// Why this machine cannot run a smoke run needing `bins` (next to `danm-lab`), if it cannot. Panics instead of
/// skipping when fixtures are required.
fn skip(bins: &[&str], needs_root: bool) -> Option<String> {
    let dir = PathBuf::from(LAB).parent().unwrap().to_path_buf();
    let mut why = None;
    let plugins = fixtures::plugin_dir();
    if needs_root && !fixtures::is_root() {
        why = Some("needs root (network namespaces and links)".to_string());
    } else if !fixtures::plugins_built(&plugins) {
        why = Some(format!(
            "the plugins are not built in {} (run `make guests` or set DANM_PLUGIN_DIR)",
            plugins.display()
        ));
    } else if let Some(b) = bins.iter().find(|b| !dir.join(b).exists()) {
        why = Some(format!(
            "{b} is not built next to danm-lab in {} (run `cargo build --workspace --bins`)",
            dir.display()
        ));
    }
    if let Some(w) = &why {
        fixtures::skip(w);
    }
    why
}

/// Runs `danm-lab bench <args>`; asserts it exits 0 and returns its JSON line.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(LAB)
        .arg("bench")
        .args(args)
        .arg("--plugin-dir")
        .arg(fixtures::plugin_dir())
        .env("DANM_LOG", "warn")
        .output()
        .expect("danm-lab runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "danm-lab bench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    eprintln!("{line}");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

#[test]
fn the_webhook_answers_a_constant_rate_over_tls_without_an_error() {
    if skip(&["danm-webhook"], false).is_some() {
        return;
    }
    let r = bench(&["webhook", "--rate", "200", "--seconds", "5", "--pods", "30"]);
    assert_eq!(r["requests"], 1000, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    // The mix reached every template, and the refusals (invalid objects, networks in use) were refused.
    assert_eq!(r["mix"].as_object().unwrap().len(), 14, "{r}");
    assert_eq!(r["denied_as_expected"], 250, "{r}");
    assert_eq!(r["vni_duplicates"], 0, "{r}");
    assert_eq!(r["vni_mismatch"], 0, "{r}");
    assert!(r["webhook_peak_rss_kib"].as_u64().unwrap() > 1000, "{r}");
    assert!(
        r["p99_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap(),
        "{r}"
    );
}

#[test]
fn pods_started_at_once_all_get_distinct_addresses_and_leave_nothing_behind() {
    if skip(&["danm"], true).is_some() {
        return;
    }
    let r = bench(&["pods-at-once", "--pods", "20", "--networks", "2"]);
    let ok = r["succeeded"].as_u64().unwrap() + r["retried_ok"].as_u64().unwrap();
    assert_eq!(ok, 20, "{r}");
    assert_eq!(r["other_errors"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["api_mismatch"], 0, "{r}");
    for k in [
        "leftover_danmeps",
        "leftover_addresses",
        "leftover_netns",
        "del_errors",
    ] {
        assert_eq!(r[k], 0, "{k}: {r}");
    }
    assert!(r["danm_max_rss_kib"].as_u64().unwrap() > 1000, "{r}");
    assert!(r["lab_server_peak_rss_kib"].as_u64().unwrap() > 1000, "{r}");
}

#[test]
fn many_attachments_come_up_through_danm_and_debian_plugins_and_are_torn_down() {
    if skip(&["danm"], true).is_some() {
        return;
    }
    if !PathBuf::from("/usr/lib/cni/macvlan").exists() {
        fixtures::skip(
            "Debian's CNI plugins are not installed (apt-get install containernetworking-plugins)",
        );
        return;
    }
    let r = bench(&["attachments", "--pods", "8", "--networks", "4", "--parallel", "4"]);
    assert_eq!(r["interfaces"], 32, "{r}");
    for driver in ["danm", "debian"] {
        let d = &r[driver];
        assert_eq!(d["interfaces_up"], 32, "{driver}: {r}");
        for k in ["add_errors", "duplicates", "del_errors", "leftover_netns"] {
            assert_eq!(d[k], 0, "{driver} {k}: {r}");
        }
    }
    for k in [
        "danm_leftover_danmeps",
        "danm_leftover_addresses",
        "debian_leftover_leases",
        "leftover_host_links",
    ] {
        assert_eq!(r[k], 0, "{k}: {r}");
    }
    assert!(r["ratio_add_danm_over_debian"].as_f64().unwrap() > 0.0, "{r}");
}
