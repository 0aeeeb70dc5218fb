//! Test plugin `hog`: allocates memory without bound in translate.

use danm_guest_sdk::{Attachment, TranslateError};

fn translate(att: Attachment) -> Result<String, TranslateError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![att.interface_name.len() as u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

danm_guest_sdk::test_backend!("hog", "misbehaving test plugin", translate, "../../../wit/v0.1.0");
