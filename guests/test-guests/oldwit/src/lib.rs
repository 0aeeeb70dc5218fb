//! Test plugin `oldwit`: built against danm:plugin@0.0.9, a version the host does not support.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    Ok(format!(
        "{{\"cniVersion\":\"{}\",\"type\":\"oldwit\"}}",
        att.cni_version
    ))
}

danm_guest_sdk::test_backend!("oldwit", "misbehaving test plugin", translate, "wit");
