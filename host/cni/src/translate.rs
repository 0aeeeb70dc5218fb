//! Backend translation: a network plus danm's allocations become a CNI config (the WASI backend plugins of
//! `danm_wasm`), behind a small trait so the flows are unit-tested without plugins; and [`Loading`], the plugin
//! set being loaded on its own thread while an invocation already talks to the API server.

use danm_api::validation::Violation;
use std::sync::PoisonError;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

pub use danm_wasm::TranslateRequest;

/// What the flows need from the backend plugins.
pub trait Translator: Send + Sync {
    /// Whether a backend plugin serves `network_type` (lower-case).
    fn serves(&self, network_type: &str) -> bool;
    /// Whether the backend asks for danm's IPAM.
    fn needs_ipam(&self, network_type: &str) -> bool;
    /// Whether the backend needs a device from the network's device pool.
    fn needs_device_pool(&self, network_type: &str) -> bool;
    /// The CNI config for one attachment.
    fn translate(&self, network_type: &str, req: &TranslateRequest) -> Result<String, TranslateError>;
    /// The backend's rules for a network object (the webhook runs the same ones).
    fn validate(&self, network_type: &str, network_json: &str) -> Result<Vec<Violation>, TranslateError>;
    /// Gets the backend of `network_type` ready ahead of [`Self::translate`] (blocking; run it on a spare thread).
    fn prepare(&self, _network_type: &str) {}
    /// Whether the plugins are usable; `Err` says why not (the flows ask before relying on [`Self::serves`]).
    fn ready(&self) -> Result<(), TranslateError> {
        Ok(())
    }
}

/// Why the backend plugins could not answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TranslateError {
    /// A plugin call failed (no backend for the type, a trap, the deadline, bad output, a wrong WIT version).
    #[error(transparent)]
    Plugin(Arc<danm_wasm::PluginError>),
    /// The plugin set could not be loaded.
    #[error("the plugin set could not be loaded: {0}")]
    NotLoaded(Arc<danm_wasm::PluginError>),
    #[error("loading the plugins did not finish within the invocation's deadline")]
    LoadDeadline,
    #[error("the plugin loader thread ended without an answer")]
    LoaderGone,
    #[error("the plugins are being loaded by another caller that gave up")]
    LoadAbandoned,
    #[error("the plugin call's thread panicked")]
    Panicked,
}

impl From<danm_wasm::PluginError> for TranslateError {
    fn from(e: danm_wasm::PluginError) -> Self {
        TranslateError::Plugin(Arc::new(e))
    }
}

/// The outcome of loading the plugin set.
pub type Loaded = Result<Arc<dyn Translator>, TranslateError>;

/// A plugin set that a plain thread is loading (loading is synchronous: directory scan, cache index, engine). The
/// first use waits for it, at most until the invocation's deadline; a set that failed to load or came too late
/// serves nothing and says why through [`Translator::ready`].
pub struct Loading {
    loaded: OnceLock<Loaded>,
    /// Where the set comes from, taken by the first use.
    source: Mutex<Option<Source>>,
    deadline: Instant,
}

/// How a [`Loading`] gets its set.
enum Source {
    /// A thread started by [`Loading::start`] is loading it.
    Thread(Receiver<Loaded>),
    /// Not started ([`Loading::deferred`]): the first use loads it.
    Deferred(Box<dyn FnOnce() -> Loaded + Send>),
}

impl Loading {
    /// Starts `load` on its own thread.
    pub fn start(load: impl FnOnce() -> Loaded + Send + 'static, deadline: Instant) -> Loading {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(load());
        });
        Loading::from(Source::Thread(rx), deadline)
    }

    /// A set loaded only if something asks for it (DEL of host-made interfaces needs no plugin).
    pub fn deferred(load: impl FnOnce() -> Loaded + Send + 'static, deadline: Instant) -> Loading {
        Loading::from(Source::Deferred(Box::new(load)), deadline)
    }

    fn from(source: Source, deadline: Instant) -> Loading {
        Loading {
            loaded: OnceLock::new(),
            source: Mutex::new(Some(source)),
            deadline,
        }
    }

    fn get(&self) -> &Loaded {
        self.loaded.get_or_init(
            || match self.source.lock().unwrap_or_else(PoisonError::into_inner).take() {
                Some(Source::Deferred(load)) => load(),
                Some(Source::Thread(rx)) => {
                    match rx.recv_timeout(self.deadline.saturating_duration_since(Instant::now())) {
                        Ok(loaded) => loaded,
                        Err(RecvTimeoutError::Timeout) => Err(TranslateError::LoadDeadline),
                        Err(RecvTimeoutError::Disconnected) => Err(TranslateError::LoaderGone),
                    }
                }
                None => Err(TranslateError::LoadAbandoned),
            },
        )
    }
}

impl Translator for Loading {
    fn serves(&self, network_type: &str) -> bool {
        self.get().as_ref().is_ok_and(|t| t.serves(network_type))
    }

    fn needs_ipam(&self, network_type: &str) -> bool {
        self.get().as_ref().is_ok_and(|t| t.needs_ipam(network_type))
    }

    fn needs_device_pool(&self, network_type: &str) -> bool {
        self.get()
            .as_ref()
            .is_ok_and(|t| t.needs_device_pool(network_type))
    }

    fn translate(&self, network_type: &str, req: &TranslateRequest) -> Result<String, TranslateError> {
        match self.get() {
            Ok(t) => t.translate(network_type, req),
            Err(e) => Err(e.clone()),
        }
    }

    fn validate(&self, network_type: &str, network_json: &str) -> Result<Vec<Violation>, TranslateError> {
        match self.get() {
            Ok(t) => t.validate(network_type, network_json),
            Err(e) => Err(e.clone()),
        }
    }

    fn prepare(&self, network_type: &str) {
        if let Ok(t) = self.get() {
            t.prepare(network_type);
        }
    }

    fn ready(&self) -> Result<(), TranslateError> {
        self.get().as_ref().map(|_| ()).map_err(Clone::clone)
    }
}

impl Translator for danm_wasm::PluginSet {
    fn serves(&self, network_type: &str) -> bool {
        danm_wasm::PluginSet::serves(self, network_type)
    }

    fn needs_ipam(&self, network_type: &str) -> bool {
        self.backend_info(network_type).is_some_and(|i| i.needs_ipam)
    }

    fn needs_device_pool(&self, network_type: &str) -> bool {
        self.backend_info(network_type)
            .is_some_and(|i| i.needs_device_pool)
    }

    fn translate(&self, network_type: &str, req: &TranslateRequest) -> Result<String, TranslateError> {
        Ok(self.translate_as(network_type, req)?)
    }

    fn validate(&self, network_type: &str, network_json: &str) -> Result<Vec<Violation>, TranslateError> {
        Ok(self.validate_backend(network_type, danm_wasm::Operation::Create, network_json, None)?)
    }

    fn prepare(&self, network_type: &str) {
        // A failure here is met again, and reported, by the translation itself.
        let _ = danm_wasm::PluginSet::prepare(self, network_type);
    }
}
