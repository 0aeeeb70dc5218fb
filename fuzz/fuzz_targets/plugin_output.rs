//! Fuzzes how the host reads what a plugin hands back: a backend's translated CNI config (checked before the CNI
//! uses it), and the network object JSON whose name and NetworkType route a call and label its errors.
#![no_main]

use danm_wasm::output::{check_translation, network_name, network_type_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if check_translation(text).is_ok() {
        // What passed the check is an object with a type, as the CNI's delegate step expects.
        let v: serde_json::Value = serde_json::from_str(text).expect("checked config is JSON");
        assert!(v.is_object() && v["type"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let _ = network_name(text);
    let ty = network_type_of(text);
    assert_eq!(ty, ty.to_ascii_lowercase());
    assert!(!ty.is_empty());
});
