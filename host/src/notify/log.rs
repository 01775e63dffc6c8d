//! The notify worker's collections in the document store and the queries over them:
//! `notifications` (one record per request id, with its body hash), `deliveries` (the
//! delivery log and dead letters, see [`super::record`]) and `preferences`.

use std::sync::Arc;

use anyhow::Result;
use serde_json::Value;

use super::prefs::Preferences;
use super::record::{DELIVERIES, Delivery, State};
use super::request::NotificationRequest;
use crate::documents::{Doc, Documents, Filter, IndexSpec, Order, Query, Write, WriteOutcome};

pub const NOTIFICATIONS: &str = "notifications";
pub const PREFERENCES: &str = "preferences";

/// Indexes the notify worker's queries need; created at start-up.
pub const INDEXES: &[IndexSpec<'static>] = &[
    IndexSpec {
        collection: NOTIFICATIONS,
        name: "received",
        fields: &[("received_ms", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: DELIVERIES,
        name: "by_notification",
        fields: &[("notification_id", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: DELIVERIES,
        name: "due",
        fields: &[("state", Order::Asc), ("due_at_ms", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: DELIVERIES,
        name: "lease",
        fields: &[("state", Order::Asc), ("lease_until_ms", Order::Asc)],
        unique: false,
    },
    IndexSpec {
        collection: DELIVERIES,
        name: "final",
        fields: &[("state", Order::Asc), ("final_ms", Order::Asc)],
        unique: false,
    },
];

/// The `notifications` record of a request.
pub fn notification_doc(req: &NotificationRequest, source: &str, now_ms: i64) -> Doc {
    let mut d = Doc::new();
    d.insert("_id".into(), req.id.clone().into());
    d.insert("user_id".into(), req.user_id.clone().into());
    d.insert("kind".into(), req.kind.clone().into());
    d.insert(
        "priority".into(),
        serde_json::to_value(req.priority).unwrap_or(Value::Null),
    );
    d.insert("title".into(), req.title.clone().into());
    // A price alert's symbol as a field of its own, so recent alerts are found by symbol
    // in the query (`service::recent_alerts`) rather than by parsing every request.
    if let Some(symbol) = req.data.get("symbol").and_then(Value::as_str) {
        d.insert("symbol".into(), symbol.into());
    }
    d.insert(
        "request_json".into(),
        serde_json::to_string(req).unwrap_or_default().into(),
    );
    d.insert("body_hash".into(), req.body_hash().into());
    d.insert("source".into(), source.into());
    d.insert("received_ms".into(), now_ms.into());
    d
}

/// Reads and writes of the notify collections.
#[derive(Clone)]
pub struct DeliveryLog {
    pub docs: Arc<dyn Documents>,
}

impl DeliveryLog {
    pub fn new(docs: Arc<dyn Documents>) -> DeliveryLog {
        DeliveryLog { docs }
    }

    pub async fn ensure_indexes(&self) -> Result<()> {
        self.docs.ensure_indexes(INDEXES).await
    }

    pub async fn preferences(&self, user_id: &str) -> Result<Option<(Preferences, u64)>> {
        match self.docs.get(PREFERENCES, user_id).await? {
            None => Ok(None),
            Some(doc) => {
                let rev = crate::documents::rev_of(&doc);
                Ok(Some((Preferences::from_doc(doc)?, rev)))
            }
        }
    }

    pub async fn notification(&self, id: &str) -> Result<Option<Doc>> {
        self.docs.get(NOTIFICATIONS, id).await
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<Delivery>> {
        self.docs
            .get(DELIVERIES, id)
            .await?
            .map(Delivery::from_doc)
            .transpose()
    }

    pub async fn deliveries_of(&self, notification_id: &str) -> Result<Vec<Delivery>> {
        let q = Query::new(Filter::all().eq("notification_id", notification_id))
            .sort("created_ms", Order::Asc);
        self.find(&q).await
    }

    /// `queued` records due by `now_ms`, earliest first.
    pub async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>> {
        let q = Query::new(
            Filter::all()
                .eq("state", State::Queued.as_str())
                .lte("due_at_ms", now_ms),
        )
        .sort("due_at_ms", Order::Asc)
        .limit(limit);
        self.find(&q).await
    }

    /// `sending` records whose lease ran out before `now_ms`.
    pub async fn expired(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>> {
        let q = Query::new(
            Filter::all()
                .eq("state", State::Sending.as_str())
                .lt("lease_until_ms", now_ms),
        )
        .sort("lease_until_ms", Order::Asc)
        .limit(limit);
        self.find(&q).await
    }

    /// Every `sending` record (start-up: find those of this host's previous life).
    pub async fn sending(&self, limit: usize) -> Result<Vec<Delivery>> {
        let q = Query::new(Filter::all().eq("state", State::Sending.as_str()))
            .sort("lease_until_ms", Order::Asc)
            .limit(limit);
        self.find(&q).await
    }

    /// Dead letters, newest first, optionally before a time and of one channel/user/reason.
    pub async fn dead_letters(&self, filter: Filter, limit: usize) -> Result<Vec<Delivery>> {
        let q = Query::new(filter.eq("state", State::Dead.as_str()))
            .sort("final_ms", Order::Desc)
            .limit(limit);
        self.find(&q).await
    }

    pub async fn count_state(&self, state: State) -> Result<u64> {
        self.docs
            .count(DELIVERIES, &Filter::all().eq("state", state.as_str()))
            .await
    }

    /// Records matching `q`; one this version cannot read is logged and left where it is
    /// rather than failing every query that meets it.
    async fn find(&self, q: &Query) -> Result<Vec<Delivery>> {
        Ok(self
            .docs
            .find(DELIVERIES, q)
            .await?
            .into_iter()
            .filter_map(|doc| {
                let id = doc.get("_id").cloned();
                Delivery::from_doc(doc)
                    .inspect_err(|e| {
                        tracing::error!(record = ?id, error = %e, "notify: unreadable delivery record skipped");
                    })
                    .ok()
            })
            .collect())
    }

    /// Compare-and-set each record from its `rev`; returns per record its new rev, or
    /// `None` when another writer changed it first.
    pub async fn replace_all(&self, records: &[Delivery]) -> Result<Vec<Option<u64>>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let writes = records
            .iter()
            .map(|d| Write::ReplaceIf {
                coll: DELIVERIES.into(),
                doc: d.to_doc(),
                rev: d.rev,
            })
            .collect();
        let out = self.docs.write(writes).await?;
        Ok(out
            .into_iter()
            .map(|o| match o {
                WriteOutcome::Replaced { rev } => Some(rev),
                _ => None,
            })
            .collect())
    }

    /// Delete finished records older than the retention (dead letters live 3x longer).
    pub async fn purge(&self, now_ms: i64, retention_days: u64) -> Result<u64> {
        let day = 86_400_000i64;
        let keep = retention_days as i64 * day;
        let mut n = 0;
        for (state, age) in [
            (State::Sent, keep),
            (State::Skipped, keep),
            (State::Dead, 3 * keep),
        ] {
            let f = Filter::all()
                .eq("state", state.as_str())
                .lt("final_ms", now_ms - age)
                .gt("final_ms", 0);
            n += self.docs.delete_where(DELIVERIES, &f).await?;
        }
        n += self
            .docs
            .delete_where(
                NOTIFICATIONS,
                &Filter::all().lt("received_ms", now_ms - 3 * keep),
            )
            .await?;
        Ok(n)
    }
}
