//! The events side of the admin API: producing through the host (with the bound), the
//! listeners view, and event dead letters listed, replayed once and purged.

use serde_json::{Value, json};

use super::{Events, GROUP, STREAM};
use crate::capabilities::Backend;

#[test]
fn events_go_in_through_the_api_and_dead_letters_come_back_out_of_it() {
    let ev = Events::start(
        &Backend::Embedded,
        "max_attempts = 1\nmaxlen = 50\nbatch = 16\n",
    );
    let base = ev.serve_api();
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        let http = http.clone();
        ev.block_on(async move {
            let r = http.post(path).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    let get = |path: String| {
        let http = http.clone();
        ev.block_on(async move {
            http.get(path)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let events = format!("{base}/api/v1/streams/{STREAM}/events");

    // Idempotent on `id`; numbers become text; bad bodies name the field.
    let (s, body) = post(
        events.clone(),
        json!({"fields": {"incr": "c", "amount": 5}, "id": "e1"}),
    );
    assert_eq!(s, 202, "{body}");
    let (s, body) = post(events.clone(), json!({"fields": {"incr": "c"}, "id": "e1"}));
    assert_eq!((s, body["duplicate"].clone()), (200, json!(true)));
    let (s, body) = post(events.clone(), json!({"fields": {"x": [1]}}));
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fields.x"),
        "{body}"
    );
    let (s, body) = post(events.clone(), json!({"fields": {}, "extra": 1}));
    assert_eq!(s, 400, "{body}");
    let (s, _) = post(
        format!("{base}/api/v1/streams/nobody-reads/events"),
        json!({"fields": {"a": "b"}}),
    );
    assert_eq!(s, 404);
    ev.wait("the event handled", || ev.kv("c").as_deref() == Some("1"));

    // A dead letter: listed beside notifications, replayed once, purged.
    let (s, _) = post(
        events.clone(),
        json!({"fields": {"do": "dead", "tag": "x"}}),
    );
    assert_eq!(s, 202);
    ev.wait("a dead letter", || ev.dead_letters().len() == 1);
    let list = get(format!(
        "{base}/api/v1/dead-letters?source=events&stream={STREAM}"
    ));
    let dl = &list["dead_letters"][0];
    assert_eq!(dl["kind"], "event");
    assert_eq!(dl["reason"], "handler_dead_letter");
    assert_eq!(dl["fields"]["tag"], "x");
    assert_eq!(dl["plugin_version"], "0.1.0");
    let id = dl["id"].as_str().unwrap().to_string();
    let all = get(format!("{base}/api/v1/dead-letters"));
    assert_eq!(all["dead_letters"].as_array().unwrap().len(), 1, "{all}");
    let (s, _) = post(
        format!("{base}/api/v1/dead-letters/{id}/replay"),
        Value::Null,
    );
    assert_eq!(s, 202);
    let (s, body) = post(
        format!("{base}/api/v1/dead-letters/{id}/replay"),
        Value::Null,
    );
    assert_eq!(s, 409, "{body}");
    // The replayed event dies again (it asks to): a new dead letter with a new id.
    ev.wait("the replay dead again", || {
        ev.dead_letters().len() == 1 && super::text(&ev.dead_letters()[0], "_id") != id
    });
    let again = super::text(&ev.dead_letters()[0], "_id").to_string();
    let status = ev.block_on(async {
        http.delete(format!("{base}/api/v1/dead-letters/{again}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 204);
    assert!(ev.dead_letters().is_empty());

    // The listeners view.
    let view = get(format!("{base}/api/v1/listeners"));
    let l = &view["listeners"][0];
    assert_eq!(
        (l["stream"].as_str(), l["group"].as_str()),
        (Some(STREAM), Some(GROUP))
    );
    assert_eq!(l["running_here"], true);
    assert!(
        l["this_host"]["events"]["ack"].as_u64().unwrap() >= 1,
        "{view}"
    );

    // At the bound: 503 with Retry-After, nothing written. Stop the handler first.
    let wasm = ev.host.config.plugin_dir().join("event-probe.wasm");
    ev.host.runtime.unload_file(&wasm);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut last = 0;
    for i in 0..60 {
        let (s, _) = post(events.clone(), json!({"fields": {"n": i}}));
        last = s;
        if s == 503 {
            break;
        }
    }
    assert_eq!(last, 503);
    let metrics = ev.block_on(async {
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        metrics.contains("impressox_events_total{listener=\"probe\",outcome=\"ack\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "impressox_stream_length{{stream=\"{STREAM}\"}} 50"
        )),
        "{metrics}"
    );
}
