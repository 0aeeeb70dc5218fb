//! The on-disk cache of compiled plugins and their metadata, keyed by the plugin file's sha256 and the engine's
//! precompile compatibility hash. Files are written by atomic rename into a 0700 directory; an entry that fails its
//! checksum or wasmtime's header check is ignored (and then recompiled and rewritten), never trusted.
//!
//! Entry `<key>.cwasm` = exactly what `Component::serialize` produced, so it can be mapped with
//! `Component::deserialize_file` instead of being read and copied twice (once by `read`, once by wasmtime). Its CRC32
//! is recorded in the metadata; the file is checked against it (streamed through a small buffer) before wasmtime maps
//! it. The checksum detects corruption (torn writes, disk errors, truncation); access control is the directory's
//! root-only mode. CRC32 rather than sha256 because it is far cheaper on an artefact (docs/performance.md §2).
//! Once an entry has matched its checksum, its [`FileStamp`] is recorded too, and a later load that finds the same
//! stamp maps the entry without reading it first (as the index does for plugin files; a saving on every short-lived
//! CNI process). Any write to the file through the kernel changes the stamp (ctime, which no tool can set back), and
//! a stamp is only recorded once it is [`FileStamp::settled`], so that a write in the same clock tick as the check
//! cannot hide behind an equal timestamp; then the checksum is checked again. What the stamp cannot see is corruption
//! below the file system (a failing disk returning other bytes for an unchanged file), which the same stamp
//! rule also leaves unseen for the plugin files and for danm's own binaries.
//! Entry `<key>.meta.json` = the plugin's [`crate::PluginInfo`] facts (world, version, NetworkTypes, describe()) and
//! the artefact's checksum.
//! `index.json` = for each plugin path: its [`FileStamp`], sha256 and metadata (per engine configuration), so a process whose plugin
//! files are unchanged reads one small file instead of hashing every plugin and reading every metadata entry. Only
//! settled stamps are recorded, as for the artefacts: a plugin file changed less than 2 s ago is hashed again.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) use danm_core::stamp::FileStamp;

use crate::{BackendInfo, PluginError, PluginKind};

/// Cached facts of a plugin that passed every load check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub key: String,
    pub kind: PluginKind,
    pub version: String,
    pub network_types: Vec<String>,
    pub backend: Option<BackendInfo>,
    /// CRC32 of `<key>.cwasm` as written; `None` (unknown) means the artefact is not trusted and gets recompiled.
    #[serde(default)]
    pub cwasm_crc32: Option<u32>,
    /// The stamp `<key>.cwasm` had when it last matched `cwasm_crc32` (only a settled one is recorded).
    #[serde(default)]
    pub cwasm_stamp: Option<FileStamp>,
}

/// A cached component, and the stamp to record when this load checked its checksum and the stamp is settled.
pub(crate) struct Loaded {
    pub component: Component,
    pub verified: Option<FileStamp>,
}

/// The file of entry `key` (`cwasm` or `meta.json`) in cache directory `dir`.
pub(crate) fn entry_path(dir: &Path, key: &str, ext: &str) -> PathBuf {
    dir.join(format!("{key}.{ext}"))
}

/// Whether a cache directory holds a plugin's precompiled artefact, as an operator reads it (see
/// [`crate::PluginSet::cache_state`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheState {
    /// The artefact and its metadata are there for this engine configuration: a load maps it instead of compiling.
    Precompiled,
    /// The cache directory exists but holds no usable entry for this plugin's content: the next load compiles it.
    NotPrecompiled,
    /// There is no cache directory (or it cannot be read).
    NoCache,
}

impl std::fmt::Display for CacheState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CacheState::Precompiled => "precompiled",
            CacheState::NotPrecompiled => "not precompiled",
            CacheState::NoCache => "no cache",
        })
    }
}

