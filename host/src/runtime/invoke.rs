//! Typed calls, one method per plugin export, plus the two other ways in:
//! [`Session`] for stateful plugins (rule processors keep their rules in instance
//! memory) and [`run_json`] for `impressox plugin run`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Kind;
use super::call::{CallError, PluginHandle, classify};
use super::instance::Instance;
use super::kind::KindBindings;
use super::output::OutputSize;
use super::registry::Loaded;
use crate::bindings::types::*;

impl PluginHandle {
    /// Parse one feed payload.
    pub fn parse_feed(
        &self,
        payload: &[u8],
        received_ms: i64,
    ) -> Result<Result<ParsedPayload, String>, CallError> {
        self.call(Some(Kind::FeedParser), |b, store| match b {
            KindBindings::FeedParser(b) => {
                b.impressox_plugin_parse_feed()
                    .call_parse(store, payload, received_ms)
            }
            _ => unreachable!("kind checked by call"),
        })
    }

    /// The subscribe message for a feed.
    pub fn subscribe_message(
        &self,
        request: &SubscribeRequest,
    ) -> Result<Option<String>, CallError> {
        self.call(Some(Kind::FeedParser), |b, store| match b {
            KindBindings::FeedParser(b) => b
                .impressox_plugin_parse_feed()
                .call_subscribe_message(store, request),
            _ => unreachable!("kind checked by call"),
        })
    }

    /// Parse one captured page.
    pub fn parse_page(
        &self,
        capture: &PageCapture,
    ) -> Result<Result<ScrapeResult, String>, CallError> {
        self.call(Some(Kind::ScrapeParser), |b, store| match b {
            KindBindings::ScrapeParser(b) => {
                b.impressox_plugin_parse_page().call_parse(store, capture)
            }
            _ => unreachable!("kind checked by call"),
        })
    }

    /// Render a notification for a channel.
    pub fn format(
        &self,
        notification: &Notification,
        channel: &str,
    ) -> Result<Result<Vec<RenderedMessage>, String>, CallError> {
        self.call(Some(Kind::NotifyFormatter), |b, store| match b {
            KindBindings::NotifyFormatter(b) => b
                .impressox_plugin_format_notification()
                .call_format(store, notification, channel),
            _ => unreachable!("kind checked by call"),
        })
    }

    /// Cut a document into chunks.
    pub fn chunk(
        &self,
        document: &Document,
        options: ChunkOptions,
    ) -> Result<Result<Chunked, String>, CallError> {
        self.call(Some(Kind::DocChunker), |b, store| match b {
            KindBindings::DocChunker(b) => b
                .impressox_plugin_chunk_document()
                .call_chunk(store, document, options),
            _ => unreachable!("kind checked by call"),
        })
    }

    /// Run a task once.
    pub fn run_task(&self, run: &TaskRun) -> Result<Result<TaskReport, String>, CallError> {
        self.call(Some(Kind::Task), |b, store| match b {
            KindBindings::Task(b) => b.impressox_plugin_run_task().call_run(store, run),
            _ => unreachable!("kind checked by call"),
        })
    }

    /// Run a task once under a deadline of its own (a schedule's `timeout`, in ms) rather
    /// than `[plugins] call_timeout_ms`.
    pub fn run_task_within(
        &self,
        run: &TaskRun,
        timeout_ms: u64,
    ) -> Result<Result<TaskReport, String>, CallError> {
        self.call_within(Some(Kind::Task), timeout_ms, |b, store| match b {
            KindBindings::Task(b) => b.impressox_plugin_run_task().call_run(store, run),
            _ => unreachable!("kind checked by call"),
        })
    }

    /// Handle one event.
    pub fn handle_event(&self, event: &Event) -> Result<Outcome, CallError> {
        self.call(Some(Kind::EventHandler), |b, store| match b {
            KindBindings::EventHandler(b) => {
                b.impressox_plugin_handle_event().call_handle(store, event)
            }
            _ => unreachable!("kind checked by call"),
        })
    }

