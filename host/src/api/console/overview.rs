//! The overview: what runs, plugins by state, sources, queues, dead letters and recent
//! errors. The live part is its own fragment (`/ui/overview/live`), which the page's
//! script fetches every 5 s.
//!
//! Every figure is a size or a cached count (XLEN, ZCARD, the [`super::CountsCache`]);
//! nothing here reads a collection.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::super::ApiState;
use super::counts::DeadCounts;
use super::{Ctx, Flash, age, html_response, page_response};
use crate::runtime::State as PluginState;
use crate::storage::RuleScope;
use crate::util::now_ms;

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, flash.msg);
    let live = live(&state).await;
    page_response(
        "Overview",
        "/ui",
        &ctx,
        html! {
            div #live data-poll="/ui/overview/live" { (live) }
            p.live-note { "Refreshed every 5 s." }
        },
    )
}

pub async fn fragment(State(state): State<ApiState>) -> Response {
    html_response(StatusCode::OK, live(&state).await)
}

/// Which workers run in this process.
fn workers(state: &ApiState) -> Vec<(&'static str, bool)> {
    let s = &state.services;
    vec![
        ("market-monitor", s.market.is_some()),
        ("notify", s.notify.is_some()),
        (crate::scraper::config::WORKER, s.scraper.is_some()),
        (crate::events::WORKER, s.events.is_some()),
        (crate::scheduler::config::WORKER, s.scheduler.is_some()),
    ]
}

/// The live part of the overview.
pub async fn live(state: &ApiState) -> Markup {
    let statuses = state.runtime.statuses();
    let count = |st: PluginState| statuses.iter().filter(|s| s.state == st).count();
    let (active, failed, quarantined) = (
        count(PluginState::Active),
        count(PluginState::Failed),
        count(PluginState::Quarantined),
    );
    let store = state.services.store.as_ref();
    let mut queues: Vec<(String, Option<u64>)> = Vec::new();
    let mut rules = None;
    if let Some(store) = store {
        let mut streams = vec![crate::storage::NOTIFY_REQUESTS.to_string()];
        for l in &state.services.listeners {
            if !streams.contains(&l.stream) {
                streams.push(l.stream.clone());
            }
        }
        for s in streams {
            let n = store.stream_len(&s).await.ok();
            queues.push((s, n));
        }
        rules = store.count_rules_in(&RuleScope::All).await.ok();
    }
    let dead = state.counts.dead_letters(state).await;
    let now = now_ms();
    let mut errors: Vec<(String, String)> = statuses
        .iter()
        .filter_map(|s| {
            s.last_error
                .as_ref()
                .or(s.last_load_error.as_ref())
                .map(|e| (format!("plugin {}", s.name), e.clone()))
        })
        .collect();
    if let Some(m) = &state.services.market {
        for h in m.health.iter() {
            if let Some(e) = h.last_error.lock().clone() {
                errors.push((format!("source {}", h.name), e));
            }
        }
    }
    errors.truncate(10);
    let unknown = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
    // A count still being taken (only right after start) shows as `…`, a failed one as `?`.
    let dead_n = |n: fn(&DeadCounts) -> Option<u64>| {
        dead.as_ref()
            .map_or_else(|| "…".to_string(), |d| unknown(n(d)))
    };
    let (dead_notifications, dead_events) = (
        dead.and_then(|d| d.notifications).unwrap_or(0),
        dead.and_then(|d| d.events).unwrap_or(0),
    );
    html! {
        div.cards {
            div.card { div.n { (workers(state).iter().filter(|w| w.1).count()) } div.l { "workers running" } }
            div.card { div.n { (active) } div.l { "plugins active" } }
            div.card.bad[failed > 0] { div.n { (failed) } div.l { "plugins failed" } }
            div.card.bad[quarantined > 0] { div.n { (quarantined) } div.l { "plugins quarantined" } }
            div.card { div.n #rules-count { (unknown(rules)) } div.l { "rules" } }
            div.card.bad[dead_notifications > 0] { div.n #dead-notifications { (dead_n(|d| d.notifications)) } div.l { "notification dead letters" } }
            div.card.bad[dead_events > 0] { div.n #dead-events { (dead_n(|d| d.events)) } div.l { "event dead letters" } }
        }
        h2 { "Workers" }
        table {
            tr { th { "worker" } th { "in this process" } }
            @for (name, running) in workers(state) {
                tr { td { (name) } td { @if running { span.badge.active { "running" } } @else { span.muted { "not enabled" } } } }
            }
        }
        h2 { "Sources" }
        @match &state.services.market {
            None => p.muted { "The market monitor does not run in this process." },
            Some(m) => table {
                tr { th { "source" } th { "kind" } th { "state" } th { "last message" } th { "messages" } th { "reconnects" } }
                @for h in m.health.iter() {
                    @let st = serde_json::to_value(h.state()).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                    tr {
                        td { (h.name) } td { (h.kind) }
                        td { span class=(format!("badge {st}")) { (st) } }
                        td { (h.age_ms().map_or_else(|| "never".to_string(), |a| format!("{} ago", age(a)))) }
                        td { (h.messages.load(std::sync::atomic::Ordering::Relaxed)) }
                        td { (h.reconnects.load(std::sync::atomic::Ordering::Relaxed)) }
                    }
                }
            },
        }
        h2 { "Queues" }
        table {
            tr { th { "stream" } th { "entries" } }
            @for (s, n) in &queues {
                tr { td.mono { (s) } td { (unknown(*n)) } }
            }
        }
        h2 { "Recent errors" }
        @if errors.is_empty() {
            p.muted { "None." }
        } @else {
            table {
                tr { th { "where" } th { "error" } }
                @for (w, e) in &errors { tr.bad { td { (w) } td.mono { (e) } } }
            }
        }
        p.muted {
            "As of " (crate::util::rfc3339_ms(now)) "; dead-letter counts "
            @match dead { Some(d) => { "taken " (age(now - d.taken_ms)) " ago, refreshed every 5 s." } None => { "still being taken." } }
        }
    }
}
