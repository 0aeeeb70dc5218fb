//! Dev-only helpers the workspace's tests and benches share, so no test file carries its own copy: whether a
//! fixture is there ([`fixtures`]: root, the built plugins, the kernel lane, the rule that a run which must have them
//! fails instead of skipping), network namespaces made per test ([`netns`]), running commands and CNI plugins as a
//! runtime does ([`process`]), probing the kernel for link kinds ([`kernel`]) and a lab API server holding danm's
//! CRDs ([`lab`]).
//!
//! ```no_run
//! # async fn example() {
//! use danm_testkit::{fixtures, lab, netns::TestNs};
//! if !fixtures::root_or_skip("creating network namespaces") {
//!     return;
//! }
//! let ns = TestNs::new("example").expect("namespace");
//! let (server, client) = lab::with_crds().await;
//! # let _ = (ns, server, client);
//! # }
//! ```

pub mod fixtures;
pub mod kernel;
pub mod lab;
pub mod netns;
pub mod process;
