//! The agent's tools: `watch_market`, `list_rules`, `delete_rule`, `recent_alerts` (and
//! `search_context`, see [`super::search`]).
//!
//! Each tool is a thin adapter over the code path its REST route uses: rules through
//! [`crate::market::rule_ops`] (the path the REST API and the Telegram bot share), alerts
//! through [`crate::notify::service::recent_alerts`]. Arguments are parsed by the REST
//! parser ([`Args`]), so a bad one is a tool error naming the field and nothing is
//! stored; every other refusal (a limit, an unknown rule, a store that did not answer) is a
//! tool error with the REST API's `{"error": {"code", "message"}}`, so the agent reads why.
//! Results are JSON (structured content, and the same as text for clients that only show
//! text), shaped like the REST answers.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::rules::view;
use super::super::{ApiError, ApiState};
use super::args::Args;
use crate::market::rule_ops;
use crate::market::rules::RuleSpec;
use crate::notify::service::{MAX_RECENT_ALERTS, recent_alerts};

/// What the server tells a client about itself at `initialize` (agents show it to the
/// model as the server's instructions).
const INSTRUCTIONS: &str = "ImpressoX Workers: the background workers of a crypto-market \
agent. watch_market creates a price alert rule for a user (it fires through the user's \
notification channels); list_rules and delete_rule manage rules; recent_alerts lists the \
alerts that fired, newest first; search_context retrieves indexed documents (tweets, pages, \
files) with provenance. Arguments are checked like the REST API's bodies: an error names the \
field to fix and nothing is stored.";

/// One MCP session's handler: the API's state and the tool table.
#[derive(Clone)]
pub struct Tools {
    pub(super) state: ApiState,
    tool_router: ToolRouter<Tools>,
}

impl Tools {
    /// A session's handler with the tools of `tool_router` (assembled in `super`).
    pub fn new(state: ApiState, tool_router: ToolRouter<Tools>) -> Tools {
        Tools { state, tool_router }
    }
}

/// A tool's answer: the JSON on success, the REST error on a refusal.
pub(super) fn answer(result: Result<Value, ApiError>) -> Result<CallToolResult, ErrorData> {
    Ok(match result {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => CallToolResult::structured_error(
            json!({"error": {"code": e.code, "message": e.message}}),
        ),
    })
}

/// The arguments of `watch_market`: the body of `POST /api/v1/rules`. Only the schema
/// comes from here; the arguments are parsed into [`RuleSpec`] itself, so both paths
/// accept and refuse exactly the same rules.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // a schema: never built, only described
pub struct WatchMarket {
    /// The rule's id (1-128 letters, digits and `- _ . : @`); generated (`r_...`) when
    /// absent. Creating an id that exists is refused, so a retried call is safe.
    id: Option<String>,
    /// The user the alert is for: the one notified when it fires.
    user_id: String,
    /// The exchange pair, upper-case letters and digits, e.g. `BTCUSDT`.
    symbol: String,
    /// When the rule fires.
    condition: ConditionArg,
    /// How often it fires; absent: once.
    trigger: Option<TriggerArg>,
    /// RFC 3339 time after which it no longer fires, e.g. `2026-12-31T00:00:00Z`.
    expires_at: Option<String>,
    /// Channels to notify (`telegram`, `email`, `webhook`, `discord`, `slack`, `webpush`,
    /// `console`); absent: the user's enabled channels.
    channels: Option<Vec<String>>,
    /// The rule-processor plugin that evaluates it; absent: the market monitor's default
    /// (`threshold`).
    processor: Option<String>,
    /// A free-form note (at most 2000 bytes), carried into the alert.
    note: Option<String>,
}

