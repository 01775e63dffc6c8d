//! The call path: take an instance of the serving version, arm the deadline, call, record
//! the outcome, give the instance back (or drop it after a failure).
//!
//! A trap, a timeout, a memory-cap hit or an oversized answer is an error for that call
//! only. After `quarantine_after` consecutive failures the plugin is quarantined: calls
//! fail fast until a new file or an explicit reload clears it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmtime::{Store, Trap};

use super::Inner;
use super::Kind;
use super::deadline::DeadlineExceeded;
use super::instance::Instance;
use super::kind::KindBindings;
use super::limiter::MemoryCapExceeded;
use super::output::OutputSize;
use super::registry::{Loaded, Slot};
use super::state::StoreState;

/// Why a plugin call produced no answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CallError {
    #[error("plugin `{0}` is not loaded")]
    NotLoaded(String),
    #[error(
        "plugin `{plugin}` is quarantined after repeated failures (last: {last_error}); load a new file or reload to clear it"
    )]
    Quarantined { plugin: String, last_error: String },
    #[error("plugin `{plugin}` is a {actual} plugin, not a {expected}")]
    WrongKind {
        plugin: String,
        expected: Kind,
        actual: Kind,
    },
    #[error("plugin `{plugin}` exceeded its {ms} ms deadline")]
    Timeout { plugin: String, ms: u64 },
    #[error("plugin `{plugin}` hit its memory cap of {mib} MiB")]
    MemoryLimit { plugin: String, mib: u64 },
    #[error("plugin `{plugin}` returned {bytes} bytes, over the {cap}-byte output cap")]
    OutputTooLarge {
        plugin: String,
        bytes: usize,
        cap: usize,
    },
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap { plugin: String, message: String },
    #[error("plugin `{plugin}` could not be instantiated: {message}")]
    Instantiate { plugin: String, message: String },
}

impl CallError {
    /// Whether this failure counts towards quarantine.
    fn is_plugin_failure(&self) -> bool {
        !matches!(
            self,
            CallError::NotLoaded(_) | CallError::Quarantined { .. } | CallError::WrongKind { .. }
        )
    }
}

/// A plugin by name, resolved once; each call uses whichever version serves at that moment.
#[derive(Clone)]
pub struct PluginHandle {
    pub(crate) inner: Arc<Inner>,
    pub(crate) slot: Arc<Slot>,
}

