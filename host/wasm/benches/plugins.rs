//! Benchmark of the plugin runtime (placeholder until written below).
fn main() {}
