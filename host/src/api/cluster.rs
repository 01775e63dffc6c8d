//! `GET /api/v1/cluster`: the hosts sharing the market rules (with the age of their last
//! heartbeat, live or not), the partitions each holds with the age of each lease (time
//! since its last renewal), and the partitions nobody holds — as Redis sees them at one
//! moment. 404 on a host that runs no clustered market monitor (the embedded store).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, ApiState};

pub async fn get(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let view = state
        .services
        .market
        .as_ref()
        .and_then(|m| m.cluster.clone())
        .ok_or_else(|| {
            ApiError::not_found(
                "this host runs no clustered market monitor (the market worker on the Redis store)",
            )
        })?;
    let status = view
        .leases
        .status(view.partitions)
        .await
        .map_err(ApiError::store)?;
    let lease_ms = view.lease_ms as i64;
    let mut held: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut free = Vec::new();
    for l in &status.leases {
        match &l.host {
            Some(h) => held.entry(h.as_str()).or_default().push(json!({
                "partition": l.partition,
                "lease_age_ms": (lease_ms - l.expires_in_ms).max(0),
                "expires_in_ms": l.expires_in_ms,
            })),
            None => free.push(l.partition),
        }
    }
    let hosts: Vec<Value> = status
        .hosts
        .iter()
        .map(|h| {
            let leases = held.remove(h.id.as_str()).unwrap_or_default();
            json!({
                "id": h.id,
                "heartbeat_age_ms": h.heartbeat_age_ms,
                "live": h.heartbeat_age_ms <= lease_ms,
                "this_host": h.id == view.host,
                "partitions_held": leases.len(),
                "leases": leases,
            })
        })
        .collect();
    // Leases of a host whose heartbeat entry is gone (it stopped long ago and its leases
    // have not expired yet cannot happen; a lease taken before its first heartbeat can).
    let orphans: Vec<Value> = held
        .into_iter()
        .map(|(h, leases)| {
            json!({"id": h, "heartbeat_age_ms": null, "live": false,
            "this_host": h == view.host, "partitions_held": leases.len(), "leases": leases})
        })
        .collect();
    Ok(Json(json!({
        "this_host": view.host,
        "partitions": view.partitions,
        "lease_secs": view.lease_ms / 1000,
        "hosts": hosts.into_iter().chain(orphans).collect::<Vec<_>>(),
        "unowned": free,
    })))
}
