//! # impressox-host
//!
//! The host of ImpressoX Workers. It owns every piece of I/O and runs the logic that
//! lives in WebAssembly components (plugins), which it hot-reloads from a directory.
//!
//! ## Organization
//! - [`config`]: layered TOML + environment configuration, unknown keys refused.
//! - [`runtime`]: the plugin runtime — engine, compiled-code cache, loader, registry with
//!   atomic swaps, call limits, quarantine, directory watcher, typed calls per kind.
//! - [`bindings`]: every `bindgen!` call, and nothing else.
//! - [`capabilities`]: the host interfaces plugins import (`log`, `config`; `kv`, `docs`,
//!   `notify`, `prices` are declared in WIT and arrive with the workers that need them),
//!   and the import policy that checks grants at load.
//! - [`net`]: outbound HTTP to user-chosen destinations behind the SSRF guard.
//! - [`api`]: the admin HTTP API (axum).
//! - [`workers`]: the background workers (market monitor, notify, scraper, scheduler, ...).
//! - [`events`]: the events worker: consumer groups on streams, event-handler plugins,
//!   dead letters, effects committed with the ack.
//! - [`cli`]: the `impressox` command line.
//!
//! A call goes: [`runtime::PluginHandle`] → the slot's serving version (one atomic load)
//! → an idle instance (or a fresh one from the pre-instantiated component) → deadline
//! armed → the typed export → latency and outcome recorded → instance back to the pool,
//! or dropped after a failure.

pub mod api;
pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod documents;
pub mod events;
pub mod input;
pub mod market;
pub mod net;
pub mod notify;
pub mod rag;
pub mod runtime;
pub mod scheduler;
pub mod scraper;
pub mod storage;
pub mod util;
pub mod workers;
