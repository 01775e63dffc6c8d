//! # impressox-plugin-sdk
//!
//! Everything a plugin author needs to write an ImpressoX Workers plugin in Rust: the
//! records of the WIT contract as plain Rust types ([`types`]), wrappers over the host
//! interfaces ([`log`], [`tokens`], [`config`], [`kv`], [`docs`], [`notify`], [`prices`],
//! [`rag`]),
//! and for each plugin kind one trait and one export macro.
//!
//! | kind | trait | macro |
//! |---|---|---|
//! | `feed-parser` | [`FeedParser`] | [`export_feed_parser!`] |
//! | `rule-processor` | [`RuleProcessor`] | [`export_rule_processor!`] |
//! | `scrape-parser` | [`ScrapeParser`] | [`export_scrape_parser!`] |
//! | `notify-formatter` | [`NotifyFormatter`] | [`export_notify_formatter!`] |
//! | `task` | [`Task`] | [`export_task!`] |
//! | `event-handler` | [`EventHandler`] | [`export_event_handler!`] |
//! | `doc-chunker` | [`DocChunker`] | [`export_doc_chunker!`] |
//!
//! A plugin is a `cdylib` crate built with `cargo build --target wasm32-wasip2 --release`
//! (or `impressox plugin build`); the result is a component the host loads from its plugin
//! directory. The macro fills in the plugin's identity: its kind from the trait, its
//! version from the crate's `Cargo.toml`, its name from the trait's `NAME`.
//!
//! ```no_run
//! use impressox_plugin_sdk::{export_notify_formatter, NotifyFormatter};
//! use impressox_plugin_sdk::types::{Notification, ParseMode, RenderedMessage};
//!
//! struct Plain;
//!
//! impl NotifyFormatter for Plain {
//!     const NAME: &'static str = "plain";
//!     fn format(n: Notification, _channel: String) -> Result<Vec<RenderedMessage>, String> {
//!         Ok(vec![RenderedMessage {
//!             text: format!("{}\n{}", n.title, n.body),
//!             subject: Some(n.title),
//!             html: None,
//!             parse_mode: ParseMode::Plain,
//!         }])
//!     }
//! }
//!
//! export_notify_formatter!(Plain);
//! ```
//!
//! ## Organization
//! - [`types`]: every record, enum and variant of `impressox:plugin/types`.
//! - host interfaces: [`log`] (always available), [`config`], and the capabilities
//!   [`kv`], [`docs`], [`notify`], [`prices`], [`rag`] that an operator must grant (tasks and event
//!   handlers only; a pure plugin that calls one is refused at load).
//! - [`tokens`]: the embedder's token count (doc-chunkers only), and [`chunking`]: cutting
//!   text into token-sized pieces with overlap at word boundaries, with char offsets.
//! - [`http`]: outbound HTTP over the standard `wasi:http`, to the hosts an operator
//!   grants (tasks and event handlers only).
//! - one trait per kind, below, and its export macro.
//! - `bindings`: the raw `wit-bindgen` output; plugin code should not need it.

#[doc(hidden)]
pub mod bindings;

pub mod chunking;
pub mod http;

#[doc(hidden)]
pub use wit_bindgen;

/// The version of the WIT package this SDK speaks. The host states which it accepts.
pub const WIT_VERSION: &str = "0.1.0";

/// Every record of the WIT contract (`impressox:plugin/types`).
pub mod types {
    pub use crate::bindings::base::impressox::plugin::types::*;

    /// One row of a [`TickBatch`]. (WIT's `tick` record, written out here because no
    /// function takes it directly, so wit-bindgen does not generate it.)
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Tick {
        pub symbol_id: u32,
        pub price: f64,
        pub ts_ms: i64,
    }

    /// Rows in and out of the column layout of [`TickBatch`].
    mod tick_batch {
        use super::{Tick, TickBatch};

        impl TickBatch {
            /// A batch from rows.
            pub fn from_ticks(now_ms: i64, ticks: Vec<Tick>) -> TickBatch {
                TickBatch {
                    now_ms,
                    symbol_ids: ticks.iter().map(|t| t.symbol_id).collect(),
                    prices: ticks.iter().map(|t| t.price).collect(),
                    ts_ms: ticks.iter().map(|t| t.ts_ms).collect(),
                }
            }

