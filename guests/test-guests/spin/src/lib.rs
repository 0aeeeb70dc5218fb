//! Test plugin `spin`: never returns from translate.

use danm_guest_sdk::{Attachment, Backend, Info, Operation, TranslateError, Violation};

pub struct Plugin;

impl Backend for Plugin {
    fn network_types() -> Vec<String> {
        vec!["spin".into()]
    }
    fn describe() -> Info {
        Info {
            description: "misbehaving test plugin".into(),
            ..Info::default()
        }
    }
    fn validate(_op: Operation, _network_json: &str, _old: Option<&str>) -> Vec<Violation> {
        Vec::new()
    }
    fn translate(att: Attachment) -> Result<String, TranslateError> {
        let mut n: u64 = att.interface_name.len() as u64;
        loop {
            n = std::hint::black_box(n.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

danm_guest_sdk::backend_plugin!(Plugin, "../../../wit/v0.1.0");
