//! The bridge backend lives only in its plugin: no host crate treats `bridge` as a NetworkType.
//!
//! The rule, checked mechanically: outside comments and `#[cfg(test)] mod` blocks, no Rust source under `host/*/src`
//! (the code of the host crates; tests are not host code and may well use the reference bridge plugin as a static
//! delegate) contains the string literal `"bridge"` (any case), except
//! - in `host/netlink`, which knows kernel link kinds and macvlan modes and nothing about network objects,
//! - in `host/testkit`, the tests' own kit (test code, which checks that every plugin is built), and
//! - on a line that is about a macvlan mode (it mentions `mode` or `macvlan`): DANM's default macvlan mode is
//!   called `bridge`, which is not the bridge NetworkType.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line without its `//` comment (good enough for this check: `//` inside string literals would only
/// hide text after it, and the literal we look for has none).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

#[test]
fn no_host_crate_mentions_the_bridge_network_type() {
    let host = danm_testkit::fixtures::workspace_dir().join("host");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("src").is_dir())
        .collect();
    crates.sort();
    assert!(
        crates.iter().any(|c| c.ends_with("wasm")),
        "host crates found: {crates:?}"
    );
    let mut offences = Vec::new();
    for krate in crates
        .iter()
        .filter(|c| !c.ends_with("netlink") && !c.ends_with("testkit"))
    {
        let mut files = Vec::new();
        rust_files(&krate.join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let mut test_depth: Option<i64> = None;
            let mut cfg_test = false;
            for (n, line) in text.lines().enumerate() {
                let t = code(line).trim();
                // Skip `#[cfg(test)] mod ... { ... }` by brace depth.
                if let Some(d) = test_depth.as_mut() {
                    *d += t.matches('{').count() as i64 - t.matches('}').count() as i64;
                    if *d <= 0 {
                        test_depth = None;
                    }
                    continue;
                }
                if t == "#[cfg(test)]" {
                    cfg_test = true;
                    continue;
                }
                if cfg_test && (t.starts_with("mod ") || t.starts_with("pub mod ")) && t.ends_with('{') {
                    test_depth = Some(1);
                    cfg_test = false;
                    continue;
                }
                cfg_test = false;
                let c = code(line).to_ascii_lowercase();
                if c.contains("\"bridge\"") && !c.contains("mode") && !c.contains("macvlan") {
                    offences.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "bridge-specific code in host crates:\n{}",
        offences.join("\n")
    );
}