            /// Number of ticks (the shortest column, should the columns disagree).
            pub fn len(&self) -> usize {
                self.symbol_ids
                    .len()
                    .min(self.prices.len())
                    .min(self.ts_ms.len())
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The ticks as rows.
            pub fn iter(&self) -> impl Iterator<Item = Tick> + '_ {
                self.symbol_ids
                    .iter()
                    .zip(&self.prices)
                    .zip(&self.ts_ms)
                    .map(|((&symbol_id, &price), &ts_ms)| Tick {
                        symbol_id,
                        price,
                        ts_ms,
                    })
            }

            /// Append one tick.
            pub fn push(&mut self, tick: Tick) {
                self.symbol_ids.push(tick.symbol_id);
                self.prices.push(tick.price);
                self.ts_ms.push(tick.ts_ms);
            }
        }
    }
}

/// Logging into the host's output, tagged with the plugin's name. Always available.
pub mod log {
    use crate::bindings::base::impressox::plugin::log as raw;
    pub use raw::Level;

    /// Log `message` at `level`.
    pub fn log(level: Level, message: &str) {
        raw::log(level, message);
    }
    /// Log at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Log at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Log at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Log at error level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// The configured embedder's token count (doc-chunkers only; pure, no I/O): sizes chunks in
/// the tokens the embedder will see, without the special tokens it adds around a whole
/// input.
pub mod tokens {
    use crate::bindings::base::impressox::plugin::tokens as raw;

    /// Tokens of `text`.
    pub fn count(text: &str) -> u32 {
        raw::count(text)
    }

    /// Tokens of each text, in order, in one call to the host.
    pub fn count_many(texts: &[String]) -> Vec<u32> {
        raw::count_many(texts)
    }
}

/// The plugin's own settings and secrets (tasks and event handlers).
pub mod config {
    pub use crate::bindings::base::impressox::plugin::config::*;
}

/// Key-value store, namespaced per plugin. Needs the grant `kv = true`.
///
/// Keys are the plugin's own: the host stores them under the plugin's name, so two
/// plugins never see each other's keys. Keys are 1 to 512 bytes of printable text and
/// values at most 1 MiB by default (`[capabilities.kv]`); a plugin holds at most 10,000
/// live keys. Going over is an `Err` naming the cap. Values are bytes; `incr` works on
/// values that are decimal integers.
///
/// ```no_run
/// use std::time::Duration;
/// use impressox_plugin_sdk::kv;
///
/// fn remember_run(now_ms: i64) -> Result<i64, String> {
///     // Counted atomically, across hosts on Redis.
///     let runs = kv::incr("runs", 1)?;
///     // Expires on its own after a day.
///     kv::set_with_ttl("last-run", now_ms.to_string().as_bytes(), Duration::from_secs(86_400))?;
///     let last = kv::get_string("last-run")?;
///     assert!(last.is_some());
///     Ok(runs)
/// }
/// ```
pub mod kv {
    use crate::bindings::base::impressox::plugin::kv as raw;
    use std::time::Duration;

    /// The value of `key`; `None` if it is absent or expired.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, String> {
        raw::get(key)
    }

    /// The value of `key` as UTF-8 text (an `Err` if it is not).
    pub fn get_string(key: &str) -> Result<Option<String>, String> {
        match raw::get(key)? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| format!("kv value of {key:?} is not UTF-8 text")),
            None => Ok(None),
        }
    }

    /// Set `key` to `value`, with no expiry (an earlier one is dropped).
    pub fn set(key: &str, value: &[u8]) -> Result<(), String> {
        raw::set(key, value, None)
    }

    /// Set `key` to `value`, expiring after `ttl` (at least a millisecond).
    pub fn set_with_ttl(key: &str, value: &[u8], ttl: Duration) -> Result<(), String> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        raw::set(key, value, Some(ms))
    }

    /// Remove `key`; `false` if it was not there.
    pub fn delete(key: &str) -> Result<bool, String> {
        raw::delete(key)
    }

    /// Atomically add `by` to the integer at `key` (missing counts as 0); the new value.
    pub fn incr(key: &str, by: i64) -> Result<i64, String> {
        raw::incr(key, by)
    }
}

