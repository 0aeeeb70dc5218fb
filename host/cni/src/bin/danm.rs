//! danm: the CNI metaplugin binary (thin: parse, run, print).

fn main() {}
