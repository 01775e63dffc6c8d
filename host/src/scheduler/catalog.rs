//! Where schedules are defined: `[[schedules]]` in the config file (read-only through
//! the API, as scrape targets from the config are) and the API (`POST /api/v1/schedules`),
//! stored in the document store's `schedules` collection so every host sees them. Each
//! host re-reads the collection every `[scheduler] refresh_ms`.
//!
//! An API-made schedule's document holds its spec as JSON text (`args` are the user's
//! keys, which must not meet MongoDB's field-name rules), a `uid` given at creation and
//! the backend's `_rev`: the shared record follows (uid, rev) so a host holding an older
//! revision leaves the schedule alone until it has re-read it (`claim::DefStamp`).
//! Changes are compare-and-set on `_rev`.

use serde_json::{Value, json};

use super::claim::DefStamp;
use super::config::{Schedule, ScheduleSpec};
use crate::documents::{Doc, Documents, Filter, Query, Write, WriteOutcome, rev_of};
use crate::input::{BodyError, FieldError, parse_json};

/// The collection of API-made schedules.
pub const SCHEDULES: &str = "schedules";

/// Where a schedule is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
        }
    }
}

/// A schedule and where it comes from.
#[derive(Debug, Clone)]
pub struct Definition {
    pub schedule: Schedule,
    pub origin: Origin,
    pub stamp: DefStamp,
    pub created_ms: Option<i64>,
}

impl Definition {
    pub fn name(&self) -> &str {
        &self.schedule.spec.name
    }

    /// A `[[schedules]]` entry (checked at config load).
    pub fn from_config(spec: &ScheduleSpec) -> Option<Definition> {
        let schedule = spec.check().ok()?;
        let stamp = DefStamp {
            uid: "config".into(),
            rev: 0,
            timing: schedule.timing_fingerprint(),
        };
        Some(Definition {
            schedule,
            origin: Origin::Config,
            stamp,
            created_ms: None,
        })
    }

    fn from_doc(doc: &Doc) -> Result<Definition, String> {
        let text = doc
            .get("spec")
            .and_then(Value::as_str)
            .ok_or("no `spec` field")?;
        let spec: ScheduleSpec = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let schedule = spec.check().map_err(|e| e.to_string())?;
        let stamp = DefStamp {
            uid: doc
                .get("uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            rev: rev_of(doc),
            timing: schedule.timing_fingerprint(),
        };
        Ok(Definition {
            schedule,
            origin: Origin::Api,
            stamp,
            created_ms: doc.get("created_ms").and_then(Value::as_i64),
        })
    }
}

/// Every `[[schedules]]` entry.
pub fn config_definitions(specs: &[ScheduleSpec]) -> Vec<Definition> {
    specs.iter().filter_map(Definition::from_config).collect()
}

/// Every API-made schedule; a document that no longer checks (written by another
/// version) is logged and left out.
pub async fn api_definitions(docs: &dyn Documents) -> anyhow::Result<Vec<Definition>> {
    let found = docs.find(SCHEDULES, &Query::new(Filter::all())).await?;
    let mut out = Vec::with_capacity(found.len());
    for doc in &found {
        match Definition::from_doc(doc) {
            Ok(d) => out.push(d),
            Err(why) => tracing::warn!(
                worker = "scheduler",
                id = doc.get("_id").and_then(serde_json::Value::as_str).unwrap_or("?"),
                %why,
                "an API-made schedule does not check; skipped"
            ),
        }
    }
    Ok(out)
}

/// One API-made schedule.
pub async fn api_definition(
    docs: &dyn Documents,
    name: &str,
) -> anyhow::Result<Option<(Definition, u64)>> {
    let Some(doc) = docs.get(SCHEDULES, name).await? else {
        return Ok(None);
    };
    match Definition::from_doc(&doc) {
        Ok(d) => Ok(Some((d, rev_of(&doc)))),
        Err(why) => anyhow::bail!("the stored schedule `{name}` does not check: {why}"),
    }
}

/// Why an API change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("not valid JSON: {0}")]
    Syntax(String),
    #[error("a schedule named `{0}` exists already")]
    Exists(String),
    #[error("no schedule named `{0}`")]
    NotFound(String),
    #[error(
        "schedule `{0}` is defined in the config file ([[schedules]]); change it there and restart"
    )]
    ReadOnly(String),
    #[error("schedule `{0}` was changed by another request meanwhile; try again")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<BodyError> for CatalogError {
    fn from(e: BodyError) -> CatalogError {
        match e {
            BodyError::Syntax(s) => CatalogError::Syntax(s),
            BodyError::Field(f) => CatalogError::Invalid(f),
        }
    }
}

