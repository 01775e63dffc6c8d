//! The login-form driver (design §3.4): runs only when an account's session is missing or
//! was rejected. It drives X's own login page in the account's browser context — the real
//! form, so X's scripts produce every header and cookie they want — one step at a time:
//! username, the "unusual activity" challenge (the email), password, the TOTP code. What
//! the page asks for is recognised by the `[scraper.login]` selectors; success is the
//! `success_cookie` appearing in the context's jar.
//!
//! Log lines and errors say which step happened, never what was typed.

use std::time::{Duration, Instant};

use impressox_browser::{AccountContext, BrowserError, Expect, PageLease, StoredCookie};

use super::accounts::Account;
use super::config::LoginConfig;
use super::totp;

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: the context's cookie jar, to store as the session.
    LoggedIn(Vec<StoredCookie>),
    /// X refused (wrong password, a code it did not accept, a form we cannot answer):
    /// the account becomes `login_failed` with this reason (X's own message, or ours).
    Refused(String),
}

/// At most this many form steps (username, challenge, password, code, plus slack).
const MAX_STEPS: usize = 8;
/// How often the page and the cookie jar are looked at while waiting.
const POLL: Duration = Duration::from_millis(150);

/// Which field the page shows, in the order `wait_for_any` is asked (an error first: a
/// wrong password leaves the password field on the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Error,
    Code,
    Password,
    Username,
}

const FIELDS: [Field; 4] = [Field::Error, Field::Code, Field::Password, Field::Username];

/// Log `account` in on `page`, a page of `context`.
pub async fn login(
    account: &Account,
    context: &AccountContext,
    page: &mut PageLease,
    login_url: &str,
    cfg: &LoginConfig,
) -> Result<LoginOutcome, BrowserError> {
    let user = account.username.as_str();
    tracing::info!(account = user, "logging in through the login form");
    page.open(
        login_url,
        Expect {
            operations: Vec::new(),
            min_new: 0,
        },
        false,
    )
    .await?;
    let selectors = [
        cfg.error.as_str(),
        cfg.code.as_str(),
        cfg.password.as_str(),
        cfg.username.as_str(),
    ];
    let step_timeout = Duration::from_secs(cfg.step_timeout_secs);
    let (mut typed_username, mut typed_challenge, mut typed_password, mut typed_code) =
        (false, false, false, false);
    let mut steps = 0;
    let mut last_progress = Instant::now();
    loop {
        let jar = context.cookies().await?;
        if super::session::Session::has_cookie(&jar, &cfg.success_cookie) {
            tracing::info!(account = user, "login succeeded");
            wait_for_the_post_login_redirect(page).await;
            return Ok(LoginOutcome::LoggedIn(
                context.cookies().await.unwrap_or(jar),
            ));
        }
        if last_progress.elapsed() > step_timeout {
            let what = match (typed_username, typed_password, typed_code) {
                (false, _, _) => "the login form did not show its username field",
                (true, false, _) => "the login form did not move on after the username",
                (true, true, false) => "the login form did not move on after the password",
                (true, true, true) => "the login form did not finish after the code",
            };
            return Ok(LoginOutcome::Refused(format!(
                "{what} within {}s",
                cfg.step_timeout_secs
            )));
        }
        let Some(i) = page.wait_for_any(&selectors, POLL).await? else {
            continue;
        };
        let acted = match FIELDS[i] {
            Field::Error => {
                let text = page
                    .inner_text(&cfg.error)
                    .await?
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>();
                // X's own words (no secret of ours is in them); an empty alert still fails.
                let reason = if text.trim().is_empty() {
                    "the login form showed an error".to_string()
                } else {
                    format!("the login form said: {}", text.trim())
                };
                return Ok(LoginOutcome::Refused(reason));
            }
            Field::Username if !typed_username => {
                tracing::debug!(account = user, "login step: username");
                page.type_into(&cfg.username, user).await?;
                page.press_enter(&cfg.username).await?;
                typed_username = true;
                true
            }
            Field::Code if !typed_password && !typed_challenge => {
                // Before the password X asks "confirm your email or phone".
                tracing::debug!(account = user, "login step: challenge (email)");
                page.type_into(&cfg.code, account.email.expose()).await?;
                page.press_enter(&cfg.code).await?;
                typed_challenge = true;
                true
            }
            Field::Code if typed_password && !typed_code => {
                let Some(secret) = &account.totp else {
                    return Ok(LoginOutcome::Refused(
                        "X asks for a code and the account has no totp_secret".into(),
                    ));
                };
                tracing::debug!(account = user, "login step: TOTP code");
                let code = match totp::now(secret) {
                    Ok(code) => code,
                    Err(err) => return Ok(LoginOutcome::Refused(err.to_string())),
                };
                page.type_into(&cfg.code, &code).await?;
                page.press_enter(&cfg.code).await?;
                typed_code = true;
                true
            }
            Field::Password if !typed_password => {
                tracing::debug!(account = user, "login step: password");
                page.type_into(&cfg.password, account.password.expose())
                    .await?;
                page.press_enter(&cfg.password).await?;
                typed_password = true;
                true
            }
            // A field we already answered, still on the page while it moves on.
            _ => false,
        };
        if acted {
            steps += 1;
            last_progress = Instant::now();
            if steps > MAX_STEPS {
                return Ok(LoginOutcome::Refused(format!(
                    "the login form asked for more than {MAX_STEPS} steps"
                )));
            }
        } else {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// X's login page moves on to the home timeline by itself once the session cookie is set.
/// A navigation of ours started before that lands is aborted by it (`net::ERR_ABORTED`), so
/// wait until the page has left the login flow (at most a few seconds: a flow that stays
/// put is not our business once the cookie is there).
async fn wait_for_the_post_login_redirect(page: &PageLease) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match page.current_url().await {
            Ok(url) if !impressox_browser::is_login_url(&url) => return,
            _ => tokio::time::sleep(POLL).await,
        }
    }
}
