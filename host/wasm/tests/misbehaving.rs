//! Misbehaving plugins get a clear error within their limits and leave the host healthy; version mismatches and
//! duplicate types are reported naming both sides; the compiled cache survives corruption; directories reload.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use danm_wasm::{PluginError, PluginSet};

use common::{config, dir_with, real, request, set_with, shared_cache, still_healthy, test_plugin};

fn failing(name: &str) -> (PluginError, Duration, PluginSet) {
    let (dir, set) = set_with(&[test_plugin(name)]);
    assert!(set.errors().is_empty(), "{:?}", set.errors());
    let t = Instant::now();
    let err = set.translate(&request(name)).unwrap_err();
    let took = t.elapsed();
    drop(dir);
    (err, took, set)
}

#[test]
fn a_trapping_plugin_gives_an_error_with_its_stderr() {
    let (err, _, set) = failing("trap");
    let msg = err.to_string();
    assert!(matches!(err, PluginError::Trap { .. }), "{err:?}");
    assert!(
        msg.contains("trap.wasm") && msg.contains("function translate") && msg.contains("DanmNet ns/n"),
        "{msg}"
    );
    assert!(
        msg.contains("about to fail for eth1") && msg.contains("deliberate trap"),
        "stderr is captured: {msg}"
    );
    still_healthy(&set);
}

#[test]
fn a_spinning_plugin_is_stopped_at_its_deadline() {
    let (err, took, set) = failing("spin");
    assert!(matches!(err, PluginError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("deadline of 500ms"), "{err}");
    // The deadline is 500 ms in 10 ms epochs; allow generous scheduling slack on a shared machine.
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "stopped after {took:?}"
    );
    still_healthy(&set);
}

#[test]
fn a_memory_hog_hits_the_memory_cap() {
    let (err, _, set) = failing("hog");
    assert!(
        matches!(err, PluginError::MemoryLimit { limit, .. } if limit == 64 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("hog.wasm"), "{err}");
    still_healthy(&set);
}

#[test]
fn a_flood_of_output_is_refused() {
    // The output cap is under test, not the deadline: building and copying 16 MiB must not run into the default
    // 500 ms when the test machine is busy (it did once, with compilers running beside the tests).
    let dir = dir_with(&[real("macvlan"), test_plugin("flood")]);
    let config = danm_wasm::RuntimeConfig {
        timeout: Duration::from_secs(20),
        ..config(dir.path(), Some(shared_cache()))
    };
    let set = PluginSet::load(config).unwrap();
    let err = set.translate(&request("flood")).unwrap_err();
    assert!(
        matches!(err, PluginError::OutputTooLarge { size, limit: 1048576, .. } if size > 16 << 20),
        "{err:?}"
    );
    still_healthy(&set);
}

#[test]
fn invalid_json_output_is_refused() {
    let (err, _, set) = failing("badjson");
    assert!(matches!(err, PluginError::InvalidOutput { .. }), "{err:?}");
    assert!(err.to_string().contains("badjson.wasm"), "{err}");
    still_healthy(&set);
}

#[test]
fn a_plugin_built_for_another_wit_version_is_refused_naming_both_versions() {
    let (_dir, set) = set_with(&[test_plugin("oldwit")]);
    let errs: Vec<String> = set.errors().iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("oldwit.wasm") && errs[0].contains("danm:plugin@0.0.9"),
        "{}",
        errs[0]
    );
    assert!(errs[0].contains("danm:plugin@0.1.0"), "{}", errs[0]);
    assert!(!set.serves("oldwit"));
    still_healthy_or_conflict(&set);
}

fn still_healthy_or_conflict(set: &PluginSet) {
    assert!(set.serves("macvlan"));
    still_healthy(set);
}

