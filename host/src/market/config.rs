//! `[market]`: the market monitor's sources, seeded rules and tuning.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::rules::RuleSpec;

/// `[market]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MarketConfig {
    /// `[[market.sources]]`: where prices come from.
    pub sources: Vec<SourceConfig>,
    /// `[[market.rules]]`: rules created at start-up if no rule with their `id` exists
    /// (an existing rule keeps its firing state, so a restart never re-fires it).
    pub rules: Vec<RuleSpec>,
    /// The rule processor for rules that name none.
    pub default_processor: String,
    /// A live source silent for this long is stale: reconnected, and its fallback used.
    pub stale_after_secs: u64,
    /// Most ticks handed to a rule processor in one call.
    pub batch_max_ticks: usize,
    /// Most ticks the engine takes per cycle (one durable commit per cycle).
    pub cycle_max_ticks: usize,
    /// How often prices, rule states and checkpoints are written (also after any alert).
    pub commit_interval_ms: u64,
    /// Points kept per symbol in the stored recent history.
    pub history_len: usize,
    /// At most one history point per symbol per this many ms of tick time.
    pub history_interval_ms: u64,
    /// Print `notify:requests` on the console (until the notify worker consumes them).
    pub console_alerts: bool,
    /// Most entries `notify:requests` holds that a consumer group has not acknowledged
    /// yet (the store's bound on every stream). At the bound the engine waits before its
    /// next commit (back-pressure) and `POST /api/v1/notifications` answers 503; entries
    /// are only ever trimmed once every group acknowledged them.
    pub stream_maxlen: usize,
    /// How long stopping may take: the engine's last commit waits this long for a store
    /// that is down (or a stream that is full); after it the uncommitted ticks are left to
    /// be replayed from the last checkpoint at the next start.
    pub shutdown_grace_secs: u64,
    /// Most rules one user may have, created through the API or the Telegram bot alike
    /// (`[[market.rules]]` seeds are created regardless, and count). Creating one more is
    /// refused until one is deleted.
    pub max_rules_per_user: usize,
    /// Most rules the store may hold in all; creating one more is refused.
    pub max_rules: usize,
    /// Which symbols a new rule may watch: `known` (one a source lists in `symbols`, one
    /// some source has delivered a price for, or one in `allowed_symbols`), `listed` (only
    /// `allowed_symbols`) or `any` (every well-formed symbol).
    pub rule_symbols: RuleSymbols,
    /// Symbols rules may watch in addition to the known ones (`known`), or the only ones
    /// (`listed`), e.g. `["BTCUSDT", "ETHUSDT"]`.
    pub allowed_symbols: Vec<String>,
    /// Most rules one rule-processor instance is loaded with; a processor with more runs
    /// several instances, so one instance that fails (say, out of memory while loading its
    /// rules) stops only its own share of the rules.
    pub rules_per_instance: usize,
    /// Several hosts on one Redis (`market::cluster`): symbols hash to this many
    /// partitions, and each host evaluates the partitions it holds a lease on. Absent:
    /// 64 on the Redis store; the embedded store serves one host and refuses the key.
    pub partitions: Option<u32>,
    /// A partition's lease lasts this long unless renewed (renewed every third of it):
    /// a host that stops renewing loses its partitions to the others within this time.
    pub lease_secs: u64,
    /// This host's name among the hosts sharing Redis; empty = the machine's host name.
    /// Two processes on one machine need different names. A host restarting under its
    /// own name takes its partitions back at once instead of waiting for the leases.
    pub host_id: String,
}

/// Partitions when `[market] partitions` is absent on the Redis store.
pub const DEFAULT_PARTITIONS: u32 = 64;
/// Most `[market] partitions`.
pub const MAX_PARTITIONS: u32 = 4096;

/// `[market] rule_symbols`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleSymbols {
    /// Listed by a source, priced by a source, or in `allowed_symbols`.
    Known,
    /// Only `allowed_symbols`.
    Listed,
    /// Any well-formed symbol.
    Any,
}

