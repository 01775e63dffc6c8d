//! Running one try of a task: a pool of plain threads calls the plugin with the
//! schedule's `timeout` as the call's deadline and hands the outcome back to the worker.
//!
//! Plain threads rather than tokio's blocking pool: a try still running when the host
//! stops after its grace period must not hold the process up (tokio's runtime waits for
//! its blocking tasks on shutdown); its lease lapses and another host tries again.

use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::claim::{Finished, TryOutcome};
use crate::bindings::types::TaskRun;
use crate::runtime::{CallError, Runtime};

/// One try to make.
#[derive(Debug, Clone)]
pub struct Try {
    pub schedule: String,
    pub plugin: String,
    pub claim_id: String,
    pub occ_ms: i64,
    /// When it was due (its time plus jitter), for the start lag.
    pub planned_ms: i64,
    pub attempt: u32,
    pub args_json: String,
    pub timeout_ms: u64,
    pub owner: String,
    /// Whether the start lag means anything (not for a run-now).
    pub timed: bool,
}

/// A finished try, with the lag it started at.
#[derive(Debug)]
pub struct Done {
    pub schedule: String,
    pub finished: Finished,
    /// Start minus the occurrence's planned time (store clock), when timed.
    pub lag_ms: Option<i64>,
}

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of threads for plugin calls (a clone submits to the same threads).
#[derive(Clone)]
pub struct Pool {
    jobs: std_mpsc::Sender<Job>,
}

impl Pool {
    pub fn new(threads: usize) -> Pool {
        let (tx, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("scheduler-run-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(worker = "scheduler", error = %e, "could not start a run thread");
            }
        }
        Pool { jobs: tx }
    }

    /// Make `t` on a pool thread; the outcome goes to `done`. `store_offset_ms` turns this
    /// host's clock into the store's (for the lag and the record's times).
    pub fn submit(
        &self,
        runtime: Runtime,
        t: Try,
        store_offset_ms: i64,
        done: mpsc::UnboundedSender<Done>,
    ) {
        let job: Job = Box::new(move || {
            let result = make(&runtime, &t, store_offset_ms);
            let _ = done.send(result);
        });
        if let Err(e) = self.jobs.send(job) {
            // The pool is gone (shutting down): the job runs nowhere, its lease lapses.
            tracing::warn!(worker = "scheduler", error = %e, "run pool closed; try left to its lease");
        }
    }
}

fn make(runtime: &Runtime, t: &Try, offset: i64) -> Done {
    let clock = || crate::util::now_ms() + offset;
    let started_ms = clock();
    let lag_ms = t.timed.then(|| started_ms - t.planned_ms);
    let outcome = match runtime.loaded_plugin(&t.plugin) {
        None => TryOutcome::NotRun(format!("plugin `{}` is not loaded", t.plugin)),
        Some(handle) => {
            let run = TaskRun {
                schedule: t.schedule.clone(),
                scheduled_at_ms: t.occ_ms,
                attempt: t.attempt,
                args_json: t.args_json.clone(),
            };
            match handle.run_task_within(&run, t.timeout_ms) {
                Ok(Ok(report)) => TryOutcome::Ok {
                    summary: report.summary,
                    data_json: report.data_json,
                },
                Ok(Err(message)) => TryOutcome::Error(format!("the task failed: {message}")),
                Err(e @ CallError::Timeout { .. }) => TryOutcome::Timeout(e.to_string()),
                Err(e @ CallError::NotLoaded(_)) => TryOutcome::NotRun(e.to_string()),
                Err(e) => TryOutcome::Error(e.to_string()),
            }
        }
    };
    Done {
        schedule: t.schedule.clone(),
        finished: Finished {
            id: t.claim_id.clone(),
            attempt: t.attempt,
            owner: t.owner.clone(),
            started_ms,
            finished_ms: clock(),
            outcome,
        },
        lag_ms,
    }
}
