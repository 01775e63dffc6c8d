//! `[capabilities]`: the caps and budgets of the capabilities lent to plugins, gathered
//! from each capability's own `config.rs`. Only configuration types: the host's
//! configuration holds this section without depending on the capabilities' logic.

use serde::{Deserialize, Serialize};

use super::budget::BudgetConfig;
use super::docs::config::DocsConfig;
use super::kv::config::KvConfig;
use super::prices::config::PricesConfig;
use super::rag::config::RagCapConfig;

/// `[capabilities]`: caps and budgets of the capabilities lent to plugins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapabilitiesConfig {
    /// Most capability host calls (`kv`, `docs`, `notify`, `prices`, `rag`) one plugin call may make.
    pub max_host_calls: u32,
    /// Most bytes those host calls may move in and out during one plugin call.
    pub max_bytes_moved: u64,
    /// `[capabilities.kv]`
    pub kv: KvConfig,
    /// `[capabilities.docs]`
    pub docs: DocsConfig,
    /// `[capabilities.prices]`
    pub prices: PricesConfig,
    /// `[capabilities.rag]`
    pub rag: RagCapConfig,
}

impl Default for CapabilitiesConfig {
    fn default() -> Self {
        let budget = BudgetConfig::default();
        CapabilitiesConfig {
            max_host_calls: budget.max_host_calls,
            max_bytes_moved: budget.max_bytes_moved,
            kv: Default::default(),
            docs: Default::default(),
            prices: Default::default(),
            rag: Default::default(),
        }
    }
}

impl CapabilitiesConfig {
    /// The per-call budget.
    pub fn budget(&self) -> BudgetConfig {
        BudgetConfig {
            max_host_calls: self.max_host_calls,
            max_bytes_moved: self.max_bytes_moved,
        }
    }
}
