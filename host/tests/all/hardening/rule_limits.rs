//! Issue 12, item 11: a flood of rules is refused at `[market]`'s limits, through the API
//! and through the Telegram bot alike, and a rule-processor instance whose `init` fails
//! (here: out of memory, as an instance handed too many rules would) stops only its own
//! rules while every other rule keeps being evaluated.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::market::rig::{Backend, Rig, eventually, sawtooth, write_csv};
use crate::notify::rig::{NotifyRig, Opts};

const T: Duration = Duration::from_secs(30);

fn rule(user: &str, symbol: &str, value: f64) -> Value {
    json!({"user_id": user, "symbol": symbol, "condition": {"op": "above", "value": value}})
}

async fn rules_of(rig: &Rig, user: &str) -> usize {
    let (status, body) = rig.get(&format!("/api/v1/rules?user_id={user}")).await;
    assert_eq!(status, 200, "{body}");
    body["rules"].as_array().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_rules_past_the_per_user_and_total_limits_naming_them() {
    let rig = Rig::start(
        Backend::Embedded,
        "[market]\nconsole_alerts = false\nmax_rules_per_user = 3\nmax_rules = 8\n",
    )
    .await;
    for i in 0..3 {
        rig.rule(rule("u1", "BTCUSDT", 100.0 + f64::from(i))).await;
    }
    let (status, body) = rig
        .post("/api/v1/rules", rule("u1", "BTCUSDT", 200.0))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "rule_limit_per_user");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("max_rules_per_user") && message.contains('3') && message.contains("u1"),
        "{message}"
    );
    assert_eq!(rules_of(&rig, "u1").await, 3, "nothing stored");

    // A flood of concurrent creates cannot slip past the count.
    let creates = (0..10).map(|i| {
        let (http, api) = (rig.http.clone(), rig.api.clone());
        async move {
            http.post(format!("{api}/api/v1/rules"))
                .json(&rule("u2", "ETHUSDT", 1000.0 + f64::from(i)))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(creates).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    assert_eq!(rules_of(&rig, "u2").await, 3);

    // The store as a whole: 3 + 3 + 2 = 8, then no one gets more.
    rig.rule(rule("u3", "SOLUSDT", 150.0)).await;
    rig.rule(rule("u3", "SOLUSDT", 160.0)).await;
    let (status, body) = rig
        .post("/api/v1/rules", rule("u4", "SOLUSDT", 170.0))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "rule_limit_total");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_rules"),
        "{body}"
    );
    assert_eq!(rules_of(&rig, "u4").await, 0);

    // Deleting one makes room again.
    let (_, list) = rig.get("/api/v1/rules?user_id=u1").await;
    let id = list["rules"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(rig.delete(&format!("/api/v1/rules/{id}")).await, 204);
    rig.rule(rule("u4", "SOLUSDT", 170.0)).await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_symbols_no_source_delivers_and_names_ones_that_work() {
    let files = tempfile::tempdir().unwrap();
    let csv = write_csv(files.path(), "btc.csv", &sawtooth(1_764_300_000_000, 5));
    let market = format!(
        "[market]\nconsole_alerts = false\ncommit_interval_ms = 50\nrule_symbols = \"known\"\n\
         allowed_symbols = [\"SOLUSDT\"]\n\
         [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
         path = \"{}\"\nspeed = 0\n",
        csv.display()
    );
    let rig = Rig::start(Backend::Embedded, &market).await;
    eventually(T, "the replay to price BTCUSDT", || async {
        rig.get("/api/v1/prices/BTCUSDT").await.0 == 200
    })
    .await;
    // A typo, or a symbol no feed here has: refused, with symbols that do work.
    let (status, body) = rig
        .post("/api/v1/rules", rule("u1", "BTCUSTD", 100.0))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "unknown_symbol");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`symbol`")
            && message.contains("BTCUSTD")
            && message.contains("BTCUSDT")
            && message.contains("SOLUSDT"),
        "{message}"
    );
    assert_eq!(rules_of(&rig, "u1").await, 0);
    // Priced by a source, or allowed before its first price.
    rig.rule(rule("u1", "BTCUSDT", 100.0)).await;
    rig.rule(rule("u1", "SOLUSDT", 100.0)).await;
    rig.stop().await;
}

