//! The `danm` CNI metaplugin and `fakeipam`: the CNI edge, API access, IPAM over conditional writes, native and
//! delegated execution, post-processing, and the ADD/DEL/CHECK/STATUS/GC flows.

pub mod add;
pub mod api;
pub mod check;
pub mod context;
pub mod del;
pub mod delegate;
pub mod devices;
pub mod error;
pub mod events;
pub mod fakeipam;
pub mod gc;
pub mod ipam;
pub mod journal;
pub mod logging;
pub mod native;
pub mod npwg;
pub mod podresources;
pub mod post;
pub mod results;
pub mod rollback;
pub mod run;
pub mod teardown;
pub mod translate;
