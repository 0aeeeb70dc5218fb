//! Test plugin `trap`: panics (a wasm trap) in translate, after writing to stderr.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    eprintln!("trap plugin: about to fail for {}", att.interface_name);
    panic!("deliberate trap")
}

danm_guest_sdk::test_backend!(
    "trap",
    "misbehaving test plugin",
    translate,
    "../../../wit/v0.1.0"
);
