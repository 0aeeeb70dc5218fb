//! The `danm` CNI metaplugin and `fakeipam`: CNI edge, API access, ADD/DEL/CHECK/STATUS/GC flows.

pub mod fakeipam;
pub mod wire;
