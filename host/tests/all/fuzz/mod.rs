//! Fuzz targets for every parser of untrusted input that the outside world reaches
//! (issue 12): the API's request bodies (rules, notifications, preferences, schedules), the config
//! loader, the scraper's accounts and proxies files, the Telegram bot's command parser, and
//! the bundled feed-parser plugins called through the runtime.
//!
//! Each target is a [bolero] property test in its own file. Under `cargo test` it generates
//! inputs for a bounded time (`IMPRESSOX_FUZZ_SECS` per target, [`DEFAULT_SECS`] unless
//! set; CI uses the default) and prints how many it ran, e.g.
//! `fuzz rules_create: 51234 inputs in 3.0 s (slowest 2.1 ms): 0 crashes, 0 hangs`.
//!
//! - A crash (a panic, or a property that does not hold) fails the test: bolero shrinks
//!   the input and prints it with the seed that replays it (`BOLERO_RANDOM_SEED=...`).
//! - A hang is one input running longer than `IMPRESSOX_FUZZ_HANG_SECS` ([`HANG_SECS`]
//!   unless set): [`Meter`]'s watchdog writes the input to a file, names it, and aborts
//!   the process (a stuck thread cannot be unwound, and CI must not wait for it).
//!
//! The same targets run under libFuzzer (coverage-guided, nightly):
//! `cargo bolero test --release -p impressox-host --test all fuzz::rules::create_bodies`
//! (docs/RELIABILITY.md has the list and the figures of a longer run).
//!
//! Inputs are structure-aware where the format has structure ([`mutate`]): valid examples
//! with fields dropped, retyped, made huge, unicode or deeply nested, keys mangled, then
//! byte-level damage; plus raw bytes. Each target says what it generates and checks.

mod accounts;
mod bot_commands;
mod config;
mod feed_parsers;
mod mutate;
mod notifications;
mod preferences;
mod proxies;
mod rules;
// scheduler
mod schedules;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Seconds each target runs under `cargo test` unless `IMPRESSOX_FUZZ_SECS` says otherwise:
/// the whole set stays well under a minute of wall time on two cores.
pub const DEFAULT_SECS: f64 = 3.0;

/// One input running this long (unless `IMPRESSOX_FUZZ_HANG_SECS` says otherwise) is a
/// hang. Generous: a loaded CI machine must not turn a slow input into a failure.
pub const HANG_SECS: f64 = 10.0;

/// A target that ran fewer inputs than this did not really run (a generator that rejects
/// everything, a broken setup): it fails rather than passing on nothing.
const MIN_INPUTS: u64 = 200;

fn seconds_from_env(var: &str, default: f64) -> Duration {
    let secs = std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e7)
        .unwrap_or(default);
    Duration::from_secs_f64(secs)
}

/// How long each target generates inputs.
pub fn budget() -> Duration {
    seconds_from_env("IMPRESSOX_FUZZ_SECS", DEFAULT_SECS)
}

/// Counts a target's inputs, times each one, and watches for hangs.
pub struct Meter {
    name: &'static str,
    started: Instant,
    hang_after: Duration,
    inputs: AtomicU64,
    slowest_us: AtomicU64,
    /// The input running now and since when; `None` between inputs.
    current: Mutex<Option<(Instant, Vec<u8>)>>,
    finished: AtomicBool,
}

/// Clears [`Meter::current`] when an input ends, by returning or by panicking (bolero
/// catches the panic and carries on shrinking; a stale entry would look like a hang).
struct Running<'a>(&'a Meter);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        *lock(&self.0.current) = None;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Meter {
    /// Start counting for target `name`, with a watchdog thread.
    pub fn start(name: &'static str) -> Arc<Meter> {
        let meter = Arc::new(Meter {
            name,
            started: Instant::now(),
            hang_after: seconds_from_env("IMPRESSOX_FUZZ_HANG_SECS", HANG_SECS),
            inputs: AtomicU64::new(0),
            slowest_us: AtomicU64::new(0),
            current: Mutex::new(None),
            finished: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&meter);
        std::thread::Builder::new()
            .name(format!("fuzz-watchdog-{name}"))
            .spawn(move || watchdog(weak))
            .expect("spawning the fuzz watchdog");
        meter
    }

    /// Run `check` on one input; `bytes` is what the parser gets (kept for a hang report).
    pub fn input<R>(&self, bytes: &[u8], check: impl FnOnce() -> R) -> R {
        *lock(&self.current) = Some((Instant::now(), bytes.to_vec()));
        let running = Running(self);
        let t = Instant::now();
        let out = check();
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        drop(running);
        self.slowest_us.fetch_max(us, Ordering::Relaxed);
        self.inputs.fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Print the count and fail if the target did not really run.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Relaxed);
        let n = self.inputs.load(Ordering::Relaxed);
        let slowest_ms = self.slowest_us.load(Ordering::Relaxed) as f64 / 1000.0;
        println!(
            "fuzz {}: {n} inputs in {:.1} s (slowest {slowest_ms:.1} ms): 0 crashes, 0 hangs",
            self.name,
            self.started.elapsed().as_secs_f64(),
        );
        assert!(
            n >= MIN_INPUTS,
            "fuzz {}: only {n} inputs ran; the target is not exercising its parser",
            self.name
        );
    }
}

/// Abort the process when one input runs past the hang bound, after saving it.
fn watchdog(meter: Weak<Meter>) {
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let Some(m) = meter.upgrade() else { return };
        if m.finished.load(Ordering::Relaxed) {
            return;
        }
        let stuck = lock(&m.current)
            .as_ref()
            .filter(|(since, _)| since.elapsed() > m.hang_after)
            .map(|(_, bytes)| bytes.clone());
        if let Some(bytes) = stuck {
            let file = std::env::temp_dir().join(format!("impressox-fuzz-hang-{}.bin", m.name));
            let saved = std::fs::write(&file, &bytes).is_ok();
            eprintln!(
                "fuzz {}: HANG: one input ran over {:.0} s; {} ({} bytes), starting: {:?}",
                m.name,
                m.hang_after.as_secs_f64(),
                if saved {
                    format!("saved to {}", file.display())
                } else {
                    "could not be saved".to_string()
                },
                bytes.len(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(512)]),
            );
            std::process::abort();
        }
    }
}

/// The error message a target checks names something: not empty, not just punctuation.
pub fn assert_names_something(what: &str, message: &str, input: &[u8]) {
    assert!(
        message.chars().any(char::is_alphanumeric),
        "{what}: an error without words for input {:?}",
        String::from_utf8_lossy(input)
    );
}
