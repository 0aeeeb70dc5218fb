//! The plugins' Rust code linked natively (feature `native-plugins`): the baseline the benchmark compares the wasm
//! plugins against. The server never uses it: it runs the `.wasm` files the CNI runs.

use danm_guest_sdk::{Backend, Operation as GuestOp, Review};

use super::{PluginError, RulesReview, Validator, Violation};
use crate::review::Operation;

/// Rules + the four backends, called as plain Rust functions.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeValidator;

fn op(o: Operation) -> GuestOp {
    match o {
        Operation::Update => GuestOp::Update,
        Operation::Delete => GuestOp::Delete,
        _ => GuestOp::Create,
    }
}

fn backend_of<B: Backend>(
    network_type: &str,
    o: Operation,
    json: &str,
    old: Option<&str>,
) -> Option<Vec<danm_guest_sdk::Violation>> {
    B::network_types()
        .iter()
        .any(|t| t == network_type)
        .then(|| B::validate(op(o), json, old))
}

impl Validator for NativeValidator {
    fn dynamic_types(&self) -> Vec<String> {
        let mut t = danm_guest_ipvlan::Ipvlan::network_types();
        t.extend(danm_guest_macvlan::Macvlan::network_types());
        t.extend(danm_guest_sriov::Sriov::network_types());
        t.extend(danm_guest_bridge::Bridge::network_types());
        t
    }

    fn rules(&self, r: &RulesReview) -> Result<Vec<Violation>, PluginError> {
        let review = Review {
            kind: r.kind.clone(),
            operation: op(r.operation),
            object_json: r.object_json.clone(),
            old_object_json: r.old_object_json.clone(),
            tenant_config_json: r.tenant_config_json.clone(),
            dynamic_types: self.dynamic_types(),
        };
        Ok(danm_guest_rules::validate(&review))
    }

    fn backend(
        &self,
        network_type: &str,
        o: Operation,
        json: &str,
        old: Option<&str>,
    ) -> Result<Option<Vec<Violation>>, PluginError> {
        let t = network_type.to_ascii_lowercase();
        let res = backend_of::<danm_guest_ipvlan::Ipvlan>(&t, o, json, old)
            .or_else(|| backend_of::<danm_guest_macvlan::Macvlan>(&t, o, json, old))
            .or_else(|| backend_of::<danm_guest_sriov::Sriov>(&t, o, json, old))
            .or_else(|| backend_of::<danm_guest_bridge::Bridge>(&t, o, json, old));
        Ok(res)
    }

    fn describe(&self) -> String {
        "native (linked) plugin code".to_owned()
    }
}
