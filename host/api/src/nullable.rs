//! Serde helpers that give Go's zero-value semantics: `null` decodes like an absent member.

use serde::{Deserialize, Deserializer};

/// Decodes `null` (and, with `#[serde(default)]`, an absent member) as `T::default()`.
pub(crate) fn or_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(de).map(Option::unwrap_or_default)
}

pub(crate) fn is_zero(v: &u32) -> bool {
    *v == 0
}
