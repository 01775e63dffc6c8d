//! Adding and dropping one push subscription in a user's stored preferences, for
//! `POST`/`DELETE /api/v1/users/{id}/push-subscriptions` and for the sender when a push
//! service answers that a subscription is gone (404/410).
//!
//! Each change is a compare-and-set on the preferences document (read, change, write if
//! its `_rev` is still the one read; again on a conflict), so a PUT of the whole document
//! or another subscription arriving at the same moment is never overwritten. The channel
//! stays consistent with the rule that an enabled channel has an address: adding a
//! subscription enables `webpush`, and dropping the last one disables it.

use anyhow::{Result, bail};

use super::log::{DeliveryLog, PREFERENCES};
use super::prefs::{Preferences, WebPushAddress};
use super::webpush::{MAX_SUBSCRIPTIONS, Subscription};
use crate::documents::{Write, WriteOutcome};
use crate::input::FieldError;

/// Compare-and-set rounds before giving up (each lost only to another writer's success).
const MAX_ROUNDS: usize = 16;

/// What an add did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// A new subscription.
    New,
    /// The endpoint was known; its keys were replaced (the browser subscribed again).
    Updated,
    /// Exactly this subscription was there already.
    Unchanged,
}

/// Add (or refresh) `sub` for `user_id`; a new preferences document is created when the
/// user has none. `Ok(Err(_))` names what is wrong with the subscription.
pub async fn add(
    log: &DeliveryLog,
    user_id: &str,
    sub: &Subscription,
    now_ms: i64,
) -> Result<Result<Added, FieldError>> {
    let sub = match sub.checked("subscription") {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    for _ in 0..MAX_ROUNDS {
        let stored = log.preferences(user_id).await?;
        let (mut prefs, rev) = stored.clone().unwrap_or_default();
        let list = &mut prefs
            .channels
            .webpush
            .get_or_insert_with(WebPushAddress::default)
            .subscriptions;
        let added = match list.iter_mut().find(|s| s.endpoint == sub.endpoint) {
            Some(s) if *s == sub => Added::Unchanged,
            Some(s) => {
                *s = sub.clone();
                Added::Updated
            }
            None => {
                if list.len() >= MAX_SUBSCRIPTIONS {
                    return Ok(Err(FieldError::new(
                        "subscription",
                        format!(
                            "user {user_id} has {MAX_SUBSCRIPTIONS} push subscriptions already; \
                             DELETE one first"
                        ),
                    )));
                }
                list.push(sub.clone());
                Added::New
            }
        };
        if added == Added::Unchanged && prefs.enabled.iter().any(|c| c == "webpush") {
            return Ok(Ok(added));
        }
        if !prefs.enabled.iter().any(|c| c == "webpush") {
            prefs.enabled.push("webpush".into());
        }
        if write(log, user_id, &prefs, stored.map(|_| rev), now_ms).await? {
            return Ok(Ok(added));
        }
    }
    bail!("the preferences of {user_id} kept changing; try again")
}

/// Drop the subscription with `endpoint`; false when the user has no such subscription.
pub async fn remove(log: &DeliveryLog, user_id: &str, endpoint: &str, now_ms: i64) -> Result<bool> {
    for _ in 0..MAX_ROUNDS {
        let Some((mut prefs, rev)) = log.preferences(user_id).await? else {
            return Ok(false);
        };
        let Some(w) = prefs.channels.webpush.as_mut() else {
            return Ok(false);
        };
        let before = w.subscriptions.len();
        w.subscriptions.retain(|s| s.endpoint != endpoint);
        if w.subscriptions.len() == before {
            return Ok(false);
        }
        if w.subscriptions.is_empty() {
            prefs.enabled.retain(|c| c != "webpush");
        }
        if write(log, user_id, &prefs, Some(rev), now_ms).await? {
            return Ok(true);
        }
    }
    bail!("the preferences of {user_id} kept changing; try again")
}

/// Write `prefs` if the stored revision is still `rev` (`None`: if there is none yet);
/// false when another writer came first.
async fn write(
    log: &DeliveryLog,
    user_id: &str,
    prefs: &Preferences,
    rev: Option<u64>,
    now_ms: i64,
) -> Result<bool> {
    let doc = prefs.to_doc(user_id, now_ms);
    let coll = PREFERENCES.to_string();
    let w = match rev {
        Some(rev) => Write::ReplaceIf { coll, doc, rev },
        None => Write::Insert { coll, doc },
    };
    let out = log.docs.write(vec![w]).await?;
    Ok(matches!(
        out.first(),
        Some(WriteOutcome::Replaced { .. } | WriteOutcome::Inserted)
    ))
}
