//! `[capabilities.kv]`: the caps of the `kv` capability. A leaf, so the host's
//! configuration can hold it without depending on the capability's logic.

use serde::{Deserialize, Serialize};

/// `[capabilities.kv]`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most live keys one plugin may hold.
    pub max_keys: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            max_key_bytes: 512,
            max_value_bytes: 1024 * 1024,
            max_keys: 10_000,
        }
    }
}
