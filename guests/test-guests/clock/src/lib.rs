//! Test plugin `clock`: a well-behaved backend that reads the wall clock, so its component imports
//! `wasi:clocks/wall-clock` besides stdio; the runtime links such plugins against the whole of WASI.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    let after_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .is_ok();
    Ok(format!(
        r#"{{"cniVersion":"{}","type":"clock","ifname":"{}","clockAfterEpoch":{after_epoch}}}"#,
        att.cni_version, att.interface_name
    ))
}

danm_guest_sdk::test_backend!(
    "clock",
    "test plugin importing wasi:clocks",
    translate,
    "../../../wit/v0.1.0"
);
