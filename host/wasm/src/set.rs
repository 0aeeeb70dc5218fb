//! The set of plugins loaded from one directory: the NetworkType → backend registry, the rules plugin, the calls
//! the CNI and the webhook make, and reloading when the directory changes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::{Cache, FileStamp, Index, IndexEntry};
use crate::engine::Runtime;
use crate::output::network_type_of;
use crate::plugin::Plugin;
use crate::{
    BackendInfo, Operation, PluginError, PluginInfo, PluginKind, Review, RuntimeConfig, TranslateRequest,
    Violation,
};

/// Per-plugin problems found while loading; the healthy plugins are still usable.
pub type LoadReport = Vec<PluginError>;

/// Plugins of one directory, ready to call. `Send + Sync`: calls may run concurrently.
pub struct PluginSet {
    rt: Arc<Runtime>,
    cache: Option<Cache>,
    plugins: Vec<Plugin>,
    by_type: BTreeMap<String, usize>,
    /// Types claimed by more than one plugin: served by none, the error names both files.
    conflicts: BTreeMap<String, (PathBuf, PathBuf)>,
    rules: Option<usize>,
    errors: LoadReport,
    fingerprint: Vec<(PathBuf, FileStamp)>,
    /// Files whose stamp was settled when this set opened them: a reload may keep their plugins while the stamp is
    /// unchanged (a file changed within the clock step of the load could keep its stamp).
    settled: BTreeSet<PathBuf>,
    /// The files this set opened itself (identified, compiled or loaded from the cache); the others were kept, already
    /// compiled, from the set it reloaded.
    opened: Vec<PathBuf>,
    /// `network_types()`, kept for the reviews that leave `dynamic_types` empty.
    dynamic: std::sync::OnceLock<Vec<String>>,
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSet")
            .field("dir", &self.rt.config.plugin_dir)
            .field(
                "plugins",
                &self.plugins.iter().map(|p| &p.info.file).collect::<Vec<_>>(),
            )
            .field("errors", &self.errors.len())
            .finish()
    }
}

impl PluginSet {
    /// Loads every `*.wasm` of `config.plugin_dir`. Fails only when the directory, the cache or the engine cannot be
    /// set up; a broken plugin, a WIT version mismatch or a duplicate NetworkType is recorded in [`Self::errors`].
    pub fn load(config: RuntimeConfig) -> Result<PluginSet, PluginError> {
        let rt = Runtime::new(config).map_err(|message| PluginError::Engine { message })?;
        Self::load_with(Arc::new(rt))
    }

    /// Like [`Self::load`], but any per-plugin problem is an error (the CNI uses this: a node with a broken plugin
    /// directory should fail loudly).
    pub fn load_strict(config: RuntimeConfig) -> Result<PluginSet, PluginError> {
        let mut set = Self::load(config)?;
        match set.errors.is_empty() {
            true => Ok(set),
            false => Err(set.errors.remove(0)),
        }
    }

    fn load_with(rt: Arc<Runtime>) -> Result<PluginSet, PluginError> {
        let cache = rt.config.cache_dir.as_deref().map(Cache::open).transpose()?;
        let fingerprint = scan(&rt.config.plugin_dir)?;
        let index = cache.as_ref().map(Cache::load_index).unwrap_or_default();
        Ok(Self::assemble(rt, cache, fingerprint, index, BTreeMap::new()))
    }

    /// Opens every scanned file (from the index when its stamp is unchanged) and builds the registry. A file found
    /// in `keep` with the stamp it has now gets that plugin, already compiled, instead of being opened again.
    fn assemble(
        rt: Arc<Runtime>,
        cache: Option<Cache>,
        fingerprint: Vec<(PathBuf, FileStamp)>,
        index: Index,
        mut keep: BTreeMap<PathBuf, (FileStamp, Plugin)>,
    ) -> PluginSet {
        let mut set = PluginSet {
            rt,
            cache,
            plugins: Vec::new(),
            by_type: BTreeMap::new(),
            conflicts: BTreeMap::new(),
            rules: None,
            errors: Vec::new(),
            fingerprint: Vec::new(),
            settled: BTreeSet::new(),
            opened: Vec::new(),
            dynamic: std::sync::OnceLock::new(),
        };
        let mut new_index = Index::default();
        for (file, stamp) in &fingerprint {
            if stamp.settled() {
                set.settled.insert(file.clone());
            }
            let opened = match keep.remove(file) {
                Some((kept, plugin)) if kept == *stamp => Ok(plugin),
                _ => {
                    set.opened.push(file.clone());
                    let known = index.get(file, stamp);
                    Plugin::open(&set.rt, set.cache.as_ref(), file, known)
                }
            };
            match opened {
                Ok(p) => {
                    let meta = p.meta();
                    // Keep what other engine configurations recorded for the same content.
                    let mut metas: Vec<_> = index
                        .files
                        .get(file)
                        .filter(|e| e.sha256 == p.info.sha256)
                        .map(|e| e.metas.iter().filter(|m| m.key != meta.key).cloned().collect())
                        .unwrap_or_default();
                    metas.push(meta);
                    // Only a settled stamp tells the hashed content apart from a rewrite in the same clock tick
                    // (see `FileStamp::settled`); a file changed less than 2 s ago is hashed again next time.
                    if stamp.settled() {
                        new_index.files.insert(
                            file.clone(),
                            IndexEntry {
                                stamp: stamp.clone(),
                                sha256: p.info.sha256.clone(),
                                metas,
                            },
                        );
                    }
                    set.register(p)
                }
                Err(e) => set.errors.push(e),
            }
        }
        if let Some(cache) = &set.cache
            && new_index != index
        {
            cache.store_index(&new_index);
        }
        set.fingerprint = fingerprint;
        set
    }

