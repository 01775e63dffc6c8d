//! What the API asks of the scheduler, with or without the worker in this process: the
//! schedules with their shared records, run-now, and the signal that tells every host
//! to look again.
//!
//! Everything here goes through the shared store and document store, so an API-only
//! host answers the same as a scheduler host, and a run-now made on any host runs once.

use anyhow::Result;

use super::catalog::{self, Definition};
use super::claim::{self, ScheduleState};
use crate::documents::Documents;
use crate::storage::{ScheduleCas, ScheduleWrite, Store};

/// The key-value namespace and key of the signal: any change another host should notice
/// before its next refresh writes a fresh value there.
pub const SIGNAL_NS: &str = "scheduler";
pub const SIGNAL_KEY: &str = "signal";

/// Tell every host to re-read the schedules and their records now.
pub async fn signal(store: &dyn Store) -> Result<()> {
    let token = format!("{:x}-{:016x}", crate::util::now_ms(), fastrand::u64(..));
    store.kv_put(SIGNAL_NS, SIGNAL_KEY, &token).await
}

/// Every schedule this process knows: `config` (its own `[[schedules]]`) then the
/// API-made ones, by name.
pub async fn definitions(config: &[Definition], docs: &dyn Documents) -> Result<Vec<Definition>> {
    let mut all: Vec<Definition> = config.to_vec();
    for d in catalog::api_definitions(docs).await? {
        if !all.iter().any(|c| c.name() == d.name()) {
            all.push(d);
        }
    }
    all.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(all)
}

/// The shared records of `names` (`None`: no host has planned it yet), and the store's
/// clock.
pub async fn states(
    store: &dyn Store,
    names: &[String],
) -> Result<(Vec<Option<ScheduleState>>, i64)> {
    let read = store.schedule_load(names).await?;
    let states = read
        .records
        .iter()
        .map(|r| r.json.as_deref().and_then(|j| ScheduleState::parse(j).ok()))
        .collect();
    Ok((states, read.now_ms))
}

/// Queue a run of `name` now; returns its run id. Exactly one host will run it: it is a
/// claim in the shared record, taken like an occurrence.
pub async fn run_now(store: &dyn Store, name: &str) -> Result<String> {
    let mut read = store.schedule_load(&[name.to_string()]).await?;
    let mut now = read.now_ms;
    let mut record = read
        .records
        .pop()
        .unwrap_or(crate::storage::ScheduleRecord {
            json: None,
            version: 0,
        });
    for _ in 0..20 {
        let mut state = record
            .json
            .as_deref()
            .and_then(|j| ScheduleState::parse(j).ok())
            .unwrap_or_default();
        let id = claim::add_manual(&mut state, now);
        let reply = store
            .schedule_cas(&[ScheduleWrite {
                name: name.to_string(),
                version: record.version,
                json: Some(state.to_json()),
            }])
            .await?;
        now = reply.now_ms;
        match reply.outcomes.into_iter().next() {
            Some(ScheduleCas::Written { .. }) => {
                let _ = signal(store).await;
                return Ok(id);
            }
            Some(ScheduleCas::Conflict(current)) => record = current,
            None => anyhow::bail!("the store answered no outcome for the run-now write"),
        }
    }
    anyhow::bail!("schedule `{name}`'s record kept changing; the run-now was not queued")
}

/// Mark the shared record of a schedule deleted through the API: nothing of it starts
/// any more (tries in flight finish and are recorded). The record stays as a marker, so a
/// host that has not re-read the definitions yet leaves it alone; a schedule made again
/// under the name has another uid and plans afresh.
pub async fn forget(store: &dyn Store, name: &str) -> Result<()> {
    let mut read = store.schedule_load(&[name.to_string()]).await?;
    let mut record = read
        .records
        .pop()
        .unwrap_or(crate::storage::ScheduleRecord {
            json: None,
            version: 0,
        });
    for _ in 0..20 {
        let Some(mut state) = record
            .json
            .as_deref()
            .and_then(|j| ScheduleState::parse(j).ok())
        else {
            break;
        };
        state.deleted = true;
        state.next_ms = None;
        state.runs.retain(|c| c.lease.is_some());
        let reply = store
            .schedule_cas(&[ScheduleWrite {
                name: name.to_string(),
                version: record.version,
                json: Some(state.to_json()),
            }])
            .await?;
        match reply.outcomes.into_iter().next() {
            Some(ScheduleCas::Conflict(current)) => record = current,
            _ => break,
        }
    }
    signal(store).await
}
