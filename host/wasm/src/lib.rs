//! The plugin runtime: finds, checks, precompiles, instantiates and calls the WASI backend and rules plugins.
//!
//! A [`PluginSet`] is loaded from a directory of `.wasm` components (default [`DEFAULT_PLUGIN_DIR`]). Each component's
//! `danm:plugin` version is checked against the versions this host has bindings for ([`SUPPORTED_VERSIONS`]); its
//! world says whether it is a backend (serving NetworkTypes) or the rules plugin. Compiled artefacts are cached on
//! disk (keyed by the file's sha256 and the engine's compatibility hash), so a short-lived CNI process deserialises
//! instead of compiling. Every call runs in a fresh instance from an `InstancePre`, with an epoch deadline, a memory
//! cap, an output cap and no WASI capabilities; the guest's stderr is captured into the error.
//!
//! The host never looks at a NetworkType's name: everything it knows about a backend comes from the plugin.
//!
//! ```no_run
//! use danm_wasm::{PluginSet, RuntimeConfig, TranslateRequest};
//!
//! let set = PluginSet::load(RuntimeConfig::with_plugin_dir("/etc/danm/plugins")).unwrap();
//! assert!(set.serves("macvlan"));
//! let config = set
//!     .translate(&TranslateRequest {
//!         network_json: r#"{"kind":"DanmNet","metadata":{"name":"ext"},
//!             "spec":{"NetworkType":"macvlan","Options":{"host_device":"ens1"}}}"#.into(),
//!         interface_name: "eth1".into(),
//!         ip4: Some("10.0.0.5/24".into()),
//!         cni_version: "1.0.0".into(),
//!         ..TranslateRequest::default()
//!     })
//!     .unwrap();
//! println!("{config}"); // a macvlan CNI config with danm's fakeipam block
//! ```

// Feature `runtime` (default): everything that loads and runs plugins (wasmtime). Without it only the pure parts
// build: the domain types and `output`, what the fuzz targets need without compiling a wasm engine.
#[cfg(feature = "runtime")]
mod bindings;
#[cfg(feature = "runtime")]
mod cache;
#[cfg(feature = "runtime")]
mod config;
#[cfg(feature = "runtime")]
mod engine;
#[cfg(feature = "runtime")]
mod epoch;
#[cfg(feature = "runtime")]
mod error;
pub mod output;
#[cfg(feature = "runtime")]
mod plugin;
#[cfg(feature = "runtime")]
mod set;
mod types;

#[cfg(feature = "runtime")]
pub use cache::CacheState;
#[cfg(feature = "runtime")]
pub use config::{DEFAULT_CACHE_DIR, DEFAULT_PLUGIN_DIR, RuntimeConfig};
#[cfg(feature = "runtime")]
pub use epoch::EpochClock;
#[cfg(feature = "runtime")]
pub use error::{CallSite, PluginError};
#[cfg(feature = "runtime")]
pub use plugin::{PluginInfo, PluginKind};
#[cfg(feature = "runtime")]
pub use set::{LoadReport, PluginSet};
pub use types::{BackendInfo, Operation, Review, TranslateRequest, Violation};

/// The `danm:plugin` package versions this host has bindings for, newest first.
#[cfg(feature = "runtime")]
pub const SUPPORTED_VERSIONS: &[&str] = &[bindings::v0_1_0::VERSION];