    /// Handle one event, collecting the call's `kv` writes and `notify` enqueues instead
    /// of applying them (`capabilities::effects`), for the caller to commit with the
    /// event's ack. A failed call's effects are dropped with it: none comes back. `reads`
    /// is shared by the calls of one batch (`effects::BatchReads`).
    pub fn handle_event_collecting(
        &self,
        event: &Event,
        reads: &std::sync::Arc<crate::capabilities::effects::BatchReads>,
    ) -> (
        Result<Outcome, CallError>,
        crate::capabilities::effects::Effects,
    ) {
        let mut effects = Default::default();
        let outcome = self.call(Some(Kind::EventHandler), |b, store| match b {
            KindBindings::EventHandler(b) => {
                store.data_mut().effects = Some(crate::capabilities::effects::Effects::in_batch(
                    reads.clone(),
                ));
                let outcome = b
                    .impressox_plugin_handle_event()
                    .call_handle(&mut *store, event);
                effects = store.data_mut().effects.take().unwrap_or_default();
                outcome
            }
            _ => unreachable!("kind checked by call"),
        });
        if outcome.is_err() {
            effects = Default::default();
        }
        (outcome, effects)
    }

    /// The serving version's own `info`.
    pub fn info(&self) -> Result<super::kind::Identity, CallError> {
        self.call(None, |b, store| b.info(store))
    }

    /// A session: one dedicated instance, re-initialised whenever the serving version
    /// changes or a call fails.
    pub fn session(&self) -> Session {
        Session {
            handle: self.clone(),
            current: None,
        }
    }
}

/// A dedicated instance for a stateful plugin. Each call checks which version serves; on
/// a swap (or after a failure) it builds a fresh instance and runs the caller's `init`
/// (e.g. "load all rules") before the call, so no state is lost to a swap.
pub struct Session {
    handle: PluginHandle,
    current: Option<(Arc<Loaded>, Instance)>,
}

