//! Test plugin `oldwit`: built against danm:plugin@0.0.9, a version the host does not support.

use danm_guest_sdk::{Attachment, Backend, Info, Operation, TranslateError, Violation};

pub struct Plugin;

impl Backend for Plugin {
    fn network_types() -> Vec<String> {
        vec!["oldwit".into()]
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
        Ok(format!(
            "{{\"cniVersion\":\"{}\",\"type\":\"oldwit\"}}",
            att.cni_version
        ))
    }
}

danm_guest_sdk::backend_plugin!(Plugin, "wit");
