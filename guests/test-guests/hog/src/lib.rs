//! Test plugin `hog`: allocates memory without bound in translate.

use danm_guest_sdk::{Attachment, Backend, Info, Operation, TranslateError, Violation};

pub struct Plugin;

impl Backend for Plugin {
    fn network_types() -> Vec<String> {
        vec!["hog".into()]
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
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![att.interface_name.len() as u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

danm_guest_sdk::backend_plugin!(Plugin, "../../../wit/v0.1.0");
