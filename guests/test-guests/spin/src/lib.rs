//! Test plugin `spin`: never returns from translate.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    let mut n: u64 = att.interface_name.len() as u64;
    loop {
        n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

danm_guest_sdk::test_backend!(
    "spin",
    "misbehaving test plugin",
    translate,
    "../../../wit/v0.1.0"
);