fn spec_doc(spec: &ScheduleSpec, uid: &str, created_ms: i64, now_ms: i64) -> Doc {
    let d = json!({
        "_id": spec.name,
        "uid": uid,
        "spec": serde_json::to_string(spec).unwrap_or_default(),
        "created_ms": created_ms,
        "updated_ms": now_ms,
    });
    match d {
        Value::Object(o) => o,
        _ => Doc::new(),
    }
}

/// Create an API-made schedule from a request body.
pub async fn create(
    docs: &dyn Documents,
    body: &[u8],
    config_names: &[String],
    now_ms: i64,
) -> Result<Definition, CatalogError> {
    let spec: ScheduleSpec = parse_json(body)?;
    spec.check().map_err(CatalogError::Invalid)?;
    if config_names.contains(&spec.name) {
        return Err(CatalogError::Exists(spec.name));
    }
    let uid = format!("{now_ms:x}-{:016x}", fastrand::u64(..));
    let out = docs
        .write(vec![Write::Insert {
            coll: SCHEDULES.into(),
            doc: spec_doc(&spec, &uid, now_ms, now_ms),
        }])
        .await?;
    match out.first() {
        Some(WriteOutcome::Inserted) => {}
        Some(WriteOutcome::Duplicate) => return Err(CatalogError::Exists(spec.name)),
        other => return Err(anyhow::anyhow!("unexpected outcome {other:?}").into()),
    }
    api_definition(docs, &spec.name)
        .await?
        .map(|(d, _)| d)
        .ok_or(CatalogError::NotFound(spec.name))
}

/// Change fields of an API-made schedule: `body` is a JSON object of the fields to set
/// (`{"enabled": false}` pauses it); `name` cannot change.
pub async fn patch(
    docs: &dyn Documents,
    name: &str,
    body: &[u8],
    config_names: &[String],
    now_ms: i64,
) -> Result<Definition, CatalogError> {
    if config_names.iter().any(|n| n == name) {
        return Err(CatalogError::ReadOnly(name.to_string()));
    }
    let changes: serde_json::Map<String, Value> = parse_json(body)?;
    if let Some(new) = changes.get("name")
        && new.as_str() != Some(name)
    {
        return Err(CatalogError::Invalid(FieldError::new(
            "name",
            "a schedule cannot be renamed; create a new one and delete this one",
        )));
    }
    let Some(doc) = docs.get(SCHEDULES, name).await? else {
        return Err(CatalogError::NotFound(name.to_string()));
    };
    let text = doc.get("spec").and_then(Value::as_str).unwrap_or("{}");
    let mut merged: serde_json::Map<String, Value> =
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("stored spec of `{name}`: {e}"))?;
    for (k, v) in changes {
        // `cron` and `every` exclude each other: setting one clears the other.
        match k.as_str() {
            "cron" if !v.is_null() => {
                merged.remove("every");
            }
            "every" if !v.is_null() => {
                merged.remove("cron");
            }
            _ => {}
        }
        if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    let bytes = serde_json::to_vec(&merged).map_err(anyhow::Error::from)?;
    let spec: ScheduleSpec = parse_json(&bytes)?;
    spec.check().map_err(CatalogError::Invalid)?;
    let uid = doc.get("uid").and_then(Value::as_str).unwrap_or_default();
    let created = doc
        .get("created_ms")
        .and_then(Value::as_i64)
        .unwrap_or(now_ms);
    let out = docs
        .write(vec![Write::ReplaceIf {
            coll: SCHEDULES.into(),
            doc: spec_doc(&spec, uid, created, now_ms),
            rev: rev_of(&doc),
        }])
        .await?;
    match out.first() {
        Some(WriteOutcome::Replaced { .. }) => {}
        _ => return Err(CatalogError::Conflict(name.to_string())),
    }
    api_definition(docs, name)
        .await?
        .map(|(d, _)| d)
        .ok_or(CatalogError::NotFound(name.to_string()))
}

/// Delete an API-made schedule (its history stays until the retention removes it).
pub async fn delete(
    docs: &dyn Documents,
    name: &str,
    config_names: &[String],
) -> Result<(), CatalogError> {
    if config_names.iter().any(|n| n == name) {
        return Err(CatalogError::ReadOnly(name.to_string()));
    }
    let out = docs
        .write(vec![Write::Delete {
            coll: SCHEDULES.into(),
            id: name.to_string(),
        }])
        .await?;
    match out.first() {
        Some(WriteOutcome::Deleted) => Ok(()),
        _ => Err(CatalogError::NotFound(name.to_string())),
    }
}