/// Document store, granted collections only. Needs the grant `docs = ["name", ...]`.
///
/// Documents are JSON objects by id in the plugin's own collections (stored apart from
/// the host's and other plugins' collections). `find` takes an equality filter on
/// top-level fields and returns the most recently written documents first. Bad JSON, an
/// ungranted collection or a cap exceeded is an `Err` saying what is wrong.
///
/// ```no_run
/// use impressox_plugin_sdk::docs;
///
/// fn keep_whale(tx_hash: &str, amount: f64) -> Result<usize, String> {
///     let doc = format!(r#"{{"tx": "{tx_hash}", "amount": {amount}, "chain": "eth"}}"#);
///     docs::upsert("whales", tx_hash, &doc)?;
///     let stored = docs::get("whales", tx_hash)?.expect("just written");
///     assert!(stored.contains(tx_hash));
///     let on_eth = docs::find("whales", r#"{"chain": "eth"}"#, 10)?;
///     Ok(on_eth.len())
/// }
/// ```
pub mod docs {
    use crate::bindings::base::impressox::plugin::docs as raw;

    /// Insert or replace the document `id` of `collection` with the JSON object `json`.
    pub fn upsert(collection: &str, id: &str, json: &str) -> Result<(), String> {
        raw::upsert(collection, id, json)
    }

    /// The document `id` as JSON text (with its `_id`), or `None`.
    pub fn get(collection: &str, id: &str) -> Result<Option<String>, String> {
        raw::get(collection, id)
    }

    /// Documents whose fields equal those of `filter_json` (`"{}"`: all), newest first,
    /// at most `limit` (1 to 1000 by default).
    pub fn find(collection: &str, filter_json: &str, limit: u32) -> Result<Vec<String>, String> {
        raw::find(collection, filter_json, limit)
    }

    /// Delete the document `id`; `false` if there was none.
    pub fn delete(collection: &str, id: &str) -> Result<bool, String> {
        raw::delete(collection, id)
    }
}

/// Enqueue notifications for the notify worker. Needs the grant `notify = true`.
///
/// The request is checked as `POST /api/v1/notifications` checks it (an `Err` names the
/// field) and is idempotent on its id: calling again with the same id and content (a
/// retried run) makes no second notification. The host prefixes the id with the
/// plugin's name (`price-digest:<id>`) and records `plugin:<name>` as its source.
///
/// ```no_run
/// use impressox_plugin_sdk::notify;
///
/// fn tell(user: &str, day: &str) -> Result<(), String> {
///     let mut n = notify::notification(&format!("digest-{user}-{day}"), user, "digest", "Prices today");
///     n.body = "BTCUSDT 97,000 (+1.2%)".into();
///     // No channels: the user's enabled channels.
///     notify::enqueue(&n, &[])?;
///     notify::enqueue(&n, &["telegram", "email"])
/// }
/// ```
pub mod notify {
    use crate::bindings::base::impressox::plugin::notify as raw;
    use crate::types::{Notification, Priority};

    /// A normal-priority notification with an empty body and no data.
    pub fn notification(id: &str, user_id: &str, kind: &str, title: &str) -> Notification {
        Notification {
            id: id.into(),
            user_id: user_id.into(),
            kind: kind.into(),
            priority: Priority::Normal,
            title: title.into(),
            body: String::new(),
            data_json: "{}".into(),
            created_at_ms: 0,
        }
    }

    /// Enqueue `n` for `channels` (empty: the user's enabled channels).
    pub fn enqueue(n: &Notification, channels: &[&str]) -> Result<(), String> {
        let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        raw::enqueue(n, &channels)
    }
}

