//! The validation plugins as the webhook sees them: the rules plugin (DANM's API-level rules) and the backend plugin
//! of a network's type. The production implementation runs the `.wasm` files through `danm-wasm`, the same files the
//! CNI loads; tests may substitute their own.

use crate::review::Operation;

pub use danm_api::validation::Violation;

/// The rules plugin's request (WIT `rules.review`).
#[derive(Clone, Debug, PartialEq)]
pub struct RulesReview {
    pub kind: String,
    pub operation: Operation,
    pub object_json: Option<String>,
    pub old_object_json: Option<String>,
    pub tenant_config_json: Option<String>,
}

/// A plugin failed to run (trap, timeout, missing plugin): the request cannot be judged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("plugin {plugin} failed: {message}")]
pub struct PluginError {
    pub plugin: String,
    pub message: String,
}

/// The validation plugins.
pub trait Validator: Send + Sync {
    /// NetworkTypes served by backend plugins (lower-case): DANM's "dynamic" types.
    fn dynamic_types(&self) -> Vec<String>;
    /// Runs the rules plugin. `dynamic_types` is filled in by the implementation.
    fn rules(&self, review: &RulesReview) -> Result<Vec<Violation>, PluginError>;
    /// Runs the backend plugin serving `network_type` (compared lower-case); `Ok(None)` when no plugin serves it
    /// (a static delegate type, validated by the rules plugin alone).
    fn backend(
        &self,
        network_type: &str,
        op: Operation,
        object_json: &str,
        old_object_json: Option<&str>,
    ) -> Result<Option<Vec<Violation>>, PluginError>;
    /// Where the plugins come from, for logs and `/readyz`.
    fn describe(&self) -> String;
}

#[cfg(feature = "native-plugins")]
mod native;
#[cfg(feature = "server")]
mod wasm;
#[cfg(feature = "native-plugins")]
pub use native::NativeValidator;
#[cfg(feature = "server")]
pub use wasm::WasmValidator;
