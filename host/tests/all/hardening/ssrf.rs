//! Issue 12, item 12: the SSRF guard of outbound requests to user-chosen URLs (webhooks).
//! Non-public destinations are refused in every spelling (IP literals of each range, IPv4
//! wrapped in IPv6, names resolving to loopback), a name is resolved once and the
//! connection goes only to what was vetted (a rebinding answer is refused at connect
//! time), proxies from the environment are not used, and `allow_private_addresses` still
//! lets the tests' local receiver in.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use impressox_host::net::guard::{Lookup, guard_error};
use impressox_host::net::{GuardError, Outbound, OutboundPolicy, Refused};
use serde_json::json;

use crate::notify::rig::{HOOK_SECRET, HOOK_SECRET_VAR, NotifyRig, Opts, first_delivery, request};
use crate::servers::http_proxy::HttpProxy;
use crate::servers::redis::free_port;
use crate::servers::webhook_receiver::WebhookReceiver;

const T: Duration = Duration::from_secs(30);

/// A rig whose webhooks are guarded (the production default) and fail after one try.
async fn guarded_rig() -> NotifyRig {
    NotifyRig::start(Opts {
        with_webhook_secret: true,
        webhook: "allow_private_addresses = false\n".into(),
        retry: "max_attempts = 1\n".into(),
        ..Default::default()
    })
    .await
}

