//! `[capabilities.prices]`: the caps of the `prices` capability. A leaf, so the host's
//! configuration can hold it without depending on the capability's logic.

use serde::{Deserialize, Serialize};

/// `[capabilities.prices]`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricesConfig {
    /// Most points one `recent` call returns.
    pub max_recent: u32,
}

impl Default for PricesConfig {
    fn default() -> Self {
        PricesConfig { max_recent: 1000 }
    }
}
