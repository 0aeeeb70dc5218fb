//! Runtime settings: where plugins and the compiled cache live, and the limits every call runs under.

use std::path::PathBuf;
use std::time::Duration;

/// Where nodes keep plugins.
pub use danm_api::DEFAULT_PLUGIN_DIR;
/// Where compiled artefacts are cached (root-only).
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/danm/plugins";

/// Settings of a [`crate::PluginSet`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Directory scanned for `*.wasm` components (not recursive).
    pub plugin_dir: PathBuf,
    /// On-disk cache of compiled artefacts; `None` compiles in memory on every load.
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock deadline of one call (epoch interruption).
    pub timeout: Duration,
    /// Epoch tick; the deadline is rounded up to whole ticks.
    pub tick: Duration,
    /// What advances the epoch: a ticker thread (default), or a timer armed per call (short-lived processes).
    pub epoch_clock: crate::EpochClock,
    /// Linear-memory cap per call.
    pub memory_limit: usize,
    /// Largest accepted result (a CNI config, or the violations' total text).
    pub output_limit: usize,
    /// Bytes of guest stderr kept for error messages.
    pub stderr_limit: usize,
    /// Optional fuel per call (deterministic instruction budget, on top of the deadline).
    pub fuel: Option<u64>,
    /// Use wasmtime's pooling allocator (long-lived hosts: the webhook). Short-lived processes leave it off.
    pub pooling: bool,
    /// 0 (default): every call runs in a fresh instance. N > 0: an instance serves up to N calls before it is
    /// dropped (long-lived hosts, to skip instantiation; plugins are pure functions, every call still gets a full
    /// deadline and fuel, the memory cap bounds what an instance can accumulate, and an instance whose call failed
    /// is discarded).
    pub reuse_instance_calls: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            plugin_dir: PathBuf::from(DEFAULT_PLUGIN_DIR),
            cache_dir: Some(PathBuf::from(DEFAULT_CACHE_DIR)),
            timeout: Duration::from_millis(500),
            tick: Duration::from_millis(10),
            epoch_clock: crate::EpochClock::Thread,
            memory_limit: 64 << 20,
            output_limit: 1 << 20,
            stderr_limit: 16 << 10,
            fuel: None,
            pooling: false,
            reuse_instance_calls: 0,
        }
    }
}

impl RuntimeConfig {
    /// Defaults with another plugin directory.
    pub fn with_plugin_dir(dir: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            plugin_dir: dir.into(),
            ..RuntimeConfig::default()
        }
    }

    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        (self.timeout.as_nanos().div_ceil(tick)).max(1) as u64
    }
}
