//! `danmctl`: offline operator commands on files (IPAM, plugins).

fn main() {}
