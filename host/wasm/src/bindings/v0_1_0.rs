//! Bindings for `danm:plugin@0.1.0` (`wit/v0.1.0`) and conversions to and from the host's domain types.

use crate::types;

pub const VERSION: &str = "0.1.0";

pub mod backend {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "backend-plugin",
    });
}

pub mod rules {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "rules-plugin",
    });
}

macro_rules! conversions {
    ($m:ident) => {
        impl From<types::Operation> for $m::danm::plugin::types::Operation {
            fn from(op: types::Operation) -> Self {
                match op {
                    types::Operation::Create => Self::Create,
                    types::Operation::Update => Self::Update,
                    types::Operation::Delete => Self::Delete,
                }
            }
        }
        impl From<$m::danm::plugin::types::Violation> for types::Violation {
            fn from(v: $m::danm::plugin::types::Violation) -> Self {
                types::Violation {
                    rule: v.rule,
                    field: v.field,
                    message: v.message,
                }
            }
        }
    };
}
conversions!(backend);
conversions!(rules);

impl From<backend::exports::danm::plugin::backend::Info> for types::BackendInfo {
    fn from(i: backend::exports::danm::plugin::backend::Info) -> Self {
        types::BackendInfo {
            description: i.description,
            needs_ipam: i.needs_ipam,
            needs_device_pool: i.needs_device_pool,
            needs_host_device: i.needs_host_device,
            max_network_id_length: i.max_network_id_length,
        }
    }
}

impl From<&types::TranslateRequest> for backend::exports::danm::plugin::backend::Attachment {
    fn from(r: &types::TranslateRequest) -> Self {
        Self {
            network_json: r.network_json.clone(),
            interface_name: r.interface_name.clone(),
            ip4: r.ip4.clone(),
            ip6: r.ip6.clone(),
            parent: r.parent.clone(),
            device_id: r.device_id.clone(),
            cni_version: r.cni_version.clone(),
            pod_namespace: r.pod_namespace.clone(),
            pod_name: r.pod_name.clone(),
        }
    }
}

/// The WIT review of `r`, with `dynamic_types` as its list of served NetworkTypes (the review's own, or the set's).
pub fn rules_review(
    r: &types::Review,
    dynamic_types: &[String],
) -> rules::exports::danm::plugin::rules::Review {
    rules::exports::danm::plugin::rules::Review {
        kind: r.kind.clone(),
        operation: r.operation.into(),
        object_json: r.object_json.clone(),
        old_object_json: r.old_object_json.clone(),
        tenant_config_json: r.tenant_config_json.clone(),
        dynamic_types: dynamic_types.to_vec(),
    }
}
