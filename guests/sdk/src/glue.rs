//! The WIT glue macros: they expand, on `wasm32` only, to `wit-bindgen` bindings for `danm:plugin@0.1.0` and an
//! adapter from the generated traits to [`crate::Backend`] / [`crate::Rules`]. The invoking crate depends on
//! `wit-bindgen` for `wasm32` and passes the path of the WIT directory relative to its manifest.

/// Exports a [`crate::Backend`] implementation as a `backend-plugin` component.
/// `backend_plugin!(MyBackend, "../../wit/v0.1.0");`
#[macro_export]
macro_rules! backend_plugin {
    ($imp:ident, $path:tt) => {
        #[cfg(target_arch = "wasm32")]
        mod __danm_backend_glue {
            ::wit_bindgen::generate!({ path: $path, world: "backend-plugin" });

            use self::danm::plugin::types::{Operation, Violation};
            use self::exports::danm::plugin::backend::{Attachment, Guest, Info, TranslateError};

            struct Component;

            fn violation(v: $crate::Violation) -> Violation {
                Violation { rule: v.rule, field: v.field, message: v.message }
            }

            impl Guest for Component {
                fn network_types() -> Vec<String> {
                    <super::$imp as $crate::Backend>::network_types()
                }
                fn describe() -> Info {
                    let i = <super::$imp as $crate::Backend>::describe();
                    Info {
                        description: i.description,
                        needs_ipam: i.needs_ipam,
                        needs_device_pool: i.needs_device_pool,
                        needs_host_device: i.needs_host_device,
                        max_network_id_length: i.max_network_id_length,
                    }
                }
                fn validate(op: Operation, network_json: String, old_network_json: Option<String>) -> Vec<Violation> {
                    let op = match op {
                        Operation::Create => $crate::Operation::Create,
                        Operation::Update => $crate::Operation::Update,
                        Operation::Delete => $crate::Operation::Delete,
                    };
                    <super::$imp as $crate::Backend>::validate(op, &network_json, old_network_json.as_deref())
                        .into_iter()
                        .map(violation)
                        .collect()
                }
                fn translate(req: Attachment) -> Result<String, TranslateError> {
                    let att = $crate::Attachment {
                        network_json: req.network_json,
                        interface_name: req.interface_name,
                        ip4: req.ip4,
                        ip6: req.ip6,
                        parent: req.parent,
                        device_id: req.device_id,
                        cni_version: req.cni_version,
                        pod_namespace: req.pod_namespace,
                        pod_name: req.pod_name,
                    };
                    <super::$imp as $crate::Backend>::translate(att)
                        .map_err(|e| TranslateError { code: e.code, message: e.message })
                }
            }

            export!(Component);
        }
    };
}

/// A test backend (the runtime's misbehaving plugins): serves `$network_type`, describes itself as `$description`,
/// accepts every network, and translates with `$translate` (a `fn(Attachment) -> Result<String, TranslateError>`,
/// where the plugin misbehaves); exported as with [`backend_plugin!`].
/// `test_backend!("spin", "misbehaving test plugin", translate, "../../../wit/v0.1.0");`
#[macro_export]
macro_rules! test_backend {
    ($network_type:literal, $description:literal, $translate:path, $path:tt) => {
        pub struct TestBackend;

        impl $crate::Backend for TestBackend {
            fn network_types() -> Vec<String> {
                vec![$network_type.into()]
            }
            fn describe() -> $crate::Info {
                $crate::Info {
                    description: $description.into(),
                    ..$crate::Info::default()
                }
            }
            fn validate(
                _op: $crate::Operation,
                _network_json: &str,
                _old: Option<&str>,
            ) -> Vec<$crate::Violation> {
                Vec::new()
            }
            fn translate(att: $crate::Attachment) -> Result<String, $crate::TranslateError> {
                $translate(att)
            }
        }

        $crate::backend_plugin!(TestBackend, $path);
    };
}

/// Exports a [`crate::Rules`] implementation as a `rules-plugin` component.
/// `rules_plugin!(DanmRules, "../../wit/v0.1.0");`
#[macro_export]
macro_rules! rules_plugin {
    ($imp:ident, $path:tt) => {
        #[cfg(target_arch = "wasm32")]
        mod __danm_rules_glue {
            ::wit_bindgen::generate!({ path: $path, world: "rules-plugin" });

            use self::danm::plugin::types::{Operation, Violation};
            use self::exports::danm::plugin::rules::{Guest, Review};

            struct Component;

            impl Guest for Component {
                fn validate(req: Review) -> Vec<Violation> {
                    let operation = match req.operation {
                        Operation::Create => $crate::Operation::Create,
                        Operation::Update => $crate::Operation::Update,
                        Operation::Delete => $crate::Operation::Delete,
                    };
                    let review = $crate::Review {
                        kind: req.kind,
                        operation,
                        object_json: req.object_json,
                        old_object_json: req.old_object_json,
                        tenant_config_json: req.tenant_config_json,
                        dynamic_types: req.dynamic_types,
                    };
                    <super::$imp as $crate::Rules>::validate(review)
                        .into_iter()
                        .map(|v| Violation { rule: v.rule, field: v.field, message: v.message })
                        .collect()
                }
            }

            export!(Component);
        }
    };
}