impl PluginHandle {
    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }

    /// The version serving new calls.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.slot.current()
    }

    /// Whether calls fail fast until a new file or a reload (the circuit breaker).
    pub fn is_quarantined(&self) -> bool {
        self.slot.stats.quarantined.load(Ordering::Acquire)
    }

    /// Run `f` on an instance of the serving version, under the call limits.
    pub(crate) fn call<R: OutputSize>(
        &self,
        expected: Option<Kind>,
        f: impl FnOnce(&KindBindings, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_within(expected, self.inner.limits.deadline_ticks, f)
    }

    /// [`PluginHandle::call`] with its own deadline of `deadline_ms` instead of
    /// `[plugins] call_timeout_ms` (a scheduled task's `timeout`); the other limits
    /// are the same.
    pub(crate) fn call_within<R: OutputSize>(
        &self,
        expected: Option<Kind>,
        deadline_ms: u64,
        f: impl FnOnce(&KindBindings, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let stats = &self.slot.stats;
        if stats.quarantined.load(Ordering::Acquire) {
            return Err(CallError::Quarantined {
                plugin: self.slot.name.clone(),
                last_error: stats.last_error.lock().clone().unwrap_or_default(),
            });
        }
        // A guard, not a clone: no reference-count traffic on the hot path.
        let guard = self.slot.current.load();
        let Some(loaded) = guard.as_ref() else {
            return Err(CallError::NotLoaded(self.slot.name.clone()));
        };
        if let Some(expected) = expected
            && expected != loaded.kind
        {
            return Err(CallError::WrongKind {
                plugin: self.slot.name.clone(),
                expected,
                actual: loaded.kind,
            });
        }
        let limits = &self.inner.limits;
        let pooled = loaded.idle.lock().pop();
        let mut instance = match pooled {
            Some(i) => i,
            None => {
                match Instance::new(&self.inner.engine, &loaded.pre, loaded.ctx.clone(), limits) {
                    Ok(i) => {
                        stats.instances_created.fetch_add(1, Ordering::Relaxed);
                        Box::new(i)
                    }
                    Err(err) => {
                        let err = CallError::Instantiate {
                            plugin: self.slot.name.clone(),
                            message: classify(&self.slot.name, err, limits).to_string(),
                        };
                        self.record_failure(&err);
                        return Err(err);
                    }
                }
            }
        };
        super::instance::arm_for(&mut instance.store, deadline_ms);
        // Latency is sampled (every call while few were made, then one in eight): two
        // clock reads cost about a tenth of a trivial call.
        let n = stats.calls.fetch_add(1, Ordering::Relaxed);
        let started = (n < 1024 || n.is_multiple_of(8)).then(Instant::now);
        let result = f(&instance.bindings, &mut instance.store);
        if let Some(started) = started {
            stats.latency.record(started.elapsed().as_nanos() as u64);
        }
        let outcome = match result {
            Ok(value) => {
                let bytes = value.output_bytes();
                if bytes > limits.max_output_bytes {
                    Err(CallError::OutputTooLarge {
                        plugin: self.slot.name.clone(),
                        bytes,
                        cap: limits.max_output_bytes,
                    })
                } else {
                    Ok(value)
                }
            }
            Err(err) => Err(classify_within(&self.slot.name, err, limits, deadline_ms)),
        };
        match outcome {
            Ok(value) => {
                stats.consecutive_failures.store(0, Ordering::Relaxed);
                instance.calls += 1;
                if instance.calls < limits.recycle_after_calls {
                    let mut idle = loaded.idle.lock();
                    if super::instance::keep_idle(&idle, &instance, limits) {
                        idle.push(instance);
                    }
                }
                Ok(value)
            }
            Err(err) => {
                // The instance may be poisoned or hold half-built state: never reuse it.
                drop(instance);
                self.record_failure(&err);
                Err(err)
            }
        }
    }

    pub(crate) fn record_failure(&self, err: &CallError) {
        if !err.is_plugin_failure() {
            return;
        }
        let stats = &self.slot.stats;
        stats.errors.fetch_add(1, Ordering::Relaxed);
        *stats.last_error.lock() = Some(err.to_string());
        let n = stats.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(plugin = %self.slot.name, error = %err, consecutive = n, "plugin call failed");
        if n >= self.inner.limits.quarantine_after
            && !stats.quarantined.swap(true, Ordering::AcqRel)
        {
            tracing::error!(plugin = %self.slot.name, failures = n,
                "plugin quarantined after repeated failures; load a new file or reload to clear it");
        }
    }
}

/// Turn a wasmtime error into the reason a caller and an operator can act on.
pub(crate) fn classify(
    plugin: &str,
    err: wasmtime::Error,
    limits: &super::instance::CallLimits,
) -> CallError {
    classify_within(plugin, err, limits, limits.deadline_ticks)
}

/// [`classify`] for a call armed with its own deadline of `deadline_ms`.
fn classify_within(
    plugin: &str,
    err: wasmtime::Error,
    limits: &super::instance::CallLimits,
    deadline_ms: u64,
) -> CallError {
    // The deadline passed in guest code (the epoch) or while waiting in a host call.
    if matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt))
        || caused_by::<DeadlineExceeded>(&err)
    {
        return CallError::Timeout {
            plugin: plugin.to_string(),
            ms: deadline_ms,
        };
    }
    let root = err.root_cause().to_string();
    if caused_by::<MemoryCapExceeded>(&err) {
        return CallError::MemoryLimit {
            plugin: plugin.to_string(),
            mib: (limits.memory_bytes / (1024 * 1024)) as u64,
        };
    }
    let message = match err.downcast_ref::<Trap>() {
        Some(trap) if root.is_empty() || root.starts_with("error while executing") => {
            trap.to_string()
        }
        Some(trap) => format!("{trap}: {root}"),
        None => root,
    };
    CallError::Trap {
        plugin: plugin.to_string(),
        message: crate::util::truncate(&message, 2048),
    }
}

/// Whether `err` or anything in its chain of causes is a `T`.
fn caused_by<T: std::error::Error + Send + Sync + 'static>(err: &wasmtime::Error) -> bool {
    err.downcast_ref::<T>().is_some() || err.chain().any(|e| e.downcast_ref::<T>().is_some())
}
