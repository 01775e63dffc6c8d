//! Outbound HTTP of plugins (`wasi:http`, issue 13 items 6, 7, 9, 10): the bundled
//! `http-probe` task against a local JSON server, keeping what it fetched in `kv` on the
//! embedded store. The grant decides which scheme, host and
//! port a request may address; the SSRF guard decides which addresses it may reach; the
//! call's deadline, the response cap and the call's byte budget bound what it may cost.

use std::time::{Duration, Instant};

use impressox_host::bindings::types::{TaskReport, TaskRun};
use impressox_host::runtime::CallError;
use serde_json::{Value, json};

use crate::capabilities::{Backend, CapsHost};
use crate::servers::json_origin::JsonOrigin;

/// A host with `http-probe` loaded under `grant` (and `kv`) and `[plugins.http]` `settings`.
fn probe_host(grant: &str, settings: &str) -> CapsHost {
    let h = CapsHost::new(
        &Backend::Embedded,
        &format!(
            "[plugins.grants.http-probe]\nkv = true\nhttp = [{grant}]\n[plugins.http]\n{settings}\n"
        ),
    );
    h.load(test_artifacts::HTTP_PROBE, "http-probe");
    h
}

/// Run `http-probe` on `url`, taking `field`.
fn probe(h: &CapsHost, url: &str, field: &str) -> Result<Result<TaskReport, String>, CallError> {
    let run = TaskRun {
        schedule: "test".into(),
        scheduled_at_ms: 0,
        attempt: 1,
        args_json: json!({"url": url, "field": field}).to_string(),
    };
    h.runtime.plugin("http-probe").run_task(&run)
}

fn value_of(report: &TaskReport) -> Value {
    let data: Value = serde_json::from_str(&report.data_json).unwrap();
    data["value"].clone()
}

const LOCAL: &str = "\"http://127.0.0.1:*\"";
const PRIVATE_OK: &str = "allow_private_addresses = true";

#[test]
fn http_probe_fetches_a_granted_json_url() {
    let origin = JsonOrigin::start();
    let h = probe_host(LOCAL, PRIVATE_OK);
    let report = probe(&h, &origin.url("/price"), "/bitcoin/usd")
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&report), json!(97000.5));
    assert!(report.summary.contains("97000.5"), "{}", report.summary);
    assert_eq!(origin.hits("/price"), 1);
}

#[test]
fn the_value_is_kept_in_kv_and_the_next_run_reports_it() {
    let origin = JsonOrigin::start();
    let h = probe_host(LOCAL, PRIVATE_OK);
    let data = |r: TaskReport| serde_json::from_str::<Value>(&r.data_json).unwrap();
    let first = data(
        probe(&h, &origin.url("/price"), "/bitcoin/usd")
            .unwrap()
            .unwrap(),
    );
    assert_eq!(first["previous"], Value::Null);
    let second = data(
        probe(&h, &origin.url("/price"), "/bitcoin/usd")
            .unwrap()
            .unwrap(),
    );
    assert_eq!(second["previous"], json!(97000.5), "{second}");
    assert_eq!(second["key"], json!("/bitcoin/usd"));
    // A failed fetch stores nothing: the value kept is still the last good one.
    assert!(
        probe(&h, &origin.url("/big?bytes=10"), "/bitcoin/usd")
            .unwrap()
            .is_err()
    );
    let third = data(
        probe(&h, &origin.url("/price"), "/bitcoin/usd")
            .unwrap()
            .unwrap(),
    );
    assert_eq!(third["previous"], json!(97000.5), "{third}");
}

#[test]
fn requests_work_from_a_current_thread_runtime() {
    // Plugins are called from workers' runtimes too; the request must not need the
    // caller's (blocked) runtime to make progress.
    let origin = JsonOrigin::start();
    let h = probe_host(LOCAL, PRIVATE_OK);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async { probe(&h, &origin.url("/price"), "/bitcoin/usd") });
    assert_eq!(value_of(&report.unwrap().unwrap()), json!(97000.5));
}

#[test]
fn hosts_schemes_and_ports_outside_the_grant_are_refused_before_connecting() {
    let origin = JsonOrigin::start();
    let port = origin.port();
    let other = port.wrapping_add(1).max(1);
    // https only (no scheme written), another port, another name for the same machine.
    let grant =
        format!("\"127.0.0.1:*\", \"http://127.0.0.1:{other}\", \"http://localhost.test:*\"");
    let h = probe_host(&grant, PRIVATE_OK);
    for url in [
        origin.url("/price"),
        format!("http://localhost:{port}/price"),
        format!("http://[::1]:{port}/price"),
        format!("http://127.0.0.2:{port}/price"),
    ] {
        let err = probe(&h, &url, "/bitcoin/usd").unwrap().unwrap_err();
        assert!(
            err.contains("not in this plugin's `http` grant"),
            "{url}: {err}"
        );
    }
    assert_eq!(origin.total_hits(), 0, "nothing may reach the server");
}

