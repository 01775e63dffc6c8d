//! `impressox:plugin/prices`: the latest and recent prices the market monitor keeps in the
//! store, read-only. Grant: `[plugins.grants.<name>] prices = true`.
//!
//! Each point carries its age and whether it is stale: older than its source's
//! `stale_after_secs` (`[[market.sources]]`, else `[market] stale_after_secs`), the same
//! rule the market monitor uses to stop trusting a source. It is judged by age alone, so
//! it holds whether or not this process runs the market monitor (`plugin run`, another
//! host writing the prices).

use std::collections::HashMap;
use std::sync::Arc;

use super::error::CapError;
use crate::bindings::prices::PricePoint;
use crate::storage::Store;

pub mod config;
pub(super) mod host;

pub use config::PricesConfig;

/// The `prices` capability of a host: the store and when a source's price goes stale.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Granted>,
}

impl Service {
    pub fn new(
        config: PricesConfig,
        market: &crate::market::config::MarketConfig,
        store: Arc<dyn Store>,
    ) -> Service {
        let stale_after_ms = market
            .sources
            .iter()
            .map(|s| {
                let secs = s.stale_after_secs.unwrap_or(market.stale_after_secs);
                (s.name.clone(), secs.saturating_mul(1000) as i64)
            })
            .collect();
        Service {
            inner: Arc::new(Granted {
                store,
                config,
                stale_after_ms,
                default_stale_after_ms: market.stale_after_secs.saturating_mul(1000) as i64,
            }),
        }
    }

    /// The state of a plugin with the `prices` grant: the same for every plugin.
    pub fn grant(&self) -> Arc<Granted> {
        self.inner.clone()
    }
}

/// Read access to prices.
pub struct Granted {
    store: Arc<dyn Store>,
    config: PricesConfig,
    /// Per source name.
    stale_after_ms: HashMap<String, i64>,
    /// For a source not (or no longer) in the config.
    default_stale_after_ms: i64,
}

impl Granted {
    pub async fn latest(&self, symbol: &str) -> Result<Option<PricePoint>, CapError> {
        let symbol = checked_symbol(symbol)?;
        let now = crate::util::now_ms();
        let point = self
            .store
            .latest_price(&symbol)
            .await
            .map_err(CapError::Backend)?;
        Ok(point.map(|p| self.point(p, now)))
    }

    pub async fn recent(&self, symbol: &str, limit: u32) -> Result<Vec<PricePoint>, CapError> {
        let symbol = checked_symbol(symbol)?;
        if limit > self.config.max_recent {
            return Err(CapError::refused(format!(
                "prices.recent limit {limit} is over the cap of {} \
                 (`[capabilities.prices] max_recent`)",
                self.config.max_recent
            )));
        }
        let now = crate::util::now_ms();
        let points = self
            .store
            .price_history(&symbol, limit as usize)
            .await
            .map_err(CapError::Backend)?;
        Ok(points.into_iter().map(|p| self.point(p, now)).collect())
    }

    fn point(&self, p: crate::storage::PricePoint, now: i64) -> PricePoint {
        let age_ms = now - p.ts_ms;
        let stale_after = self
            .stale_after_ms
            .get(&p.source)
            .copied()
            .unwrap_or(self.default_stale_after_ms);
        PricePoint {
            stale: age_ms > stale_after,
            symbol: p.symbol,
            price: p.price,
            ts_ms: p.ts_ms,
            source: p.source,
            age_ms,
        }
    }
}

/// Symbols are what the market monitor stores: upper-case letters and digits.
fn checked_symbol(symbol: &str) -> Result<String, CapError> {
    if symbol.is_empty() || symbol.len() > 32 || !symbol.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(CapError::refused(format!(
            "prices: {symbol:?} is not a symbol; use an exchange pair such as `BTCUSDT`"
        )));
    }
    Ok(symbol.to_ascii_uppercase())
}

impl super::budget::Moved for PricePoint {
    fn moved(&self) -> usize {
        self.symbol.len() + self.source.len() + 25
    }
}
