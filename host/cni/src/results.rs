//! The delegates' ADD results kept on the node, as libcni keeps a runtime's: `<resultDir>/<containerID>/<ifname>.json`
//! holds the last plugin's result of one delegated interface, so CHECK and DEL can give the delegate the
//! `prevResult` the CNI spec says it gets (the runtime's `prevResult` is danm's merged result, not the delegate's).

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use serde_json::Value;

/// One node's result directory.
#[derive(Clone, Debug)]
pub struct ResultCache {
    dir: PathBuf,
}

/// A container ID or interface name usable as one path component (the CNI spec allows `[A-Za-z0-9_.-]` in
/// container IDs; interface names never hold `/`).
fn component(s: &str) -> Option<&str> {
    (!s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0'])).then_some(s)
}

impl ResultCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ResultCache { dir: dir.into() }
    }

    fn file(&self, container_id: &str, ifname: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .join(component(container_id)?)
                .join(format!("{}.json", component(ifname)?)),
        )
    }

    /// Stores `result` for the interface: written to a temporary file and renamed, in a directory only root reads.
    pub fn save(&self, container_id: &str, ifname: &str, result: &Value) -> std::io::Result<()> {
        let file = self.file(container_id, ifname).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("container {container_id:?} / interface {ifname:?} cannot name a result file"),
            )
        })?;
        let parent = file.parent().unwrap_or(&self.dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        let tmp = file.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(result.to_string().as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, &file)
    }

    /// The stored result, if there is a readable one.
    pub fn load(&self, container_id: &str, ifname: &str) -> Option<Value> {
        let file = self.file(container_id, ifname)?;
        let bytes = std::fs::read(&file).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "ignoring an unreadable delegate result");
                None
            }
        }
    }

    /// Forgets the interface's result, and the container's directory once it is empty. Missing files are fine.
    pub fn remove(&self, container_id: &str, ifname: &str) {
        let Some(file) = self.file(container_id, ifname) else {
            return;
        };
        if let Err(e) = std::fs::remove_file(&file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %file.display(), error = %e, "cannot remove a delegate result");
        }
        if let Some(parent) = file.parent() {
            // Fails while other interfaces' results remain, as it should.
            let _ = std::fs::remove_dir(parent);
        }
    }

    /// GC: removes the results of every container not in `valid`; returns how many containers were swept.
    pub fn sweep(&self, valid: &std::collections::BTreeSet<String>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut swept = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid.contains(&name) || !entry.path().is_dir() {
                continue;
            }
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => swept += 1,
                Err(e) => {
                    tracing::warn!(dir = %entry.path().display(), error = %e, "cannot sweep delegate results")
                }
            }
        }
        swept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_result_is_kept_per_container_and_interface_and_removed_with_its_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(tmp.path().join("results"));
        let r1 = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "br0"}]});
        let r2 = json!({"cniVersion": "0.4.0", "ips": []});
        cache.save("c1", "eth1", &r1).unwrap();
        cache.save("c1", "eth2", &r2).unwrap();
        cache.save("c2", "eth1", &r2).unwrap();
        assert_eq!(cache.load("c1", "eth1"), Some(r1));
        assert_eq!(cache.load("c1", "eth2"), Some(r2.clone()));
        assert_eq!(cache.load("c1", "eth3"), None);
        let mode = std::fs::metadata(tmp.path().join("results/c1"))
            .unwrap()
            .permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700);

        cache.remove("c1", "eth1");
        assert_eq!(cache.load("c1", "eth1"), None);
        assert!(
            tmp.path().join("results/c1").is_dir(),
            "eth2's result is still there"
        );
        cache.remove("c1", "eth2");
        cache.remove("c1", "eth2");
        assert!(!tmp.path().join("results/c1").exists());
        assert_eq!(cache.load("c2", "eth1"), Some(r2));
    }

    #[test]
    fn names_that_are_not_one_path_component_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(tmp.path());
        for (cid, ifname) in [
            ("..", "eth1"),
            ("c/d", "eth1"),
            ("c", "a/b"),
            ("", "eth1"),
            ("c", ""),
        ] {
            assert!(cache.save(cid, ifname, &json!({})).is_err(), "{cid:?} {ifname:?}");
            assert_eq!(cache.load(cid, ifname), None);
        }
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn gc_sweeps_the_containers_that_are_not_valid() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(tmp.path());
        for cid in ["keep", "gone1", "gone2"] {
            cache.save(cid, "eth1", &json!({})).unwrap();
        }
        let valid = ["keep".to_owned()].into_iter().collect();
        assert_eq!(cache.sweep(&valid), 2);
        assert!(cache.load("keep", "eth1").is_some());
        assert!(cache.load("gone1", "eth1").is_none() && cache.load("gone2", "eth1").is_none());
        assert_eq!(ResultCache::new(tmp.path().join("absent")).sweep(&valid), 0);
    }
}
