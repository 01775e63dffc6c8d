//! Per-plugin counters of outbound HTTP (`impressox_http_*` on `/metrics`).
//!
//! Kept by plugin name for the life of the host, so they survive hot swaps of the plugin.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// The counters of one plugin.
#[derive(Debug, Default)]
pub struct PluginMetrics {
    requests: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

impl PluginMetrics {
    /// A request was sent (it passed the grant, the guard and the call's budget).
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    /// A request or body was refused by the grant, the address guard or a limit.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    /// A request failed on the network or the server's side (connect, TLS, timeout).
    pub fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }
    /// Request body bytes sent.
    pub fn sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }
    /// Response body bytes received.
    pub fn received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    /// (requests, refused, failed, bytes sent, bytes received).
    pub fn snapshot(&self) -> [u64; 5] {
        [
            &self.requests,
            &self.refused,
            &self.failed,
            &self.bytes_sent,
            &self.bytes_received,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

/// Every plugin's counters, by name.
#[derive(Debug, Default)]
pub struct Metrics {
    plugins: Mutex<BTreeMap<String, Arc<PluginMetrics>>>,
}

impl Metrics {
    /// The counters of `plugin`, created on first use.
    pub fn plugin(&self, plugin: &str) -> Arc<PluginMetrics> {
        self.plugins
            .lock()
            .entry(plugin.to_string())
            .or_default()
            .clone()
    }

    /// Append the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let plugins: Vec<(String, [u64; 5])> = self
            .plugins
            .lock()
            .iter()
            .map(|(name, m)| (name.clone(), m.snapshot()))
            .collect();
        let series = [
            (
                "impressox_http_requests_total",
                "Outbound HTTP requests sent by plugins.",
            ),
            (
                "impressox_http_refused_total",
                "Outbound HTTP requests and bodies refused (grant, address guard, limits).",
            ),
            (
                "impressox_http_failed_total",
                "Outbound HTTP requests failed (connect, TLS, timeout, protocol).",
            ),
            (
                "impressox_http_sent_bytes_total",
                "Request body bytes sent.",
            ),
            (
                "impressox_http_received_bytes_total",
                "Response body bytes received.",
            ),
        ];
        for (i, (metric, help)) in series.iter().enumerate() {
            let _ = writeln!(out, "# HELP {metric} {help}");
            let _ = writeln!(out, "# TYPE {metric} counter");
            for (name, values) in &plugins {
                let _ = writeln!(out, "{metric}{{plugin=\"{name}\"}} {}", values[i]);
            }
        }
    }
}
