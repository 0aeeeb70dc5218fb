//! The vocabulary of validation shared by the plugins (guest SDK), the plugin runtime and the webhook: the operation
//! a validation runs for and a broken rule.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The operation a validation runs for (the plugin contract's; the webhook maps AdmissionReview operations to it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    #[default]
    Create,
    Update,
    Delete,
}

/// One broken rule: a stable id (`V3`, `C6`, a backend's own, or the webhook's `V27`/`TC`/`VNI`/`IPAM`), the field
/// path (`spec.Options.routes["10.0.0.0/24"]`, empty for the whole object) and a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub rule: String,
    pub field: String,
    pub message: String,
}

impl Violation {
    pub fn new(rule: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            rule: rule.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "[{}] {}", self.rule, self.message)
        } else {
            write!(f, "[{}] {}: {}", self.rule, self.field, self.message)
        }
    }
}
