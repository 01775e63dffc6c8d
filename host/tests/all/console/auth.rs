//! The console with `IMPRESSOX_API_TOKEN` set: sign in through the form, and every way in
//! without the token or without the form's CSRF token is refused.

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
    page.find_element("#token")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str("not-the-token")
        .await
        .unwrap();
    click_and_wait(&page, "button[type=submit]").await;
    assert!(text(&page).await.contains("wrong token"));

    // The right one: the overview, with a cookie no script can read.
    page.find_element("#token")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(TOKEN)
        .await
        .unwrap();
    click_and_wait(&page, "button[type=submit]").await;
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
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let reload = format!("{}/ui/plugins/reload", rig.base);
    let host = rig.base.trim_start_matches("http://").to_string();
    // No session: GET goes to the form, POST is refused.
    let r = http.get(format!("{}/ui", rig.base)).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/login");
    let r = http.post(&reload).body("csrf=x").send().await.unwrap();
    assert_eq!(r.status(), 401);
    // A forged or expired-looking cookie is no session.
    let r = http
        .get(format!("{}/ui", rig.base))
        .header("cookie", "impressox_console=99999999999999.deadbeef")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // A session without the form's CSRF token.
    let r = http
        .post(&reload)
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The page's CSRF token, then a cross-site form carrying it.
    let page = http
        .get(format!("{}/ui/plugins", rig.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a CSRF token in the page")
        .to_string();
    let r = http
        .post(&reload)
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The same form from this origin acts.
    let r = http
        .post(&reload)
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/ui/plugins?msg=reloaded")
    );
    // No page shows the token.
    for path in ["/ui", "/ui/plugins", "/ui/rules", "/ui/dead-letters"] {
        let body = http
            .get(format!("{}{path}", rig.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!body.contains(TOKEN), "{path} shows the token");
    }
    // The JSON API still wants its bearer token: the cookie is not one.
    let r = http
        .get(format!("{}/api/v1/plugins", rig.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
