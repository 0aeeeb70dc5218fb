//! The on-disk cache of compiled plugins and their metadata, keyed by the plugin file's sha256 and the engine's
//! precompile compatibility hash. Files are written by atomic rename into a 0700 directory; an entry that fails its
//! checksum or wasmtime's header check is ignored (and then recompiled and rewritten), never trusted.
//!
//! Entry `<key>.cwasm` = `DANMCWASM2 <crc32 of payload, 8 hex digits>\n` + the payload `Component::serialize`
//! produced. The checksum detects corruption (torn writes, disk errors, truncation); access control is the directory's
//! root-only mode. CRC32 rather than sha256 because it costs ~15 µs instead of ~500 µs on a 700 KB artefact, and the
//! short-lived CNI process pays it on every run.
//! Entry `<key>.meta.json` = the plugin's [`crate::PluginInfo`] facts (world, version, NetworkTypes, describe()).

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

use crate::{BackendInfo, PluginError, PluginKind};

const MAGIC: &[u8] = b"DANMCWASM2 ";

/// Cached facts of a plugin that passed every load check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub key: String,
    pub kind: PluginKind,
    pub version: String,
    pub network_types: Vec<String>,
    pub backend: Option<BackendInfo>,
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
        self.dir.join(format!("{key}.{ext}"))
    }

    /// The cached component for `key`, if present and intact.
    pub(crate) fn load_component(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.path(key, "cwasm");
        let bytes = fs::read(&path).ok()?;
        let payload = match verify(&bytes) {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!(file = %path.display(), "ignoring corrupt plugin cache entry: {why}");
                return None;
            }
        };
        // SAFETY: `Component::deserialize` maps native code without being able to verify it. The bytes come from
        // our own cache directory (created 0700, root-only), were written there by `store_component` from
        // `Component::serialize` of this very engine configuration (the key includes the engine's compatibility
        // hash), and have just been checked against the checksum recorded when they were written and against
        // wasmtime's own header check (`detect_precompiled`). A truncated, corrupted or foreign file fails those
        // checks and is recompiled instead.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, payload) };
        match component {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(file = %path.display(), "ignoring unusable plugin cache entry: {e:#}");
                None
            }
        }
    }

    /// Writes a compiled component (best effort: a failed write only costs a recompilation next time).
    pub(crate) fn store_component(&self, key: &str, payload: &[u8]) {
        let mut bytes = Vec::with_capacity(payload.len() + 80);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(crc32_hex(payload).as_bytes());
        bytes.push(b'\n');
        bytes.extend_from_slice(payload);
        if let Err(e) = self.write_atomic(&self.path(key, "cwasm"), &bytes) {
            tracing::warn!(dir = %self.dir.display(), "cannot write plugin cache entry: {e}");
        }
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

fn crc32_hex(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// Checks the header and checksum of a cache entry and returns its payload.
fn verify(bytes: &[u8]) -> Result<&[u8], &'static str> {
    let rest = bytes.strip_prefix(MAGIC).ok_or("bad magic")?;
    if rest.len() < 9 || rest[8] != b'\n' {
        return Err("truncated header");
    }
    let (sum, payload) = (&rest[..8], &rest[9..]);
    if crc32_hex(payload).as_bytes() != sum {
        return Err("checksum mismatch");
    }
    if Engine::detect_precompiled(payload) != Some(Precompiled::Component) {
        return Err("not a precompiled component");
    }
    Ok(payload)
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

/// What identifies a file's content without reading it (as git's index does): device, inode, size, mtime and ctime.
/// ctime cannot be set by user tools, so a rewrite that restores the mtime is still noticed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileStamp {
    pub(crate) fn of(meta: &fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// Remembered digests of plugin files, by path (`stat-index.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatIndex {
    pub files: std::collections::BTreeMap<PathBuf, (FileStamp, String)>,
}

impl StatIndex {
    pub(crate) fn sha256(&self, path: &Path, stamp: &FileStamp) -> Option<&str> {
        self.files
            .get(path)
            .filter(|(s, _)| s == stamp)
            .map(|(_, sha)| sha.as_str())
    }
}

impl Cache {
    pub(crate) fn load_index(&self) -> StatIndex {
        fs::read(self.dir.join("stat-index.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub(crate) fn store_index(&self, index: &StatIndex) {
        let res = serde_json::to_vec(index)
            .map_err(std::io::Error::other)
            .and_then(|b| self.write_atomic(&self.dir.join("stat-index.json"), &b));
        if let Err(e) = res {
            tracing::warn!(dir = %self.dir.display(), "cannot write the plugin stat index: {e}");
        }
    }
}