/// Latest and recent prices the market monitor keeps, read-only. Needs the grant
/// `prices = true`.
///
/// Each point says how old it is and whether it is `stale` (older than its source's
/// `stale_after_secs`): a stale price is the last one known, not the market now.
///
/// ```no_run
/// use impressox_plugin_sdk::prices;
///
/// fn btc_line() -> Result<String, String> {
///     let Some(p) = prices::latest("BTCUSDT")? else {
///         return Ok("BTCUSDT: no price yet".into());
///     };
///     let hour = prices::recent("BTCUSDT", 60)?;
///     let first = hour.first().map_or(p.price, |q| q.price);
///     let stale = if p.stale { " (stale)" } else { "" };
///     Ok(format!("BTCUSDT {:.2}{stale}, {:+.2}% over {} points", p.price,
///         (p.price - first) / first * 100.0, hour.len()))
/// }
/// ```
pub mod prices {
    use crate::bindings::base::impressox::plugin::prices as raw;
    pub use raw::PricePoint;

    /// The latest price of `symbol` (`BTCUSDT`), or `None` before the first one.
    pub fn latest(symbol: &str) -> Result<Option<PricePoint>, String> {
        raw::latest(symbol)
    }

    /// Up to `limit` recent points of `symbol`, oldest first.
    pub fn recent(symbol: &str, limit: u32) -> Result<Vec<PricePoint>, String> {
        raw::recent(symbol, limit)
    }
}

/// Retrieval over the host's RAG index, granted collections only. Needs the grant
/// `rag = ["name", ...]` and the `rag` worker running in the same process (otherwise
/// every call is an `Err` saying so).
///
/// `query` takes the JSON body of `POST /api/v1/rag/query` and returns that route's JSON
/// answer (`results`: text, `score`, `document_id`, `source`, ...). `upsert` indexes a
/// document as a source's would be (chunked by the host's chunker, embedded only when its
/// chunks changed); it is stored as `plugin:<your plugin>/<id>`, so it never touches a
/// source's documents or another plugin's. Bad input, an ungranted collection or a cap
/// exceeded is an `Err` naming what is wrong.
///
/// ```no_run
/// use impressox_plugin_sdk::rag;
///
/// fn remember(day: &str, summary: &str) -> Result<String, String> {
///     let doc = rag::document(day, summary, "text/markdown");
///     let outcome = rag::upsert("notes", &doc)?;
///     // 0 when the summary was already indexed as is.
///     let _embedded = outcome.embedded;
///     let answer = rag::query(r#"{"collection": "notes", "query": "funding rates", "k": 3}"#)?;
///     rag::delete("notes", "2026-11-30")?;
///     Ok(answer)
/// }
/// ```
pub mod rag {
    use crate::bindings::base::impressox::plugin::rag as raw;
    pub use raw::{RagDocument, UpsertOutcome};

    /// A document without metadata, URL or time.
    pub fn document(id: &str, text: &str, media_type: &str) -> RagDocument {
        RagDocument {
            id: id.into(),
            text: text.into(),
            media_type: media_type.into(),
            metadata: Vec::new(),
            url: None,
            time_ms: None,
        }
    }

    /// Answer a query (the JSON body of `POST /api/v1/rag/query`) with that route's JSON.
    pub fn query(request_json: &str) -> Result<String, String> {
        raw::query(request_json)
    }

    /// Index `doc` in `collection`, replacing what was stored under its id.
    pub fn upsert(collection: &str, doc: &RagDocument) -> Result<UpsertOutcome, String> {
        raw::upsert(collection, doc)
    }

    /// Remove the document `id` and all its chunks; `false` if there was none.
    pub fn delete(collection: &str, id: &str) -> Result<bool, String> {
        raw::delete(collection, id)
    }
}

use types::{
    Alert, ChunkOptions, Chunked, Document, Event, Notification, Outcome, PageCapture,
    ParsedPayload, RenderedMessage, Rule, ScrapeResult, SubscribeRequest, TaskReport, TaskRun,
    TickBatch,
};

