//! The pod sandbox's `pause` process for the runtime end-to-end test's locally built image (no registry is
//! reachable): it holds the sandbox's namespaces and sleeps until the runtime kills it (containerd stops a sandbox
//! with SIGKILL). Built statically by build.sh: `rustc -O -C target-feature=+crt-static pause.rs`.

fn main() {
    loop {
        std::thread::park();
    }
}
