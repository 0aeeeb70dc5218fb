//! Backend translation: a network plus danm's allocations become a CNI config (the WASI backend plugins of
//! `danm_wasm`), behind a small trait so the flows are unit-tested without plugins.

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
    fn translate(&self, network_type: &str, req: &TranslateRequest) -> Result<String, String>;
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

    fn translate(&self, network_type: &str, req: &TranslateRequest) -> Result<String, String> {
        self.translate_as(network_type, req).map_err(|e| e.to_string())
    }
}
