//! Scrape targets (docs/design/x-scraper.md §4.1, §4.2): a user's timeline (`user:<handle>`)
//! or a search (`search:<name>`), one record each in the `scrape_targets` collection with
//! its settings and its progress (`next_run_ms`, `newest_id`, backfill, last run).
//!
//! Targets come from three places, recorded as `origin`: `file` (the `user_list` file),
//! `config` (`[[scraper.searches]]`) and `api`. File and config targets are seeded at
//! start-up: their settings follow the source, their progress is kept, and one removed
//! from its source is disabled rather than deleted, so a mistaken edit loses nothing.
//! Only API targets can be deleted through the API.
//!
//! Every change to a stored record is a compare-and-set on `_rev`, so a run saving its
//! progress and a seed or API call changing settings never overwrite each other.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::accounts::is_handle;
use super::config::{RunMode, SearchConfig, SearchProduct};
use super::store::TARGETS;
use crate::documents::{Doc, Documents, Filter, Order, Query, Write, WriteOutcome};
use crate::input::{BodyError, FieldError, parse_json};

/// The shortest interval between two runs of a target: X's budgets are per 15 minutes,
/// and a faster schedule only burns them.
pub const MIN_INTERVAL_SECS: u64 = 60;
/// The most pages one run may read.
pub const MAX_PAGES: u32 = 1000;
const MAX_QUERY_CHARS: usize = 500;
/// How often a compare-and-set is retried when another writer keeps winning.
const CAS_ATTEMPTS: usize = 5;

/// What a target reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// A user's profile timeline.
    User,
    /// A search query's results.
    Search,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::User => "user",
            TargetKind::Search => "search",
        }
    }
}

/// Where a target is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The `user_list` file.
    File,
    /// `[[scraper.searches]]`.
    Config,
    /// `POST /api/v1/scraper/targets`.
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }

    /// Where to change a target of this origin, for messages.
    pub fn source(self) -> &'static str {
        match self {
            Origin::File => "user_list",
            Origin::Config => "[[scraper.searches]]",
            Origin::Api => "the API",
        }
    }
}

/// Settings a target gets when its source does not say (from `[scraper]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetDefaults {
    /// `default_interval_secs`.
    pub interval_secs: u64,
    /// `tail_max_pages`.
    pub tail_max_pages: u32,
    /// `backfill_max_pages`.
    pub backfill_max_pages: u32,
}

impl TargetDefaults {
    pub fn max_pages(&self, mode: RunMode) -> u32 {
        match mode {
            RunMode::Tail => self.tail_max_pages,
            RunMode::Backfill => self.backfill_max_pages,
        }
    }
}

// ---------------------------------------------------------------- specs and validation

/// A target as `POST /api/v1/scraper/targets` describes it:
/// `{"kind": "user", "handle": "coinledger_ana", "interval_secs": 300, "mode": "tail", "max_pages": 50}`
/// or `{"kind": "search", "name": "btc", "query": "$BTC", "product": "live", ...}`.
///
/// One flat struct rather than an enum tagged by `kind`: serde buffers a tagged enum's
/// content, which loses the path `serde_path_to_error` reports, and a wrong field must be
/// named.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub kind: TargetKind,
    /// `user`: the X handle, without `@`.
    pub handle: Option<String>,
    /// `search`: short name, the target id is `search:<name>`.
    pub name: Option<String>,
    /// `search`: the query as typed into X's search box.
    pub query: Option<String>,
    /// `search`: `live` (Latest, the default) or `top`.
    pub product: Option<SearchProduct>,
    /// Seconds between runs (at least 60); `default_interval_secs` when absent.
    pub interval_secs: Option<u64>,
    /// `tail` (default) or `backfill`.
    pub mode: Option<RunMode>,
    /// Pages per run (1–1000); `tail_max_pages` / `backfill_max_pages` when absent.
    pub max_pages: Option<u32>,
    /// Defaults to true.
    pub enabled: Option<bool>,
}

impl TargetSpec {
    /// Parse and validate an API body; the error names the field.
    pub fn parse(body: &[u8]) -> Result<TargetSpec, BodyError> {
        let spec: TargetSpec = parse_json(body)?;
        spec.validate().map_err(BodyError::Field)?;
        Ok(spec)
    }