/// `condition`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ConditionArg {
    /// `above`/`below`: the price is above/below `value`; `crosses_up`/`crosses_down`: it
    /// crosses `value`; `pct_change`: it moved by `value` percent within `window_secs`.
    op: OpArg,
    /// A price level (> 0), or for `pct_change` a percentage other than 0.
    value: f64,
    /// `pct_change` only: `up`, `down` or `any` (absolute) change.
    direction: Option<DirectionArg>,
    /// `pct_change` only (required there): the window in seconds, 1 to 604800.
    window_secs: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum OpArg {
    Above,
    Below,
    CrossesUp,
    CrossesDown,
    PctChange,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum DirectionArg {
    Up,
    Down,
    Any,
}

/// `trigger`
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TriggerArg {
    /// `once` (then disabled), `every` (each time the condition becomes true again) or
    /// `cooldown` (at most once per `cooldown_secs`).
    mode: ModeArg,
    /// `cooldown` only (required there): seconds between firings.
    cooldown_secs: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum ModeArg {
    Once,
    Every,
    Cooldown,
}

/// The arguments of `list_rules`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRules {
    /// Only this user's rules.
    user_id: Option<String>,
    /// Only rules on this pair (case-insensitive), e.g. `BTCUSDT`.
    symbol: Option<String>,
    /// Rules per page, 1 to 500 (default 100).
    limit: Option<usize>,
    /// Position of the page's first rule (default 0); pass the previous answer's
    /// `next_offset` for the next page.
    offset: Option<usize>,
}

/// The arguments of `delete_rule`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRule {
    /// The rule's id (from `watch_market` or `list_rules`).
    id: String,
    /// Delete only if the rule belongs to this user (another user's rule is reported as not
    /// found).
    user_id: Option<String>,
}

/// The arguments of `recent_alerts`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecentAlerts {
    /// Only this user's alerts.
    user_id: Option<String>,
    /// Only alerts on this pair (case-insensitive), e.g. `BTCUSDT`.
    symbol: Option<String>,
    /// How many, newest first: 1 to 100 (default 20).
    limit: Option<usize>,
}

#[tool_router(vis = "pub(super)")]
impl Tools {
    #[tool(
        description = "Create a price alert rule for a user: the market monitor evaluates it \
        on every price tick and notifies the user when it fires. Example: {\"user_id\": \"u1\", \
        \"symbol\": \"BTCUSDT\", \"condition\": {\"op\": \"above\", \"value\": 70000}}. \
        Returns the stored rule with its id and state. A bad field is an error naming it; \
        nothing is stored then.",
        annotations(title = "Watch the market", destructive_hint = false)
    )]
    async fn watch_market(
        &self,
        Parameters(args): Parameters<Args<WatchMarket>>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.watch(args).await)
    }

    #[tool(
        description = "List alert rules, oldest first, optionally of one user and/or on one \
        symbol, one page at a time. Returns {rules, next_offset}; next_offset is null on the \
        last page.",
        annotations(title = "List alert rules", read_only_hint = true)
    )]
    async fn list_rules(
        &self,
        Parameters(args): Parameters<Args<ListRules>>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.list(args).await)
    }

    #[tool(
        description = "Delete an alert rule by id (optionally only if it belongs to user_id). \
        Returns the deleted rule.",
        annotations(
            title = "Delete an alert rule",
            destructive_hint = true,
            idempotent_hint = true
        )
    )]
    async fn delete_rule(
        &self,
        Parameters(args): Parameters<Args<DeleteRule>>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.delete(args).await)
    }

    #[tool(
        description = "The price alerts that fired, newest first, optionally of one user and/or \
        on one symbol: rule id, symbol, price, reason, time and delivery status of each. An \
        alert is listed once the notify worker has taken it (within a second of firing).",
        annotations(title = "Recent alerts", read_only_hint = true)
    )]
    async fn recent_alerts(
        &self,
        Parameters(args): Parameters<Args<RecentAlerts>>,
    ) -> Result<CallToolResult, ErrorData> {
        answer(self.alerts(args).await)
    }
}

impl Tools {
    async fn watch(&self, args: Args<WatchMarket>) -> Result<Value, ApiError> {
        let spec: RuleSpec = args.parse()?;
        let rule = rule_ops::create_rule(
            self.state.store()?.as_ref(),
            self.state.services.market.as_ref(),
            &self.state.services.rules,
            spec,
        )
        .await?;
        Ok(view(&self.state, &rule))
    }

