//! What every plugin store carries: the plugin's identity for log lines, its limits, the
//! wall-clock deadline of the call running in it, its settings, grants and granted
//! capabilities with the call's budget for them, and its WASI context.
//!
//! Std guests built for wasm32-wasip2 (and the Python and JavaScript runtimes) import WASI
//! even when they never use it, so every store has a WASI context — with nothing in it to
//! reach: no preopened directories, no environment, no arguments, sockets refused,
//! stdout and stderr into the host's log (`capabilities::wasi`).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limiter::PluginLimiter;
use crate::capabilities::budget::CallBudget;
use crate::capabilities::http::StoreHttp;
use crate::capabilities::wasi::stdio::{OutputBudget, PluginOutput, Stream};
use crate::config::Grants;

/// Most resources (streams, pollables, handles of host objects) one store may hold.
pub const MAX_RESOURCES: usize = 10_000;

/// Per-plugin facts shared by all its stores.
#[derive(Debug, Default)]
pub struct PluginContext {
    /// The plugin's name (from its own `info`), or the file name while probing.
    pub name: String,
    /// `[plugins.settings.<name>]`.
    pub settings: toml::Table,
    /// `[plugins.grants.<name>]`.
    pub grants: Grants,
    /// What the grants give it: its kv namespace, collections, notify source, budget.
    pub caps: crate::capabilities::services::Granted,
}

/// The data of one `wasmtime::Store`.
pub struct StoreState {
    pub(crate) plugin: Arc<PluginContext>,
    pub(crate) limits: PluginLimiter,
    /// When the call running in this store must end, on the coarse clock
    /// (`runtime::deadline`); host calls that wait stop there.
    deadline_ms: u64,
    /// What the running call may still write to stdout and stderr.
    pub(crate) output: Arc<OutputBudget>,
    /// What the running call may still do through capabilities.
    pub(crate) budget: CallBudget,
    wasi: WasiCtx,
    table: ResourceTable,
    /// `wasi:http` of this store (`capabilities::http`).
    http: StoreHttp,
}

impl StoreState {
    pub(crate) fn new(plugin: Arc<PluginContext>, limits: PluginLimiter) -> StoreState {
        let output = Arc::new(OutputBudget::new());
        let name: Arc<str> = plugin.name.as_str().into();
        let wasi = WasiCtx::builder()
            .stdout(PluginOutput::new(
                name.clone(),
                Stream::Stdout,
                output.clone(),
            ))
            .stderr(PluginOutput::new(name, Stream::Stderr, output.clone()))
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_RESOURCES);
        let http = StoreHttp::new(plugin.caps.http.clone());
        StoreState {
            budget: CallBudget::new(plugin.caps.budget),
            plugin,
            limits,
            deadline_ms: super::deadline::coarse_now_ms(),
            output,
            wasi,
            table,
            http,
        }
    }

    /// Start a call: it must end within `timeout_ms`, and its output budget is full.
    pub(crate) fn begin_call(&mut self, timeout_ms: u64) {
        self.deadline_ms = super::deadline::coarse_now_ms() + timeout_ms;
        self.output.reset();
        self.budget.reset();
        self.http.begin_call();
    }

    /// When the running call must end.
    pub(crate) fn deadline(&self) -> Instant {
        super::deadline::instant_at(self.deadline_ms)
    }

    pub(crate) fn table_mut(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The store's `wasi:http` state, its resource table and the call's deadline, borrowed
    /// together (`capabilities::http`).
    pub(crate) fn http_parts(&mut self) -> (&mut StoreHttp, &mut ResourceTable, Instant) {
        let deadline = self.deadline();
        (&mut self.http, &mut self.table, deadline)
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
