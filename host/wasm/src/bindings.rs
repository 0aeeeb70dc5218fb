//! Host bindings, one module per supported `danm:plugin` version. A frozen WIT version never changes; a new one gets
//! a new module here and the plugin code converts each version's types to the host's domain types.

pub mod v0_1_0;
