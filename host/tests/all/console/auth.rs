//! The console with `IMPRESSOX_API_TOKEN` set: sign in through the form, and every way in
//! without the token or without the form's CSRF token is refused.

use chromiumoxide::Page;
use reqwest::redirect::Policy;

use super::rig::{Chrome, ConsoleRig, click_and_wait, text};

const TOKEN: &str = "console-test-token-5f1c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_an_httponly_session_and_refuses_the_rest() {
    let rig = ConsoleRig::start(Some(TOKEN)).await;
    let chrome = Chrome::start().await;

    // No session: the form, not the page.
    let page = chrome.open(&format!("{}/ui/plugins", rig.base)).await;
    assert!(page.url().await.unwrap().unwrap().ends_with("/ui/login"));
    assert!(text(&page).await.contains("API token"));

    // A wrong token.
    submit_token(&page, "not-the-token").await;
    assert!(text(&page).await.contains("wrong token"));

    // The right one: the overview, with a cookie no script can read.
    submit_token(&page, TOKEN).await;
    assert!(page.url().await.unwrap().unwrap().ends_with("/ui"));
    assert!(text(&page).await.contains("plugins active"));
    let script_sees: String = page
        .evaluate("document.cookie")
        .await
        .unwrap()
        .into_value()
        .unwrap();
    assert_eq!(script_sees, "", "the session cookie is HttpOnly");
    let cookies = page.get_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name == "impressox_console")
        .expect("a session cookie");
    assert!(session.http_only);
    assert_eq!(session.path, "/ui");
    assert!(
        !session.value.contains(TOKEN),
        "the cookie is not the token"
    );
    // A button works when signed in.
    let page = chrome.open(&format!("{}/ui/plugins", rig.base)).await;
    click_and_wait(&page, "form[action=\"/ui/plugins/reload\"] button").await;
    assert!(text(&page).await.contains("reloaded:"));
    let cookie = format!("impressox_console={}", session.value);
    chrome.stop().await;

    // Outside the browser: every refusal.
    let reload = "/ui/plugins/reload";
    let own_origin = rig.base.clone();
    let stranger = Outside::new(&rig.base, None);
    let signed_in = Outside::new(&rig.base, Some(&cookie));
    // No session: GET goes to the form, POST is refused.
    let r = stranger.get("/ui").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    let r = stranger.post_form(reload, None, "csrf=x").await;
    assert_eq!(r.status(), 401);
    // A forged or expired-looking cookie is no session.
    let forged = Outside::new(&rig.base, Some("impressox_console=99999999999999.deadbeef"));
    assert_eq!(forged.get("/ui").await.status(), 303);
    // A session without the form's CSRF token.
    let r = signed_in.post_form(reload, None, "").await;
    assert_eq!(r.status(), 403);
    // The page's CSRF token, then a cross-site form carrying it.
    let page = signed_in.get("/ui/plugins").await.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the page")
        .to_string();
    let form = format!("csrf={csrf}");
    let r = signed_in
        .post_form(reload, Some("http://evil.example"), &form)
        .await;
    assert_eq!(r.status(), 403);
    // The same form from this origin acts.
    let r = signed_in.post_form(reload, Some(&own_origin), &form).await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui/plugins?msg=reloaded")
    );
    // No page shows the token.
    for path in ["/ui", "/ui/plugins", "/ui/rules", "/ui/dead-letters"] {
        let body = signed_in.get(path).await.text().await.unwrap();
        assert!(!body.contains(TOKEN), "{path} shows the token");
    }
    // The JSON API still wants its bearer token: the cookie is not one.
    assert_eq!(signed_in.get("/api/v1/plugins").await.status(), 401);
}

/// Types `token` into the sign-in form and submits it.
async fn submit_token(page: &Page, token: &str) {
    page.find_element("#token")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(token)
        .await
        .unwrap();
    click_and_wait(page, "button[type=submit]").await;
}

/// The console outside the browser: plain requests that do not follow redirects, with
/// one `Cookie` header (a session, a forged one) or none.
struct Outside {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Outside {
    fn new(base: &str, cookie: Option<&str>) -> Outside {
        Outside {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            cookie: cookie.map(str::to_string),
        }
    }

    fn with_cookie(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(c) => r.header("cookie", c),
            None => r,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let r = self.http.get(format!("{}{path}", self.base));
        self.with_cookie(r).send().await.unwrap()
    }

    /// A urlencoded form POST, from `origin` when given (a browser sends one with a form).
    async fn post_form(&self, path: &str, origin: Option<&str>, body: &str) -> reqwest::Response {
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        self.with_cookie(r).send().await.unwrap()
    }
}