/// Deliver one notification to `url` for a fresh user; the delivery's view once final.
async fn deliver_to(rig: &NotifyRig, n: usize, url: &str) -> serde_json::Value {
    let user = format!("u{n}");
    rig.put_prefs(
        &user,
        json!({"channels": {"webhook": {"url": url}}, "enabled": ["webhook"]}),
    )
    .await;
    let id = format!("ssrf-{n}");
    rig.notify(request(&id, &user, "t", "")).await;
    let view = rig.wait_status(&id, &["failed", "delivered"], T).await;
    first_delivery(&view).clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_every_non_public_range_are_refused_as_permanent() {
    let hooks = WebhookReceiver::start(HOOK_SECRET).await;
    let port = hooks
        .url("a")
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_string();
    let rig = guarded_rig().await;
    // Each names the range it must be refused as. Several reach the receiver on this
    // machine if connected to (NAT64/6to4/IPv4-compatible forms of 127.0.0.1 do not, but
    // a host with a NAT64 gateway or 6to4 relay would translate them).
    let cases = [
        (format!("http://localhost:{port}/hook/a"), "loopback"),
        (format!("http://2130706433:{port}/hook/a"), "loopback"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/hook/a"),
            "IPv4-mapped",
        ),
        (format!("http://[64:ff9b::7f00:1]:{port}/hook/a"), "NAT64"),
        (format!("http://[64:ff9b:1::7f00:1]:{port}/hook/a"), "NAT64"),
        (format!("http://[2002:7f00:1::1]:{port}/hook/a"), "6to4"),
        (
            format!("http://[::127.0.0.1]:{port}/hook/a"),
            "IPv4-compatible",
        ),
        (format!("http://0.0.0.0:{port}/hook/a"), "0.0.0.0/8"),
        (format!("http://0.1.2.3:{port}/hook/a"), "0.0.0.0/8"),
        (format!("http://[fec0::1]:{port}/hook/a"), "site-local"),
        (format!("http://198.18.0.1:{port}/hook/a"), "benchmarking"),
        (format!("http://224.0.0.1:{port}/hook/a"), "multicast"),
        (format!("http://[ff02::1]:{port}/hook/a"), "multicast"),
        (format!("http://100.64.0.1:{port}/hook/a"), "CGNAT"),
        (
            format!("http://169.254.169.254:{port}/latest/meta-data"),
            "link-local",
        ),
        (format!("http://[fd00::1]:{port}/hook/a"), "unique local"),
        (format!("http://240.0.0.1:{port}/hook/a"), "reserved"),
        (format!("http://192.0.2.1:{port}/hook/a"), "documentation"),
    ];
    for (n, (url, range)) in cases.iter().enumerate() {
        let d = deliver_to(&rig, n, url).await;
        assert_eq!(d["state"], "dead", "{url}: {d}");
        assert_eq!(d["reason"], "permanent", "{url}: {d}");
        let error = d["last_error"].as_str().unwrap();
        assert!(
            error.contains("internal address") && error.contains(range),
            "{url}: {error}"
        );
    }
    assert!(hooks.received().is_empty(), "{:?}", hooks.received());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_private_addresses_still_reaches_a_local_receiver() {
    let hooks = WebhookReceiver::start(HOOK_SECRET).await;
    let rig = NotifyRig::start(Opts {
        with_webhook_secret: true,
        webhook: "allow_private_addresses = true\n".into(),
        ..Default::default()
    })
    .await;
    let url = hooks.url("a").replace("127.0.0.1", "localhost");
    let d = deliver_to(&rig, 0, &url).await;
    assert_eq!(d["state"], "sent", "{d}");
    assert_eq!(hooks.received().len(), 1);
}

/// A resolver standing in for a rebinding DNS server: a public answer first (what a
/// "check, then send" guard sees), loopback for every query after it.
struct Rebinding {
    calls: AtomicUsize,
}

impl Lookup for Rebinding {
    fn lookup(
        &self,
        _host: &str,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let ip: IpAddr = if n == 0 {
            "93.184.215.14".parse().unwrap()
        } else {
            "127.0.0.1".parse().unwrap()
        };
        Box::pin(async move { Ok(vec![ip]) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebinding_name_is_vetted_at_connect_time_and_refused() {
    let hooks = WebhookReceiver::start(HOOK_SECRET).await;
    let lookup = Arc::new(Rebinding {
        calls: AtomicUsize::new(0),
    });
    let outbound = Outbound::with_lookup(&OutboundPolicy::default(), lookup.clone()).unwrap();
    // The check before the send sees the public answer...
    assert!(outbound.guard().resolve("rebind.example").await.is_ok());
    // ...and the send's own resolution, now loopback where the receiver listens, is the
    // one that is checked and connected to: refused, nothing arrives.
    let url = hooks.url("a").replace("127.0.0.1", "rebind.example");
    let err = outbound
        .request(reqwest::Method::POST, url.parse().unwrap())
        .await
        .unwrap()
        .body("{}")
        .send()
        .await
        .unwrap_err();
    match guard_error(&err) {
        Some(GuardError::Refused(Refused::NonPublic { host, ip, .. })) => {
            assert_eq!(host, "rebind.example");
            assert_eq!(ip.to_string(), "127.0.0.1");
        }
        other => panic!("expected a refusal, got {other:?} ({err})"),
    }
    assert_eq!(lookup.calls.load(Ordering::SeqCst), 2, "one lookup per use");
    assert!(hooks.received().is_empty());
}

/// `impressox run` with `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` pointing at a proxy
/// stand-in: the webhook still goes straight to the receiver, the proxy sees nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_ignore_proxies_from_the_environment() {
    let hooks = WebhookReceiver::start(HOOK_SECRET).await;
    let proxy = HttpProxy::start("env-proxy").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    for (artifact, file) in [
        (test_artifacts::TELEGRAM_MARKDOWN, "telegram-markdown.wasm"),
        (test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm"),
    ] {
        std::fs::copy(artifact, plugins.join(file)).unwrap();
    }
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
             [workers]\nenabled = [\"notify\"]\n\
             [notify]\nconsumer = \"proxy-test\"\npoll_interval_ms = 20\n\
             [notify.telegram]\ncommands = false\n\
             [notify.webhook]\nsecret_env = \"{HOOK_SECRET_VAR}\"\nallow_private_addresses = true\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_impressox"));
    cmd.args(["--config", config.to_str().unwrap(), "run"])
        .env_remove("RUST_LOG")
        .env(HOOK_SECRET_VAR, HOOK_SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for var in ["NO_PROXY", "no_proxy"] {
        cmd.env_remove(var);
    }
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(var, proxy.url());
    }
    let mut child = cmd.spawn().unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while !http
        .get(format!("{api}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(start.elapsed() < T, "host never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .put(format!("{api}/api/v1/users/u1/preferences"))
        .json(&json!({"channels": {"webhook": {"url": hooks.url("a")}}, "enabled": ["webhook"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{api}/api/v1/notifications"))
        .json(&request("env-proxy-1", "u1", "t", ""))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let arrived = hooks.wait_for(1, T).await;
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert!(arrived, "the webhook never arrived");
    assert!(
        proxy.requests().is_empty(),
        "the environment's proxy was used: {:?}",
        proxy.requests()
    );
}