    /// Check every field against `kind`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let only = |field: &str, present: bool, kind: &str| {
            if present {
                Err(FieldError::new(field, format!("only for kind `{kind}`")))
            } else {
                Ok(())
            }
        };
        match self.kind {
            TargetKind::User => {
                let handle = self
                    .handle
                    .as_deref()
                    .ok_or_else(|| FieldError::new("handle", "required for kind `user`"))?;
                if !is_handle(handle) {
                    return Err(FieldError::new("handle", "1–15 letters, digits or '_'"));
                }
                only("name", self.name.is_some(), "search")?;
                only("query", self.query.is_some(), "search")?;
                only("product", self.product.is_some(), "search")?;
            }
            TargetKind::Search => {
                let name = self
                    .name
                    .as_deref()
                    .ok_or_else(|| FieldError::new("name", "required for kind `search`"))?;
                if !valid_search_name(name) {
                    return Err(FieldError::new("name", "1–64 letters, digits, '-' or '_'"));
                }
                let query = self
                    .query
                    .as_deref()
                    .ok_or_else(|| FieldError::new("query", "required for kind `search`"))?;
                if query.trim().is_empty() || query.chars().count() > MAX_QUERY_CHARS {
                    return Err(FieldError::new(
                        "query",
                        format!("1–{MAX_QUERY_CHARS} characters, not only spaces"),
                    ));
                }
                only("handle", self.handle.is_some(), "user")?;
            }
        }
        if let Some(s) = self.interval_secs
            && s < MIN_INTERVAL_SECS
        {
            return Err(FieldError::new(
                "interval_secs",
                format!("at least {MIN_INTERVAL_SECS}"),
            ));
        }
        if let Some(p) = self.max_pages
            && !(1..=MAX_PAGES).contains(&p)
        {
            return Err(FieldError::new(
                "max_pages",
                format!("1–{MAX_PAGES} pages per run"),
            ));
        }
        Ok(())
    }

    /// The target id: `user:<handle, lower case>` or `search:<name>`.
    pub fn id(&self) -> String {
        match self.kind {
            TargetKind::User => user_target_id(self.handle.as_deref().unwrap_or_default()),
            TargetKind::Search => search_target_id(self.name.as_deref().unwrap_or_default()),
        }
    }

    /// The spec of a `[[scraper.searches]]` entry.
    pub fn from_search(s: &SearchConfig) -> TargetSpec {
        TargetSpec {
            kind: TargetKind::Search,
            handle: None,
            name: Some(s.name.clone()),
            query: Some(s.query.clone()),
            product: Some(s.product),
            interval_secs: s.interval_secs,
            mode: Some(s.mode),
            max_pages: s.max_pages,
            enabled: None,
        }
    }

    /// The spec of a `user_list` handle.
    pub fn from_handle(handle: &str) -> TargetSpec {
        TargetSpec {
            kind: TargetKind::User,
            handle: Some(handle.to_string()),
            name: None,
            query: None,
            product: None,
            interval_secs: None,
            mode: None,
            max_pages: None,
            enabled: None,
        }
    }
}

/// A search target's name: 1–64 ASCII letters, digits, '-' or '_' (it becomes part of the
/// id, hence of URLs).
pub fn valid_search_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// X handles are case-insensitive: `@Alice` and `@alice` are one target.
pub fn user_target_id(handle: &str) -> String {
    format!("user:{}", handle.to_ascii_lowercase())
}

pub fn search_target_id(name: &str) -> String {
    format!("search:{name}")
}

// ---------------------------------------------------------------- the record

/// How far a backfill got (`mode = "backfill"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Backfill {
    /// The deepest bottom cursor seen.
    pub cursor: Option<String>,
    /// The oldest tweet id read.
    pub oldest_id: Option<i64>,
    /// Pages read over all backfill runs.
    pub pages: u32,
    /// The end of the timeline was reached.
    pub done: bool,
}

/// What the last run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LastRun {
    pub at_ms: i64,
    /// The account that ran it.
    pub account: String,
    pub pages: u32,
    /// Tweets inserted / replaced.
    pub new: u64,
    pub updated: u64,
    /// Entries the parser could not read.
    pub skipped: u64,
    /// `ok`, `timeout`, `parser_failed`, `proxy_failed`, `budget`, ...
    pub outcome: String,
    /// Why a run ended early (the browser's or the account's reason; no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One `scrape_targets` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    #[serde(rename = "_id")]
    pub id: String,
    pub kind: TargetKind,
    /// `user`: the handle as given.
    pub handle: Option<String>,
    /// `user`: X's user id, filled in from the first profile a run stores.
    #[serde(default)]
    pub user_id: Option<String>,
    /// `search`: the name in the id.
    #[serde(default)]
    pub name: Option<String>,
    /// `search`: the query.
    pub query: Option<String>,
    /// `search`: live or top.
    pub product: Option<SearchProduct>,
    pub origin: Origin,
    pub mode: RunMode,
    pub interval_secs: u64,
    pub max_pages: u32,
    pub enabled: bool,
    /// When the target is due next (ms since the epoch).
    pub next_run_ms: i64,
    /// The newest own tweet id stored (tail runs stop there).
    #[serde(default)]
    pub newest_id: Option<i64>,
    #[serde(default)]
    pub backfill: Backfill,
    #[serde(default)]
    pub last_run: Option<LastRun>,
    /// The backend's revision, for compare-and-set.
    #[serde(rename = "_rev", default)]
    pub rev: u64,
}

