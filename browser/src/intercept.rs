//! The Fetch domain: blocking resource types and answering proxy challenges
//! (docs/design/x-scraper.md §2.6, with the deviation described below).
//!
//! Blocking: when `block_resources` is non-empty the pool launches Chromium with chromiumoxide's
//! `request_intercept`, so every page has `Fetch.enable` (pattern `*`) from its creation and
//! chromiumoxide leaves each paused request to us. [`start`] runs one task per page that answers
//! every `Fetch.requestPaused` — `failRequest(BlockedByClient)` for a blocked type, else
//! `continueRequest` — and never awaits anything but the next event: each answer is its own
//! spawned future, because a paused request left unanswered stalls the page's navigation.
//!
//! Proxy credentials: chromiumoxide's own network manager answers every `Fetch.authRequired` of
//! a page it has Fetch enabled on (`handler/network.rs` `on_fetch_auth_required`, with
//! `Default` when it has no credentials), before any listener of ours sees the event; a second
//! answer from us would be refused. So credentials are handed to it with `Page::authenticate`:
//! it answers the first challenge of a request with them and cancels a repeated one. It does
//! not look at the challenge's source, so a server's Basic challenge would get them too; X does
//! not send those.

use std::sync::Arc;

use chromiumoxide::Page;
use chromiumoxide::auth::Credentials;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EventRequestPaused, FailRequestParams,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::error::CdpError;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use crate::filter::RequestFilter;

/// Starts the page's paused-request task (only for browsers launched with interception).
/// With a `filter`, a request that is not blocked is continued only once the filter
/// allowed it (see `filter.rs`); the filter runs in the request's own spawned future.
pub(crate) async fn start(
    page: &Page,
    blocked: Arc<[ResourceType]>,
    filter: Option<RequestFilter>,
) -> Result<JoinHandle<()>, CdpError> {
    let mut paused = page.event_listener::<EventRequestPaused>().await?;
    let page = page.clone();
    Ok(tokio::spawn(async move {
        while let Some(ev) = paused.next().await {
            let id = ev.request_id.clone();
            if blocked.contains(&ev.resource_type) {
                match page.command_future(FailRequestParams::new(id, ErrorReason::BlockedByClient))
                {
                    Ok(f) => {
                        tokio::spawn(async move {
                            if let Err(e) = f.await {
                                tracing::debug!(error = %e, "Fetch.failRequest");
                            }
                        });
                    }
                    Err(e) => tracing::debug!(error = %e, "Fetch.failRequest"),
                }
            } else if let Some(filter) = &filter {
                // Only the request stage is vetted: a response-stage pause (none is asked
                // for today) carries a status and continues as it came.
                let at_response =
                    ev.response_status_code.is_some() || ev.response_error_reason.is_some();
                let check = (!at_response).then(|| filter.check(ev.request.url.clone()));
                let page = page.clone();
                tokio::spawn(async move {
                    let verdict = match check {
                        Some(check) => check.await,
                        None => Ok(()),
                    };
                    let sent = match verdict {
                        Ok(()) => page.execute(ContinueRequestParams::new(id)).await.map(drop),
                        Err(why) => {
                            tracing::warn!(reason = %why, "a page's request was refused by the request filter");
                            page.execute(FailRequestParams::new(id, ErrorReason::AccessDenied))
                                .await
                                .map(drop)
                        }
                    };
                    if let Err(e) = sent {
                        tracing::debug!(error = %e, "answering a paused request");
                    }
                });
            } else {
                match page.command_future(ContinueRequestParams::new(id)) {
                    Ok(f) => {
                        tokio::spawn(async move {
                            if let Err(e) = f.await {
                                tracing::debug!(error = %e, "Fetch.continueRequest");
                            }
                        });
                    }
                    Err(e) => tracing::debug!(error = %e, "Fetch.continueRequest"),
                }
            }
        }
    }))
}

/// Gives the proxy's credentials to chromiumoxide's network manager for this page (see the
/// module docs). Fetch is enabled by it when it was not already; the caller's next command
/// round trip guarantees that happened before the first navigation.
pub(crate) async fn authenticate(page: &Page, creds: &(String, String)) -> Result<(), CdpError> {
    page.authenticate(Credentials {
        username: creds.0.clone(),
        password: creds.1.clone(),
    })
    .await
}
