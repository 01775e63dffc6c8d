//! `http`: outbound HTTP for tasks and event handlers, through the standard
//! `wasi:http/outgoing-handler` (wasmtime-wasi-http), granted per plugin by
//! `[plugins.grants.<name>] http = ["api.example.com", "*.coingecko.com"]`.
//!
//! ## Organization
//! - [`config`]: `[plugins.http]`, the limits every plugin shares.
//! - [`allow`]: a plugin's grant, parsed; which scheme, host and port it allows (pure).
//! - [`send`]: the send hook — grant, address guard, budget, network — and its error codes.
//! - [`budget`]: what one call may spend (requests, bytes) and the response body that
//!   enforces it and the response's size cap.
//! - [`metrics`]: per-plugin counters.
//! - [`host`]: the thin adapter wasmtime-wasi-http is linked through.
//!
//! ## The seam
//! [`Http::new`] is built from config once per runtime; [`Http::for_plugin`] makes a
//! plugin's [`PluginHttp`] from its grant when it loads (a bad grant fails the load,
//! naming the entry); each store carries a [`StoreHttp`] for the call running in it
//! ([`StoreHttp::begin_call`] refills its budget); [`host::add_to_linker`] links `wasi:http` for
//! tasks and event handlers. Pure kinds never get it, and a task that imports it without a
//! grant is refused at load (`capabilities::check_imports`).
//!
//! Waits: the guest waits for a response or body bytes only through `wasi:io/poll` and
//! `wasi:io/streams`, which end at the call's deadline (`capabilities::wasi::io`); the
//! request itself is also given no more time than the call has left, and is dropped with
//! the store when a timed-out call's instance is thrown away.

use std::sync::Arc;
use std::time::Instant;

use wasmtime_wasi_http::WasiHttpCtx;

pub mod allow;
pub mod budget;
pub mod config;
pub mod host;
pub mod metrics;
pub mod send;

pub use send::PluginHttp;

use budget::CallBudget;
use config::HttpConfig;

/// Outbound HTTP for the plugins of one runtime: the shared limits and the counters.
#[derive(Debug, Default)]
pub struct Http {
    config: HttpConfig,
    metrics: metrics::Metrics,
}

impl Http {
    /// Built from `[plugins.http]`.
    pub fn new(config: &HttpConfig) -> Http {
        Http {
            config: config.clone(),
            metrics: metrics::Metrics::default(),
        }
    }

    /// The outbound HTTP of plugin `name` with the hosts of its grant; `None` without a
    /// grant. An error names the bad entry and the config key.
    pub fn for_plugin(
        &self,
        name: &str,
        hosts: &[String],
    ) -> Result<Option<Arc<PluginHttp>>, String> {
        let allow = allow::AllowList::parse(hosts)
            .map_err(|why| format!("[plugins.grants.{name}] http: {why}"))?;
        if allow.is_empty() {
            return Ok(None);
        }
        let plugin = PluginHttp::new(name, allow, &self.config, self.metrics.plugin(name))
            .map_err(|e| format!("outbound HTTP for `{name}`: {e:#}"))?;
        Ok(Some(Arc::new(plugin)))
    }

    /// Append the per-plugin counters to a Prometheus text exposition.
    pub fn render_metrics(&self, out: &mut String) {
        self.metrics.render(out);
    }
}

/// The `wasi:http` state of one store.
pub struct StoreHttp {
    ctx: WasiHttpCtx,
    hooks: send::Hooks,
}

impl StoreHttp {
    /// For a store of a plugin with `plugin`'s HTTP (`None`: every request is denied).
    pub fn new(plugin: Option<Arc<PluginHttp>>) -> StoreHttp {
        let budget = match &plugin {
            Some(p) => p.budget(),
            None => CallBudget::new(0, 0),
        };
        StoreHttp {
            ctx: WasiHttpCtx::new(),
            hooks: send::Hooks {
                plugin,
                deadline: Instant::now(),
                budget: Arc::new(budget),
            },
        }
    }

    /// A call begins: its budget is full.
    pub fn begin_call(&self) {
        self.hooks.budget.reset();
    }
}
