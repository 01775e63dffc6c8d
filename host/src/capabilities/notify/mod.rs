//! `impressox:plugin/notify`: enqueue a notification for the notify worker. Grant:
//! `[plugins.grants.<name>] notify = true`.
//!
//! A request goes the way of `POST /api/v1/notifications` (`notify::service::submit_from`):
//! the same validation (errors name the field), recorded in the document store and put
//! on `notify:requests` idempotently. The id is the plugin's, prefixed with its name
//! (`price-digest:digest-2026-12-06`), so plugins never collide with each other or with
//! the API: a retried call with the same id and content is one notification, the same id
//! with other content is refused. The request's `source` is `plugin:<name>`, shown by
//! `GET /api/v1/notifications/{id}`. At the stream's bound the call is refused and
//! nothing is stored, so retrying later is safe.

use std::sync::Arc;

use super::error::CapError;
use crate::bindings::types::{Notification, Priority as WitPriority};
use crate::documents::Documents;
use crate::notify::request::{NotificationRequest, Priority};
use crate::notify::service::{Submitted, submit_from};
use crate::storage::Store;

pub(super) mod host;

/// The `notify` capability of a host: where requests are recorded and queued.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    docs: Arc<dyn Documents>,
}

impl Service {
    pub fn new(store: Arc<dyn Store>, docs: Arc<dyn Documents>) -> Service {
        Service { store, docs }
    }

    /// The state of plugin `name`, which has the `notify` grant.
    pub fn grant(&self, name: &str) -> Granted {
        Granted {
            store: self.store.clone(),
            docs: self.docs.clone(),
            plugin: name.to_string(),
        }
    }
}

/// One plugin's way to enqueue notifications.
pub struct Granted {
    store: Arc<dyn Store>,
    docs: Arc<dyn Documents>,
    plugin: String,
}

impl Granted {
    /// The request the API would have received for this call; errors name the field.
    pub fn request(
        &self,
        n: &Notification,
        channels: &[String],
    ) -> Result<NotificationRequest, CapError> {
        let data = serde_json::from_str(&n.data_json)
            .map_err(|e| CapError::refused(format!("notify: `data-json` is not JSON: {e}")))?;
        let req = NotificationRequest {
            id: format!("{}:{}", self.plugin, n.id),
            user_id: n.user_id.clone(),
            kind: n.kind.clone(),
            priority: match n.priority {
                WitPriority::Normal => Priority::Normal,
                WitPriority::Critical => Priority::Critical,
            },
            title: n.title.clone(),
            body: n.body.clone(),
            data,
            channels: (!channels.is_empty()).then(|| channels.to_vec()),
        };
        req.validate().map_err(|e| {
            let field = if e.field == "id" {
                // The prefix is the host's; say what the plugin can change.
                "id (with the plugin's name and `:` in front)".to_string()
            } else {
                e.field.replace('_', "-")
            };
            CapError::refused(format!("notify: `{field}`: {}", e.message))
        })?;
        Ok(req)
    }

    /// The notification's `source`: `plugin:<name>`.
    pub fn source(&self) -> String {
        format!("plugin:{}", self.plugin)
    }

    /// The request for a call whose effects are committed later (an event handler's):
    /// validated, and refused now if its id was used for different content, so the
    /// commit has nothing left to refuse but the stream's bound.
    pub async fn prepare(
        &self,
        n: &Notification,
        channels: &[String],
    ) -> Result<NotificationRequest, CapError> {
        let req = self.request(n, channels)?;
        let known = self
            .docs
            .get(crate::notify::log::NOTIFICATIONS, &req.id)
            .await
            .map_err(CapError::Backend)?;
        if let Some(existing) = known
            && existing
                .get("body_hash")
                .and_then(serde_json::Value::as_str)
                != Some(req.body_hash().as_str())
        {
            return Err(CapError::refused(format!(
                "notify: id `{}` was used before for a different notification; use a new id",
                n.id
            )));
        }
        Ok(req)
    }

    pub async fn enqueue(&self, n: &Notification, channels: &[String]) -> Result<(), CapError> {
        let req = self.request(n, channels)?;
        let source = format!("plugin:{}", self.plugin);
        match submit_from(&self.store, &self.docs, &req, &source)
            .await
            .map_err(CapError::Backend)?
        {
            Submitted::Queued | Submitted::Duplicate => Ok(()),
            Submitted::IdReused => Err(CapError::refused(format!(
                "notify: id `{}` was used before for a different notification; use a new id",
                n.id
            ))),
            Submitted::Full(full) => Err(CapError::refused(format!(
                "notify: {full}. Notification `{}` was not accepted; try again later",
                n.id
            ))),
        }
    }
}
