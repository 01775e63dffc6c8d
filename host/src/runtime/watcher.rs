//! Watches the plugin directory and feeds a single loader thread.
//!
//! File events are debounced per path (a copy arrives as several writes); once a path has
//! been quiet for `debounce_ms` it is loaded, or unloaded if it is gone. Loads run one at a
//! time on a thread with lowered priority: compiling is CPU-heavy, and on a small machine
//! callers of the serving version must not wait behind it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher as _};

use super::Runtime;
use super::loader::is_plugin_file;

/// Work for the loader thread.
enum Job {
    Changed(PathBuf),
    Rescan {
        force: bool,
        done: Option<Sender<()>>,
    },
    Stop,
}

/// How long dropping the watcher waits for a load in progress before leaving it behind.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The running watcher; dropping it stops both threads.
pub struct Watcher {
    jobs: Sender<Job>,
    _watcher: notify::RecommendedWatcher,
    stopping: Arc<AtomicBool>,
    /// Disconnects when the loader thread ends.
    loader_done: Receiver<()>,
}

impl Watcher {
    /// Start watching `runtime.dir()`: first a full scan, then events.
    pub fn start(runtime: Runtime, debounce: Duration) -> Result<Watcher> {
        let dir = runtime.dir().to_path_buf();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create plugin directory {}", dir.display()))?;
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (events_tx, events_rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut watcher = notify::recommended_watcher(move |ev| {
            let _ = events_tx.send(ev);
        })
        .context("failed to start watching the plugin directory")?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("failed to watch {}", dir.display()))?;

        let loader_rt = runtime.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let loader_stopping = stopping.clone();
        let (done_tx, loader_done) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("plugin-loader".into())
            .spawn(move || {
                let _done = done_tx;
                loader_loop(loader_rt, job_rx, &loader_stopping)
            })?;
        let debounce_jobs = jobs.clone();
        std::thread::Builder::new()
            .name("plugin-watch".into())
            .spawn(move || debounce_loop(events_rx, debounce_jobs, debounce))?;
        jobs.send(Job::Rescan {
            force: false,
            done: None,
        })
        .ok();
        Ok(Watcher {
            jobs,
            _watcher: watcher,
            stopping,
            loader_done,
        })
    }

    /// Rescan now and wait for it; `force` reloads everything and clears quarantine.
    pub fn rescan_and_wait(&self, force: bool) {
        let (tx, rx) = mpsc::channel();
        if self
            .jobs
            .send(Job::Rescan {
                force,
                done: Some(tx),
            })
            .is_ok()
        {
            let _ = rx.recv();
        }
    }

    /// A cloneable trigger for rescans (the API holds one).
    pub fn trigger(&self) -> RescanTrigger {
        RescanTrigger {
            jobs: self.jobs.clone(),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.jobs.send(Job::Stop);
        // The debouncer ends when the notify watcher (and its sender) is dropped after us;
        // the loader ends between two jobs. A load that does not finish in time (a compile
        // of a very large component, a file on a hung network mount) is left behind:
        // shutdown never waits on a plugin file.
        if let Err(RecvTimeoutError::Timeout) = self.loader_done.recv_timeout(STOP_GRACE) {
            tracing::warn!(
                "a plugin load is still running after {STOP_GRACE:?}; shutting down without it"
            );
        }
    }
}

/// Asks the loader thread for a rescan.
#[derive(Clone)]
pub struct RescanTrigger {
    jobs: Sender<Job>,
}

impl RescanTrigger {
    /// Rescan and wait (blocking; call from a blocking context).
    pub fn rescan_and_wait(&self, force: bool) -> bool {
        let (tx, rx) = mpsc::channel();
        if self
            .jobs
            .send(Job::Rescan {
                force,
                done: Some(tx),
            })
            .is_err()
        {
            return false;
        }
        rx.recv().is_ok()
    }
}

fn loader_loop(runtime: Runtime, jobs: Receiver<Job>, stopping: &AtomicBool) {
    super::engine::lower_current_thread_priority();
    while let Ok(job) = jobs.recv() {
        if stopping.load(Ordering::Acquire) {
            break;
        }
        match job {
            Job::Changed(path) => {
                if path.exists() {
                    let _ = runtime.inner.load_file(&path, false);
                } else {
                    runtime.inner.unload_file(&path);
                }
            }
            Job::Rescan { force, done } => {
                runtime.inner.rescan(force);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Job::Stop => break,
        }
    }
}

fn debounce_loop(
    events: Receiver<notify::Result<notify::Event>>,
    jobs: Sender<Job>,
    debounce: Duration,
) {
    let mut pending: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let wait = pending
            .values()
            .map(|t| (*t + debounce).saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        match events.recv_timeout(wait) {
            // Reads are not changes: the loader opening a file to hash it would otherwise
            // schedule another load of it, forever (a refused file logged its refusal
            // twenty times a second).
            Ok(Ok(event)) if matches!(event.kind, notify::EventKind::Access(_)) => {}
            Ok(Ok(event)) => {
                for path in event.paths {
                    if is_plugin_file(&path) {
                        pending.insert(path, Instant::now());
                    }
                }
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "plugin directory watch error"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        let ready: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= debounce)
            .map(|(p, _)| p.clone())
            .collect();
        for path in ready {
            pending.remove(&path);
            if jobs.send(Job::Changed(path)).is_err() {
                return;
            }
        }
    }
}
