//! What every plugin store carries: the plugin's identity for log lines, its limits, its
//! settings and grants, and an empty WASI context.
//!
//! Std guests built for wasm32-wasip2 import WASI (cli, io, clocks, random, filesystem)
//! even when they never use it, so every store links WASI — with nothing in it: no
//! preopened directories, no environment, no arguments, no network.

use std::sync::Arc;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::Grants;

/// Per-plugin facts shared by all its stores.
#[derive(Debug, Default)]
pub struct PluginContext {
    /// The plugin's name (from its own `info`), or the file name while probing.
    pub name: String,
    /// `[plugins.settings.<name>]`.
    pub settings: toml::Table,
    /// `[plugins.grants.<name>]`.
    pub grants: Grants,
}

/// The data of one `wasmtime::Store`.
pub struct StoreState {
    pub(crate) plugin: Arc<PluginContext>,
    pub(crate) limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl StoreState {
    pub(crate) fn new(plugin: Arc<PluginContext>, limits: StoreLimits) -> StoreState {
        StoreState {
            plugin,
            limits,
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
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
