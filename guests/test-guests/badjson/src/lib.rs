//! Test plugin `badjson`: returns a config that is not JSON.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    Ok(format!(
        "{{\"cniVersion\": \"{}\", this is not json",
        att.cni_version
    ))
}

danm_guest_sdk::test_backend!(
    "badjson",
    "misbehaving test plugin",
    translate,
    "../../../wit/v0.1.0"
);