/// A feed parser turns raw feed payloads into price ticks.
///
/// ```no_run
/// use impressox_plugin_sdk::types::{ParsedPayload, PriceTick};
/// use impressox_plugin_sdk::{FeedParser, export_feed_parser};
///
/// struct Lines;
/// impl FeedParser for Lines {
///     const NAME: &'static str = "lines";
///     fn parse(payload: Vec<u8>, received_ms: i64) -> Result<ParsedPayload, String> {
///         let text = String::from_utf8(payload).map_err(|_| "not UTF-8".to_string())?;
///         let (symbol, price) = text.split_once(' ').ok_or("expected `SYMBOL PRICE`")?;
///         let price: f64 = price.trim().parse().map_err(|_| "bad price".to_string())?;
///         let tick = PriceTick { symbol: symbol.into(), price, ts_ms: received_ms, volume: None, bid: None, ask: None };
///         Ok(ParsedPayload { ticks: vec![tick], heartbeat: false })
///     }
/// }
/// export_feed_parser!(Lines);
/// ```
pub trait FeedParser: 'static {
    /// The plugin's unique name.
    const NAME: &'static str;
    /// One line saying what it parses.
    const DESCRIPTION: &'static str = "";

    /// The message to send after connecting, for feeds that subscribe by message.
    fn subscribe_message(request: SubscribeRequest) -> Option<String> {
        let _ = request;
        None
    }

    /// Parse one payload received at `received_ms` (milliseconds since the epoch).
    fn parse(payload: Vec<u8>, received_ms: i64) -> Result<ParsedPayload, String>;
}

/// A rule processor owns a set of alert rules and evaluates batches of ticks against them.
///
/// ```no_run
/// use std::cell::RefCell;
/// use impressox_plugin_sdk::types::{Alert, Rule, TickBatch};
/// use impressox_plugin_sdk::{RuleProcessor, export_rule_processor};
///
/// thread_local!(static RULES: RefCell<Vec<Rule>> = const { RefCell::new(Vec::new()) });
///
/// /// Fires every armed rule whose symbol ticks above its value.
/// struct Above;
/// impl RuleProcessor for Above {
///     const NAME: &'static str = "above";
///     fn upsert_rules(rules: Vec<Rule>) -> Result<(), String> {
///         RULES.with(|r| r.borrow_mut().extend(rules));
///         Ok(())
///     }
///     fn remove_rules(ids: Vec<String>) {
///         RULES.with(|r| r.borrow_mut().retain(|x| !ids.contains(&x.id)));
///     }
///     fn prime_prices(_: Vec<(u32, f64, i64)>) {}
///     fn evaluate(batch: TickBatch) -> Vec<Alert> {
///         let mut out = Vec::new();
///         RULES.with(|r| for rule in r.borrow_mut().iter_mut() {
///             for t in batch.iter().filter(|t| t.symbol_id == rule.symbol_id) {
///                 if rule.state.armed && t.price > rule.condition.value {
///                     rule.state.armed = false;
///                     rule.state.last_fired_ms = Some(t.ts_ms);
///                     out.push(Alert { rule_id: rule.id.clone(), symbol_id: t.symbol_id, price: t.price,
///                         reference_price: None, fired_at_ms: t.ts_ms, reason: "above".into(), state: rule.state });
///                 }
///             }
///         });
///         out
///     }
/// }
/// export_rule_processor!(Above);
/// ```
///
/// It keeps its rules in memory between calls; the host re-sends them (with their
/// persisted [`RuleState`]) to every fresh instance, so it may rely on that.
pub trait RuleProcessor: 'static {
    /// The plugin's unique name; rules name it in their `processor` field.
    const NAME: &'static str;
    /// One line saying what it evaluates.
    const DESCRIPTION: &'static str = "";

    /// Add or replace rules by id.
    fn upsert_rules(rules: Vec<Rule>) -> Result<(), String>;
    /// Forget rules by id; unknown ids are ignored.
    fn remove_rules(ids: Vec<String>);
    /// The last known `(symbol_id, price, ts_ms)` per symbol.
    fn prime_prices(prices: Vec<(u32, f64, i64)>);
    /// Evaluate a batch; return one alert per firing.
    fn evaluate(batch: TickBatch) -> Vec<Alert>;
}

