//! `/api/v1/schedules`: create, change, pause, resume, delete, run-now; errors that name
//! the field; `[[schedules]]` from the config file read-only — against a running worker
//! on the embedded stores, which picks changes up within a second or two.

use std::time::Duration;

use impressox_host::api::Services;
use serde_json::{Value, json};

use super::{Rig, eventually, text};
use crate::harness::serve_api;

const CONFIG: &str = "[scheduler]\nlease_ms = 1500\nrefresh_ms = 200\ngrace_ms = 3000\n\
    [[schedules]]\nname = \"from-config\"\nevery = \"1h\"\nplugin = \"sched-probe\"\n";

async fn api(rig: &Rig) -> String {
    let services = Services {
        store: Some(rig.store.clone()),
        docs: Some(rig.docs.clone()),
        scheduler: rig.worker.as_ref().map(|w| w.handle.clone()),
        schedules: impressox_host::scheduler::config_definitions(&rig.config),
        ..Default::default()
    };
    let (base, _server) = serve_api(rig.runtime.clone(), services).await;
    format!("{base}/api/v1")
}

async fn error_of(r: reqwest::Response) -> (u16, String, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_field_and_nothing_is_stored() {
    let rig = Rig::new(CONFIG).await;
    let base = api(&rig).await;
    let http = reqwest::Client::new();
    for (body, field, words) in [
        (
            json!({"name": "x", "cron": "0 * * * *", "plugin": "sched-probe"}),
            "`cron`",
            "expected 6 fields",
        ),
        (
            json!({"name": "x", "cron": "0 61 * * * *", "plugin": "sched-probe"}),
            "`cron`",
            "",
        ),
        (
            json!({"name": "x", "every": "soon", "plugin": "sched-probe"}),
            "`every`",
            "duration",
        ),
        (
            json!({"name": "x", "every": "1s", "tz": "Mars/Olympus", "plugin": "sched-probe"}),
            "`tz`",
            "IANA",
        ),
        (
            json!({"name": "x", "every": "1s", "plugin": "sched-probe", "overlap": "maybe"}),
            "`overlap`",
            "",
        ),
        (
            json!({"name": "x", "every": "1s", "plugin": "sched-probe", "colour": 1}),
            "`colour`",
            "unknown field",
        ),
        (
            json!({"name": "x", "plugin": "sched-probe"}),
            "`cron`",
            "either",
        ),
        (
            json!({"name": "bad name", "every": "1s", "plugin": "sched-probe"}),
            "`name`",
            "",
        ),
    ] {
        let r = http
            .post(format!("{base}/schedules"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(r).await;
        assert_eq!(status, 400, "{body}: {message}");
        assert_eq!(code, "invalid_field", "{body}");
        assert!(message.starts_with(field), "{body}: {message}");
        assert!(message.contains(words), "{body}: {message}");
    }
    let list: Value = http
        .get(format!("{base}/schedules"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["from-config"], "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_schedules_are_read_only_but_run_now_works() {
    let mut rig = Rig::new(CONFIG).await;
    rig.start().await;
    let base = api(&rig).await;
    let http = reqwest::Client::new();
    for r in [
        http.patch(format!("{base}/schedules/from-config"))
            .json(&json!({"every": "5s"})),
        http.delete(format!("{base}/schedules/from-config")),
        http.post(format!("{base}/schedules/from-config/pause")),
    ] {
        let (status, code, message) = error_of(r.send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (409, "read_only"), "{message}");
        assert!(message.contains("[[schedules]]"), "{message}");
    }
    let r = http
        .post(format!("{base}/schedules"))
        .json(&json!({"name": "from-config", "every": "1s", "plugin": "sched-probe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "a config name cannot be taken");
    let r = http
        .post(format!("{base}/schedules/from-config/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let run: Value = r.json().await.unwrap();
    assert_eq!(run["run_id"], "m1");
    assert!(
        eventually(Duration::from_secs(10), || async {
            rig.count("runs:from-config").await == 1
        })
        .await
    );
    let one: Value = http
        .get(format!("{base}/schedules/from-config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["origin"], "config");
    assert!(
        eventually(Duration::from_secs(5), || async {
            let one: Value = http
                .get(format!("{base}/schedules/from-config"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            one["recent_runs"].as_array().is_some_and(|r| {
                r.iter()
                    .any(|x| x["trigger"] == "manual" && x["outcome"] == "ok")
            })
        })
        .await
    );
    let r = http
        .post(format!("{base}/schedules/nope/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_pause_resume_delete_take_effect_within_seconds() {
    let mut rig = Rig::new(CONFIG).await;
    rig.start().await;
    let base = api(&rig).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/schedules"))
        .json(
            &json!({"name": "made", "every": "1s", "plugin": "sched-probe", "args": {"k": [1, 2]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let made: Value = r.json().await.unwrap();
    assert_eq!(made["origin"], "api");
    assert_eq!(made["state"], "active");
    assert!(made["next_run_at"].is_string());
    let r = http
        .post(format!("{base}/schedules"))
        .json(&json!({"name": "made", "every": "1s", "plugin": "sched-probe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "duplicate name");

    // Created: it runs within a second or two.
    assert!(
        eventually(Duration::from_secs(5), || async {
            rig.count("runs:made").await >= 2
        })
        .await,
        "an API-made schedule runs"
    );

    // Paused: no new runs.
    let r = http
        .post(format!("{base}/schedules/made/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let paused: Value = r.json().await.unwrap();
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["enabled"], false);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at_pause = rig.count("runs:made").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        rig.count("runs:made").await,
        at_pause,
        "paused runs nothing"
    );

    // Resumed: runs again, and what fell due while paused is not caught up.
    let r = http
        .post(format!("{base}/schedules/made/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            rig.count("runs:made").await >= at_pause + 2
        })
        .await
    );
    let history = rig.history("made").await;
    assert!(
        history.iter().all(|d| text(d, "trigger") != "catch_up"),
        "{history:?}"
    );

    // PATCH: a field changes, another is validated and names itself.
    let r = http
        .patch(format!("{base}/schedules/made"))
        .json(&json!({"every": "2s", "retries": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["every"], "2s");
    assert_eq!(changed["retries"], 5);
    let (status, _, message) = error_of(
        http.patch(format!("{base}/schedules/made"))
            .json(&json!({"cron": "* * *"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        message.starts_with("`cron`: expected 6 fields"),
        "{message}"
    );

    // Deleted: it stops, and is gone from the API.
    let r = http
        .delete(format!("{base}/schedules/made"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at_delete = rig.count("runs:made").await;
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(
        rig.count("runs:made").await,
        at_delete,
        "deleted runs nothing"
    );
    let r = http
        .get(format!("{base}/schedules/made"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http
        .delete(format!("{base}/schedules/made"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    rig.stop().await;

    let metrics = reqwest::get(base.replace("/api/v1", "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("impressox_scheduler_runs_total{schedule=\"made\",outcome=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("impressox_scheduler_start_lag_seconds_bucket{schedule=\"made\""),
        "{metrics}"
    );
    assert!(text(&history[0], "schedule") == "made");
}