#[test]
fn ssrf_to_loopback_metadata_and_names_resolving_to_loopback_is_refused() {
    let origin = JsonOrigin::start();
    let port = origin.port();
    // Granted by name or address, but private: the guard refuses what the grant allows.
    let grant = "\"http://127.0.0.1:*\", \"http://[::1]:*\", \"http://169.254.169.254:*\", \
                 \"http://localhost:*\", \"http://[::ffff:127.0.0.1]:*\"";
    let h = probe_host(grant, "allow_private_addresses = false");
    for url in [
        origin.url("/price"),
        format!("http://[::1]:{port}/price"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://localhost:{port}/price"),
        format!("http://[::ffff:127.0.0.1]:{port}/price"),
    ] {
        let started = Instant::now();
        let err = probe(&h, &url, "/x").unwrap().unwrap_err();
        assert!(err.contains("private or local"), "{url}: {err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{url}");
    }
    assert_eq!(origin.total_hits(), 0, "nothing may reach the server");
}

#[test]
fn redirects_are_not_followed_unless_allowed_and_then_only_within_the_grant() {
    let origin = JsonOrigin::start();
    let port = origin.port();
    // Not followed by default: the plugin sees the 302.
    let h = probe_host(LOCAL, PRIVATE_OK);
    let err = probe(&h, &origin.url("/redirect"), "/bitcoin/usd")
        .unwrap()
        .unwrap_err();
    assert!(err.contains("answered 302"), "{err}");
    assert_eq!(origin.hits("/price"), 0);

    // Allowed: followed within the grant, refused out of it.
    let h = probe_host(LOCAL, &format!("{PRIVATE_OK}\nmax_redirects = 2"));
    let report = probe(&h, &origin.url("/redirect"), "/bitcoin/usd")
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&report), json!(97000.5));
    assert_eq!(origin.hits("/price"), 1);
    let away = format!("http://localhost:{port}/price");
    let err = probe(&h, &origin.url(&format!("/redirect?to={away}")), "/x")
        .unwrap()
        .unwrap_err();
    assert!(err.contains("not in this plugin's `http` grant"), "{err}");
    assert_eq!(
        origin.hits("/price"),
        1,
        "the refused hop was not requested"
    );
}

#[test]
fn a_hanging_server_ends_the_call_at_its_deadline_and_the_host_keeps_serving() {
    let origin = JsonOrigin::start();
    // The harness's call deadline is 200 ms; the request's own timeout is far longer.
    let h = probe_host(LOCAL, &format!("{PRIVATE_OK}\ntimeout_ms = 60000"));
    let started = Instant::now();
    let outcome = probe(&h, &origin.url("/hang"), "/x");
    let took = started.elapsed();
    assert!(
        matches!(outcome, Err(CallError::Timeout { .. })),
        "{outcome:?}"
    );
    assert!(took < Duration::from_secs(5), "the call took {took:?}");
    assert_eq!(origin.hits("/hang"), 1);
    // The next call is served.
    let report = probe(&h, &origin.url("/price"), "/bitcoin/usd")
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&report), json!(97000.5));
}

#[test]
fn response_bodies_over_the_cap_are_cut_with_or_without_a_length() {
    let origin = JsonOrigin::start();
    let h = probe_host(LOCAL, &format!("{PRIVATE_OK}\nmax_response_bytes = 10000"));
    for path in ["/big?bytes=20000", "/stream?bytes=200000"] {
        let err = probe(&h, &origin.url(path), "").unwrap().unwrap_err();
        assert!(err.contains("larger than the host allows"), "{path}: {err}");
    }
    let report = probe(&h, &origin.url("/big?bytes=5000"), "")
        .unwrap()
        .unwrap();
    assert_eq!(value_of(&report).as_str().map(str::len), Some(5000));
}

#[test]
fn the_call_byte_budget_bounds_what_one_call_moves() {
    let origin = JsonOrigin::start();
    let h = probe_host(LOCAL, &format!("{PRIVATE_OK}\nmax_bytes_per_call = 4096"));
    let err = probe(&h, &origin.url("/stream?bytes=100000"), "")
        .unwrap()
        .unwrap_err();
    assert!(err.contains("max_bytes_per_call"), "{err}");
    // A new call has a full budget.
    assert!(
        probe(&h, &origin.url("/price"), "/bitcoin/usd")
            .unwrap()
            .is_ok()
    );
}

#[test]
fn a_task_importing_wasi_http_without_a_grant_is_refused_at_load() {
    let h = CapsHost::new(
        &Backend::Embedded,
        "[plugins.grants.http-probe]\nkv = true\n",
    );
    let err = h
        .try_load(test_artifacts::HTTP_PROBE, "http-probe")
        .unwrap_err();
    assert!(err.contains("wasi:http/"), "{err}");
    assert!(
        err.contains("[plugins.grants.http-probe] http = [\"api.example.com\"]"),
        "{err}"
    );
}

#[test]
fn a_bad_grant_entry_is_refused_at_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impressox.toml");
    std::fs::write(
        &path,
        "[plugins.grants.http-probe]\nhttp = [\"ftp://files.example.com\"]\n",
    )
    .unwrap();
    let err = impressox_host::config::Config::load_with_env(Some(&path), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[plugins.grants.http-probe] http") && err.contains("ftp://files.example.com"),
        "{err}"
    );
}