impl TargetRecord {
    /// A new record from a valid `spec`, due at `now_ms`.
    pub fn new(
        spec: &TargetSpec,
        origin: Origin,
        defaults: &TargetDefaults,
        now_ms: i64,
    ) -> TargetRecord {
        let mode = spec.mode.unwrap_or_default();
        let search = spec.kind == TargetKind::Search;
        TargetRecord {
            id: spec.id(),
            kind: spec.kind,
            handle: spec.handle.clone(),
            user_id: None,
            name: spec.name.clone(),
            query: spec.query.clone(),
            product: search.then(|| spec.product.unwrap_or_default()),
            origin,
            mode,
            interval_secs: spec.interval_secs.unwrap_or(defaults.interval_secs),
            max_pages: spec.max_pages.unwrap_or(defaults.max_pages(mode)),
            enabled: spec.enabled.unwrap_or(true),
            next_run_ms: now_ms,
            newest_id: None,
            backfill: Backfill::default(),
            last_run: None,
            rev: 0,
        }
    }

    pub fn from_doc(doc: Doc) -> Result<TargetRecord> {
        let id = doc.get("_id").cloned().unwrap_or(Value::Null);
        serde_json::from_value(Value::Object(doc))
            .with_context(|| format!("`{TARGETS}` record {id} does not parse"))
    }

    pub fn to_doc(&self) -> Doc {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // A struct of strings, numbers and enums always serializes to an object.
            _ => Doc::new(),
        }
    }

    /// Take the settings of `from` (a seed's fresh record), keeping this record's state.
    fn take_settings(&mut self, from: &TargetRecord) {
        self.kind = from.kind;
        self.handle = from.handle.clone();
        self.name = from.name.clone();
        self.query = from.query.clone();
        self.product = from.product;
        self.origin = from.origin;
        self.mode = from.mode;
        self.interval_secs = from.interval_secs;
        self.max_pages = from.max_pages;
        self.enabled = from.enabled;
    }

    /// Take the progress a run recorded in `run`, keeping this record's settings.
    fn take_progress(&mut self, run: &TargetRecord) {
        if run.user_id.is_some() {
            self.user_id = run.user_id.clone();
        }
        self.next_run_ms = run.next_run_ms;
        // Never backwards: a slower writer must not make the next tail run re-read.
        self.newest_id = self.newest_id.max(run.newest_id);
        self.backfill = run.backfill.clone();
        self.last_run = run.last_run.clone();
    }
}

/// Why a target operation failed; the API maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum TargetOpError {
    /// A field of the spec is wrong (400).
    #[error("{0}")]
    Invalid(FieldError),
    /// A target with this id exists (409).
    #[error("a target with id `{0}` exists")]
    Exists(String),
    /// No such target (404).
    #[error("no target with id `{0}`")]
    NotFound(String),
    /// Defined in `user_list` or `[[scraper.searches]]`, not deletable through the API (409).
    #[error("target `{id}` is defined in {}; remove it there", .origin.source())]
    NotDeletable { id: String, origin: Origin },
    /// The document store failed (503).
    #[error("the document store failed: {0:#}")]
    Store(anyhow::Error),
}

// ---------------------------------------------------------------- operations

/// Store a new API target from `spec` (validated here too), due at once.
pub async fn create_api_target(
    docs: &dyn Documents,
    spec: &TargetSpec,
    defaults: &TargetDefaults,
    now_ms: i64,
) -> Result<TargetRecord, TargetOpError> {
    spec.validate().map_err(TargetOpError::Invalid)?;
    let mut record = TargetRecord::new(spec, Origin::Api, defaults, now_ms);
    let out = docs
        .write(vec![Write::Insert {
            coll: TARGETS.into(),
            doc: record.to_doc(),
        }])
        .await
        .map_err(TargetOpError::Store)?;
    match out.first() {
        Some(WriteOutcome::Inserted) => {
            record.rev = 1;
            Ok(record)
        }
        Some(WriteOutcome::Duplicate) => Err(TargetOpError::Exists(record.id)),
        other => Err(TargetOpError::Store(anyhow::anyhow!(
            "`{TARGETS}` answered {other:?} to inserting `{}`",
            record.id
        ))),
    }
}

/// The target `id`.
pub async fn get(docs: &dyn Documents, id: &str) -> Result<Option<TargetRecord>> {
    docs.get(TARGETS, id)
        .await
        .with_context(|| format!("failed to read target `{id}`"))?
        .map(TargetRecord::from_doc)
        .transpose()
}