impl Default for MarketConfig {
    fn default() -> Self {
        MarketConfig {
            sources: Vec::new(),
            rules: Vec::new(),
            default_processor: "threshold".into(),
            stale_after_secs: 30,
            batch_max_ticks: 1000,
            cycle_max_ticks: 50_000,
            commit_interval_ms: 250,
            history_len: 600,
            history_interval_ms: 1000,
            console_alerts: true,
            stream_maxlen: 100_000,
            shutdown_grace_secs: 5,
            max_rules_per_user: 100,
            max_rules: 100_000,
            rule_symbols: RuleSymbols::Known,
            allowed_symbols: Vec::new(),
            rules_per_instance: 10_000,
            partitions: None,
            lease_secs: 10,
            host_id: String::new(),
        }
    }
}

/// Kinds of price source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// A WebSocket stream (Binance, Coinbase).
    Websocket,
    /// An HTTP endpoint polled on an interval (CoinGecko).
    HttpPoll,
    /// A CSV/JSONL file replayed at a speed factor.
    Replay,
}

/// `[[market.sources]]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name, shown in metrics, logs and `GET /api/v1/prices/{symbol}`.
    pub name: String,
    pub kind: SourceKind,
    /// The feed-parser plugin that reads this source's payloads.
    pub parser: String,
    /// Overrides `[market] stale_after_secs` for this source.
    #[serde(default)]
    pub stale_after_secs: Option<u64>,
    /// Names of sources this one stands in for: its ticks for a symbol are used only
    /// while none of those sources delivered that symbol within their `stale_after`.
    #[serde(default)]
    pub fallback_for: Vec<String>,

    /// websocket, http-poll: the URL (a Binance combined-stream URL, for instance).
    #[serde(default)]
    pub url: Option<String>,
    /// websocket: symbols to subscribe to after connecting (and after every reconnect),
    /// through the parser's subscribe message. Empty: the URL names the streams.
    #[serde(default)]
    pub symbols: Vec<String>,
    /// websocket: feed channels for the subscribe message (e.g. `trade`, `ticker`).
    #[serde(default)]
    pub channels: Vec<String>,
    /// websocket: a connection is replaced after this long (Binance closes at 24 h).
    #[serde(default = "default_max_connection_secs")]
    pub max_connection_secs: u64,

    /// http-poll: seconds between polls, 0.05 to 86400.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: f64,
    /// http-poll: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// http-poll: environment variable holding an API key (never logged).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// http-poll: the header the API key goes into.
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,

    /// replay: the file (relative to the config file's folder).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// replay: 1.0 = real time, 10.0 = ten times faster, 0 = as fast as possible.
    #[serde(default = "default_speed")]
    pub speed: f64,
    /// replay: start again at the end of the file.
    #[serde(default, rename = "loop")]
    pub repeat: bool,
    /// replay: shift tick times so the file plays as if it were happening now.
    #[serde(default)]
    pub rebase_time: bool,
    /// replay: lines per parser call when replaying as fast as possible.
    #[serde(default = "default_chunk_lines")]
    pub chunk_lines: usize,
}

fn default_max_connection_secs() -> u64 {
    23 * 3600 + 50 * 60
}

/// The longest `interval_secs` of an http-poll source: a day.
pub const MAX_POLL_INTERVAL_SECS: f64 = 86_400.0;

fn default_interval_secs() -> f64 {
    30.0
}
fn default_api_key_header() -> String {
    "x-cg-demo-api-key".into()
}
fn default_speed() -> f64 {
    1.0
}
fn default_chunk_lines() -> usize {
    1000
}

impl MarketConfig {
    /// This host's name in the cluster (`host_id`, or the machine's host name).
    pub fn host_name(&self) -> String {
        if self.host_id.is_empty() {
            crate::util::host_name()
        } else {
            self.host_id.clone()
        }
    }