impl Session {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.handle.name()
    }

    /// Evaluate a tick batch on a rule processor; `init` runs on each fresh instance.
    pub fn evaluate(
        &mut self,
        init: &mut dyn FnMut(&mut RuleProcessorInit<'_>) -> wasmtime::Result<()>,
        batch: &TickBatch,
    ) -> Result<Vec<Alert>, CallError> {
        self.with(init, |p| p.evaluate(batch))
    }

    /// Upsert rules into the live instance. When the call needs a fresh instance, `init`
    /// runs first (and should load every rule, these included).
    pub fn upsert_rules(
        &mut self,
        init: &mut dyn FnMut(&mut RuleProcessorInit<'_>) -> wasmtime::Result<()>,
        rules: &[Rule],
    ) -> Result<Result<(), String>, CallError> {
        self.with(init, |p| p.upsert_rules(rules))
    }

    /// Remove rules from the live instance (`init` as for [`Session::upsert_rules`]).
    pub fn remove_rules(
        &mut self,
        init: &mut dyn FnMut(&mut RuleProcessorInit<'_>) -> wasmtime::Result<()>,
        ids: &[String],
    ) -> Result<(), CallError> {
        self.with(init, |p| p.remove_rules(ids))
    }

    /// Whether the next call will build a fresh instance (first call, swap, recycle or
    /// after a failure).
    pub fn needs_init(&self) -> bool {
        match (&self.current, self.handle.slot.current()) {
            (Some((loaded, inst)), Some(serving)) => {
                !Arc::ptr_eq(loaded, &serving)
                    || inst.calls >= self.handle.inner.limits.recycle_after_calls
            }
            _ => true,
        }
    }

    fn with<R: OutputSize>(
        &mut self,
        init: &mut dyn FnMut(&mut RuleProcessorInit<'_>) -> wasmtime::Result<()>,
        f: impl FnOnce(&mut RuleProcessorInit<'_>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let h = &self.handle;
        let stats = &h.slot.stats;
        let name = h.slot.name.clone();
        if stats.quarantined.load(Ordering::Acquire) {
            return Err(CallError::Quarantined {
                plugin: name,
                last_error: stats.last_error.lock().clone().unwrap_or_default(),
            });
        }
        let Some(serving) = h.slot.current() else {
            self.current = None;
            return Err(CallError::NotLoaded(name));
        };
        if serving.kind != Kind::RuleProcessor {
            return Err(CallError::WrongKind {
                plugin: name,
                expected: Kind::RuleProcessor,
                actual: serving.kind,
            });
        }
        let limits = &h.inner.limits;
        let stale = match &self.current {
            Some((loaded, inst)) => {
                !Arc::ptr_eq(loaded, &serving) || inst.calls >= limits.recycle_after_calls
            }
            None => true,
        };
        if stale {
            self.current = None;
            let mut inst =
                Instance::new(&h.inner.engine, &serving.pre, serving.ctx.clone(), limits).map_err(
                    |e| CallError::Instantiate {
                        plugin: name.clone(),
                        message: classify(&name, e, limits).to_string(),
                    },
                )?;
            stats.instances_created.fetch_add(1, Ordering::Relaxed);
            let KindBindings::RuleProcessor(b) = &inst.bindings else {
                unreachable!("kind checked")
            };
            let r = init(&mut RuleProcessorInit {
                bindings: b,
                store: &mut inst.store,
            });
            if let Err(e) = r {
                let err = classify(&name, e, limits);
                h.record_failure(&err);
                return Err(err);
            }
            self.current = Some((serving, inst));
        }
        let Some((_, inst)) = self.current.as_mut() else {
            unreachable!("set above")
        };
        super::instance::arm(&mut inst.store, limits);
        let KindBindings::RuleProcessor(b) = &inst.bindings else {
            unreachable!("kind checked")
        };
        let started = Instant::now();
        let result = f(&mut RuleProcessorInit {
            bindings: b,
            store: &mut inst.store,
        });
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.latency.record(started.elapsed().as_nanos() as u64);
        inst.calls += 1;
        // The same output cap as every other call: a processor returning millions of
        // alerts is broken, and its answer must not reach the host's memory and queues.
        let result = match result {
            Ok(v) if v.output_bytes() > limits.max_output_bytes => Err(CallError::OutputTooLarge {
                plugin: name.clone(),
                bytes: v.output_bytes(),
                cap: limits.max_output_bytes,
            }),
            Ok(v) => Ok(v),
            Err(e) => Err(classify(&name, e, limits)),
        };
        match result {
            Ok(v) => {
                stats.consecutive_failures.store(0, Ordering::Relaxed);
                Ok(v)
            }
            Err(err) => {
                self.current = None;
                h.record_failure(&err);
                Err(err)
            }
        }
    }
}

/// The rule-processor exports of a session's instance, for `init` callbacks.
pub struct RuleProcessorInit<'a> {
    bindings: &'a crate::bindings::rule_processor::RuleProcessor,
    store: &'a mut wasmtime::Store<super::state::StoreState>,
}

impl RuleProcessorInit<'_> {
    /// Add or replace rules.
    pub fn upsert_rules(&mut self, rules: &[Rule]) -> wasmtime::Result<Result<(), String>> {
        self.bindings
            .impressox_plugin_process_rules()
            .call_upsert_rules(&mut *self.store, rules)
    }
    /// Remove rules by id.
    pub fn remove_rules(&mut self, ids: &[String]) -> wasmtime::Result<()> {
        self.bindings
            .impressox_plugin_process_rules()
            .call_remove_rules(&mut *self.store, ids)
    }
    /// Tell the processor the last known prices.
    pub fn prime_prices(&mut self, prices: &[(u32, f64, i64)]) -> wasmtime::Result<()> {
        self.bindings
            .impressox_plugin_process_rules()
            .call_prime_prices(&mut *self.store, prices)
    }
    /// Evaluate one batch.
    pub fn evaluate(&mut self, batch: &TickBatch) -> wasmtime::Result<Vec<Alert>> {
        self.bindings
            .impressox_plugin_process_rules()
            .call_evaluate(&mut *self.store, batch)
    }
}

/// `plugin run` input for a feed parser.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedInput {
    /// The payload as text (a WebSocket text frame, an HTTP body, a replay row).
    payload: String,
    #[serde(default)]
    received_ms: Option<i64>,
    #[serde(default)]
    subscribe: Option<SubscribeRequest>,
}

/// `plugin run` input for a rule processor: rules, optional primed prices, then batches.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesInput {
    rules: Vec<Rule>,
    #[serde(default)]
    prices: Vec<(u32, f64, i64)>,
    batches: Vec<BatchRows>,
}

/// A tick batch as rows (`{"now_ms": .., "ticks": [{"symbol_id", "price", "ts_ms"}]}`),
/// easier to write by hand than the column layout that crosses the boundary.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRows {
    now_ms: i64,
    ticks: Vec<Tick>,
}

/// `plugin run` input for a formatter.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatInput {
    notification: Notification,
    channel: String,
}

