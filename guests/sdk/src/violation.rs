//! Violations (rule id, field path, message) and the admission operation, as plain Rust values.

use std::fmt;

/// The admission operation a validation runs for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Operation {
    #[default]
    Create,
    Update,
    Delete,
}

/// One broken rule: a stable id (`V3`, `C6`, ...), the field path (`spec.Options.routes["10.0.0.0/24"]`) and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
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
