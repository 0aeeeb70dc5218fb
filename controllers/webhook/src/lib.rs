//! danm's admission webhook: DANM's network and TenantConfig rules run through the `.wasm` plugins the CNI uses,
//! IPAM defaults, TenantNetwork profiles and VNI bookkeeping, and the guard against deleting networks in use.
//!
//! [`admit::Webhook`] holds the logic and is shared by the HTTPS server ([`server`]) and the offline `review`
//! command ([`offline`]). Cluster access goes through [`cluster::Cluster`]; the plugins through
//! [`validator::Validator`].

pub mod admit;
pub mod cluster;
// Feature `server` (default): the HTTPS server, its metrics, the kube cluster and the wasm plugins. Without it the
// admission logic builds alone (review decoding, judging, the in-memory cluster, the native validator with
// `native-plugins`): what the fuzz target drives, with no wasm engine or kube client.
#[cfg(feature = "server")]
pub mod metrics;
pub mod offline;
#[cfg(feature = "server")]
pub mod plugins;
pub mod review;
#[cfg(feature = "server")]
pub mod server;
pub mod validator;

pub use admit::{Endpoint, RetryPolicy, Webhook};
pub use review::{Review, ReviewError, Verdict};
