//! Link options of the `danm` and `fakeipam` executables.
//!
//! They are linked as position-dependent executables (`-no-pie`), as Debian's reference CNI plugins are. kubelet
//! executes them once per pod and verb, and a position-independent `danm` spends a large part of every start
//! applying its relative relocations (each touched page of `.data.rel.ro` a copy-on-write fault; figures in
//! docs/performance.md §1). The code is
//! still compiled position-independent, so only the executable's own base address is fixed; libraries, heap,
//! stacks and the plugins' compiled code stay randomised.
//!
//! They also carry gcc's unwinder (`libgcc_eh.a`) instead of loading `libgcc_s.so.1`: that library's constructor
//! probes the CPU with a dozen `cpuid` instructions at every start, each a VM exit on virtual machines
//! (docs/performance.md §1). Rust's std asks the linker for `-lgcc_s`; a `libgcc_s.a` that is gcc's
//! static unwinder, found first on the library path, answers that request. Without gcc's `libgcc_eh.a` the
//! executables link against `libgcc_s.so.1` as usual. `tests/unwind.rs` checks panics still unwind.

use std::path::PathBuf;

fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
    println!("cargo:rustc-check-cfg=cfg(danm_static_unwinder)");
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = static_unwinder() {
        println!("cargo:rustc-link-search=native={}", dir.display());
        println!("cargo:rustc-cfg=danm_static_unwinder");
    }
}

/// A directory holding `libgcc_s.a` -> gcc's `libgcc_eh.a`, when gcc has one.
fn static_unwinder() -> Option<PathBuf> {
    let out = std::process::Command::new("gcc")
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()?;
    let eh = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    if !eh.is_absolute() || !eh.is_file() {
        println!("cargo:warning=gcc has no libgcc_eh.a: danm links libgcc_s.so.1");
        return None;
    }
    let dir = PathBuf::from(std::env::var_os("OUT_DIR")?).join("static-unwinder");
    std::fs::create_dir_all(&dir).ok()?;
    let link = dir.join("libgcc_s.a");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&eh, &link).ok()?;
    Some(dir)
}
