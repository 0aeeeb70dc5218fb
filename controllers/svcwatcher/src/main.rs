//! `svcwatcher` binary (the controller loop is being wired; this build only exits).
fn main() {
    eprintln!("svcwatcher: the controller loop is not wired yet");
    std::process::exit(2);
}
