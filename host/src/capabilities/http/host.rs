//! The adapter: `wasi:http/types` and `wasi:http/outgoing-handler` from wasmtime-wasi-http,
//! over a store's [`StoreHttp`](super::StoreHttp).
//!
//! One thing is changed on the way: wasmtime-wasi-http starts each request as a task on
//! the calling thread's tokio runtime, if it has one. A plugin call may run on a thread of
//! any runtime (a worker's current-thread runtime included, which is blocked while the
//! call runs), so `handle` first enters the plugin I/O runtime, where host waits are
//! driven (`runtime::deadline`).

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi_http::p2::bindings::LinkOptions;
use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
use wasmtime_wasi_http::p2::types::HostOutgoingRequest;
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtxView, WasiHttpView};

use crate::runtime::state::StoreState;

impl WasiHttpView for StoreState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (store_http, table, deadline) = self.http_parts();
        store_http.hooks.deadline = deadline;
        WasiHttpCtxView {
            ctx: &mut store_http.ctx,
            table,
            hooks: &mut store_http.hooks,
        }
    }
}

/// The interface `handle` is defined under (guests' older 0.2.x imports match it).
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

/// Add `wasi:http/types` and `wasi:http/outgoing-handler` to `linker`.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    let options = LinkOptions::default();
    types::add_to_linker::<StoreState, WasiHttp>(linker, &options.into(), StoreState::http)?;
    // wasmtime-wasi-http's own `handle`, defined by hand so the I/O runtime is entered
    // first (its generated linker function offers no place to do that).
    linker.instance(OUTGOING_HANDLER)?.func_wrap(
        "handle",
        |mut store: StoreContextMut<'_, StoreState>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<types::RequestOptions>>,
        )| {
            let _runtime = crate::runtime::deadline::io_runtime().enter();
            let mut view = store.data_mut().http();
            let outcome = match outgoing_handler::Host::handle(&mut view, request, options) {
                Ok(response) => Ok(response),
                Err(e) => Err(types::Host::convert_error_code(&mut view, e)?),
            };
            Ok((outcome,))
        },
    )?;
    Ok(())
}