/// Every target (of `kind`), by id.
pub async fn list(docs: &dyn Documents, kind: Option<TargetKind>) -> Result<Vec<TargetRecord>> {
    let filter = match kind {
        Some(k) => Filter::all().eq("kind", k.as_str()),
        None => Filter::all(),
    };
    find(docs, &Query::new(filter).sort("_id", Order::Asc)).await
}

/// Enabled targets due by `now_ms`, the longest-waiting first, at most `limit`.
pub async fn due(docs: &dyn Documents, now_ms: i64, limit: usize) -> Result<Vec<TargetRecord>> {
    let q = Query::new(Filter::all().eq("enabled", true).lte("next_run_ms", now_ms))
        .sort("next_run_ms", Order::Asc)
        .limit(limit);
    find(docs, &q).await
}

/// Records matching `q`; one this version cannot read is logged and left where it is
/// rather than failing every query that meets it.
async fn find(docs: &dyn Documents, q: &Query) -> Result<Vec<TargetRecord>> {
    let found = docs
        .find(TARGETS, q)
        .await
        .with_context(|| format!("failed to query `{TARGETS}`"))?;
    Ok(found
        .into_iter()
        .filter_map(|d| {
            TargetRecord::from_doc(d)
                .inspect_err(|e| tracing::error!(error = %format!("{e:#}"), "scraper: unreadable target skipped"))
                .ok()
        })
        .collect())
}

/// Delete an API target; file and config targets are refused (their source would bring
/// them back at the next start). Returns the deleted record.
pub async fn delete(docs: &dyn Documents, id: &str) -> Result<TargetRecord, TargetOpError> {
    let record = get(docs, id)
        .await
        .map_err(TargetOpError::Store)?
        .ok_or_else(|| TargetOpError::NotFound(id.to_string()))?;
    if record.origin != Origin::Api {
        return Err(TargetOpError::NotDeletable {
            id: id.to_string(),
            origin: record.origin,
        });
    }
    let out = docs
        .write(vec![Write::Delete {
            coll: TARGETS.into(),
            id: id.into(),
        }])
        .await
        .map_err(TargetOpError::Store)?;
    match out.first() {
        Some(WriteOutcome::Deleted) => Ok(record),
        _ => Err(TargetOpError::NotFound(id.to_string())),
    }
}

/// Save a run's progress in `target` (its `user_id`, `next_run_ms`, `newest_id`,
/// `backfill`, `last_run`), compare-and-set on the `_rev` it was read with. When the
/// record changed meanwhile (a seed or the API changed its settings), the progress is
/// applied to the fresh record instead: settings from there, progress from the run.
/// Returns the saved record, or `None` if the target was deleted meanwhile.
pub async fn save_after_run(
    docs: &dyn Documents,
    target: &TargetRecord,
) -> Result<Option<TargetRecord>> {
    let mut saved = target.clone();
    let out = docs
        .write(vec![Write::ReplaceIf {
            coll: TARGETS.into(),
            doc: target.to_doc(),
            rev: target.rev,
        }])
        .await
        .with_context(|| format!("failed to save target `{}`", target.id))?;
    if let Some(WriteOutcome::Replaced { rev }) = out.first() {
        saved.rev = *rev;
        return Ok(Some(saved));
    }
    update(docs, &target.id, |fresh| {
        fresh.take_progress(target);
        true
    })
    .await
}

/// Read `id`, let `change` edit it (returning whether it changed anything) and
/// compare-and-set it, re-reading when another writer was faster. `None` when absent.
async fn update(
    docs: &dyn Documents,
    id: &str,
    mut change: impl FnMut(&mut TargetRecord) -> bool,
) -> Result<Option<TargetRecord>> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(mut record) = get(docs, id).await? else {
            return Ok(None);
        };
        if !change(&mut record) {
            return Ok(Some(record));
        }
        let out = docs
            .write(vec![Write::ReplaceIf {
                coll: TARGETS.into(),
                doc: record.to_doc(),
                rev: record.rev,
            }])
            .await
            .with_context(|| format!("failed to write target `{id}`"))?;
        if let Some(WriteOutcome::Replaced { rev }) = out.first() {
            record.rev = *rev;
            return Ok(Some(record));
        }
    }
    bail!("target `{id}` kept changing under us ({CAS_ATTEMPTS} attempts); try again")
}

/// What [`seed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub created: usize,
    /// Existing targets whose settings changed (or that were re-enabled).
    pub updated: usize,
    /// Targets no longer in their source, now disabled.
    pub disabled: usize,
}