    fn register(&mut self, plugin: Plugin) {
        let idx = self.plugins.len();
        match plugin.info.kind {
            PluginKind::Rules => match self.rules {
                Some(first) => {
                    self.errors.push(PluginError::DuplicateRules {
                        first: self.plugins[first].info.file.clone(),
                        second: plugin.info.file.clone(),
                    });
                    return;
                }
                None => self.rules = Some(idx),
            },
            PluginKind::Backend => {
                for ty in &plugin.info.network_types {
                    let first = match (self.conflicts.get(ty), self.by_type.get(ty)) {
                        (Some((first, _)), _) => Some(first.clone()),
                        (None, Some(&i)) => Some(self.plugins[i].info.file.clone()),
                        (None, None) => None,
                    };
                    match first {
                        Some(first) => {
                            self.by_type.remove(ty);
                            self.errors.push(PluginError::DuplicateType {
                                network_type: ty.clone(),
                                first: first.clone(),
                                second: plugin.info.file.clone(),
                            });
                            self.conflicts
                                .entry(ty.clone())
                                .or_insert((first, plugin.info.file.clone()));
                        }
                        None => {
                            self.by_type.insert(ty.clone(), idx);
                        }
                    }
                }
            }
        }
        self.plugins.push(plugin);
    }

    /// Per-plugin load problems.
    pub fn errors(&self) -> &[PluginError] {
        &self.errors
    }

    /// The plugin directory.
    pub fn dir(&self) -> &Path {
        &self.rt.config.plugin_dir
    }

