//! Test plugin `trap`: panics (a wasm trap) in translate, after writing to stderr.

use danm_guest_sdk::{Attachment, Backend, Info, Operation, TranslateError, Violation};

pub struct Plugin;

impl Backend for Plugin {
    fn network_types() -> Vec<String> {
        vec!["trap".into()]
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
        eprintln!("trap plugin: about to fail for {}", att.interface_name);
        panic!("deliberate trap")
    }
}

danm_guest_sdk::backend_plugin!(Plugin, "../../../wit/v0.1.0");
