//! The guest SDK: what every danm plugin shares (violations, strict/lenient decoding, parent links, fakeipam blocks,
//! the backend and rules traits) and the macros that put a plain-Rust implementation behind the WIT glue.
//!
//! Plugins keep their logic in ordinary modules that are unit-tested natively; only the macros
//! [`backend_plugin!`] and [`rules_plugin!`] expand to `wit-bindgen` code, and only on `wasm32`.

#[cfg(any(target_arch = "wasm32", test))]
mod alloc;
mod backend;
mod cni;
mod decode;
mod glue;
mod link;
#[cfg(any(target_arch = "wasm32", test))]
mod memcmp;
mod violation;

pub use backend::{
    Backend, Info, check_device_pool_vs_host_device, check_link_backend, check_mode, check_mtu,
    check_network_id_length, link_backend_info,
};
pub use cni::{Attachment, CniConfig, TranslateError, fakeipam};
pub use decode::{
    Meta, NetworkDoc, network_to_translate, network_to_validate, parse_network, strict_decode,
    validate_network,
};
pub use link::{attachment_parent, parent_link};

/// The network spec a backend's checks receive (`spec` of DanmNet, TenantNetwork, ClusterNetwork, with DANM's keys),
/// re-exported so a plugin built outside danm's repository names it without depending on danm's API crate.
pub use danm_api::{NetworkOptions, NetworkSpec};

/// Every guest's allocator (see [`alloc`]); native builds keep the platform's.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::SizeClasses = alloc::SizeClasses::new();
pub use violation::{Operation, Violation};

/// The rules plugin's request, mirroring `danm:plugin/rules.review`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Review {
    pub kind: String,
    pub operation: Operation,
    pub object_json: Option<String>,
    pub old_object_json: Option<String>,
    pub tenant_config_json: Option<String>,
    /// NetworkTypes served by backend plugins (lower-case).
    pub dynamic_types: Vec<String>,
}

/// A rules plugin, exported with [`rules_plugin!`].
pub trait Rules {
    fn validate(review: Review) -> Vec<Violation>;
}

/// Re-exported for the glue macros.
#[doc(hidden)]
pub use danm_api as __api;
