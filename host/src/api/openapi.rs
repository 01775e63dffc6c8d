//! `/api/v1/openapi.json`: the OpenAPI document of the routes this build serves.

use axum::Json;
use serde_json::{Value, json};

pub async fn document() -> Json<Value> {
    let error = json!({"$ref": "#/components/schemas/Error"});
    Json(json!({
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
                        "kind": {"type": ["string", "null"], "enum": ["feed-parser", "rule-processor", "scrape-parser", "notify-formatter", "task", "event-handler", null]},
                        "file": {"type": "string"}, "sha256": {"type": ["string", "null"]},
                        "wit_version": {"type": ["string", "null"]},
                        "state": {"type": "string", "enum": ["active", "failed", "quarantined"]},
                        "loaded_at": {"type": ["string", "null"], "format": "date-time"},
                        "compiled_from_cache": {"type": ["boolean", "null"]},
                        "calls": {"type": "integer"}, "errors": {"type": "integer"},
                        "last_error": {"type": ["string", "null"]}, "last_load_error": {"type": ["string", "null"]},
                        "p50_us": {"type": ["number", "null"]}, "p99_us": {"type": ["number", "null"]}}}
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
            "/api/v1/plugins/reload": {"post": {"summary": "Rescan the plugin directory, reload every file, clear quarantine", "responses": {"200": {"description": "statuses after the reload"}}}}
        }
    }))
}
