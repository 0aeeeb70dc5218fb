//! [`Validator`] over `danm-wasm`: the rules plugin and the backend plugins of the plugin directory, the very `.wasm`
//! files the CNI loads. The directory is re-scanned periodically and reloaded when its files change.

use std::path::Path;
use std::sync::PoisonError;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use danm_wasm::{PluginSet, RuntimeConfig};

use super::{PluginError, RulesReview, Validator, Violation};
use crate::review::Operation;

/// The plugins of one directory.
pub struct WasmValidator {
    set: RwLock<PluginSet>,
}

impl std::fmt::Debug for WasmValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn err(e: danm_wasm::PluginError) -> PluginError {
    let plugin = e
        .file()
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "plugin runtime".to_owned());
    PluginError {
        plugin,
        message: e.to_string(),
    }
}

fn op(o: Operation) -> danm_wasm::Operation {
    match o {
        Operation::Update => danm_wasm::Operation::Update,
        Operation::Delete => danm_wasm::Operation::Delete,
        _ => danm_wasm::Operation::Create,
    }
}

/// Calls one plugin instance serves in the long-lived server before a fresh one replaces it.
pub const REUSE_INSTANCE_CALLS: u32 = 1000;

impl WasmValidator {
    /// Loads `config.plugin_dir`. Fails when the directory cannot be read or holds no rules plugin; a broken
    /// backend plugin is logged and its types stay unserved.
    pub fn load(config: RuntimeConfig) -> Result<Self, PluginError> {
        let dir = config.plugin_dir.clone();
        let set = PluginSet::load(config).map_err(err)?;
        for e in set.errors() {
            tracing::warn!(error = %e, "plugin not loaded");
        }
        if !set.plugins().any(|p| p.kind == danm_wasm::PluginKind::Rules) {
            return Err(PluginError {
                plugin: dir.display().to_string(),
                message: format!(
                    "no rules plugin in {} (build and stage the plugins: `make guests`)",
                    dir.display()
                ),
            });
        }
        Ok(WasmValidator {
            set: RwLock::new(set),
        })
    }

    /// Loads with the defaults for a long-lived host (`long_lived`): the pooling allocator and instances reused
    /// for up to [`REUSE_INSTANCE_CALLS`] calls (instantiation dominates a rule check); compiled artefacts kept in
    /// memory (or in `cache_dir`). The one-shot `review` command passes `false` and runs every call fresh.
    pub fn load_dir(dir: &Path, cache_dir: Option<&Path>, long_lived: bool) -> Result<Self, PluginError> {
        let config = RuntimeConfig {
            cache_dir: cache_dir.map(Path::to_owned),
            pooling: long_lived,
            reuse_instance_calls: if long_lived { REUSE_INSTANCE_CALLS } else { 0 },
            ..RuntimeConfig::with_plugin_dir(dir)
        };
        Self::load(config)
    }

    /// Reloads when the directory's `.wasm` files changed. Returns whether it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, PluginError> {
        let mut set = self.set.write().unwrap_or_else(PoisonError::into_inner);
        let reloaded = set.reload_if_changed().map_err(err)?;
        if reloaded {
            for e in set.errors() {
                tracing::warn!(error = %e, "plugin not loaded");
            }
            tracing::info!(types = ?set.network_types(), opened = ?set.opened(), "plugins reloaded");
        }
        Ok(reloaded)
    }

    /// Checks the directory every `every` on a blocking thread.
    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let me = Arc::clone(&me);
                match tokio::task::spawn_blocking(move || me.reload_if_changed()).await {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "plugin reload failed; keeping the loaded plugins")
                    }
                    Err(e) => tracing::warn!(error = %e, "plugin reload task failed"),
                    Ok(Ok(_)) => {}
                }
            }
        })
    }

    /// Problems found while loading (broken plugins, NetworkTypes claimed twice, two rules plugins).
    pub fn load_errors(&self) -> Vec<String> {
        self.read().errors().iter().map(ToString::to_string).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, PluginSet> {
        self.set.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Validator for WasmValidator {
    fn dynamic_types(&self) -> Vec<String> {
        self.read().network_types()
    }

    fn rules(&self, r: &RulesReview) -> Result<Vec<Violation>, PluginError> {
        let review = danm_wasm::Review {
            kind: r.kind.clone(),
            operation: op(r.operation),
            object_json: r.object_json.clone(),
            old_object_json: r.old_object_json.clone(),
            tenant_config_json: r.tenant_config_json.clone(),
            dynamic_types: Vec::new(),
        };
        self.read().review(&review).map_err(err)
    }

    fn backend(
        &self,
        network_type: &str,
        o: Operation,
        json: &str,
        old: Option<&str>,
    ) -> Result<Option<Vec<Violation>>, PluginError> {
        let set = self.read();
        if !set.serves(network_type) {
            return Ok(None);
        }
        set.validate_backend(network_type, op(o), json, old)
            .map(Some)
            .map_err(err)
    }

    fn describe(&self) -> String {
        let set = self.read();
        format!(
            "wasm plugins in {} (backends: {})",
            set.dir().display(),
            set.network_types().join(", ")
        )
    }
}