/// A scrape parser reads a captured page into tweets, profiles, cursors and rate limits.
///
/// ```no_run
/// use impressox_plugin_sdk::types::{AccountSignal, PageCapture, ScrapeResult};
/// use impressox_plugin_sdk::{ScrapeParser, export_scrape_parser};
///
/// struct Counter;
/// impl ScrapeParser for Counter {
///     const NAME: &'static str = "counter";
///     fn parse(capture: PageCapture) -> Result<ScrapeResult, String> {
///         impressox_plugin_sdk::log::info(&format!("{} responses", capture.responses.len()));
///         Ok(ScrapeResult { tweets: vec![], profiles: vec![], cursors: vec![], rate_limits: vec![],
///             account_signal: AccountSignal::Ok, skipped: vec![] })
///     }
/// }
/// export_scrape_parser!(Counter);
/// ```
pub trait ScrapeParser: 'static {
    /// The plugin's unique name.
    const NAME: &'static str;
    /// One line saying which pages it reads.
    const DESCRIPTION: &'static str = "";

    /// Parse one captured page. Return `Err` only when nothing could be read; an entry
    /// that fails goes into `skipped` and the rest is returned.
    fn parse(capture: PageCapture) -> Result<ScrapeResult, String>;
}

/// A notify formatter renders a notification for one channel.
pub trait NotifyFormatter: 'static {
    /// The plugin's unique name; channels name it in config.
    const NAME: &'static str;
    /// One line saying which channel it renders for.
    const DESCRIPTION: &'static str = "";

    /// Render `notification` for `channel` (`telegram`, `email`, `webhook`, `console`).
    fn format(notification: Notification, channel: String) -> Result<Vec<RenderedMessage>, String>;
}

/// A task runs on a schedule and reports what it did.
///
/// ```no_run
/// use impressox_plugin_sdk::types::{TaskReport, TaskRun};
/// use impressox_plugin_sdk::{Task, export_task};
///
/// struct Hello;
/// impl Task for Hello {
///     const NAME: &'static str = "hello";
///     fn run(run: TaskRun) -> Result<TaskReport, String> {
///         Ok(TaskReport { summary: format!("hello from {}", run.schedule), data_json: "{}".into() })
///     }
/// }
/// export_task!(Hello);
/// ```
pub trait Task: 'static {
    /// The plugin's unique name; schedules name it in config.
    const NAME: &'static str;
    /// One line saying what it does.
    const DESCRIPTION: &'static str = "";

    /// Run once.
    fn run(run: TaskRun) -> Result<TaskReport, String>;
}

/// An event handler handles one event of a stream.
///
/// ```no_run
/// use impressox_plugin_sdk::types::{Event, Outcome};
/// use impressox_plugin_sdk::{EventHandler, export_event_handler};
///
/// struct Acker;
/// impl EventHandler for Acker {
///     const NAME: &'static str = "acker";
///     fn handle(event: Event) -> Outcome {
///         if event.fields.is_empty() { Outcome::DeadLetter("empty event".into()) } else { Outcome::Ack }
///     }
/// }
/// export_event_handler!(Acker);
/// ```
pub trait EventHandler: 'static {
    /// The plugin's unique name; listeners name it in config.
    const NAME: &'static str;
    /// One line saying what it handles.
    const DESCRIPTION: &'static str = "";

    /// Handle one event; the outcome tells the host to ack, retry or dead-letter it.
    fn handle(event: Event) -> Outcome;
}

/// A document chunker cuts one document into chunks for retrieval: each with its text,
/// its char offsets into the normalised text and metadata. Sizes are in the embedder's
/// tokens ([`tokens::count`]); [`chunking::split`] does the cutting by size.
///
/// ```no_run
/// use impressox_plugin_sdk::types::{Chunk, ChunkOptions, Chunked, Document};
/// use impressox_plugin_sdk::{DocChunker, chunking, export_doc_chunker, tokens};
///
/// struct Paragraphs;
/// impl DocChunker for Paragraphs {
///     const NAME: &'static str = "paragraphs";
///     fn chunk(doc: Document, options: ChunkOptions) -> Result<Chunked, String> {
///         let mut count = |texts: &[String]| tokens::count_many(texts);
///         let pieces = chunking::split(&doc.text, 0..doc.text.len(), &options, &mut count);
///         let mut offsets = chunking::CharOffsets::new(&doc.text);
///         let chunks = pieces
///             .into_iter()
///             .map(|r| Chunk {
///                 text: doc.text[r.clone()].to_string(),
///                 start: offsets.at(r.start),
///                 end: offsets.at(r.end),
///                 metadata: doc.metadata.clone(),
///             })
///             .collect();
///         Ok(Chunked { normalised: None, chunks })
///     }
/// }
/// export_doc_chunker!(Paragraphs);
/// ```
pub trait DocChunker: 'static {
    /// The plugin's unique name; sources name it in config.
    const NAME: &'static str;
    /// One line saying which documents it cuts, and how.
    const DESCRIPTION: &'static str = "";

    /// Cut `document` into chunks of at most `options.max_tokens` tokens. `Err` names what
    /// could not be read (the host reports it for this document and goes on).
    fn chunk(document: Document, options: ChunkOptions) -> Result<Chunked, String>;
}

