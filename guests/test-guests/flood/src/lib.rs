//! Test plugin `flood`: returns a 16 MiB config from translate.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    Ok("x".repeat(16 << 20) + &att.interface_name)
}

danm_guest_sdk::test_backend!(
    "flood",
    "misbehaving test plugin",
    translate,
    "../../../wit/v0.1.0"
);