#[test]
fn a_type_claimed_twice_is_an_error_naming_both_files() {
    let (_dir, set) = set_with(&[test_plugin("dupe")]);
    let errs: Vec<String> = set.errors().iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("macvlan") && errs[0].contains("dupe.wasm") && errs[0].contains("/macvlan.wasm"),
        "{}",
        errs[0]
    );
    // Neither plugin silently wins.
    let err = set.translate(&request("macvlan")).unwrap_err();
    assert!(matches!(err, PluginError::DuplicateType { .. }), "{err:?}");
    assert!(set.serves("ipvlan"));
}

#[test]
fn strict_loading_fails_on_the_first_broken_plugin() {
    let dir = dir_with(&[real("macvlan"), test_plugin("oldwit")]);
    let err = PluginSet::load_strict(config(dir.path(), Some(shared_cache()))).unwrap_err();
    assert!(matches!(err, PluginError::WitVersion { .. }), "{err:?}");
}

fn cwasm_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_cache_is_root_only_and_reused_by_a_new_set() {
    use std::os::unix::fs::PermissionsExt;
    let plugins = dir_with(&[real("macvlan")]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("c");
    let first = PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap();
    assert_eq!(
        std::fs::metadata(&cache_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let entries = cwasm_files(&cache_dir);
    assert_eq!(entries.len(), 1);
    let written = std::fs::read(&entries[0]).unwrap();
    drop(first);
    let second = PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap();
    assert!(second.translate(&request("macvlan")).is_ok());
    assert_eq!(
        std::fs::read(&entries[0]).unwrap(),
        written,
        "a valid entry is reused, not rewritten"
    );
}

#[test]
fn a_corrupt_cache_entry_is_recompiled_not_trusted() {
    let plugins = dir_with(&[real("macvlan")]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("c");
    drop(PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap());
    let entry = cwasm_files(&cache_dir).remove(0);
    let good = std::fs::read(&entry).unwrap();
    let corruptions: Vec<Vec<u8>> = vec![
        {
            let mut b = good.clone();
            let mid = b.len() / 2;
            b[mid] ^= 0xff; // a flipped byte in the native code
            b
        },
        good[..good.len() / 3].to_vec(), // truncated
        b"garbage".to_vec(),
        {
            let mut b = good.clone();
            b[20] ^= 0x01; // the ELF header
            b
        },
    ];
    for bad in corruptions {
        std::fs::write(&entry, &bad).unwrap();
        let set = PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap();
        set.translate(&request("macvlan"))
            .expect("recompiled from the .wasm");
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            good,
            "the entry is rewritten with a good artefact"
        );
    }
}

#[test]
fn a_cache_entry_another_user_owns_is_not_loaded_and_the_cache_is_private() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let plugins = dir_with(&[real("macvlan")]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("c");
    drop(PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap());
    assert_eq!(
        std::fs::metadata(&cache_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let entry = cwasm_files(&cache_dir).remove(0);
    assert_eq!(
        std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let me = std::fs::metadata(&entry).unwrap().uid();
    if me != 0 {
        eprintln!("skipping the foreign-owner half: giving a file to another user needs root");
        return;
    }
    let good = std::fs::read(&entry).unwrap();
    std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
    let set = PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap();
    set.translate(&request("macvlan"))
        .expect("recompiled from the .wasm");
    let now = std::fs::metadata(&entry).unwrap();
    assert_eq!(now.uid(), me, "the foreign entry was replaced by one of ours");
    assert_eq!(std::fs::read(&entry).unwrap(), good);
}

/// Rewrites every checksum the cache recorded (in the metadata entries and the index) with a wrong one.
fn corrupt_recorded_checksums(cache_dir: &std::path::Path) -> usize {
    fn walk(v: &mut serde_json::Value, n: &mut usize) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if k == "cwasm_crc32" && v.is_u64() {
                        *v = (v.as_u64().unwrap() ^ 1).into();
                        *n += 1;
                    } else {
                        walk(v, n);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| walk(v, n)),
            _ => {}
        }
    }
    let mut n = 0;
    for e in std::fs::read_dir(cache_dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            walk(&mut v, &mut n);
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }
    n
}

#[test]
fn an_entry_that_does_not_match_its_recorded_checksum_is_recompiled() {
    let plugins = dir_with(&[real("macvlan")]);
    // The index records only plugin files whose stamp has settled (2 s after their last change).
    std::thread::sleep(Duration::from_millis(2100));
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("c");
    drop(PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap());
    let entry = cwasm_files(&cache_dir).remove(0);
    let good = std::fs::read(&entry).unwrap();
    assert!(
        corrupt_recorded_checksums(&cache_dir) >= 2,
        "the metadata entry and the index record the checksum"
    );
    let set = PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap();
    set.translate(&request("macvlan"))
        .expect("recompiled from the .wasm");
    drop(set);
    assert_eq!(std::fs::read(&entry).unwrap(), good);
    // The new checksum was recorded: the next set uses the entry as it is (entries are replaced by rename, so a
    // rewrite would show as a new inode).
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(&entry).unwrap().ino();
    let set = PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap();
    set.translate(&request("macvlan")).unwrap();
    assert_eq!(
        std::fs::metadata(&entry).unwrap().ino(),
        inode,
        "not recompiled again"
    );
}

/// The `cwasm_stamp`s the cache recorded (metadata entries and index).
fn recorded_stamps(cache_dir: &std::path::Path) -> usize {
    std::fs::read_dir(cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .map(|text| text.matches("\"cwasm_stamp\":{").count())
        .sum()
}

#[test]
fn an_entry_is_read_before_use_until_its_settled_stamp_is_recorded_and_again_after_any_write() {
    use std::os::unix::fs::MetadataExt;
    let plugins = dir_with(&[real("macvlan")]);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("c");
    let translate = || {
        let set = PluginSet::load(config(plugins.path(), Some(cache_dir.clone()))).unwrap();
        set.translate(&request("macvlan")).expect("translates");
    };
    translate();
    let entry = cwasm_files(&cache_dir).remove(0);
    let good = std::fs::read(&entry).unwrap();
    // Just written: its times may still share a clock tick with a next write, so no stamp is trusted yet.
    translate();
    assert_eq!(recorded_stamps(&cache_dir), 0);
    // Settled: the next load checks the checksum once more and records the stamp (metadata entry and index).
    std::thread::sleep(Duration::from_millis(2100));
    translate();
    assert_eq!(recorded_stamps(&cache_dir), 2);

    // With the stamp recorded the entry is not read before use: a wrong recorded checksum goes unnoticed...
    assert_eq!(corrupt_recorded_checksums(&cache_dir), 2);
    let inode = std::fs::metadata(&entry).unwrap().ino();
    translate();
    assert_eq!(std::fs::metadata(&entry).unwrap().ino(), inode, "used as it is");

    // ...but any write to the entry changes its stamp, even one that keeps its size and puts its mtime back: it is
    // checked again (against the wrong checksum here, so it is recompiled and rewritten).
    let mtime = std::fs::metadata(&entry).unwrap().modified().unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&entry, &bad).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&entry)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    translate();
    assert_eq!(std::fs::read(&entry).unwrap(), good, "recompiled, not trusted");
    assert_ne!(std::fs::metadata(&entry).unwrap().ino(), inode);
}

#[test]
fn sets_without_a_cache_compile_in_memory() {
    let plugins = dir_with(&[real("macvlan")]);
    let set = PluginSet::load(config(plugins.path(), None)).unwrap();
    assert!(set.translate(&request("macvlan")).is_ok());
}

#[test]
fn reload_picks_up_a_new_plugin_and_ignores_an_unchanged_directory() {
    let plugins = dir_with(&[real("macvlan")]);
    let mut set = PluginSet::load(config(plugins.path(), Some(shared_cache()))).unwrap();
    assert!(!set.reload_if_changed().unwrap());
    assert!(!set.serves("bridge"));
    std::fs::copy(real("bridge"), plugins.path().join("bridge.wasm")).unwrap();
    assert!(set.reload_if_changed().unwrap());
    assert!(set.serves("bridge") && set.serves("macvlan"));
    std::fs::remove_file(plugins.path().join("macvlan.wasm")).unwrap();
    assert!(set.reload_if_changed().unwrap());
    assert!(!set.serves("macvlan"));
}

#[test]
fn a_reload_keeps_the_compiled_plugins_of_unchanged_files_and_opens_only_new_and_replaced_ones() {
    let plugins = dir_with(&[real("macvlan"), real("ipvlan")]);
    let file_names = |set: &PluginSet| -> Vec<String> {
        set.opened()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    // A stamp is trusted once settled, 2 s after the file's last change.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let mut set = PluginSet::load(config(plugins.path(), None)).unwrap();
    assert_eq!(file_names(&set), ["ipvlan.wasm", "macvlan.wasm"]);
    std::fs::copy(real("bridge"), plugins.path().join("bridge.wasm")).unwrap();
    assert!(set.reload_if_changed().unwrap());
    assert_eq!(file_names(&set), ["bridge.wasm"], "only the new file is opened");
    assert!(set.serves("bridge") && set.serves("macvlan") && set.serves("ipvlan"));
    assert!(
        set.translate(&request("macvlan")).is_ok(),
        "a kept plugin still answers"
    );
    // A replacement by atomic rename has another inode: opened again.
    let tmp = plugins.path().join("ipvlan.wasm.tmp");
    std::fs::copy(real("ipvlan"), &tmp).unwrap();
    std::fs::rename(&tmp, plugins.path().join("ipvlan.wasm")).unwrap();
    assert!(set.reload_if_changed().unwrap());
    let opened = file_names(&set);
    assert!(
        opened.contains(&"ipvlan.wasm".to_owned()) && !opened.contains(&"macvlan.wasm".to_owned()),
        "{opened:?}"
    );
    assert!(set.translate(&request("ipvlan")).is_ok());
}

#[test]
fn a_plugin_file_rewritten_in_place_is_rehashed_not_served_from_stale_metadata() {
    let plugins = dir_with(&[real("macvlan")]);
    let cache = tempfile::tempdir().unwrap();
    let file = plugins.path().join("macvlan.wasm");
    let first = PluginSet::load(config(plugins.path(), Some(cache.path().join("c")))).unwrap();
    assert!(first.serves("macvlan"));
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, std::fs::read(real("bridge")).unwrap()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let second = PluginSet::load(config(plugins.path(), Some(cache.path().join("c")))).unwrap();
    assert!(
        second.serves("bridge") && !second.serves("macvlan"),
        "{:?}",
        second.network_types()
    );
}

#[test]
fn reused_instances_give_the_same_results_and_a_failed_one_is_discarded() {
    let plugins = dir_with(&[real("macvlan"), test_plugin("trap")]);
    let cfg = danm_wasm::RuntimeConfig {
        reuse_instance_calls: 3,
        ..config(plugins.path(), Some(shared_cache()))
    };
    let set = PluginSet::load(cfg).unwrap();
    let fresh = PluginSet::load(config(plugins.path(), Some(shared_cache()))).unwrap();
    let expected = fresh.translate(&request("macvlan")).unwrap();
    for _ in 0..7 {
        assert_eq!(set.translate(&request("macvlan")).unwrap(), expected);
    }
    for _ in 0..2 {
        let msg = set.translate(&request("trap")).unwrap_err().to_string();
        assert_eq!(
            msg.matches("about to fail").count(),
            1,
            "only this call's stderr: {msg}"
        );
    }
    still_healthy(&set);
}

#[test]
fn a_plugin_importing_more_of_wasi_than_stdio_is_linked_against_all_of_it() {
    // The small linker has only wasi:cli and wasi:io; `clock` also imports wasi:clocks.
    let (_dir, set) = set_with(&[test_plugin("clock")]);
    assert!(set.errors().is_empty(), "{:?}", set.errors());
    let cfg = set.translate(&request("clock")).unwrap();
    assert!(cfg.contains("\"clockAfterEpoch\":true"), "{cfg}");
    still_healthy(&set);
}
