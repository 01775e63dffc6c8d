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
    state.runtime.inner.services.http().render_metrics(&mut out);
    if let Some(m) = &state.services.market {
        market(&mut out, m);
    }
    if let Some(n) = &state.services.notify {
        notify(&mut out, n).await;
    }
    if let Some(s) = &state.services.scraper {
        s.render_metrics(&mut out).await;
    }
    if let Some(e) = &state.services.events {
        events(&mut out, e, &state).await;
    }
    if let Some(s) = &state.services.scheduler {
        s.render_metrics(&mut out);
    }
    if let Some(store) = &state.services.store {
        let _ = writeln!(
            out,
            "# HELP impressox_stream_length Entries in a stream (not yet acknowledged by every consumer group)."
        );
        let _ = writeln!(out, "# TYPE impressox_stream_length gauge");
        let stream = crate::storage::NOTIFY_REQUESTS;
        let mut streams = vec![stream];
        for l in &state.services.listeners {
            if !streams.contains(&l.stream.as_str()) {
                streams.push(&l.stream);
            }
        }
        for s in streams {
            if let Ok(n) = store.stream_len(s).await {
                let _ = writeln!(out, "impressox_stream_length{{stream=\"{s}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP impressox_stream_enqueue_refused_total Enqueues refused because the stream was at its bound (each retry counts)."
        );
        let _ = writeln!(out, "# TYPE impressox_stream_enqueue_refused_total counter");
        let stats = store.stream_stats();
        let mut refusals = stats.refusals();
        if !refusals.iter().any(|(s, _)| s == stream) {
            refusals.push((stream.to_string(), 0));
        }
        for (s, n) in refusals {
            let _ = writeln!(
                out,
                "impressox_stream_enqueue_refused_total{{stream=\"{s}\"}} {n}"
            );
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The events worker: events by listener and outcome, attempts, handler time, pending
/// entries per group, event dead letters.
async fn events(out: &mut String, e: &crate::events::EventsHandle, state: &ApiState) {
    use std::sync::atomic::Ordering::Relaxed;
    let _ = writeln!(
        out,
        "# HELP impressox_events_total Events settled, by listener and outcome (error: a trap, timeout or limit)."
    );
    let _ = writeln!(out, "# TYPE impressox_events_total counter");
    for l in e.listeners.iter() {
        for (outcome, n) in l.metrics.outcomes() {
            let _ = writeln!(
                out,
                "impressox_events_total{{listener=\"{}\",outcome=\"{outcome}\"}} {n}",
                l.cfg.name
            );
        }
    }
    type Read = fn(&crate::events::metrics::ListenerMetrics) -> f64;
    let counters: [(&str, &str, Read); 5] = [
        (
            "impressox_events_attempts_total",
            "Handler calls made.",
            |m| m.attempts.load(Relaxed) as f64,
        ),
        (
            "impressox_events_claimed_total",
            "Entries taken over from a consumer idle past claim_idle.",
            |m| m.claimed.load(Relaxed) as f64,
        ),
        (
            "impressox_events_commit_waits_total",
            "Commits that waited for room on notify:requests.",
            |m| m.commit_waits.load(Relaxed) as f64,
        ),
        (
            "impressox_events_handler_seconds_sum",
            "Time in the handler, summed.",
            |m| m.handler_us.load(Relaxed) as f64 / 1e6,
        ),
        (
            "impressox_events_handler_seconds_count",
            "Handler calls timed.",
            |m| m.handler_calls.load(Relaxed) as f64,
        ),
    ];
    for (metric, help, read) in counters {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} counter");
        for l in e.listeners.iter() {
            let _ = writeln!(
                out,
                "{metric}{{listener=\"{}\"}} {}",
                l.cfg.name,
                read(&l.metrics)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP impressox_events_pending Entries delivered to a listener's group and not acknowledged yet (all hosts)."
    );
    let _ = writeln!(out, "# TYPE impressox_events_pending gauge");
    for l in e.listeners.iter() {
        if let Ok(n) = l.store.pending_count(&l.cfg.stream, &l.cfg.group).await {
            let _ = writeln!(
                out,
                "impressox_events_pending{{listener=\"{}\"}} {n}",
                l.cfg.name
            );
        }
    }
    if let Some(docs) = &state.services.docs
        && let Ok(dead) = crate::events::dead_letters::count(docs).await
    {
        if state.services.notify.is_none() {
            let _ = writeln!(out, "# HELP impressox_dead_letters Dead letters kept.");
            let _ = writeln!(out, "# TYPE impressox_dead_letters gauge");
        }
        let _ = writeln!(out, "impressox_dead_letters{{kind=\"event\"}} {dead}");
    }
}

/// This host's share of the market partitions (several hosts on one Redis).
fn cluster(out: &mut String, c: &crate::market::cluster::ClusterView) {
    let gauges = [
        (
            "impressox_market_partitions_owned",
            "Market partitions this host holds a lease on and evaluates.",
            c.owned().len() as u64,
        ),
        (
            "impressox_market_partitions",
            "Market partitions in all ([market] partitions).",
            u64::from(c.partitions),
        ),
        (
            "impressox_market_cluster_hosts_live",
            "Hosts whose heartbeat is younger than a lease, at this host's last heartbeat.",
            c.live_hosts.load(std::sync::atomic::Ordering::Relaxed),
        ),
    ];
    for (metric, help, v) in gauges {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} gauge");
        let _ = writeln!(out, "{metric} {v}");
    }
    let metric = "impressox_market_lease_changes_total";
    let _ = writeln!(
        out,
        "# HELP {metric} Partition leases this host took, gave up (rebalance, shutdown) or lost (expired, taken over)."
    );
    let _ = writeln!(out, "# TYPE {metric} counter");
    for (change, v) in [
        ("acquired", &c.acquired),
        ("released", &c.released),
        ("lost", &c.lost),
    ] {
        let _ = writeln!(
            out,
            "{metric}{{change=\"{change}\"}} {}",
            v.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// Per-source health and pipeline counters of the market monitor.
fn market(out: &mut String, m: &crate::market::MarketHandle) {
    use std::sync::atomic::Ordering::Relaxed;

    use crate::market::health::{SourceHealth, SourceState};
    type SourceCounter = (&'static str, &'static str, fn(&SourceHealth) -> u64);
    let counters: [SourceCounter; 5] = [
        (
            "impressox_source_messages_total",
            "Messages received.",
            |h| h.messages.load(Relaxed),
        ),
        ("impressox_source_ticks_total", "Ticks parsed.", |h| {
            h.ticks.load(Relaxed)
        }),
        (
            "impressox_source_parse_errors_total",
            "Malformed messages skipped.",
            |h| h.parse_errors.load(Relaxed),
        ),
        ("impressox_source_reconnects_total", "Reconnects.", |h| {
            h.reconnects.load(Relaxed)
        }),
        (
            "impressox_source_stale_total",
            "Times the source went stale.",
            |h| h.stale_events.load(Relaxed),
        ),
    ];
    for (metric, help, value) in counters {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} counter");
        for h in m.health.iter() {
            let _ = writeln!(out, "{metric}{{source=\"{}\"}} {}", h.name, value(h));
        }
    }
    let _ = writeln!(
        out,
        "# HELP impressox_source_state Source state (1 for the current one)."
    );
    let _ = writeln!(out, "# TYPE impressox_source_state gauge");
    let _ = writeln!(
        out,
        "# HELP impressox_source_last_message_age_seconds Time since the last message."
    );
    for h in m.health.iter() {
        let now = h.state();
        for (label, st) in [
            ("connecting", SourceState::Connecting),
            ("up", SourceState::Up),
            ("stale", SourceState::Stale),
            ("down", SourceState::Down),
            ("finished", SourceState::Finished),
        ] {
            let _ = writeln!(
                out,
                "impressox_source_state{{source=\"{}\",state=\"{label}\"}} {}",
                h.name,
                u8::from(now == st)
            );
        }
        if let Some(age) = h.age_ms() {
            let _ = writeln!(
                out,
                "impressox_source_last_message_age_seconds{{source=\"{}\"}} {}",
                h.name,
                age as f64 / 1000.0
            );
        }
    }
    let s = &m.stats;
    for (metric, help, v) in [
        (
            "impressox_market_ticks_evaluated_total",
            "Ticks handed to rule processors.",
            &s.ticks_evaluated,
        ),
        (
            "impressox_market_ticks_stale_total",
            "Ticks too old to evaluate.",
            &s.ticks_stale,
        ),
        (
            "impressox_market_ticks_shadowed_total",
            "Fallback ticks unused while the primary was healthy.",
            &s.ticks_shadowed,
        ),
        (
            "impressox_market_alerts_total",
            "Notification requests enqueued.",
            &s.alerts,
        ),
        (
            "impressox_market_alerts_duplicate_total",
            "Firings whose request was already enqueued.",
            &s.alerts_duplicate,
        ),
        (
            "impressox_market_evaluate_errors_total",
            "Failed rule-processor batches.",
            &s.evaluate_errors,
        ),
        (
            "impressox_market_store_errors_total",
            "Store operations retried.",
            &s.store_errors,
        ),
        (
            "impressox_market_commits_total",
            "State commits.",
            &s.commits,
        ),
        (
            "impressox_market_ticks_caught_up_total",
            "Ticks kept while another host held their partition, evaluated on taking it over.",
            &s.ticks_caught_up,
        ),
        (
            "impressox_market_ticks_evaluated_before_total",
            "Ticks of a newly held partition its previous owner had evaluated, skipped.",
            &s.ticks_evaluated_before,
        ),
        (
            "impressox_market_commits_fenced_total",
            "Commits refused because a partition's lease had moved to another host.",
            &s.commits_fenced,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} counter");
        let _ = writeln!(out, "{metric} {}", v.load(Relaxed));
    }
    for (metric, help, v) in [
        (
            "impressox_market_instances_failing",
            "Rule-processor instances whose last call failed, waiting to be retried.",
            s.instances_failing.load(Relaxed),
        ),
        (
            "impressox_market_rules_failing",
            "Rules not evaluated while their processor instance fails.",
            s.rules_failing() as u64,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} gauge");
        let _ = writeln!(out, "{metric} {v}");
    }
    if let Some(c) = &m.cluster {
        cluster(out, c);
    }
    histogram(
        out,
        "impressox_market_alert_latency_seconds",
        "From a feed message to its notification request.",
        &s.alert_latency,
    );
}

/// One unlabelled latency histogram.
fn histogram(
    out: &mut String,
    metric: &str,
    help: &str,
    h: &crate::runtime::metrics::LatencyHistogram,
) {
    let _ = writeln!(out, "# HELP {metric} {help}");
    let _ = writeln!(out, "# TYPE {metric} histogram");
    for (bound, count) in BUCKETS_SECS.iter().zip(h.cumulative_at(BUCKETS_SECS)) {
        let _ = writeln!(out, "{metric}_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{metric}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(out, "{metric}_sum {}", h.sum_ns() as f64 / 1e9);
    let _ = writeln!(out, "{metric}_count {}", h.count());
}

/// The notify worker's counters, and the dead-letter count from the document store.
async fn notify(out: &mut String, n: &crate::notify::NotifyHandle) {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &n.shared.stats;
    for (metric, help, v) in [
        (
            "impressox_notify_requests_total",
            "Notification requests planned.",
            &s.requests,
        ),
        (
            "impressox_notify_invalid_requests_total",
            "Stream entries that were not valid requests (dead letters).",
            &s.invalid_requests,
        ),
        (
            "impressox_notify_lease_lost_total",
            "Outcomes not recorded because another host swept the claim first.",
            &s.lease_lost,
        ),
        (
            "impressox_notify_interrupted_total",
            "Sends a stopped host left unfinished (dead letters or retries).",
            &s.interrupted,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} counter");
        let _ = writeln!(out, "{metric} {}", v.load(Relaxed));
    }
    let metric = "impressox_notify_deliveries_total";
    let _ = writeln!(
        out,
        "# HELP {metric} Delivery attempts and planning results by channel and outcome."
    );
    let _ = writeln!(out, "# TYPE {metric} counter");
    let mut rows: Vec<_> = s
        .deliveries
        .lock()
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    rows.sort();
    for ((channel, outcome), v) in rows {
        let _ = writeln!(
            out,
            "{metric}{{channel=\"{channel}\",outcome=\"{outcome}\"}} {v}"
        );
    }
    let _ = writeln!(out, "# HELP impressox_notify_in_flight Sends in progress.");
    let _ = writeln!(out, "# TYPE impressox_notify_in_flight gauge");
    let _ = writeln!(
        out,
        "impressox_notify_in_flight {}",
        s.in_flight.load(Relaxed)
    );
    histogram(
        out,
        "impressox_notify_send_delay_seconds",
        "From a delivery's planning to the channel accepting it.",
        &s.send_delay,
    );
    if let Ok(dead) = crate::notify::service::dead_count(&n.shared.log.docs).await {
        let _ = writeln!(out, "# HELP impressox_dead_letters Dead letters kept.");
        let _ = writeln!(out, "# TYPE impressox_dead_letters gauge");
        let _ = writeln!(
            out,
            "impressox_dead_letters{{kind=\"notification\"}} {dead}"
        );
    }
    // Counted through the store's (state, ...) indexes, so a scrape stays cheap.
    use crate::notify::record::State;
    let _ = writeln!(
        out,
        "# HELP impressox_notify_records Delivery records by state (all hosts)."
    );
    let _ = writeln!(out, "# TYPE impressox_notify_records gauge");
    for state in [
        State::Queued,
        State::Sending,
        State::Sent,
        State::Skipped,
        State::Dead,
    ] {
        if let Ok(count) = n.shared.log.count_state(state).await {
            let _ = writeln!(
                out,
                "impressox_notify_records{{state=\"{}\"}} {count}",
                state.as_str()
            );
        }
    }
}
