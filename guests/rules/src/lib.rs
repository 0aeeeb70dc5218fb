//! The rules plugin: every API-level validation rule of DANM's webhook (behaviour §8.2 V1–V24 and V26,
//! §8.6 C1–C9), plus strict decoding (`U1`, unknown members) — returning all violations, not only the first
//! as DANM did.
//!
//! Differences from DANM, on purpose: UPDATE is validated (behaviour §10 B12); V21 (NetworkID length) and V25
//! (sriov) are the backends' rules (their `validate`); V26 is checked here only for types no backend plugin
//! serves (the backends check it for theirs); C9 treats every type served by a backend plugin as dynamic; V27
//! needs DanmEps and stays in the webhook host.

mod cidr;
mod network;
mod tenantconfig;

use danm_api::{Network, NetworkKind, TenantConfig};
use danm_guest_sdk::{Operation, Review, Rules, Violation, strict_decode};

pub use cidr::Cidr;

pub struct DanmRules;

impl Rules for DanmRules {
    fn validate(review: Review) -> Vec<Violation> {
        validate(&review)
    }
}

/// Validates one admission review; see the crate documentation.
pub fn validate(review: &Review) -> Vec<Violation> {
    let dynamic: Vec<String> = review
        .dynamic_types
        .iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    if review.kind == "TenantConfig" {
        return match review.operation {
            Operation::Delete => Vec::new(),
            op => match review.object_json.as_deref() {
                None => vec![missing_object()],
                Some(json) => {
                    let (tc, mut out) = strict_decode::<TenantConfig>(json);
                    if let Some(tc) = tc {
                        tenantconfig::validate(&tc, op, &dynamic, &mut out);
                    }
                    out
                }
            },
        };
    }
    let Ok(kind) = review.kind.parse::<NetworkKind>() else {
        return vec![Violation::new(
            "K1",
            "kind",
            format!("K8s API type:{} is not handled by DANM webhook", review.kind),
        )];
    };
    match review.operation {
        // /netdeletion decodes the old object strictly; the in-use check is the webhook host's.
        Operation::Delete => match review.old_object_json.as_deref() {
            Some(json) => strict_decode::<Network>(json).1,
            None => Vec::new(),
        },
        op => {
            let Some(json) = review.object_json.as_deref() else {
                return vec![missing_object()];
            };
            let (net, mut out) = strict_decode::<Network>(json);
            let Some(net) = net else { return out };
            let old = review
                .old_object_json
                .as_deref()
                .and_then(|j| serde_json::from_str::<Network>(j).ok());
            let tc = review
                .tenant_config_json
                .as_deref()
                .and_then(|j| serde_json::from_str::<TenantConfig>(j).ok());
            let ctx = network::Context {
                kind,
                op,
                old: old.as_ref(),
                tenant_config: tc.as_ref(),
                dynamic: &dynamic,
            };
            network::validate(&net.spec, &ctx, &mut out);
            out
        }
    }
}

fn missing_object() -> Violation {
    Violation::new("D1", "", "Received review request is empty!")
}

danm_guest_sdk::rules_plugin!(DanmRules, "../../wit/v0.1.0");

#[cfg(test)]
mod tests;
