//! Test plugin `dupe`: claims the macvlan type the real macvlan plugin serves.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    Ok(format!(
        "{{\"cniVersion\":\"{}\",\"type\":\"macvlan\"}}",
        att.cni_version
    ))
}

danm_guest_sdk::test_backend!(
    "macvlan",
    "misbehaving test plugin",
    translate,
    "../../../wit/v0.1.0"
);