/// Implementation detail of the export macros: the `info` export of a plugin.
#[doc(hidden)]
#[macro_export]
macro_rules! __impressox_meta {
    ($ty:ty, $trait:ident, $kind:ident) => {
        fn info() -> $crate::types::PluginInfo {
            $crate::types::PluginInfo {
                name: <$ty as $crate::$trait>::NAME.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                kind: $crate::types::PluginKind::$kind,
                description: <$ty as $crate::$trait>::DESCRIPTION.to_string(),
            }
        }
    };
}

/// Export a [`FeedParser`] implementation as this component's plugin.
#[macro_export]
macro_rules! export_feed_parser {
    ($ty:ty) => {
        // Exports exist only in the component; a native build (tests, benchmarks that link
        // several plugins) gets the trait impl checked but no clashing export symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ImpressoxPlugin;
                        impl $crate::bindings::feed_parser::exports::impressox::plugin::parse_feed::Guest
                for __ImpressoxPlugin
            {
                $crate::__impressox_meta!($ty, FeedParser, FeedParser);
                fn subscribe_message(request: $crate::types::SubscribeRequest) -> Option<String> {
                    <$ty as $crate::FeedParser>::subscribe_message(request)
                }
                fn parse(
                    payload: Vec<u8>,
                    received_ms: i64,
                ) -> Result<$crate::types::ParsedPayload, String> {
                    <$ty as $crate::FeedParser>::parse(payload, received_ms)
                }
            }
            $crate::bindings::feed_parser::__export_feed_parser_world!(__ImpressoxPlugin with_types_in $crate::bindings::feed_parser);
        };
    };
}

/// Export a [`RuleProcessor`] implementation as this component's plugin.
#[macro_export]
macro_rules! export_rule_processor {
    ($ty:ty) => {
        // Exports exist only in the component; a native build (tests, benchmarks that link
        // several plugins) gets the trait impl checked but no clashing export symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ImpressoxPlugin;
                        impl $crate::bindings::rule_processor::exports::impressox::plugin::process_rules::Guest
                for __ImpressoxPlugin
            {
                $crate::__impressox_meta!($ty, RuleProcessor, RuleProcessor);
                fn upsert_rules(rules: Vec<$crate::types::Rule>) -> Result<(), String> {
                    <$ty as $crate::RuleProcessor>::upsert_rules(rules)
                }
                fn remove_rules(ids: Vec<String>) {
                    <$ty as $crate::RuleProcessor>::remove_rules(ids)
                }
                fn prime_prices(prices: Vec<(u32, f64, i64)>) {
                    <$ty as $crate::RuleProcessor>::prime_prices(prices)
                }
                fn evaluate(batch: $crate::types::TickBatch) -> Vec<$crate::types::Alert> {
                    <$ty as $crate::RuleProcessor>::evaluate(batch)
                }
            }
            $crate::bindings::rule_processor::__export_rule_processor_world!(__ImpressoxPlugin with_types_in $crate::bindings::rule_processor);
        };
    };
}

/// Export a [`ScrapeParser`] implementation as this component's plugin.
#[macro_export]
macro_rules! export_scrape_parser {
    ($ty:ty) => {
        // Exports exist only in the component; a native build (tests, benchmarks that link
        // several plugins) gets the trait impl checked but no clashing export symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ImpressoxPlugin;
                        impl $crate::bindings::scrape_parser::exports::impressox::plugin::parse_page::Guest
                for __ImpressoxPlugin
            {
                $crate::__impressox_meta!($ty, ScrapeParser, ScrapeParser);
                fn parse(
                    capture: $crate::types::PageCapture,
                ) -> Result<$crate::types::ScrapeResult, String> {
                    <$ty as $crate::ScrapeParser>::parse(capture)
                }
            }
            $crate::bindings::scrape_parser::__export_scrape_parser_world!(__ImpressoxPlugin with_types_in $crate::bindings::scrape_parser);
        };
    };
}

