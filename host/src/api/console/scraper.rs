//! Scraper targets (`GET /api/v1/scraper/targets`) and accounts with their states and
//! budgets (`GET /api/v1/scraper/accounts`). Passwords, TOTP seeds and sessions' cookies
//! are in neither answer; a proxy address is shown without any user and password in it.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};

use super::super::{ApiState, scraper as api};
use super::{Ctx, Flash, cell, listing, page_response, query, st};

pub async fn page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let ctx = Ctx::from(&state, &headers, flash.msg);
    let targets = match query::<api::ListQuery>(json!({})) {
        Ok(q) => api::list(st(&state), q).await.map(|axum::Json(v)| v),
        Err(e) => Err(e),
    };
    let accounts = api::accounts(st(&state)).await.map(|axum::Json(v)| v);
    page_response(
        "Scraper",
        "/ui/scraper",
        &ctx,
        html! {
            h2 { "Targets" }
            (listing(&targets, "targets", "No targets.", |list| html! {
                table #targets {
                    tr { th { "id" } th { "kind" } th { "query" } th { "state" } th { "next run" } th { "last error" } }
                    @for t in list {
                        tr {
                            td.mono { (cell(&t["id"])) } td { (cell(&t["kind"])) }
                            td { (cell(if t["query"].is_null() { &t["username"] } else { &t["query"] })) }
                            td { (cell(&t["state"])) } td { (cell(&t["next_run_at"])) } td.mono { (cell(&t["last_error"])) }
                        }
                    }
                }
            }))
            h2 { "Accounts" }
            (listing(&accounts, "accounts", "No accounts.", accounts_table))
        },
    )
}

/// Accounts with their states and budgets; the proxy without its credentials.
fn accounts_table(list: &[Value]) -> Markup {
    html! {
        table #accounts {
            tr { th { "account" } th { "state" } th { "until" } th { "reason" } th { "proxy" } th { "session" } th { "budgets" } th { "pages" } th { "last used" } }
            @for a in list {
                @let st = a["state"].as_str().unwrap_or("");
                tr class=[(st != "active").then_some("warn")] {
                    td { (cell(&a["username"])) }
                    td { span class=(format!("badge {st}")) { (st) } }
                    td { (cell(&a["until"])) } td { (cell(&a["reason"])) }
                    td.mono { (a["proxy"].as_str().map_or_else(|| "–".to_string(), without_userinfo)) }
                    td { @if a["session"]["present"] == true { "saved " (cell(&a["session"]["saved_at"])) } @else { span.muted { "none" } } }
                    td { (cell(&a["budgets"])) }
                    td { (cell(&a["pages"])) } td { (cell(&a["last_used_at"])) }
                }
            }
        }
    }
}

/// `http://user:pass@host:port` as `http://host:port`.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}"),
            None => url.to_string(),
        },
        None => url.rsplit_once('@').map_or(url, |(_, h)| h).to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn proxies_lose_their_credentials() {
        assert_eq!(super::without_userinfo("http://u:p@h:1"), "http://h:1");
        assert_eq!(super::without_userinfo("socks5://h:1"), "socks5://h:1");
        assert_eq!(super::without_userinfo("u:p@h:1"), "h:1");
    }
}
