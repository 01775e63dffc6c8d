//! `/metrics` in the Prometheus text format: per-plugin calls, errors, latency, state.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ApiState;
use crate::runtime::{PluginStatus, State as PluginState};

const BUCKETS_SECS: &[f64] = &[
    1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 5.0,
];

/// A per-plugin counter: metric name, help text, and how to read it off a status.
type Counter = (&'static str, &'static str, fn(&PluginStatus) -> u64);

pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let mut out = String::new();
    let statuses = state.runtime.statuses();
    let counters: [Counter; 3] = [
        ("impressox_plugin_calls_total", "Plugin calls.", |s| s.calls),
        (
            "impressox_plugin_errors_total",
            "Failed plugin calls (traps, timeouts, limits).",
            |s| s.errors,
        ),
        (
            "impressox_plugin_swaps_total",
            "Versions swapped in after the first.",
            |s| s.swaps,
        ),
    ];
    for (metric, help, value) in counters {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} counter");
        for s in &statuses {
            let _ = writeln!(out, "{metric}{{plugin=\"{}\"}} {}", s.name, value(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP impressox_plugin_state Plugin state (1 for the current one)."
    );
    let _ = writeln!(out, "# TYPE impressox_plugin_state gauge");
    for s in &statuses {
        for (label, st) in [
            ("active", PluginState::Active),
            ("failed", PluginState::Failed),
            ("quarantined", PluginState::Quarantined),
        ] {
            let _ = writeln!(
                out,
                "impressox_plugin_state{{plugin=\"{}\",state=\"{label}\"}} {}",
                s.name,
                u8::from(s.state == st)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP impressox_plugin_call_duration_seconds Plugin call latency."
    );
    let _ = writeln!(
        out,
        "# TYPE impressox_plugin_call_duration_seconds histogram"
    );
    for name in state.runtime.loaded_names() {
        let Some(slot) = state.runtime.inner.registry.get(&name) else {
            continue;
        };
        let h = &slot.stats.latency;
        for (bound, count) in BUCKETS_SECS.iter().zip(h.cumulative_at(BUCKETS_SECS)) {
            let _ = writeln!(
                out,
                "impressox_plugin_call_duration_seconds_bucket{{plugin=\"{name}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "impressox_plugin_call_duration_seconds_bucket{{plugin=\"{name}\",le=\"+Inf\"}} {}",
            h.count()
        );
        let _ = writeln!(
            out,
            "impressox_plugin_call_duration_seconds_sum{{plugin=\"{name}\"}} {}",
            h.sum_ns() as f64 / 1e9
        );
        let _ = writeln!(
            out,
            "impressox_plugin_call_duration_seconds_count{{plugin=\"{name}\"}} {}",
            h.count()
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
