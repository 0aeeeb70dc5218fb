//! `danm` and `fakeipam` carry gcc's static unwinder instead of loading `libgcc_s.so.1` (build.rs): panics still
//! unwind, across threads too, and the executables do not load the shared library.

use std::process::Command;

#[test]
fn panics_unwind_with_the_linked_unwinder() {
    let caught = std::panic::catch_unwind(|| panic!("deliberate panic"));
    assert!(caught.is_err());
    let joined = std::thread::spawn(|| panic!("deliberate panic in a thread")).join();
    let payload = joined.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"deliberate panic in a thread")
    );
}

#[test]
fn the_executables_do_not_load_libgcc_s() {
    if !cfg!(danm_static_unwinder) {
        eprintln!("skipping: gcc has no libgcc_eh.a here, so the executables link libgcc_s.so.1");
        return;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains("libgcc_s"), "this test binary loaded libgcc_s");
    for exe in [env!("CARGO_BIN_EXE_danm"), env!("CARGO_BIN_EXE_fakeipam")] {
        let out = Command::new("ldd").arg(exe).output().expect("ldd runs");
        let deps = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "ldd {exe}: {deps}");
        assert!(deps.contains("libc.so.6"), "{deps}");
        assert!(!deps.contains("libgcc_s"), "{exe} still needs libgcc_s: {deps}");
    }
}
