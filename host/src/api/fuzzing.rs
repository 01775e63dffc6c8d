//! The request-body parsers of the rule routes, reachable without a server or a store,
//! for the fuzz targets in `host/tests/all/fuzz/`. Each function is the exact code a
//! route runs on its body before it touches storage; an error comes back as the status,
//! code and message the route would answer.
//!
//! Not an API for anything else: it exists so the parsers the outside world reaches can
//! be driven with millions of generated bodies per run.

use super::ApiError;
use super::rules::{apply_patch, parse_body, parse_patch};
use crate::market::rules::{RuleRecord, RuleSpec};

/// What a route answers for a refused body: HTTP status, error code, message.
pub type Refusal = (u16, &'static str, String);

fn refusal(e: ApiError) -> Refusal {
    (e.status.as_u16(), e.code, e.message)
}

/// `POST /api/v1/rules`: the body parsed and validated as `rule_ops::create_rule` does
/// before it checks limits and stores anything.
pub fn create_rule_body(body: &[u8]) -> Result<RuleSpec, Refusal> {
    let spec: RuleSpec = parse_body(body).map_err(refusal)?;
    spec.validate(true)
        .map_err(|e| refusal(ApiError::invalid("invalid_field", e.to_string())))?;
    Ok(spec)
}

/// `PATCH /api/v1/rules/{id}` on `rule`: the record the route would store, and whether
/// the patch re-arms it.
pub fn patch_rule_body(rule: RuleRecord, body: &[u8]) -> Result<(RuleRecord, bool), Refusal> {
    let patch = parse_patch(body).map_err(refusal)?;
    apply_patch(rule, &patch).map_err(refusal)
}
