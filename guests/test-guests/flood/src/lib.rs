//! Test plugin `flood`: returns a 16 MiB config from translate.

use danm_guest_sdk::{Attachment, Backend, Info, Operation, TranslateError, Violation};

pub struct Plugin;

impl Backend for Plugin {
    fn network_types() -> Vec<String> {
        vec!["flood".into()]
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
        Ok("x".repeat(16 << 20) + &att.interface_name)
    }
}

danm_guest_sdk::backend_plugin!(Plugin, "../../../wit/v0.1.0");
