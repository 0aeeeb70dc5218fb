//! Loading the validation plugins from the plugin directory (`DANM_PLUGIN_DIR`, default `/etc/danm/plugins`).

use std::path::Path;
use std::sync::Arc;

use crate::validator::{PluginError, WasmValidator};

/// The default plugin directory on nodes and in the webhook image.
pub const DEFAULT_PLUGIN_DIR: &str = danm_wasm::DEFAULT_PLUGIN_DIR;

/// Loads the rules plugin and the backend plugins of `dir` through the wasm runtime. `cache_dir` keeps compiled
/// artefacts across processes (useful for the short-lived `review` command); `long_lived` is the server.
pub fn load(
    dir: &Path,
    cache_dir: Option<&Path>,
    long_lived: bool,
) -> Result<Arc<WasmValidator>, PluginError> {
    WasmValidator::load_dir(dir, cache_dir, long_lived).map(Arc::new)
}

/// `$XDG_CACHE_HOME/danm/plugins` or `$HOME/.cache/danm/plugins`, when it can be created.
pub fn user_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    let dir = base.join("danm/plugins");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}