    async fn list(&self, args: Args<ListRules>) -> Result<Value, ApiError> {
        let q: ListRules = args.parse()?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=rule_ops::MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("`limit`: between 1 and {}", rule_ops::MAX_PAGE),
            ));
        }
        let (rules, next) = rule_ops::page_rules(
            self.state.store()?.as_ref(),
            q.user_id.as_deref(),
            q.symbol.as_deref(),
            q.offset.unwrap_or(0),
            limit,
        )
        .await?;
        let views: Vec<Value> = rules.iter().map(|r| view(&self.state, r)).collect();
        Ok(json!({"rules": views, "next_offset": next}))
    }

    async fn delete(&self, args: Args<DeleteRule>) -> Result<Value, ApiError> {
        let q: DeleteRule = args.parse()?;
        let rule = rule_ops::delete_rule(
            self.state.store()?.as_ref(),
            self.state.services.market.as_ref(),
            &q.id,
            q.user_id.as_deref(),
        )
        .await?;
        Ok(json!({"deleted": view(&self.state, &rule)}))
    }

    async fn alerts(&self, args: Args<RecentAlerts>) -> Result<Value, ApiError> {
        let q: RecentAlerts = args.parse()?;
        let limit = q.limit.unwrap_or(20);
        if !(1..=MAX_RECENT_ALERTS).contains(&limit) {
            return Err(ApiError::invalid(
                "invalid_field",
                format!("`limit`: between 1 and {MAX_RECENT_ALERTS}"),
            ));
        }
        let alerts = recent_alerts(
            self.state.docs()?,
            q.user_id.as_deref(),
            q.symbol.as_deref(),
            limit,
        )
        .await
        .map_err(ApiError::store)?;
        Ok(json!({"alerts": alerts}))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(INSTRUCTIONS);
        info.server_info.name = "impressox-workers".into();
        info.server_info.version = env!("CARGO_PKG_VERSION").into();
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema agents see for `watch_market` names exactly the fields `RuleSpec`
    /// accepts: a field added to one and not the other fails here.
    #[test]
    fn the_watch_market_schema_has_the_rule_bodys_fields() {
        let full = json!({"id": "r1", "user_id": "u1", "symbol": "BTCUSDT",
            "condition": {"op": "pct_change", "value": 5.0, "direction": "up", "window_secs": 60},
            "trigger": {"mode": "cooldown", "cooldown_secs": 60},
            "expires_at": "2099-01-01T00:00:00Z", "channels": ["telegram"],
            "processor": "threshold", "note": "n"});
        let spec: RuleSpec = serde_json::from_value(full.clone()).unwrap();
        assert_eq!(serde_json::to_value(&spec).unwrap(), full);
        let schema = serde_json::to_value(schemars::schema_for!(WatchMarket)).unwrap();
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&schema["properties"]), keys(&full));
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required.len(), 3, "{required:?}");
        for (def, body) in [
            ("ConditionArg", &full["condition"]),
            ("TriggerArg", &full["trigger"]),
        ] {
            assert_eq!(
                keys(&schema["$defs"][def]["properties"]),
                keys(body),
                "{def}"
            );
        }
        // Every op, direction and mode the schema offers is one RuleSpec accepts.
        for (def, field) in [("OpArg", "op"), ("DirectionArg", "direction")] {
            for v in schema["$defs"][def]["enum"].as_array().unwrap() {
                let mut c = full["condition"].clone();
                c[field] = v.clone();
                serde_json::from_value::<crate::market::rules::Condition>(c)
                    .unwrap_or_else(|e| panic!("{field} {v}: {e}"));
            }
        }
        for v in schema["$defs"]["ModeArg"]["enum"].as_array().unwrap() {
            serde_json::from_value::<crate::market::rules::Trigger>(json!({"mode": v}))
                .unwrap_or_else(|e| panic!("mode {v}: {e}"));
        }
    }
}