/// Make `scrape_targets` match the sources at start-up: one `file` target per handle
/// of `user_list` (`handles`), one `config` target per `[[scraper.searches]]` entry. New
/// ones are created due at once; existing ones (whatever their origin) take the source's
/// settings and keep their progress; file and config targets no longer in their source
/// are disabled, not deleted.
pub async fn seed(
    docs: &dyn Documents,
    handles: &[String],
    searches: &[SearchConfig],
    defaults: &TargetDefaults,
    now_ms: i64,
) -> Result<SeedReport> {
    let mut wanted: Vec<TargetRecord> = Vec::new();
    let mut ids: HashSet<String> = HashSet::new();
    for h in handles {
        let spec = TargetSpec::from_handle(h);
        spec.validate()
            .map_err(|e| anyhow::anyhow!("user_list handle `{h}`: {e}"))?;
        if ids.insert(spec.id()) {
            wanted.push(TargetRecord::new(&spec, Origin::File, defaults, now_ms));
        }
    }
    for s in searches {
        let spec = TargetSpec::from_search(s);
        spec.validate()
            .map_err(|e| anyhow::anyhow!("[[scraper.searches]] `{}`: {e}", s.name))?;
        if !ids.insert(spec.id()) {
            bail!("[[scraper.searches]] name `{}` is used twice", s.name);
        }
        wanted.push(TargetRecord::new(&spec, Origin::Config, defaults, now_ms));
    }

    let mut report = SeedReport::default();
    for fresh in &wanted {
        seed_one(docs, fresh, &mut report).await?;
    }
    let seeded = find(
        docs,
        &Query::new(Filter::all().is_in(
            "origin",
            vec![Origin::File.as_str().into(), Origin::Config.as_str().into()],
        )),
    )
    .await?;
    for gone in seeded.iter().filter(|t| t.enabled && !ids.contains(&t.id)) {
        let disabled = update(docs, &gone.id, |t| {
            let was = t.enabled;
            t.enabled = false;
            was
        })
        .await?;
        if disabled.is_some() {
            tracing::info!(target_id = %gone.id, source = gone.origin.source(), "scraper: target no longer in its source, disabled");
            report.disabled += 1;
        }
    }
    Ok(report)
}

async fn seed_one(
    docs: &dyn Documents,
    fresh: &TargetRecord,
    report: &mut SeedReport,
) -> Result<()> {
    for _ in 0..CAS_ATTEMPTS {
        let out = docs
            .write(vec![Write::Insert {
                coll: TARGETS.into(),
                doc: fresh.to_doc(),
            }])
            .await
            .with_context(|| format!("failed to seed target `{}`", fresh.id))?;
        if out.first() == Some(&WriteOutcome::Inserted) {
            report.created += 1;
            return Ok(());
        }
        // It exists: settings from the source, progress kept. Deleted meanwhile → insert again.
        let mut changed = false;
        let updated = update(docs, &fresh.id, |t| {
            let before = t.clone();
            t.take_settings(fresh);
            changed = *t != before;
            changed
        })
        .await;
        match updated? {
            Some(_) => {
                if changed {
                    report.updated += 1;
                }
                return Ok(());
            }
            None => continue,
        }
    }
    bail!(
        "target `{}` kept changing under the seed ({CAS_ATTEMPTS} attempts)",
        fresh.id
    )
}

// ---------------------------------------------------------------- user_list

/// Read a `user_list` file: one handle per line (a leading `@` is allowed), blank lines
/// and `#` comments ignored, repeated handles (in any case) kept once. Every bad line is
/// reported, by number.
pub fn load_user_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read user_list {}", path.display()))?;
    parse_user_list(&text).map_err(|errors| {
        anyhow::anyhow!(
            "user_list {}: {} (a handle is 1–15 letters, digits or '_', one per line)",
            path.display(),
            errors.join("; ")
        )
    })
}

