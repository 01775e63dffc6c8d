//! `/api/v1/openapi.json`: the OpenAPI document of the routes this build serves.

use axum::Json;
use serde_json::{Value, json};

pub async fn document() -> Json<Value> {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "ImpressoX Workers admin API", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "PluginStatus": {"type": "object", "required": ["name", "state", "file", "calls", "errors"],
                    "properties": {
                        "name": {"type": "string"}, "version": {"type": ["string", "null"]},
                        "kind": {"type": ["string", "null"], "enum": ["feed-parser", "rule-processor", "scrape-parser", "notify-formatter", "task", "event-handler", "doc-chunker", null]},
                        "file": {"type": "string"}, "sha256": {"type": ["string", "null"]},
                        "wit_version": {"type": ["string", "null"]},
                        "state": {"type": "string", "enum": ["active", "failed", "quarantined"]},
                        "loaded_at": {"type": ["string", "null"], "format": "date-time"},
                        "compiled_from_cache": {"type": ["boolean", "null"]},
                        "calls": {"type": "integer"}, "errors": {"type": "integer"},
                        "idle_instances": {"type": ["integer", "null"]}, "idle_memory_bytes": {"type": ["integer", "null"]},
                        "last_error": {"type": ["string", "null"]}, "last_load_error": {"type": ["string", "null"]},
                        "p50_us": {"type": ["number", "null"]}, "p99_us": {"type": ["number", "null"]}}},
                "RuleSpec": {"type": "object", "required": ["user_id", "symbol", "condition"], "additionalProperties": false,
                    "properties": {
                        "id": {"type": "string"}, "user_id": {"type": "string"},
                        "symbol": {"type": "string", "pattern": "^[A-Z0-9]{2,24}$"},
                        "condition": {"type": "object", "required": ["op", "value"], "additionalProperties": false, "properties": {
                            "op": {"type": "string", "enum": ["above", "below", "crosses_up", "crosses_down", "pct_change"]},
                            "value": {"type": "number"},
                            "direction": {"type": "string", "enum": ["up", "down", "any"]},
                            "window_secs": {"type": "integer", "minimum": 1}}},
                        "trigger": {"type": "object", "required": ["mode"], "additionalProperties": false, "properties": {
                            "mode": {"type": "string", "enum": ["once", "every", "cooldown"]},
                            "cooldown_secs": {"type": "integer", "minimum": 1}}},
                        "expires_at": {"type": "string", "format": "date-time"},
                        "channels": {"type": "array", "items": {"type": "string", "enum": ["telegram", "email", "webhook", "console"]}},
                        "processor": {"type": "string"}, "note": {"type": "string"}}},
                "Rule": {"allOf": [{"$ref": "#/components/schemas/RuleSpec"}, {"type": "object", "properties": {
                    "created_at": {"type": "string", "format": "date-time"},
                    "enabled": {"type": "boolean"},
                    "state": {"type": "string", "enum": ["active", "fired", "expired", "disabled", "waiting_for_processor", "processor_failing"]},
                    "last_fired_at": {"type": ["string", "null"], "format": "date-time"},
                    "processor_error": {"type": "string", "description": "why the processor instance evaluating it fails (state processor_failing)"},
                    "firing": {"type": "object"}}}]},
                "Price": {"type": "object", "properties": {
                    "symbol": {"type": "string"}, "price": {"type": "number"}, "ts": {"type": "string", "format": "date-time"},
                    "ts_ms": {"type": "integer"}, "age_ms": {"type": "integer"}, "source": {"type": "string"},
                    "source_state": {"type": ["string", "null"], "enum": ["connecting", "up", "stale", "down", "finished", null]},
                    "stale": {"type": "boolean"}, "history": {"type": "array"}}}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: plugins loaded", "security": [], "responses": {"200": {"description": "ready"}, "503": {"description": "not ready", "content": {"application/json": {"schema": error}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text exposition format"}}}},
            "/api/v1/plugins": {"get": {"summary": "Status of every plugin", "responses": {"200": {"description": "statuses"}}}},
            "/api/v1/plugins/{name}": {"get": {"summary": "One plugin's status",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PluginStatus"}}}}, "404": {"description": "unknown", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/plugins/reload": {"post": {"summary": "Rescan the plugin directory, reload every file, clear quarantine", "responses": {"200": {"description": "statuses after the reload"}}}},
            "/api/v1/rules": {
                "get": {"summary": "List rules", "parameters": [
                    {"name": "user_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "symbol", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                    "responses": {"200": {"description": "{\"rules\": [Rule]}; with limit or offset one page, oldest first, and \"next_offset\" (null on the last page)"}}},
                "post": {"summary": "Create a rule", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RuleSpec"}}}},
                    "responses": {"201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Rule"}}}},
                        "400": {"description": "a field is invalid (named in the message), or `unknown_symbol`: not a symbol [market] rule_symbols allows; nothing stored", "content": {"application/json": {"schema": error}}},
                        "409": {"description": "the id exists (`conflict`), the user has [market] max_rules_per_user rules (`rule_limit_per_user`) or the store holds max_rules (`rule_limit_total`); nothing stored", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/rules/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "One rule", "responses": {"200": {"description": "the rule", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Rule"}}}}, "404": {"description": "unknown", "content": {"application/json": {"schema": error}}}}},
                "patch": {"summary": "Change condition, trigger, expires_at, channels, processor, note or enabled (null clears)",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": {"description": "the rule", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Rule"}}}}, "400": {"description": "invalid", "content": {"application/json": {"schema": error}}}, "404": {"description": "unknown", "content": {"application/json": {"schema": error}}}}},
                "delete": {"summary": "Delete a rule", "responses": {"204": {"description": "deleted"}, "404": {"description": "unknown", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/users/{user_id}/telegram-link": {"post": {"summary": "A one-time code (15 minutes) that links a Telegram chat to this user: send the bot `/start <code>`",
                "parameters": [{"name": "user_id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"201": {"description": "the code", "content": {"application/json": {"schema": {"type": "object", "required": ["code", "expires_at", "command"], "properties": {
                    "code": {"type": "string", "pattern": "^[A-Z2-7]{16}$"}, "expires_at": {"type": "string", "format": "date-time"}, "command": {"type": "string"}}}}}},
                    "400": {"description": "bad user id", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/prices/{symbol}": {"get": {"summary": "Latest price, source, age and staleness",
                "parameters": [{"name": "symbol", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "history", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "the price", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Price"}}}}, "404": {"description": "no price yet", "content": {"application/json": {"schema": error}}}}}}
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for more in [
            notify_paths(&error),
            cluster_paths(&error),
            scraper_paths(&error),
            schedule_paths(&error),
            rag_paths(&error),
        ] {
            if let Value::Object(more) = more {
                paths.extend(more);
            }
        }
    }
    Json(doc)
}

/// The notify worker's routes (a separate `json!` keeps the macro within its recursion limit).
fn notify_paths(error: &Value) -> Value {
    json!({
            "/api/v1/notifications": {"post": {"summary": "Enqueue a notification; idempotent on `id` (200 duplicate for the same body, 409 for another)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object",
                    "required": ["id", "user_id", "kind", "title"], "properties": {
                        "id": {"type": "string"}, "user_id": {"type": "string"}, "kind": {"type": "string"},
                        "priority": {"type": "string", "enum": ["normal", "critical"]}, "title": {"type": "string"},
                        "body": {"type": "string"}, "data": {"type": "object"},
                        "channels": {"type": "array", "items": {"type": "string", "enum": ["telegram", "email", "webhook", "console"]}}}}}}},
                "responses": {"202": {"description": "queued"}, "200": {"description": "duplicate of an earlier request"},
                    "400": {"description": "invalid", "content": {"application/json": {"schema": error}}},
                    "409": {"description": "id reused with another body", "content": {"application/json": {"schema": error}}},
                    "503": {"description": "`queue_full`: notify:requests is at its bound; nothing was stored; send again after `Retry-After` seconds",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/notifications/{id}": {"get": {"summary": "A notification's status and each delivery's attempts and outcome",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "status: queued, in_progress, delivered, partially_delivered, failed or skipped; deliveries with history"},
                    "404": {"description": "unknown (yet)", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/dead-letters": {"get": {"summary": "Dead letters of notifications (deliveries) and events, newest first, with the last error",
                "parameters": [{"name": "source", "in": "query", "schema": {"type": "string", "enum": ["notifications", "events"]}},
                    {"name": "stream", "in": "query", "schema": {"type": "string"}},
                    {"name": "channel", "in": "query", "schema": {"type": "string"}},
                    {"name": "user_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "reason", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                "responses": {"200": {"description": "{\"dead_letters\": [...]}"}}}},
            "/api/v1/dead-letters/{id}/replay": {"post": {"summary": "Send a dead letter again (fresh retry budget)",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"202": {"description": "queued again"}, "400": {"description": "not replayable (an invalid request, no address)", "content": {"application/json": {"schema": error}}},
                    "404": {"description": "unknown", "content": {"application/json": {"schema": error}}},
                    "409": {"description": "not a dead letter (replayed already?)", "content": {"application/json": {"schema": error}}},
                    "503": {"description": "an event's stream is at its bound", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/dead-letters/{id}": {"delete": {"summary": "Purge an event dead letter",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"204": {"description": "purged"}, "400": {"description": "a notification's dead letter (kept with its deliveries)", "content": {"application/json": {"schema": error}}},
                    "404": {"description": "unknown", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/streams/{stream}/events": {"post": {"summary": "Append an event to a stream a listener reads",
                "parameters": [{"name": "stream", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["fields"],
                    "properties": {"fields": {"type": "object"}, "id": {"type": "string", "description": "idempotency key"}}}}}},
                "responses": {"202": {"description": "appended: {stream, entry_id}"}, "200": {"description": "a duplicate id"},
                    "400": {"description": "bad field", "content": {"application/json": {"schema": error}}},
                    "404": {"description": "no listener reads the stream", "content": {"application/json": {"schema": error}}},
                    "503": {"description": "stream_full: at the listener's maxlen; Retry-After", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/listeners": {"get": {"summary": "Listeners: stream, group, plugin, stream length, pending entries, this host's counts",
                "responses": {"200": {"description": "{\"listeners\": [...]}"}}}},
            "/api/v1/users/{user_id}/preferences": {
                "parameters": [{"name": "user_id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"summary": "A user's notification preferences", "responses": {"200": {"description": "preferences"}, "404": {"description": "none set", "content": {"application/json": {"schema": error}}}}},
                "put": {"summary": "Replace a user's preferences: channels (telegram.chat_id, email.address, webhook.url, console, webpush.subscriptions [PushSubscription], discord.url, slack.url), enabled, quiet_hours {start, end, tz}, mutes [{until, kinds}]",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"200": {"description": "stored"}, "400": {"description": "invalid (names the field)", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/users/{user_id}/push-subscriptions": {
                "parameters": [{"name": "user_id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "post": {"summary": "Add a browser's PushSubscription JSON (endpoint, keys.p256dh, keys.auth); enables webpush",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"201": {"description": "added"}, "200": {"description": "updated or unchanged"}, "400": {"description": "invalid (names the field)", "content": {"application/json": {"schema": error}}}}},
                "delete": {"summary": "Drop a subscription by {\"endpoint\": ...}; the last one disables webpush",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"204": {"description": "dropped"}, "404": {"description": "no such subscription", "content": {"application/json": {"schema": error}}}}}},
            "/api/v1/webpush/public-key": {"get": {"summary": "The VAPID public key (base64url) pages subscribe with",
                "responses": {"200": {"description": "{\"public_key\": ...}"}, "503": {"description": "no VAPID key configured", "content": {"application/json": {"schema": error}}}}}}
    })
}

/// The x-scraper's routes (docs/design/x-scraper.md §3.8, §4.1).
fn scraper_paths(error: &Value) -> Value {
    let target = json!({"type": "object", "required": ["id", "kind", "origin", "mode", "interval_secs", "max_pages", "enabled", "next_run_at"],
        "properties": {
            "id": {"type": "string", "description": "user:<handle, lower case> or search:<name>"},
            "kind": {"type": "string", "enum": ["user", "search"]},
            "handle": {"type": ["string", "null"]}, "user_id": {"type": ["string", "null"]},
            "name": {"type": ["string", "null"]}, "query": {"type": ["string", "null"]},
            "product": {"type": ["string", "null"], "enum": ["live", "top", null]},
            "origin": {"type": "string", "enum": ["file", "config", "api"]},
            "mode": {"type": "string", "enum": ["tail", "backfill"]},
            "interval_secs": {"type": "integer"}, "max_pages": {"type": "integer"}, "enabled": {"type": "boolean"},
            "next_run_ms": {"type": "integer"}, "next_run_at": {"type": "string", "format": "date-time"},
            "newest_id": {"type": ["integer", "null"]},
            "backfill": {"type": "object", "properties": {"cursor": {"type": ["string", "null"]}, "oldest_id": {"type": ["integer", "null"]},
                "pages": {"type": "integer"}, "done": {"type": "boolean"}}},
            "last_run": {"type": ["object", "null"]}}});
    let spec = json!({"type": "object", "required": ["kind"], "additionalProperties": false,
        "properties": {
            "kind": {"type": "string", "enum": ["user", "search"]},
            "handle": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,15}$", "description": "kind user"},
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "kind search"},
            "query": {"type": "string", "maxLength": 500, "description": "kind search"},
            "product": {"type": "string", "enum": ["live", "top"], "description": "kind search"},
            "interval_secs": {"type": "integer", "minimum": 60},
            "mode": {"type": "string", "enum": ["tail", "backfill"]},
            "max_pages": {"type": "integer", "minimum": 1, "maximum": 1000},
            "enabled": {"type": "boolean"}}});
    json!({
        "/api/v1/scraper/targets": {
            "get": {"summary": "Scrape targets, by id",
                "parameters": [{"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["user", "search"]}}],
                "responses": {"200": {"description": "{\"targets\": [Target]}", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"targets": {"type": "array", "items": target}}}}}},
                    "400": {"description": "unknown kind", "content": {"application/json": {"schema": error}}}}},
            "post": {"summary": "Add a user or search target (origin api), due at once",
                "requestBody": {"required": true, "content": {"application/json": {"schema": spec}}},
                "responses": {"201": {"description": "created", "content": {"application/json": {"schema": target}}},
                    "400": {"description": "a field is invalid (named in the message); nothing stored", "content": {"application/json": {"schema": error}}},
                    "409": {"description": "a target with this id exists", "content": {"application/json": {"schema": error}}}}}},
        "/api/v1/scraper/targets/{id}": {"delete": {"summary": "Delete an API target; targets from user_list or [[scraper.searches]] are removed there",
            "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"204": {"description": "deleted"}, "404": {"description": "unknown", "content": {"application/json": {"schema": error}}},
                "409": {"description": "defined in user_list or [[scraper.searches]]", "content": {"application/json": {"schema": error}}}}}},
        "/api/v1/scraper/accounts": {"get": {"summary": "The x-scraper's accounts (state, session, budgets, proxy) and proxies; never a password, email, TOTP secret or cookie",
            "responses": {"200": {"description": "{\"accounts\": [...], \"proxies\": [...]}"},
                "503": {"description": "the x-scraper worker is not running in this process", "content": {"application/json": {"schema": error}}}}}}
    })
}

/// The market cluster's route (README "Several hosts").
fn cluster_paths(error: &Value) -> Value {
    let lease = json!({"type": "object", "properties": {"partition": {"type": "integer"},
        "lease_age_ms": {"type": "integer"}, "expires_in_ms": {"type": "integer"}}});
    let host = json!({"type": "object",
        "required": ["id", "heartbeat_age_ms", "live", "partitions_held", "leases"],
        "properties": {"id": {"type": "string"}, "heartbeat_age_ms": {"type": ["integer", "null"]},
            "live": {"type": "boolean"}, "this_host": {"type": "boolean"},
            "partitions_held": {"type": "integer"}, "leases": {"type": "array", "items": lease}}});
    let cluster = json!({"type": "object",
        "required": ["this_host", "partitions", "lease_secs", "hosts", "unowned"],
        "properties": {"this_host": {"type": "string"}, "partitions": {"type": "integer"},
            "lease_secs": {"type": "integer"}, "hosts": {"type": "array", "items": host},
            "unowned": {"type": "array", "items": {"type": "integer"}}}});
    json!({
        "/api/v1/cluster": {"get": {"summary": "Hosts sharing the market rules: heartbeat ages, partitions held per host with lease ages, unowned partitions",
            "responses": {"200": {"description": "the cluster", "content": {"application/json": {"schema": cluster}}},
                "404": {"description": "no clustered market monitor on this host", "content": {"application/json": {"schema": error}}}}}}
    })
}

/// The rag worker's routes (README "Retrieval (RAG)").
fn rag_paths(error: &Value) -> Value {
    let query = json!({"type": "object", "required": ["collection", "query"], "additionalProperties": false,
        "properties": {
            "collection": {"type": "string"},
            "query": {"type": "string", "minLength": 1, "maxLength": 4096},
            "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
            "mode": {"type": "string", "enum": ["vector", "lexical", "hybrid"], "default": "hybrid"},
            "filter": {"type": "object", "additionalProperties": false, "properties": {
                "source": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "cashtag": {"type": "string"}, "author": {"type": "string"},
                "since": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
                "until": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]}}},
            "min_score": {"type": "number"}}});
    json!({
        "/api/v1/rag/query": {"post": {"summary": "Retrieve chunks for the agent: vector, lexical (BM25) or hybrid (RRF), with filters and provenance",
            "requestBody": {"required": true, "content": {"application/json": {"schema": query}}},
            "responses": {"200": {"description": "{collection, mode, model, took_ms, results: [{chunk_id, document_id, text, score, vector_score, lexical_score, source, url, start, end, time, indexed_at, author, cashtags, metadata}]}"},
                "400": {"description": "a bad field, named in the message", "content": {"application/json": {"schema": error}}},
                "404": {"description": "unknown collection", "content": {"application/json": {"schema": error}}},
                "409": {"description": "the collection was embedded by another model (`model_mismatch`): run `impressox rag reindex`", "content": {"application/json": {"schema": error}}},
                "503": {"description": "the rag worker does not run in this process (`rag_not_running`)", "content": {"application/json": {"schema": error}}}}}},
        "/api/v1/rag/collections": {"get": {"summary": "Collections (model, dimension, chunks) and each source's last pass",
            "responses": {"200": {"description": "{model, collections: [...], sources: {name: {kind, collection, passes, last_pass_ms, last_error, totals}}}"},
                "503": {"description": "the rag worker does not run in this process", "content": {"application/json": {"schema": error}}}}}}
    })
}

/// The scheduler's routes (README "Scheduler").
fn schedule_paths(error: &Value) -> Value {
    let spec = json!({"type": "object", "required": ["name", "plugin"], "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9_.:@-]{1,64}$"},
            "cron": {"type": "string", "description": "six fields: second minute hour day-of-month month day-of-week; exactly one of cron and every"},
            "every": {"type": "string", "description": "a duration such as 30s or 5m"},
            "tz": {"type": "string", "description": "IANA time zone of cron (default UTC)"},
            "plugin": {"type": "string", "description": "a task plugin"},
            "args": {"description": "JSON handed to the task as args-json"},
            "overlap": {"type": "string", "enum": ["skip", "allow", "queue_one"]},
            "catch_up": {"type": "string", "description": "how late a missed occurrence may still run (default 1m)"},
            "timeout": {"type": "string"}, "retries": {"type": "integer", "minimum": 0, "maximum": 100},
            "backoff": {"type": "string"}, "jitter": {"type": "string"}, "enabled": {"type": "boolean"}}});
    let schedule = json!({"allOf": [spec.clone(), {"type": "object", "properties": {
        "origin": {"type": "string", "enum": ["config", "api"]},
        "state": {"type": "string", "enum": ["active", "paused", "running"]},
        "next_run_at": {"type": ["string", "null"], "format": "date-time"},
        "last_run": {"type": ["object", "null"], "properties": {"id": {"type": "string"}, "scheduled_at": {"type": "string"},
            "finished_at": {"type": "string"}, "attempt": {"type": "integer"}, "outcome": {"type": "string", "enum": ["ok", "error", "timeout", "lost"]}}},
        "in_flight": {"type": "array", "items": {"type": "object"}},
        "recent_runs": {"type": "array", "items": {"type": "object", "description": "scheduled_at, started_at, finished_at, host, attempt, trigger, outcome (ok, error, timeout, lost, skipped), summary, error"}}}}]});
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let read_only = json!({"description": "defined in [[schedules]] of the config file (`read_only`)", "content": {"application/json": {"schema": error}}});
    let not_found =
        json!({"description": "unknown", "content": {"application/json": {"schema": error}}});
    let invalid = json!({"description": "a field is invalid (named in the message, e.g. `cron`: expected 6 fields); nothing stored", "content": {"application/json": {"schema": error}}});
    json!({
        "/api/v1/schedules": {
            "get": {"summary": "Schedules (config and API-made) with state, next and last run",
                "responses": {"200": {"description": "{\"schedules\": [Schedule]}", "content": {"application/json": {"schema": {"type": "object",
                    "properties": {"schedules": {"type": "array", "items": schedule}}}}}}}},
            "post": {"summary": "Create an API-made schedule; every host runs it within a second or two",
                "requestBody": {"required": true, "content": {"application/json": {"schema": spec}}},
                "responses": {"201": {"description": "created", "content": {"application/json": {"schema": schedule}}},
                    "400": invalid, "409": {"description": "a schedule with this name exists", "content": {"application/json": {"schema": error}}}}}},
        "/api/v1/schedules/{name}": {
            "parameters": name,
            "get": {"summary": "A schedule with its recent runs (newest first)",
                "parameters": [{"name": "runs", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                "responses": {"200": {"description": "the schedule", "content": {"application/json": {"schema": schedule}}}, "404": not_found}},
            "patch": {"summary": "Change fields of an API-made schedule (a JSON object of the fields to set)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": {"description": "changed", "content": {"application/json": {"schema": schedule}}}, "400": invalid, "404": not_found, "409": read_only}},
            "delete": {"summary": "Delete an API-made schedule (runs in flight finish; its history stays until the retention)",
                "responses": {"204": {"description": "deleted"}, "404": not_found, "409": read_only}}},
        "/api/v1/schedules/{name}/run": {"post": {"summary": "Run now, once across all hosts (even while paused)",
            "parameters": name,
            "responses": {"202": {"description": "{\"schedule\", \"run_id\", \"state\": \"waiting\"}"}, "404": not_found}}},
        "/api/v1/schedules/{name}/pause": {"post": {"summary": "Pause an API-made schedule (what comes due meanwhile is not caught up)",
            "parameters": name, "responses": {"200": {"description": "paused"}, "404": not_found, "409": read_only}}},
        "/api/v1/schedules/{name}/resume": {"post": {"summary": "Resume an API-made schedule from now",
            "parameters": name, "responses": {"200": {"description": "resumed"}, "404": not_found, "409": read_only}}}
    })
}