    /// The runtime settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.rt.config
    }

    /// What advances the epoch of this set's calls: [`crate::EpochClock::CallTimer`] only if the set owns the
    /// process's call-timer signal and no timer has failed (then a ticker thread took over).
    pub fn epoch_clock(&self) -> crate::EpochClock {
        self.rt.clock.kind()
    }

    /// Whether `cache_dir` holds this engine configuration's precompiled artefact of `plugin` (its `.cwasm` and
    /// metadata entries for the plugin's sha256). Only looks: nothing is created, checked or compiled, so an operator
    /// may ask about a cache they cannot write (an entry that fails its checksum still counts here; a load would
    /// recompile it).
    pub fn cache_state(&self, plugin: &PluginInfo, cache_dir: &Path) -> crate::cache::CacheState {
        use crate::cache::{CacheState, entry_path};
        if !cache_dir.is_dir() {
            return CacheState::NoCache;
        }
        let key = format!("{}-{}", plugin.sha256, self.rt.engine_hash);
        let present = ["cwasm", "meta.json"]
            .iter()
            .all(|ext| entry_path(cache_dir, &key, ext).is_file());
        if present {
            CacheState::Precompiled
        } else {
            CacheState::NotPrecompiled
        }
    }

    /// Every loaded plugin (including those whose types conflict).
    pub fn plugins(&self) -> impl Iterator<Item = &PluginInfo> {
        self.plugins.iter().map(|p| &p.info)
    }

    /// NetworkTypes served by exactly one backend plugin (DANM's "dynamic" types), sorted.
    pub fn network_types(&self) -> Vec<String> {
        self.by_type.keys().cloned().collect()
    }

    /// Whether a backend plugin serves `network_type` (case-insensitive).
    pub fn serves(&self, network_type: &str) -> bool {
        self.by_type.contains_key(&network_type.to_ascii_lowercase())
    }

    /// The backend's `describe()` for a NetworkType.
    pub fn backend_info(&self, network_type: &str) -> Option<&BackendInfo> {
        let i = *self.by_type.get(&network_type.to_ascii_lowercase())?;
        self.plugins[i].info.backend.as_ref()
    }

    fn backend(&self, network_type: &str) -> Result<&Plugin, PluginError> {
        let ty = network_type.to_ascii_lowercase();
        if let Some((first, second)) = self.conflicts.get(&ty) {
            return Err(PluginError::DuplicateType {
                network_type: ty,
                first: first.clone(),
                second: second.clone(),
            });
        }
        match self.by_type.get(&ty) {
            Some(&i) => Ok(&self.plugins[i]),
            None => Err(PluginError::NoBackend {
                network_type: ty,
                dir: self.dir().to_owned(),
            }),
        }
    }

    /// Translates an attachment with the backend serving the network's NetworkType (empty = ipvlan, DANM's default).
    pub fn translate(&self, req: &TranslateRequest) -> Result<String, PluginError> {
        let ty = network_type_of(&req.network_json);
        self.backend(&ty)?.translate(&self.rt, self.cache.as_ref(), req)
    }

    /// Makes the backend serving `network_type` ready to instantiate (deserialised from the cache, or compiled, and
    /// pre-linked) without calling it. A one-shot host (the CNI) calls this on a spare thread as soon as it knows
    /// the types it will translate, so the first translation finds the work done.
    pub fn prepare(&self, network_type: &str) -> Result<(), PluginError> {
        self.backend(network_type)?.prepare(&self.rt, self.cache.as_ref())
    }

    /// Translates with the backend of an explicit NetworkType.
    pub fn translate_as(&self, network_type: &str, req: &TranslateRequest) -> Result<String, PluginError> {
        self.backend(network_type)?
            .translate(&self.rt, self.cache.as_ref(), req)
    }

    /// The backend rules for a network object of a served type.
    pub fn validate_backend(
        &self,
        network_type: &str,
        op: Operation,
        network_json: &str,
        old_network_json: Option<&str>,
    ) -> Result<Vec<Violation>, PluginError> {
        self.backend(network_type)?.validate(
            &self.rt,
            self.cache.as_ref(),
            op,
            network_json,
            old_network_json,
        )
    }

    /// DANM's API-level rules (the rules plugin). An empty `dynamic_types` is filled with [`Self::network_types`].
    pub fn review(&self, review: &Review) -> Result<Vec<Violation>, PluginError> {
        let i = self.rules.ok_or_else(|| PluginError::NoRules {
            dir: self.dir().to_owned(),
        })?;
        let dynamic = if review.dynamic_types.is_empty() {
            self.dynamic.get_or_init(|| self.network_types())
        } else {
            &review.dynamic_types
        };
        self.plugins[i].review(&self.rt, self.cache.as_ref(), review, dynamic)
    }

    /// Everything the webhook checks for a network object in plugins: the rules plugin, then the backend serving its
    /// NetworkType (static types have no backend). Violations are returned in that order.
    pub fn validate_network(
        &self,
        kind: &str,
        op: Operation,
        network_json: Option<&str>,
        old_network_json: Option<&str>,
        tenant_config_json: Option<&str>,
    ) -> Result<Vec<Violation>, PluginError> {
        let mut out = self.review(&Review {
            kind: kind.to_owned(),
            operation: op,
            object_json: network_json.map(str::to_owned),
            old_object_json: old_network_json.map(str::to_owned),
            tenant_config_json: tenant_config_json.map(str::to_owned),
            dynamic_types: Vec::new(),
        })?;
        if let Some(json) = network_json.or(old_network_json) {
            let ty = network_type_of(json);
            if self.serves(&ty) {
                let old = if network_json.is_some() {
                    old_network_json
                } else {
                    None
                };
                out.extend(self.validate_backend(&ty, op, json, old)?);
            }
        }
        Ok(out)
    }

    /// Reloads the directory if its `*.wasm` files changed (names, sizes or mtimes). Returns whether it reloaded.
    /// Long-lived hosts (the webhook) call this periodically. A plugin whose file kept its settled stamp is kept as
    /// it is, compiled; only new and changed files are opened ([`Self::opened`]), so a plugin dropped into the
    /// directory costs its own compilation, not everyone's. On an error the set stays as it was.
    pub fn reload_if_changed(&mut self) -> Result<bool, PluginError> {
        let fingerprint = scan(&self.rt.config.plugin_dir)?;
        if fingerprint == self.fingerprint {
            return Ok(false);
        }
        let rt = self.rt.clone();
        let cache = rt.config.cache_dir.as_deref().map(Cache::open).transpose()?;
        let index = cache.as_ref().map(Cache::load_index).unwrap_or_default();
        let stamps: BTreeMap<PathBuf, FileStamp> =
            std::mem::take(&mut self.fingerprint).into_iter().collect();
        let mut keep = BTreeMap::new();
        for plugin in std::mem::take(&mut self.plugins) {
            let file = plugin.info.file.clone();
            if self.settled.contains(&file)
                && let Some(stamp) = stamps.get(&file)
            {
                keep.insert(file, (stamp.clone(), plugin));
            }
        }
        *self = Self::assemble(rt, cache, fingerprint, index, keep);
        Ok(true)
    }

    /// The files the last load or reload opened (identified, then compiled or loaded from the cache), in path order;
    /// after a reload, the plugins of the other files are the ones the set already had.
    pub fn opened(&self) -> &[PathBuf] {
        &self.opened
    }
}

/// `*.wasm` files of a directory with their stamps, sorted by path.
fn scan(dir: &Path) -> Result<Vec<(PathBuf, FileStamp)>, PluginError> {
    let err = |source| PluginError::Dir {
        dir: dir.to_owned(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let meta = std::fs::metadata(&path).map_err(err)?;
            if meta.is_file() {
                out.push((path, FileStamp::of(&meta)));
            }
        }
    }
    out.sort();
    Ok(out)
}
