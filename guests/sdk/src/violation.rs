//! Violations (rule id, field path, message) and the operation a validation runs for: danm's one definition, from
//! `danm-api`, which the host's plugin runtime and the webhook use too.

pub use danm_api::validation::{Operation, Violation};