/// The user writes `text` in `chat` (through the Telegram stand-in); the bot's reply.
async fn says(rig: &NotifyRig, chat: i64, text: &str) -> String {
    let before = rig.tg.messages_to(&chat.to_string()).len();
    rig.tg.user_says(chat, text);
    let start = std::time::Instant::now();
    loop {
        let msgs = rig.tg.messages_to(&chat.to_string());
        if msgs.len() > before {
            return msgs[before].clone();
        }
        assert!(
            start.elapsed() < T,
            "no reply to {text:?} in chat {chat}: {msgs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bot_rules_of(rig: &NotifyRig, user: &str) -> usize {
    let (status, body) = rig
        .call(Method::GET, &format!("/api/v1/rules?user_id={user}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["rules"].as_array().unwrap().len()
}

/// The bot's `/watch` flood, through the Telegram stand-in: refused at each limit with a
/// reply that says which and what to do, and nothing stored past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_refuses_watches_past_the_limits_with_a_clear_reply() {
    let rig = NotifyRig::start(Opts {
        telegram: "commands = true\npoll_timeout_secs = 1\n".into(),
        market: "max_rules_per_user = 2\nmax_rules = 3\nrule_symbols = \"listed\"\n\
                 allowed_symbols = [\"BTCUSDT\", \"ETHUSDT\"]\n"
            .into(),
        ..Opts::default()
    })
    .await;
    let (a, b) = (7001_i64, 7002_i64);
    says(&rig, a, "/start").await;
    says(&rig, b, "/start").await;

    let reply = says(&rig, a, "/watch DOGEUSDT above 1").await;
    assert!(
        reply.contains("Cannot watch DOGEUSDT") && reply.contains("BTCUSDT, ETHUSDT"),
        "{reply}"
    );
    assert!(
        says(&rig, a, "/watch BTCUSDT above 70000")
            .await
            .contains("Watching")
    );
    assert!(
        says(&rig, a, "/watch ETHUSDT below 3000")
            .await
            .contains("Watching")
    );
    let reply = says(&rig, a, "/watch BTCUSDT above 80000").await;
    assert!(
        reply.contains("2 alerts") && reply.contains("/unwatch"),
        "{reply}"
    );
    assert_eq!(bot_rules_of(&rig, "tg-7001").await, 2);

    assert!(
        says(&rig, b, "/watch BTCUSDT below 50000")
            .await
            .contains("Watching")
    );
    let reply = says(&rig, b, "/watch ETHUSDT above 5000").await;
    assert!(
        reply.contains("No alert can be created right now"),
        "{reply}"
    );
    assert_eq!(bot_rules_of(&rig, "tg-7002").await, 1);

    // The API refuses the same way: one code path.
    let (status, body) = rig
        .call(
            Method::POST,
            "/api/v1/rules",
            Some(json!({"user_id": "u9", "symbol": "BTCUSDT",
                "condition": {"op": "above", "value": 1}})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "rule_limit_total");
}

/// A processor with one rule that makes its instance run out of memory while loading:
/// with `rules_per_instance = 2`, that instance and its one other rule stop (reported
/// `processor_failing` with the error); every other rule of that processor, and of
/// `threshold`, keeps firing; deleting the poison brings its neighbour back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_processor_instance_stops_only_its_own_rules() {
    let files = tempfile::tempdir().unwrap();
    let csv = write_csv(files.path(), "btc.csv", &sawtooth(1_764_300_000_000, 20));
    let market = format!(
        "[market]\nconsole_alerts = false\ncommit_interval_ms = 50\nrules_per_instance = 2\n\
         [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
         path = \"{}\"\nspeed = 20.0\nloop = true\nrebase_time = true\n",
        csv.display()
    );
    let mut rig = Rig::start(Backend::Embedded, &market).await;
    // `every` rules stay loaded after firing, so the healthy instances keep evaluating
    // (and succeeding) every batch. Created while `fragile` is not loaded yet, so no
    // instance starts before all are placed: [a-poison, b-mate], [c-1, d-2], [e-3].
    let fragile = |id: &str, user: &str, symbol: &str| {
        json!({"id": id, "user_id": user, "symbol": symbol, "processor": "fragile",
               "condition": {"op": "above", "value": 120}, "trigger": {"mode": "every"}})
    };
    rig.rule(fragile("a-poison", "flooder", "OOMUSDT")).await;
    rig.rule(fragile("b-mate", "u-b", "BTCUSDT")).await;
    rig.rule(fragile("c-1", "u-c", "BTCUSDT")).await;
    rig.rule(fragile("d-2", "u-d", "BTCUSDT")).await;
    rig.rule(fragile("e-3", "u-e", "BTCUSDT")).await;
    rig.rule(json!({"id": "t-1", "user_id": "u-t", "symbol": "BTCUSDT",
        "condition": {"op": "above", "value": 120}, "trigger": {"mode": "every"}}))
        .await;
    rig.host
        .load(test_artifacts::GUEST_FRAGILE_PROCESSOR, "fragile.wasm");

    let fired = |rig: &Rig, id: &str| {
        rig.seen
            .keys()
            .any(|k| k.starts_with(&format!("rule-{id}-")))
    };
    let start = std::time::Instant::now();
    while !["c-1", "d-2", "e-3", "t-1"]
        .iter()
        .all(|id| fired(&rig, id))
    {
        assert!(
            start.elapsed() < T,
            "the healthy instances' rules never fired: {:?}",
            rig.seen.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        rig.collect().await;
    }
    assert!(!fired(&rig, "b-mate") && !fired(&rig, "a-poison"));
    for id in ["a-poison", "b-mate"] {
        let (_, r) = rig.get(&format!("/api/v1/rules/{id}")).await;
        assert_eq!(r["state"], "processor_failing", "{r}");
        assert!(
            r["processor_error"]
                .as_str()
                .is_some_and(|e| e.contains("memory cap")),
            "{r}"
        );
    }
    let (_, healthy) = rig.get("/api/v1/rules/c-1").await;
    assert_eq!(healthy["state"], "active", "{healthy}");
    assert!(healthy.get("processor_error").is_none(), "{healthy}");
    let stats = &rig.handle().stats;
    assert_eq!(
        stats
            .instances_failing
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(stats.rules_failing(), 2);

    // The poison goes; its neighbour's instance is retried at once and evaluates again.
    assert_eq!(rig.delete("/api/v1/rules/a-poison").await, 204);
    let start = std::time::Instant::now();
    while !fired(&rig, "b-mate") {
        assert!(
            start.elapsed() < T,
            "b-mate never fired after the poison went"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        rig.collect().await;
    }
    let stats = &rig.handle().stats;
    assert_eq!(
        stats
            .instances_failing
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(stats.rules_failing(), 0);
    rig.keys();
    rig.stop().await;
}