#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// Opens (creating it if needed) the cache directory and makes it root-only (0700).
    pub(crate) fn open(dir: &Path) -> Result<Cache, PluginError> {
        let err = |source| PluginError::Cache {
            dir: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(err)?;
        let mode = fs::metadata(dir).map_err(err)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        Ok(Cache { dir: dir.to_owned() })
    }

    fn path(&self, key: &str, ext: &str) -> PathBuf {
        entry_path(&self.dir, key, ext)
    }

    /// The cached component for `key`, if present and its checksum is `crc32`: checked unless the file still has
    /// the stamp `verified` it had when its checksum last matched.
    pub(crate) fn load_component(
        &self,
        engine: &Engine,
        key: &str,
        crc32: u32,
        verified: Option<&FileStamp>,
    ) -> Option<Loaded> {
        let path = self.path(key, "cwasm");
        // Only entries this user wrote are mapped as code: one another user owns (planted, or left by another
        // install) is recompiled and replaced.
        if let Ok(m) = fs::metadata(&path) {
            let me = nix::unistd::geteuid().as_raw();
            if std::os::unix::fs::MetadataExt::uid(&m) != me {
                tracing::warn!(file = %path.display(), owner = std::os::unix::fs::MetadataExt::uid(&m), uid = me,
                    "ignoring a plugin cache entry another user owns");
                return None;
            }
        }
        let unchanged = verified.is_some_and(|v| fs::metadata(&path).is_ok_and(|m| FileStamp::of(&m) == *v));
        let mut newly = None;
        if !unchanged {
            match verify(&path, crc32) {
                Ok(stamp) => newly = stamp.settled().then_some(stamp),
                Err(why) => {
                    if why.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(file = %path.display(), "ignoring corrupt plugin cache entry: {why}");
                    }
                    return None;
                }
            }
        }
        // SAFETY: `Component::deserialize_file` maps native code without being able to verify it. The file is in our
        // own cache directory (created 0700, root-only), was written there by `store_component` from
        // `Component::serialize` of this very engine configuration (the key includes the engine's compatibility
        // hash), entries are only ever replaced by atomic rename (never modified in place, so the mapped file is the
        // one checked), and its bytes have been checked against the checksum recorded when they were written, just
        // now or, when the file still has the settled stamp it had then, in an earlier load (see the module
        // documentation); wasmtime then checks the header and the engine settings it records. A truncated, corrupted or
        // foreign file fails those checks and is recompiled instead.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(engine, &path) };
        match component {
            Ok(component) => Some(Loaded {
                component,
                verified: newly,
            }),
            Err(e) => {
                tracing::warn!(file = %path.display(), "ignoring unusable plugin cache entry: {e:#}");
                None
            }
        }
    }

    /// Writes a compiled component and returns its checksum (best effort: a failed write only costs a recompilation
    /// next time).
    pub(crate) fn store_component(&self, key: &str, payload: &[u8]) -> u32 {
        if let Err(e) = self.write_atomic(&self.path(key, "cwasm"), payload) {
            tracing::warn!(dir = %self.dir.display(), "cannot write plugin cache entry: {e}");
        }
        crc32fast::hash(payload)
    }

    pub(crate) fn load_meta(&self, key: &str) -> Option<Meta> {
        let bytes = fs::read(self.path(key, "meta.json")).ok()?;
        serde_json::from_slice::<Meta>(&bytes)
            .ok()
            .filter(|m| m.key == key)
    }

    pub(crate) fn store_meta(&self, meta: &Meta) {
        let res = serde_json::to_vec(meta)
            .map_err(std::io::Error::other)
            .and_then(|b| self.write_atomic(&self.path(&meta.key, "meta.json"), &b));
        if let Err(e) = res {
            tracing::warn!(dir = %self.dir.display(), "cannot write plugin cache metadata: {e}");
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry")
        ));
        let res = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode_0600()
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }
}

/// Checks that the CRC32 of `path` is `expected`, reading it through a small buffer (no copy of the whole file:
/// wasmtime maps it afterwards and checks its header and engine settings itself); returns the stamp of the file
/// checked.
fn verify(path: &Path, expected: u32) -> std::io::Result<FileStamp> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let stamp = FileStamp::of(&f.metadata()?);
    let mut buf = vec![0u8; 32 << 10];
    let mut h = crc32fast::Hasher::new();
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if h.finalize() != expected {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "checksum mismatch",
        ));
    }
    Ok(stamp)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// What the cache remembers about one plugin path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    pub stamp: FileStamp,
    pub sha256: String,
    /// The plugin's metadata under each engine configuration that loaded it (`Meta::key` names the engine).
    pub metas: Vec<Meta>,
}

impl IndexEntry {
    pub(crate) fn meta(&self, key: &str) -> Option<&Meta> {
        self.metas.iter().find(|m| m.key == key)
    }
}

/// Remembered digests and metadata of plugin files, by path (`index.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Index {
    pub files: std::collections::BTreeMap<PathBuf, IndexEntry>,
}

impl Index {
    /// The entry of `path` if the file still has the stamp it had when it was hashed.
    pub(crate) fn get(&self, path: &Path, stamp: &FileStamp) -> Option<&IndexEntry> {
        self.files.get(path).filter(|e| &e.stamp == stamp)
    }
}

impl Cache {
    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    pub(crate) fn load_index(&self) -> Index {
        fs::read(self.index_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(crate) fn store_index(&self, index: &Index) {
        let res = serde_json::to_vec(index)
            .map_err(std::io::Error::other)
            .and_then(|b| self.write_atomic(&self.index_path(), &b));
        if let Err(e) = res {
            tracing::warn!(dir = %self.dir.display(), "cannot write the plugin index: {e}");
        }
    }

    /// Records in the index that `file`'s artefact for engine key `key` matched its checksum with stamp `stamp`.
    pub(crate) fn remember_verified(&self, file: &Path, key: &str, stamp: &FileStamp) {
        let mut index = self.load_index();
        let Some(meta) = index
            .files
            .get_mut(file)
            .and_then(|e| e.metas.iter_mut().find(|m| m.key == key))
        else {
            return;
        };
        meta.cwasm_stamp = Some(stamp.clone());
        self.store_index(&index);
    }

    /// Forgets the index (after an artefact was rewritten with a new checksum); the next load rebuilds it from the
    /// metadata entries.
    pub(crate) fn drop_index(&self) {
        let _ = fs::remove_file(self.index_path());
    }
}