/// Export a [`NotifyFormatter`] implementation as this component's plugin.
#[macro_export]
macro_rules! export_notify_formatter {
    ($ty:ty) => {
        // Exports exist only in the component; a native build (tests, benchmarks that link
        // several plugins) gets the trait impl checked but no clashing export symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ImpressoxPlugin;
                        impl $crate::bindings::notify_formatter::exports::impressox::plugin::format_notification::Guest
                for __ImpressoxPlugin
            {
                $crate::__impressox_meta!($ty, NotifyFormatter, NotifyFormatter);
                fn format(
                    notification: $crate::types::Notification,
                    channel: String,
                ) -> Result<Vec<$crate::types::RenderedMessage>, String> {
                    <$ty as $crate::NotifyFormatter>::format(notification, channel)
                }
            }
            $crate::bindings::notify_formatter::__export_notify_formatter_world!(__ImpressoxPlugin with_types_in $crate::bindings::notify_formatter);
        };
    };
}

/// Export a [`Task`] implementation as this component's plugin.
#[macro_export]
macro_rules! export_task {
    ($ty:ty) => {
        // Exports exist only in the component; a native build (tests, benchmarks that link
        // several plugins) gets the trait impl checked but no clashing export symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ImpressoxPlugin;
                        impl $crate::bindings::task::exports::impressox::plugin::run_task::Guest for __ImpressoxPlugin {
                $crate::__impressox_meta!($ty, Task, Task);
                fn run(run: $crate::types::TaskRun) -> Result<$crate::types::TaskReport, String> {
                    <$ty as $crate::Task>::run(run)
                }
            }
            $crate::bindings::task::__export_task_world!(__ImpressoxPlugin with_types_in $crate::bindings::task);
        };
    };
}

/// Export an [`EventHandler`] implementation as this component's plugin.
#[macro_export]
macro_rules! export_event_handler {
    ($ty:ty) => {
        // Exports exist only in the component; a native build (tests, benchmarks that link
        // several plugins) gets the trait impl checked but no clashing export symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ImpressoxPlugin;
                        impl $crate::bindings::event_handler::exports::impressox::plugin::handle_event::Guest
                for __ImpressoxPlugin
            {
                $crate::__impressox_meta!($ty, EventHandler, EventHandler);
                fn handle(event: $crate::types::Event) -> $crate::types::Outcome {
                    <$ty as $crate::EventHandler>::handle(event)
                }
            }
            $crate::bindings::event_handler::__export_event_handler_world!(__ImpressoxPlugin with_types_in $crate::bindings::event_handler);
        };
    };
}

/// Export a [`DocChunker`] implementation as this component's plugin.
#[macro_export]
macro_rules! export_doc_chunker {
    ($ty:ty) => {
        // Exports exist only in the component; a native build (tests, benchmarks that link
        // several plugins) gets the trait impl checked but no clashing export symbols.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __ImpressoxPlugin;
            impl $crate::bindings::doc_chunker::exports::impressox::plugin::chunk_document::Guest
                for __ImpressoxPlugin
            {
                // `chunker-info`: a doc-chunker's kind is its export.
                fn info() -> $crate::types::ChunkerInfo {
                    $crate::types::ChunkerInfo {
                        name: <$ty as $crate::DocChunker>::NAME.to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        description: <$ty as $crate::DocChunker>::DESCRIPTION.to_string(),
                    }
                }
                fn chunk(
                    document: $crate::types::Document,
                    options: $crate::types::ChunkOptions,
                ) -> Result<$crate::types::Chunked, String> {
                    <$ty as $crate::DocChunker>::chunk(document, options)
                }
            }
            $crate::bindings::doc_chunker::__export_doc_chunker_world!(__ImpressoxPlugin with_types_in $crate::bindings::doc_chunker);
        };
    };
}
