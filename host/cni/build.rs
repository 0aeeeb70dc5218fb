//! Link options of the `danm` and `fakeipam` executables.
//!
//! They are linked as position-dependent executables (`-no-pie`), as Debian's reference CNI plugins are. kubelet
//! executes them once per pod and verb, and a position-independent `danm` spends ~0.9 ms of every start applying
//! its ~67 000 relative relocations (each touched page of `.data.rel.ro` a copy-on-write fault; measured on this
//! machine: `CNI_COMMAND=VERSION` median 3.0 ms PIE vs 2.1 ms non-PIE, Debian's macvlan 3.5 ms). The code is
//! still compiled position-independent, so only the executable's own base address is fixed; libraries, heap,
//! stacks and the plugins' compiled code stay randomised.

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