/// `plugin run` input for a doc-chunker: the document's fields, and the chunk sizes
/// (defaults: [`ChunkInput::DEFAULT_MAX_TOKENS`], [`ChunkInput::DEFAULT_OVERLAP_TOKENS`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChunkInput {
    #[serde(default)]
    id: String,
    /// The document's text; a JSON value other than a string is the text of a JSON
    /// document (`"text": {"raw_content": ...}` for a tweet), written out compactly.
    text: Value,
    media_type: String,
    /// `{"key": "value", ...}`: easier to write by hand than a list of pairs.
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    overlap_tokens: Option<u32>,
}

impl ChunkInput {
    /// all-MiniLM-L6-v2 reads 256 tokens, two of them its own `[CLS]` and `[SEP]`.
    const DEFAULT_MAX_TOKENS: u32 = 254;
    const DEFAULT_OVERLAP_TOKENS: u32 = 32;
}

fn parse_input<T: for<'de> Deserialize<'de>>(kind: Kind, input: Value) -> Result<T> {
    serde_json::from_value(input)
        .with_context(|| format!("input does not have the {kind} shape (see `impressox plugin run --help` and the SDK docs)"))
}

/// Call a plugin once on a JSON input and return its output as JSON.
pub fn run_json(handle: &PluginHandle, input: Value) -> Result<Value> {
    let loaded = handle
        .current()
        .ok_or_else(|| anyhow!("plugin `{}` is not loaded", handle.name()))?;
    let out = match loaded.kind {
        Kind::FeedParser => {
            let i: FeedInput = parse_input(loaded.kind, input)?;
            let parsed = handle.parse_feed(
                i.payload.as_bytes(),
                i.received_ms.unwrap_or_else(crate::util::now_ms),
            )?;
            let subscribe = match &i.subscribe {
                Some(req) => json!(handle.subscribe_message(req)?),
                None => Value::Null,
            };
            json!({ "parse": result_json(parsed)?, "subscribe_message": subscribe })
        }
        Kind::RuleProcessor => {
            let i: RulesInput = parse_input(loaded.kind, input)?;
            let mut session = handle.session();
            let rules = i.rules;
            let prices = i.prices;
            let mut init = |p: &mut RuleProcessorInit<'_>| {
                p.prime_prices(&prices)?;
                match p.upsert_rules(&rules)? {
                    Ok(()) => Ok(()),
                    Err(e) => Err(wasmtime::Error::msg(format!(
                        "rules refused by the plugin: {e}"
                    ))),
                }
            };
            let mut batches = Vec::new();
            for batch in i.batches {
                let batch = TickBatch::from_ticks(batch.now_ms, batch.ticks);
                batches.push(session.evaluate(&mut init, &batch)?);
            }
            json!({ "alerts": batches })
        }
        Kind::ScrapeParser => {
            let capture: PageCapture = parse_input(loaded.kind, input)?;
            result_json(handle.parse_page(&capture)?)?
        }
        Kind::NotifyFormatter => {
            let i: FormatInput = parse_input(loaded.kind, input)?;
            result_json(handle.format(&i.notification, &i.channel)?)?
        }
        Kind::Task => {
            let run: TaskRun = parse_input(loaded.kind, input)?;
            result_json(handle.run_task(&run)?)?
        }
        Kind::EventHandler => {
            let event: Event = parse_input(loaded.kind, input)?;
            serde_json::to_value(handle.handle_event(&event)?)?
        }
        Kind::DocChunker => {
            let i: ChunkInput = parse_input(loaded.kind, input)?;
            let document = Document {
                id: i.id,
                text: match i.text {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
                media_type: i.media_type,
                metadata: i.metadata.into_iter().collect(),
            };
            let options = ChunkOptions {
                max_tokens: i.max_tokens.unwrap_or(ChunkInput::DEFAULT_MAX_TOKENS),
                overlap_tokens: i
                    .overlap_tokens
                    .unwrap_or(ChunkInput::DEFAULT_OVERLAP_TOKENS),
            };
            result_json(handle.chunk(&document, options)?)?
        }
    };
    Ok(out)
}

fn result_json<T: serde::Serialize>(r: Result<T, String>) -> Result<Value> {
    match r {
        Ok(v) => Ok(json!({ "ok": v })),
        Err(e) => Ok(json!({ "error": e })),
    }
}

/// Reject a JSON input that is not an object early, with a clear message.
pub fn require_object(input: &Value) -> Result<()> {
    if !input.is_object() {
        bail!("input must be a JSON object");
    }
    Ok(())
}
