//! What a new rule may ask for beyond being well-formed: how many rules one user and the
//! whole store may hold (`[market] max_rules_per_user`, `max_rules`) and which symbols a
//! rule may watch (`rule_symbols`, `allowed_symbols`).
//!
//! Without these a chat could `/watch` until the rule processors' instances ran out of
//! memory loading the rules, and rules on symbols no source delivers would never fire
//! while each one grew the engine's symbol table for good.
//!
//! Counting and inserting must not interleave, or two creates at once could both see
//! room for one more: [`CreateGuard`] serialises creates in this process (a mutex) and
//! across hosts sharing the store (the store lease [`CREATE_LEASE`]).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::config::{MarketConfig, RuleSymbols};
use crate::storage::Store;

/// The store lease a host holds while it counts and inserts one rule.
pub const CREATE_LEASE: &str = "market:rules:create";
/// How long the lease lasts if its holder dies mid-create.
const LEASE_TTL_MS: u64 = 10_000;
/// How long a create waits for another host's create before giving up.
const LEASE_WAIT: Duration = Duration::from_secs(5);
/// Known symbols named in a refusal, at most.
const SHOWN_SYMBOLS: usize = 20;

/// The limits a create is checked against, from `[market]`.
#[derive(Debug, Clone)]
pub struct RulePolicy {
    pub max_rules_per_user: usize,
    pub max_rules: usize,
    pub symbols: RuleSymbols,
    /// `allowed_symbols`.
    pub allowed: BTreeSet<String>,
    /// Symbols the configured sources subscribe to (`symbols` of each source), upper-cased.
    pub listed_by_sources: BTreeSet<String>,
}

impl Default for RulePolicy {
    fn default() -> Self {
        RulePolicy::from_config(&MarketConfig::default())
    }
}

/// Why a symbol may not be watched.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolRefused {
    pub symbol: String,
    /// Why, in words a chat user understands (`no price source here delivers it`, ...).
    pub why: String,
    /// Some symbols that would be accepted, sorted.
    pub accepted: Vec<String>,
}

impl std::fmt::Display for SymbolRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`symbol`: {} cannot be watched: {}",
            self.symbol, self.why
        )?;
        if !self.accepted.is_empty() {
            write!(f, "; for example {}", self.accepted.join(", "))?;
        }
        Ok(())
    }
}

impl RulePolicy {
    pub fn from_config(c: &MarketConfig) -> RulePolicy {
        RulePolicy {
            max_rules_per_user: c.max_rules_per_user,
            max_rules: c.max_rules,
            symbols: c.rule_symbols,
            allowed: c.allowed_symbols.iter().cloned().collect(),
            listed_by_sources: c
                .sources
                .iter()
                .flat_map(|s| s.symbols.iter().map(|sym| sym.to_ascii_uppercase()))
                .collect(),
        }
    }

    /// Whether `symbol` (validated, upper-case) may be watched; a priced symbol is looked
    /// up in the store's latest prices.
    pub async fn check_symbol(
        &self,
        store: &dyn Store,
        symbol: &str,
    ) -> anyhow::Result<Result<(), SymbolRefused>> {
        let refused = |why: &str, accepted: Vec<String>| SymbolRefused {
            symbol: symbol.to_string(),
            why: why.to_string(),
            accepted,
        };
        match self.symbols {
            RuleSymbols::Any => Ok(Ok(())),
            RuleSymbols::Listed => Ok(if self.allowed.contains(symbol) {
                Ok(())
            } else {
                Err(refused(
                    "it is not one of the symbols alerts may watch here",
                    self.allowed.iter().take(SHOWN_SYMBOLS).cloned().collect(),
                ))
            }),
            RuleSymbols::Known => {
                if self.allowed.contains(symbol)
                    || self.listed_by_sources.contains(symbol)
                    || store.latest_price(symbol).await?.is_some()
                {
                    return Ok(Ok(()));
                }
                let mut known: BTreeSet<String> = store
                    .latest_prices()
                    .await?
                    .into_iter()
                    .map(|p| p.symbol)
                    .collect();
                known.extend(self.allowed.iter().cloned());
                known.extend(self.listed_by_sources.iter().cloned());
                Ok(Err(refused(
                    "no price source here delivers it",
                    known.into_iter().take(SHOWN_SYMBOLS).collect(),
                )))
            }
        }
    }
}

/// Held while one rule is counted and inserted; dropping it lets the next create in.
pub struct CreateGuard<'a> {
    store: &'a dyn Store,
    owner: String,
    _local: tokio::sync::MutexGuard<'static, ()>,
}

/// Creates in this process, one at a time (the lease alone would make them poll).
static LOCAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl<'a> CreateGuard<'a> {
    /// Wait for this process's and every other host's create to finish; `Ok(None)` after
    /// waiting [`LEASE_WAIT`] in vain.
    pub async fn acquire(store: &'a dyn Store) -> anyhow::Result<Option<CreateGuard<'a>>> {
        let local = LOCAL.lock().await;
        let owner = format!("{}/{:016x}", crate::util::host_name(), fastrand::u64(..));
        let deadline = Instant::now() + LEASE_WAIT;
        loop {
            if store
                .acquire_lease(CREATE_LEASE, &owner, LEASE_TTL_MS)
                .await?
            {
                return Ok(Some(CreateGuard {
                    store,
                    owner,
                    _local: local,
                }));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(10 + fastrand::u64(..20))).await;
        }
    }

    /// Give the lease back (it lapses by itself if this fails).
    pub async fn release(self) {
        if let Err(e) = self.store.release_lease(CREATE_LEASE, &self.owner).await {
            tracing::warn!(error = %format!("{e:#}"), "releasing the rule-create lease failed; it lapses in 10 s");
        }
    }
}

/// How many rules the store holds, and how many of them are `user_id`'s: two index sizes
/// (`storage::rule_index`), not a read of every rule.
pub async fn count_rules(store: &dyn Store, user_id: &str) -> anyhow::Result<(usize, usize)> {
    use crate::storage::RuleScope;
    let all = store.count_rules_in(&RuleScope::All).await?;
    let mine = store
        .count_rules_in(&RuleScope::User(user_id.to_string()))
        .await?;
    Ok((all as usize, mine as usize))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::config::SourceConfig;

    #[test]
    fn sources_symbols_are_known_upper_cased() {
        let mut c = MarketConfig::default();
        let source: SourceConfig = toml::from_str(
            "name = \"cb\"\nkind = \"websocket\"\nparser = \"coinbase\"\nurl = \"wss://x\"\n\
             symbols = [\"btcusd\", \"ETHUSD\"]\n",
        )
        .unwrap();
        c.sources.push(source);
        c.allowed_symbols = vec!["SOLUSDT".into()];
        let p = RulePolicy::from_config(&c);
        assert!(p.listed_by_sources.contains("BTCUSD"));
        assert!(p.listed_by_sources.contains("ETHUSD"));
        assert!(p.allowed.contains("SOLUSDT"));
        assert_eq!(p.max_rules_per_user, 100);
    }

    #[test]
    fn a_refusal_names_the_field_the_symbol_and_examples() {
        let r = SymbolRefused {
            symbol: "XYZUSDT".into(),
            why: "no price source here delivers it".into(),
            accepted: vec!["BTCUSDT".into(), "ETHUSDT".into()],
        };
        assert_eq!(
            r.to_string(),
            "`symbol`: XYZUSDT cannot be watched: no price source here delivers it; for example BTCUSDT, ETHUSDT"
        );
    }
}
