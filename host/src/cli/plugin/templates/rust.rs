//! The files `impressox plugin new` writes, one body per kind.

use std::path::Path;

use crate::runtime::Kind;

/// `(relative path, contents)` of a new plugin crate.
pub fn files(kind: Kind, name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    let ty = type_name(name);
    let sdk = sdk.display().to_string().replace('\\', "/");
    let manifest = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
impressox-plugin-sdk = {{ path = "{sdk}" }}

[profile.release]
opt-level = 3
strip = "debuginfo"

# A plugin is its own workspace, wherever it lives.
[workspace]
"#
    );
    let toolchain =
        "[toolchain]\nchannel = \"1.95.0\"\ntargets = [\"wasm32-wasip2\"]\n".to_string();
    let body = match kind {
        Kind::FeedParser => format!(
            r#"use impressox_plugin_sdk::types::{{ParsedPayload, PriceTick}};
use impressox_plugin_sdk::{{FeedParser, export_feed_parser}};

struct {ty};

/// Reads payloads of the form `SYMBOL PRICE`, e.g. `BTCUSDT 70123.4`.
impl FeedParser for {ty} {{
    const NAME: &'static str = "{name}";
    const DESCRIPTION: &'static str = "parses `SYMBOL PRICE` lines";

    fn parse(payload: Vec<u8>, received_ms: i64) -> Result<ParsedPayload, String> {{
        let text = std::str::from_utf8(&payload).map_err(|_| "payload is not UTF-8".to_string())?;
        let mut parts = text.split_whitespace();
        let symbol = parts.next().ok_or("missing symbol")?.to_ascii_uppercase();
        let price: f64 = parts
            .next()
            .ok_or("missing price")?
            .parse()
            .map_err(|_| "price is not a number".to_string())?;
        Ok(ParsedPayload {{
            ticks: vec![PriceTick {{ symbol, price, ts_ms: received_ms, volume: None, bid: None, ask: None }}],
            heartbeat: false,
        }})
    }}
}}

export_feed_parser!({ty});
"#
        ),
        Kind::RuleProcessor => format!(
            r#"use std::cell::RefCell;

use impressox_plugin_sdk::types::{{Alert, ConditionOp, Rule, TickBatch}};
use impressox_plugin_sdk::{{RuleProcessor, export_rule_processor}};

thread_local! {{
    static RULES: RefCell<Vec<Rule>> = const {{ RefCell::new(Vec::new()) }};
}}

struct {ty};

/// Fires `above` and `below` rules on every tick where they hold (armed rules only).
impl RuleProcessor for {ty} {{
    const NAME: &'static str = "{name}";

    fn upsert_rules(rules: Vec<Rule>) -> Result<(), String> {{
        RULES.with(|r| {{
            let mut r = r.borrow_mut();
            for rule in rules {{
                r.retain(|x| x.id != rule.id);
                r.push(rule);
            }}
        }});
        Ok(())
    }}

    fn remove_rules(ids: Vec<String>) {{
        RULES.with(|r| r.borrow_mut().retain(|x| !ids.contains(&x.id)));
    }}

    fn prime_prices(_prices: Vec<(u32, f64, i64)>) {{}}

    fn evaluate(batch: TickBatch) -> Vec<Alert> {{
        let mut alerts = Vec::new();
        RULES.with(|r| {{
            for rule in r.borrow_mut().iter_mut() {{
                for tick in batch.iter().filter(|t| t.symbol_id == rule.symbol_id) {{
                    let hit = match rule.condition.op {{
                        ConditionOp::Above => tick.price > rule.condition.value,
                        ConditionOp::Below => tick.price < rule.condition.value,
                        _ => false,
                    }};
                    if hit && rule.state.armed {{
                        rule.state.armed = false;
                        rule.state.last_fired_ms = Some(tick.ts_ms);
                        rule.state.fired_count += 1;
                        alerts.push(Alert {{
                            rule_id: rule.id.clone(),
                            symbol_id: tick.symbol_id,
                            price: tick.price,
                            reference_price: None,
                            fired_at_ms: tick.ts_ms,
                            reason: format!("{{}} at {{}}", rule.symbol, tick.price),
                            state: rule.state,
                        }});
                    }}
                }}
            }}
        }});
        alerts
    }}
}}

export_rule_processor!({ty});
"#
        ),
        Kind::ScrapeParser => format!(
            r#"use impressox_plugin_sdk::types::{{AccountSignal, PageCapture, ScrapeResult}};
use impressox_plugin_sdk::{{ScrapeParser, export_scrape_parser}};

struct {ty};

/// Counts captured responses; replace with real parsing.
impl ScrapeParser for {ty} {{
    const NAME: &'static str = "{name}";

    fn parse(capture: PageCapture) -> Result<ScrapeResult, String> {{
        impressox_plugin_sdk::log::info(&format!(
            "{{}}: {{}} responses captured",
            capture.url,
            capture.responses.len()
        ));
        Ok(ScrapeResult {{
            tweets: Vec::new(),
            profiles: Vec::new(),
            cursors: Vec::new(),
            rate_limits: Vec::new(),
            account_signal: AccountSignal::Ok,
            skipped: Vec::new(),
        }})
    }}
}}

export_scrape_parser!({ty});
"#
        ),
        Kind::NotifyFormatter => format!(
            r#"use impressox_plugin_sdk::types::{{Notification, ParseMode, RenderedMessage}};
use impressox_plugin_sdk::{{NotifyFormatter, export_notify_formatter}};

struct {ty};

impl NotifyFormatter for {ty} {{
    const NAME: &'static str = "{name}";

    fn format(n: Notification, channel: String) -> Result<Vec<RenderedMessage>, String> {{
        Ok(vec![RenderedMessage {{
            text: format!("[{{channel}}] {{}}\n{{}}", n.title, n.body),
            subject: Some(n.title),
            html: None,
            parse_mode: ParseMode::Plain,
        }}])
    }}
}}

export_notify_formatter!({ty});
"#
        ),
        Kind::Task => format!(
            r#"use impressox_plugin_sdk::types::{{TaskReport, TaskRun}};
use impressox_plugin_sdk::{{Task, export_task, kv}};

struct {ty};

/// Counts its runs in `kv` (grant it: `[plugins.grants.{name}] kv = true`).
impl Task for {ty} {{
    const NAME: &'static str = "{name}";

    fn run(run: TaskRun) -> Result<TaskReport, String> {{
        // Keys are this plugin's own; `incr` is atomic, across hosts on Redis.
        let runs = kv::incr("runs", 1)?;
        kv::set("last-schedule", run.schedule.as_bytes())?;
        Ok(TaskReport {{
            summary: format!("run {{runs}} of `{{}}`", run.schedule),
            data_json: format!("{{{{\"runs\": {{runs}}}}}}"),
        }})
    }}
}}

export_task!({ty});
"#
        ),
        Kind::EventHandler => format!(
            r#"use impressox_plugin_sdk::types::{{Event, Outcome}};
use impressox_plugin_sdk::{{EventHandler, docs, export_event_handler}};

struct {ty};

/// Keeps each event in the `docs` collection `events`, once per event id (grant it:
/// `[plugins.grants.{name}] docs = ["events"]`).
impl EventHandler for {ty} {{
    const NAME: &'static str = "{name}";

    fn handle(event: Event) -> Outcome {{
        if event.fields.is_empty() {{
            return Outcome::DeadLetter("event has no fields".into());
        }}
        let fields: Vec<String> = event
            .fields
            .iter()
            .map(|f| format!("{{:?}}: {{:?}}", f.name, f.value))
            .collect();
        let json = format!("{{{{\"stream\": {{:?}}, {{}}}}}}", event.stream, fields.join(", "));
        // Upserting by the event's id keeps one document however often it is delivered.
        match docs::upsert("events", &event.id, &json) {{
            Ok(()) => Outcome::Ack,
            Err(e) => Outcome::Retry(e),
        }}
    }}
}}

export_event_handler!({ty});
"#
        ),
        Kind::DocChunker => format!(
            r#"use impressox_plugin_sdk::chunking::{{self, CharOffsets}};
use impressox_plugin_sdk::types::{{Chunk, ChunkOptions, Chunked, Document}};
use impressox_plugin_sdk::{{DocChunker, export_doc_chunker, tokens}};

struct {ty};

/// Cuts a text document into pieces of at most `max_tokens` of the embedder's tokens,
/// overlapping by `overlap_tokens`, at paragraph, line, sentence or word boundaries.
impl DocChunker for {ty} {{
    const NAME: &'static str = "{name}";

    fn chunk(doc: Document, options: ChunkOptions) -> Result<Chunked, String> {{
        chunking::check_options(&options)?;
        if !doc.media_type.starts_with("text/") {{
            return Err(format!("document `{{}}`: `{{}}` is not text", doc.id, doc.media_type));
        }}
        let mut count = |texts: &[String]| tokens::count_many(texts);
        let pieces = chunking::split(&doc.text, 0..doc.text.len(), &options, &mut count);
        // Offsets are chars (not bytes) of the document's text.
        let mut offsets = CharOffsets::new(&doc.text);
        let chunks = pieces
            .into_iter()
            .map(|r| Chunk {{
                text: doc.text[r.clone()].to_string(),
                start: offsets.at(r.start),
                end: offsets.at(r.end),
                metadata: doc.metadata.clone(),
            }})
            .collect();
        Ok(Chunked {{ normalised: None, chunks }})
    }}
}}

export_doc_chunker!({ty});
"#
        ),
    };
    vec![
        ("Cargo.toml", manifest),
        ("rust-toolchain.toml", toolchain),
        (
            "src/lib.rs",
            format!("//! `{name}`: a {kind} plugin for ImpressoX Workers.\n\n{body}"),
        ),
        (".gitignore", "/target\n".to_string()),
    ]
}

fn type_name(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(['-', '_']).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Plugin");
    }
    out
}
