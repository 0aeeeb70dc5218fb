//! Loading the validation plugins from the plugin directory (`DANM_PLUGIN_DIR`, default `/etc/danm/plugins`).

use std::path::Path;
use std::sync::Arc;

use crate::validator::{PluginError, Validator};

/// The default plugin directory on nodes and in the webhook image.
pub const DEFAULT_PLUGIN_DIR: &str = "/etc/danm/plugins";

/// Loads the rules plugin and the backend plugins of `dir`.
pub fn load(dir: &Path) -> Result<Arc<dyn Validator>, PluginError> {
    #[cfg(feature = "native-plugins")]
    {
        let _ = dir;
        Ok(Arc::new(crate::validator::NativeValidator))
    }
    #[cfg(not(feature = "native-plugins"))]
    {
        Err(PluginError {
            plugin: dir.display().to_string(),
            message: "the wasm plugin runtime is not wired yet".into(),
        })
    }
}