fn parse_user_list(text: &str) -> Result<Vec<String>, Vec<String>> {
    let mut handles = Vec::new();
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or_default().trim();
        if content.is_empty() {
            continue;
        }
        let handle = content.strip_prefix('@').unwrap_or(content);
        if !is_handle(handle) {
            let shown = crate::util::truncate(content, 40);
            errors.push(format!("line {}: `{shown}` is not a valid X handle", i + 1));
            continue;
        }
        if seen.insert(handle.to_ascii_lowercase()) {
            handles.push(handle.to_string());
        }
    }
    if errors.is_empty() {
        Ok(handles)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::embedded::EmbeddedDocuments;

    const DEFAULTS: TargetDefaults = TargetDefaults {
        interval_secs: 900,
        tail_max_pages: 10,
        backfill_max_pages: 50,
    };

    fn docs_in(dir: &tempfile::TempDir) -> EmbeddedDocuments {
        EmbeddedDocuments::open(&dir.path().join("documents.redb")).unwrap()
    }

    fn field_of(body: &str) -> (String, String) {
        match TargetSpec::parse(body.as_bytes()) {
            Err(BodyError::Field(f)) => (f.field, f.message),
            other => panic!("{body}: {other:?}"),
        }
    }

    fn search(name: &str, query: &str) -> SearchConfig {
        SearchConfig {
            name: name.into(),
            query: query.into(),
            product: SearchProduct::Live,
            interval_secs: Some(300),
            mode: RunMode::Tail,
            max_pages: Some(5),
        }
    }

    #[test]
    fn handle_validation_names_the_field() {
        let (field, msg) = field_of(r#"{"kind": "user", "handle": "bad handle"}"#);
        assert_eq!(field, "handle");
        assert_eq!(msg, "1–15 letters, digits or '_'");
        assert_eq!(
            field_of(r#"{"kind": "user", "handle": "a_very_long_handle"}"#).0,
            "handle"
        );
        assert_eq!(field_of(r#"{"kind": "user"}"#).0, "handle");
        assert_eq!(field_of(r#"{"kind": "user", "handle": 5}"#).0, "handle");
        let (field, msg) = field_of(r#"{"kind": "user", "handle": "ana", "interval_secs": 30}"#);
        assert_eq!(
            (field.as_str(), msg.as_str()),
            ("interval_secs", "at least 60")
        );
        assert_eq!(
            field_of(r#"{"kind": "user", "handle": "ana", "max_pages": 0}"#).0,
            "max_pages"
        );
        assert_eq!(
            field_of(r#"{"kind": "user", "handle": "ana", "mode": "sideways"}"#).0,
            "mode"
        );
        assert_eq!(
            field_of(r#"{"kind": "user", "handle": "ana", "query": "x"}"#).0,
            "query"
        );
        assert_eq!(
            field_of(r#"{"kind": "user", "handle": "ana", "colour": 1}"#).0,
            "colour"
        );
        assert_eq!(field_of(r#"{"kind": "list"}"#).0, "kind");
        assert_eq!(field_of(r#"{"handle": "ana"}"#).0, "kind");
        assert_eq!(field_of(r#"{"kind": "search", "name": "btc"}"#).0, "query");
        assert_eq!(
            field_of(r#"{"kind": "search", "name": "b c", "query": "$BTC"}"#).0,
            "name"
        );
        assert_eq!(
            field_of(r#"{"kind": "search", "name": "btc", "query": "  "}"#).0,
            "query"
        );
        assert_eq!(
            field_of(r#"{"kind": "search", "name": "btc", "query": "$BTC", "product": "best"}"#).0,
            "product"
        );
        assert!(matches!(TargetSpec::parse(b"{"), Err(BodyError::Syntax(_))));

        let spec = TargetSpec::parse(
            br#"{"kind": "user", "handle": "CoinLedger_Ana", "mode": "backfill"}"#,
        )
        .unwrap();
        assert_eq!(spec.id(), "user:coinledger_ana");
        let r = TargetRecord::new(&spec, Origin::Api, &DEFAULTS, 7);
        assert_eq!(
            (r.interval_secs, r.max_pages, r.next_run_ms, r.enabled),
            (900, 50, 7, true)
        );
        assert_eq!(r.handle.as_deref(), Some("CoinLedger_Ana"));
        assert_eq!(r.product, None);
        let spec = TargetSpec::parse(
            br#"{"kind": "search", "name": "btc", "query": "$BTC", "interval_secs": 300}"#,
        )
        .unwrap();
        let r = TargetRecord::new(&spec, Origin::Api, &DEFAULTS, 7);
        assert_eq!(
            (r.id.as_str(), r.product, r.max_pages),
            ("search:btc", Some(SearchProduct::Live), 10)
        );
    }

    #[tokio::test]
    async fn file_targets_cannot_be_deleted_by_api() {
        let dir = tempfile::tempdir().unwrap();
        let docs = docs_in(&dir);
        seed(
            &docs,
            &["coinledger_ana".into()],
            &[search("btc", "$BTC")],
            &DEFAULTS,
            1_000,
        )
        .await
        .unwrap();
        for (id, source) in [
            ("user:coinledger_ana", "user_list"),
            ("search:btc", "[[scraper.searches]]"),
        ] {
            let err = delete(&docs, id).await.unwrap_err();
            assert!(matches!(err, TargetOpError::NotDeletable { .. }), "{err}");
            assert_eq!(
                err.to_string(),
                format!("target `{id}` is defined in {source}; remove it there")
            );
            assert!(get(&docs, id).await.unwrap().is_some());
        }
        // An API target with the id of a file target is a conflict, a new one is fine.
        let spec = TargetSpec::from_handle("CoinLedger_Ana");
        let err = create_api_target(&docs, &spec, &DEFAULTS, 2_000)
            .await
            .unwrap_err();
        assert!(
            matches!(err, TargetOpError::Exists(ref id) if id == "user:coinledger_ana"),
            "{err}"
        );
        let made = create_api_target(&docs, &TargetSpec::from_handle("pete"), &DEFAULTS, 2_000)
            .await
            .unwrap();
        assert_eq!((made.origin, made.rev), (Origin::Api, 1));
        assert_eq!(get(&docs, "user:pete").await.unwrap(), Some(made.clone()));
        assert_eq!(delete(&docs, "user:pete").await.unwrap(), made);
        assert!(matches!(
            delete(&docs, "user:pete").await.unwrap_err(),
            TargetOpError::NotFound(_)
        ));
        let bad = TargetSpec {
            interval_secs: Some(1),
            ..TargetSpec::from_handle("pete")
        };
        assert!(matches!(
            create_api_target(&docs, &bad, &DEFAULTS, 0).await.unwrap_err(),
            TargetOpError::Invalid(f) if f.field == "interval_secs"
        ));
    }

    #[tokio::test]
    async fn seed_follows_the_sources_and_keeps_progress() {
        let dir = tempfile::tempdir().unwrap();
        let docs = docs_in(&dir);
        let handles: Vec<String> = vec!["alice".into(), "Bob".into(), "ALICE".into()];
        let r = seed(&docs, &handles, &[search("btc", "$BTC")], &DEFAULTS, 1_000)
            .await
            .unwrap();
        assert_eq!(
            r,
            SeedReport {
                created: 3,
                updated: 0,
                disabled: 0
            }
        );
        let ids: Vec<String> = list(&docs, None)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, ["search:btc", "user:alice", "user:bob"]);
        assert_eq!(
            list(&docs, Some(TargetKind::Search)).await.unwrap().len(),
            1
        );
        let btc = get(&docs, "search:btc").await.unwrap().unwrap();
        assert_eq!(
            (btc.interval_secs, btc.max_pages, btc.origin),
            (300, 5, Origin::Config)
        );

        // A run records progress.
        let mut alice = get(&docs, "user:alice").await.unwrap().unwrap();
        alice.newest_id = Some(1_990_714_142_880_702_470);
        alice.user_id = Some("42".into());
        alice.next_run_ms = 901_000;
        alice.last_run = Some(LastRun {
            error: None,
            at_ms: 1_000,
            account: "acc".into(),
            pages: 2,
            new: 17,
            outcome: "ok".into(),
            ..Default::default()
        });
        let saved = save_after_run(&docs, &alice).await.unwrap().unwrap();
        assert_eq!(saved.rev, alice.rev + 1);

        // Same sources again: nothing changes.
        let r = seed(&docs, &handles, &[search("btc", "$BTC")], &DEFAULTS, 5_000)
            .await
            .unwrap();
        assert_eq!(r, SeedReport::default());

        // New defaults, bob and the search removed: settings follow, progress stays,
        // the removed ones are disabled but kept.
        let defaults = TargetDefaults {
            interval_secs: 600,
            ..DEFAULTS
        };
        let r = seed(&docs, &["alice".into()], &[], &defaults, 9_000)
            .await
            .unwrap();
        assert_eq!(
            r,
            SeedReport {
                created: 0,
                updated: 1,
                disabled: 2
            }
        );
        let alice = get(&docs, "user:alice").await.unwrap().unwrap();
        assert_eq!(alice.interval_secs, 600);
        assert_eq!(alice.newest_id, Some(1_990_714_142_880_702_470));
        assert_eq!(
            (alice.user_id.as_deref(), alice.next_run_ms),
            (Some("42"), 901_000)
        );
        assert_eq!(alice.last_run.as_ref().map(|r| r.new), Some(17));
        for id in ["user:bob", "search:btc"] {
            assert!(!get(&docs, id).await.unwrap().unwrap().enabled, "{id}");
        }
        // An API target is never disabled by a seed.
        create_api_target(&docs, &TargetSpec::from_handle("pete"), &DEFAULTS, 0)
            .await
            .unwrap();
        seed(&docs, &["alice".into()], &[], &defaults, 9_500)
            .await
            .unwrap();
        assert!(get(&docs, "user:pete").await.unwrap().unwrap().enabled);

        // Back in the source: enabled again, same record.
        let r = seed(
            &docs,
            &["alice".into(), "bob".into()],
            &[],
            &defaults,
            10_000,
        )
        .await
        .unwrap();
        assert_eq!(
            r,
            SeedReport {
                created: 0,
                updated: 1,
                disabled: 0
            },
            "bob re-enabled"
        );
        let bob = get(&docs, "user:bob").await.unwrap().unwrap();
        assert!(bob.enabled);
        assert_eq!(bob.next_run_ms, 1_000, "its schedule is its own");

        // An API target listed in user_list becomes a file target.
        seed(
            &docs,
            &["alice".into(), "bob".into(), "pete".into()],
            &[],
            &defaults,
            11_000,
        )
        .await
        .unwrap();
        assert_eq!(
            get(&docs, "user:pete").await.unwrap().unwrap().origin,
            Origin::File
        );

        let err = seed(&docs, &["not valid".into()], &[], &defaults, 0)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("user_list handle `not valid`"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn due_lists_enabled_targets_longest_waiting_first() {
        let dir = tempfile::tempdir().unwrap();
        let docs = docs_in(&dir);
        crate::scraper::store::ensure_indexes(&docs).await.unwrap();
        for (handle, next, enabled) in [
            ("a", 300, true),
            ("b", 100, true),
            ("c", 200, false),
            ("d", 900, true),
            ("e", 200, true),
        ] {
            let spec = TargetSpec {
                enabled: Some(enabled),
                ..TargetSpec::from_handle(handle)
            };
            create_api_target(&docs, &spec, &DEFAULTS, next)
                .await
                .unwrap();
        }
        let ids = |v: Vec<TargetRecord>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(due(&docs, 500, 10).await.unwrap()),
            ["user:b", "user:e", "user:a"]
        );
        assert_eq!(ids(due(&docs, 500, 2).await.unwrap()), ["user:b", "user:e"]);
        assert!(due(&docs, 99, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn save_after_run_keeps_settings_changed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let docs = docs_in(&dir);
        seed(&docs, &["alice".into()], &[], &DEFAULTS, 0)
            .await
            .unwrap();
        let mut run = get(&docs, "user:alice").await.unwrap().unwrap();
        // While the run goes, the source changes the interval (rev moves on).
        let defaults = TargetDefaults {
            interval_secs: 1_800,
            ..DEFAULTS
        };
        seed(&docs, &["alice".into()], &[], &defaults, 0)
            .await
            .unwrap();
        run.newest_id = Some(500);
        run.next_run_ms = 900_000;
        run.backfill = Backfill {
            cursor: Some("DAAB".into()),
            oldest_id: Some(100),
            pages: 3,
            done: false,
        };
        let saved = save_after_run(&docs, &run).await.unwrap().unwrap();
        let stored = get(&docs, "user:alice").await.unwrap().unwrap();
        assert_eq!(saved, stored);
        assert_eq!(stored.interval_secs, 1_800, "the seed's setting");
        assert_eq!((stored.newest_id, stored.next_run_ms), (Some(500), 900_000));
        assert_eq!(stored.backfill.cursor.as_deref(), Some("DAAB"));
        assert_eq!(stored.rev, 3);

        // A slower writer's older newest_id never moves it backwards.
        let mut old = run.clone();
        old.newest_id = Some(400);
        save_after_run(&docs, &old).await.unwrap();
        assert_eq!(
            get(&docs, "user:alice").await.unwrap().unwrap().newest_id,
            Some(500)
        );

        // Deleted meanwhile: nothing is written back.
        create_api_target(&docs, &TargetSpec::from_handle("pete"), &DEFAULTS, 0)
            .await
            .unwrap();
        let pete = get(&docs, "user:pete").await.unwrap().unwrap();
        delete(&docs, "user:pete").await.unwrap();
        assert_eq!(save_after_run(&docs, &pete).await.unwrap(), None);
        assert!(get(&docs, "user:pete").await.unwrap().is_none());
    }

    #[test]
    fn user_list_reports_bad_lines_by_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-users.txt");
        std::fs::write(&path, "# watched accounts\ncoinledger_ana\n\n@Pete  # with a comment\nCOINLEDGER_ANA\nsats_stacker\n").unwrap();
        assert_eq!(
            load_user_list(&path).unwrap(),
            ["coinledger_ana", "Pete", "sats_stacker"]
        );

        std::fs::write(&path, "ok_one\nnot valid\nfine\nwaytoolonghandle_1\n").unwrap();
        let err = format!("{:#}", load_user_list(&path).unwrap_err());
        assert!(err.contains("line 2: `not valid`"), "{err}");
        assert!(err.contains("line 4: `waytoolonghandle_1`"), "{err}");
        assert!(err.contains("x-users.txt"), "{err}");
        assert!(!err.contains("line 1") && !err.contains("line 3"), "{err}");

        let missing = format!(
            "{:#}",
            load_user_list(&dir.path().join("nope.txt")).unwrap_err()
        );
        assert!(
            missing.contains("failed to read user_list") && missing.contains("nope.txt"),
            "{missing}"
        );
    }
}