    /// Check what serde cannot: required fields per kind, unique names, known fallbacks.
    pub fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = format!("[[market.sources]] #{} (`{}`)", i + 1, s.name);
            if s.name.trim().is_empty() {
                bail!("[[market.sources]] #{}: `name` must not be empty", i + 1);
            }
            if !names.insert(s.name.as_str()) {
                bail!("{at}: another source has the same name");
            }
            if s.parser.trim().is_empty() {
                bail!("{at}: `parser` must name a feed-parser plugin");
            }
            match s.kind {
                SourceKind::Websocket | SourceKind::HttpPoll => {
                    let Some(url) = &s.url else {
                        bail!("{at}: `url` is required for a {:?} source", s.kind);
                    };
                    let ok = match s.kind {
                        SourceKind::Websocket => {
                            url.starts_with("ws://") || url.starts_with("wss://")
                        }
                        _ => url.starts_with("http://") || url.starts_with("https://"),
                    };
                    if !ok {
                        bail!("{at}: `url` = {url:?} has the wrong scheme for this kind");
                    }
                }
                SourceKind::Replay => {
                    if s.path.is_none() {
                        bail!("{at}: `path` is required for a replay source");
                    }
                    if !s.speed.is_finite() || s.speed < 0.0 {
                        bail!("{at}: `speed` must be a number >= 0");
                    }
                }
            }
            // The poller sleeps `Duration::from_secs_f64(interval_secs)`, which panics
            // for infinity or anything past u64::MAX seconds: refuse it here instead.
            if s.kind == SourceKind::HttpPoll
                && !(0.05..=MAX_POLL_INTERVAL_SECS).contains(&s.interval_secs)
            {
                bail!(
                    "{at}: `interval_secs` must be between 0.05 and {MAX_POLL_INTERVAL_SECS} \
                     (a day)"
                );
            }
            if s.chunk_lines == 0 {
                bail!("{at}: `chunk_lines` must be at least 1");
            }
        }
        for s in &self.sources {
            for f in &s.fallback_for {
                if !names.contains(f.as_str()) {
                    bail!(
                        "[[market.sources]] `{}`: fallback_for names `{f}`, which is not a source",
                        s.name
                    );
                }
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.id.as_deref().is_none_or(|id| id.trim().is_empty()) {
                bail!("[[market.rules]] #{}: seeded rules need an `id`", i + 1);
            }
            r.validate(true)
                .map_err(|e| anyhow::anyhow!("[[market.rules]] #{}: {e}", i + 1))?;
        }
        if self.batch_max_ticks == 0 || self.cycle_max_ticks == 0 {
            bail!("[market] batch_max_ticks and cycle_max_ticks must be at least 1");
        }
        if self.stream_maxlen == 0 {
            bail!("[market] stream_maxlen must be at least 1");
        }
        if self.shutdown_grace_secs == 0 {
            bail!(
                "[market] shutdown_grace_secs must be at least 1 (the last commit needs a moment)"
            );
        }
        for (key, v) in [
            ("max_rules_per_user", self.max_rules_per_user),
            ("max_rules", self.max_rules),
            ("rules_per_instance", self.rules_per_instance),
        ] {
            if v == 0 {
                bail!("[market] {key} must be at least 1");
            }
        }
        for (i, sym) in self.allowed_symbols.iter().enumerate() {
            if !super::rules::valid_symbol(sym) {
                bail!(
                    "[market] allowed_symbols[{i}]: {sym:?} is not an upper-case exchange pair \
                     such as BTCUSDT"
                );
            }
        }
        if let Some(n) = self.partitions
            && !(1..=MAX_PARTITIONS).contains(&n)
        {
            bail!("[market] partitions must be between 1 and {MAX_PARTITIONS}");
        }
        if !(1..=3600).contains(&self.lease_secs) {
            bail!("[market] lease_secs must be between 1 and 3600");
        }
        if !self.host_id.is_empty() && !crate::input::valid_key(&self.host_id, 128) {
            bail!(
                "[market] host_id {:?}: 1-128 characters of letters, digits and - _ . : @",
                self.host_id
            );
        }
        if self.rule_symbols == RuleSymbols::Listed && self.allowed_symbols.is_empty() {
            bail!(
                "[market] rule_symbols = \"listed\" needs allowed_symbols: with none, no rule \
                 could be created"
            );
        }
        Ok(())
    }
}
