//! danm's admission webhook: DANM's network and TenantConfig rules run through the `.wasm` plugins the CNI uses,
//! IPAM defaults, TenantNetwork profiles and VNI bookkeeping, and the guard against deleting networks in use.
//!
//! [`admit::Webhook`] holds the logic and is shared by the HTTPS server ([`server`]) and the offline `review`
//! command ([`offline`]). Cluster access goes through [`cluster::Cluster`]; the plugins through
//! [`validator::Validator`].

pub mod admit;
pub mod cluster;
pub mod metrics;
pub mod offline;
pub mod plugins;
pub mod review;
pub mod server;
pub mod validator;

pub use admit::{Endpoint, RetryPolicy, Webhook};
pub use review::{Review, ReviewError, Verdict};
