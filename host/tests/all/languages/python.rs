//! The bundled Python rule processor `rsi` (plugins/rsi): RSI(14) on one-minute closes.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::componentize::{self, Staged};
use crate::harness::{config_in, impressox};
use crate::market::pipeline::replay_market;
use crate::market::rig::{Rig, write_csv};

const T0: i64 = 1_764_300_000_000;

/// What a rule of the `rsi` processor watches, for the reference below.
#[derive(Clone, Copy, Debug)]
enum Op {
    Above,
    Below,
    CrossesUp,
    CrossesDown,
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Once,
    Every,
    Cooldown(i64),
}

struct RefRule {
    id: &'static str,
    op: Op,
    level: f64,
    mode: Mode,
}

/// RSI(14) with Wilder's smoothing over one-minute closes, as plugins/rsi documents it,
/// and the host's trigger modes: the `(rule id, fired_at_ms)` of every firing, for one
/// symbol's ticks in time order. Written from the documentation, not from the plugin.
fn reference_firings(ticks: &[(i64, f64)], rules: &[RefRule]) -> Vec<(String, i64)> {
    const PERIOD: f64 = 14.0;
    let mut out = Vec::new();
    let Some(&(ts0, p0)) = ticks.first() else {
        return out;
    };
    let (mut minute, mut close, mut last_close, mut last_ts) = (ts0 / 60_000, p0, p0, ts0);
    let (mut n, mut gain, mut loss, mut rsi) = (0u32, 0.0f64, 0.0f64, None::<f64>);
    let mut armed: Vec<bool> = rules.iter().map(|_| true).collect();
    let mut last_fired: Vec<Option<i64>> = rules.iter().map(|_| None).collect();
    for &(ts, price) in &ticks[1..] {
        let m = ts / 60_000;
        for _ in 0..(m - minute).clamp(0, 140) {
            let change = close - last_close;
            let (g, l) = (change.max(0.0), (-change).max(0.0));
            n += 1;
            if f64::from(n) <= PERIOD {
                gain += g / PERIOD;
                loss += l / PERIOD;
            } else {
                gain = (gain * (PERIOD - 1.0) + g) / PERIOD;
                loss = (loss * (PERIOD - 1.0) + l) / PERIOD;
            }
            let previous = rsi;
            if f64::from(n) >= PERIOD {
                rsi = Some(if loss == 0.0 {
                    if gain > 0.0 { 100.0 } else { 50.0 }
                } else {
                    100.0 - 100.0 / (1.0 + gain / loss)
                });
            }
            last_close = close;
            let Some(now) = rsi else { continue };
            for (i, r) in rules.iter().enumerate() {
                let holds = match (r.op, previous) {
                    (Op::Above, _) => now > r.level,
                    (Op::Below, _) => now < r.level,
                    (Op::CrossesUp, Some(p)) => p <= r.level && r.level < now,
                    (Op::CrossesDown, Some(p)) => p >= r.level && r.level > now,
                    _ => false,
                };
                let fire = match r.mode {
                    Mode::Cooldown(secs) => {
                        holds && last_fired[i].is_none_or(|t| last_ts - t >= secs * 1000)
                    }
                    Mode::Every if !holds => {
                        armed[i] = true;
                        false
                    }
                    _ => holds && armed[i],
                };
                if fire {
                    armed[i] = matches!(r.mode, Mode::Cooldown(_));
                    last_fired[i] = Some(last_ts);
                    out.push((r.id.to_string(), last_ts));
                }
            }
        }
        if m > minute {
            minute = m;
        }
        if ts >= last_ts {
            close = price;
            last_ts = ts;
        }
    }
    out
}

/// BTC for `cycles` times 45 minutes, two ticks a minute; each cycle: sideways, a slide
/// (RSI under 30), a rally (RSI over 70), a pull-back (RSI down through 50).
fn market_path(cycles: i64) -> Vec<(i64, f64)> {
    let mut ticks = Vec::new();
    for minute in 0..45 * cycles {
        let m = minute % 45;
        let base = match m {
            0..15 => 97_000.0 + if m % 2 == 0 { 60.0 } else { -60.0 },
            15..25 => 97_000.0 - 220.0 * (m - 14) as f64 + if m % 3 == 0 { 90.0 } else { 0.0 },
            25..40 => 94_800.0 + 320.0 * (m - 24) as f64 - if m % 4 == 0 { 150.0 } else { 0.0 },
            _ => 99_600.0 - 400.0 * (m - 39) as f64,
        };
        ticks.push((T0 + minute * 60_000 + 10_000, base - 25.0));
        ticks.push((T0 + minute * 60_000 + 40_000, base));
    }
    ticks
}

const E2E_RULES: [RefRule; 3] = [
    RefRule {
        id: "rsi-up70",
        op: Op::CrossesUp,
        level: 70.0,
        mode: Mode::Every,
    },
    RefRule {
        id: "rsi-below30",
        op: Op::Below,
        level: 30.0,
        mode: Mode::Once,
    },
    RefRule {
        id: "rsi-down50",
        op: Op::CrossesDown,
        level: 50.0,
        mode: Mode::Every,
    },
];

fn e2e_rules_toml() -> String {
    let mut toml = String::new();
    for (r, op, trigger) in [
        (&E2E_RULES[0], "crosses_up", "every"),
        (&E2E_RULES[1], "below", "once"),
        (&E2E_RULES[2], "crosses_down", "every"),
    ] {
        toml.push_str(&format!(
            "[[market.rules]]\nid = \"{}\"\nuser_id = \"u1\"\nsymbol = \"BTCUSDT\"\n\
             processor = \"rsi\"\ncondition = {{ op = \"{op}\", value = {} }}\n\
             trigger = {{ mode = \"{trigger}\" }}\n",
            r.id, r.level
        ));
    }
    toml
}

#[test]
fn the_python_rule_processor_is_checked_and_runs_its_example_input() {
    let wasm = componentize::rsi();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), "");
    componentize::link_compiled(&config, wasm);
    let cfg = dir.path().join("impressox.toml");

    let out = impressox()
        .args(["--config", cfg.to_str().unwrap(), "plugin", "check"])
        .arg(wasm)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("name:        rsi"), "{stdout}");
    assert!(stdout.contains("kind:        rule-processor"), "{stdout}");
    // CPython's imports: WASI 0.2.9, sockets included, served by this 0.2.12 host.
    assert!(stdout.contains("wasi:sockets/tcp@0.2.9"), "{stdout}");
    assert!(stdout.contains("grants needed: none"), "{stdout}");
    assert!(stdout.contains("loadable by this host: yes"), "{stdout}");

    let example = componentize::repo().join("plugins/rsi/examples/input.json");
    let out = impressox()
        .args(["--config", cfg.to_str().unwrap(), "plugin", "run"])
        .arg(wasm)
        .arg("--input")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fired: Vec<(String, i64)> = got["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|batch| batch.as_array().unwrap().clone())
        .map(|a| {
            (
                a["rule_id"].as_str().unwrap().to_string(),
                a["fired_at_ms"].as_i64().unwrap(),
            )
        })
        .collect();

    // The example's own ticks and rules, through the reference.
    let input: Value = serde_json::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    let ticks: Vec<(i64, f64)> = input["batches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["ticks"].as_array().unwrap().clone())
        .map(|t| (t["ts_ms"].as_i64().unwrap(), t["price"].as_f64().unwrap()))
        .collect();
    let rules = [
        RefRule {
            id: "btc-oversold",
            op: Op::Below,
            level: 30.0,
            mode: Mode::Once,
        },
        RefRule {
            id: "btc-leaves-oversold",
            op: Op::CrossesUp,
            level: 30.0,
            mode: Mode::Every,
        },
        RefRule {
            id: "btc-overbought",
            op: Op::Above,
            level: 70.0,
            mode: Mode::Cooldown(600),
        },
    ];
    let want = reference_firings(&ticks, &rules);
    for r in &rules {
        assert!(
            want.iter().any(|(id, _)| id == r.id),
            "the example never fires {}: {want:?}",
            r.id
        );
    }
    assert_eq!(fired, want);
    let reason = got["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b.as_array().unwrap().clone())
        .map(|a| a["reason"].as_str().unwrap().to_string())
        .find(|r| r.contains("crossed above 30"))
        .unwrap();
    assert!(
        reason.starts_with("BTCUSDT RSI(14) crossed above 30 at "),
        "{reason}"
    );
}

#[test]
fn the_python_processor_refuses_a_rule_it_cannot_evaluate_naming_it() {
    let wasm = componentize::rsi();
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path(), "");
    componentize::link_compiled(&config, wasm);
    let input = dir.path().join("in.json");
    std::fs::write(
        &input,
        r#"{"rules": [{"id": "bad-level", "symbol": "BTCUSDT", "symbol_id": 0,
            "condition": {"op": "Above", "value": 150.0, "direction": "Any", "window_secs": 0},
            "trigger": {"mode": "Once", "cooldown_secs": 0}, "expires_at_ms": null,
            "state": {"armed": true, "last_fired_ms": null, "fired_count": 0}}],
            "batches": [{"now_ms": 1, "ticks": []}]}"#,
    )
    .unwrap();
    let out = impressox()
        .arg("--config")
        .arg(dir.path().join("impressox.toml"))
        .args(["plugin", "run"])
        .arg(wasm)
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rule bad-level: condition.value 150 is not an RSI level"),
        "{stderr}"
    );
}

/// A replayed feed through `replay-rows` into a running monitor whose rules name the Python
/// processor: exactly the firings the reference computes reach `notify:requests`, each
/// once, with the processor's RSI reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_feed_fires_the_python_rule_processor_in_a_running_monitor() {
    let wasm = componentize::rsi();
    let ticks = market_path(1);
    let want: Vec<String> = {
        let mut keys: Vec<String> = reference_firings(&ticks, &E2E_RULES)
            .into_iter()
            .map(|(id, ms)| format!("rule-{id}-{}", ms / 1000))
            .collect();
        keys.sort();
        keys
    };
    for r in &E2E_RULES {
        assert!(
            want.iter()
                .any(|k| k.starts_with(&format!("rule-{}-", r.id))),
            "the path never fires {}: {want:?}",
            r.id
        );
    }
    let files = tempfile::tempdir().unwrap();
    let rows: Vec<(i64, &str, f64)> = ticks.iter().map(|&(t, p)| (t, "BTCUSDT", p)).collect();
    let csv = write_csv(files.path(), "btc.csv", &rows);
    let market = replay_market(&csv, 0.0, &e2e_rules_toml());
    let mut rig = Rig::start_prepared("[storage]\nbackend = \"embedded\"\n", None, &market, |h| {
        componentize::load(h, wasm, "rsi.wasm");
    })
    .await;
    rig.wait_requests(want.len(), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.collect().await;
    assert_eq!(rig.keys(), want);
    let (request, _) = rig
        .seen
        .iter()
        .find(|(k, _)| k.starts_with("rule-rsi-up70-"))
        .map(|(_, v)| v)
        .unwrap();
    let body = request["body"].as_str().unwrap();
    assert!(
        body.contains("(file): BTCUSDT RSI(14) crossed above 70 at "),
        "{body}"
    );
    // The `once` rule is spent; the others stay active, all with their processor loaded.
    let (_, rule) = rig.get("/api/v1/rules/rsi-below30").await;
    assert_eq!(rule["state"], "fired", "{rule}");
    let (_, rule) = rig.get("/api/v1/rules/rsi-up70").await;
    assert_eq!(rule["state"], "active", "{rule}");
    let status = rig
        .host
        .runtime
        .statuses()
        .into_iter()
        .find(|s| s.name == "rsi")
        .unwrap();
    assert_eq!(status.errors, 0, "{:?}", status.last_error);
    rig.stop().await;
}

/// A new build of the Python processor (its author bumped the version and changed its
/// message) dropped into the plugin directory of a running monitor replaces the old one
/// while the feed plays: the monitor hands the new instance every rule, and the later
/// alerts carry the new message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_processor_is_hot_swapped_in_a_running_monitor() {
    let v1 = componentize::rsi();
    let v2 = {
        let staged = Staged::new(Path::new("plugins/rsi"));
        staged.edit("app.py", "VERSION = \"0.1.0\"", "VERSION = \"0.2.0\"");
        staged.edit("app.py", "(1m closes)", "(1m closes, v2)");
        staged.build()
    };
    // Compiled before the feed starts, so the swap lands while it plays.
    componentize::precompile(&v2);
    let files = tempfile::tempdir().unwrap();
    let rows: Vec<(i64, &str, f64)> = market_path(2)
        .iter()
        .map(|&(t, p)| (t, "BTCUSDT", p))
        .collect();
    let csv = write_csv(files.path(), "btc.csv", &rows);
    // Paced (90 minutes of ticks in about 14 s), so the swap lands mid-file: the first
    // cycle fires on the old version, the second (after the new one's RSI warmed up) on
    // the new one.
    let market = replay_market(&csv, 400.0, &e2e_rules_toml());
    let mut rig = Rig::start_prepared("[storage]\nbackend = \"embedded\"\n", None, &market, |h| {
        componentize::load(h, v1, "rsi.wasm");
    })
    .await;
    rig.wait_requests(1, Duration::from_secs(60)).await;
    let path = componentize::install(&rig.host, &v2, "rsi.wasm");
    rig.host.runtime.load_file(&path).unwrap();
    let status = |rig: &Rig| {
        rig.host
            .runtime
            .statuses()
            .into_iter()
            .find(|s| s.name == "rsi")
            .unwrap()
    };
    assert_eq!(status(&rig).version.as_deref(), Some("0.2.0"));
    assert!(status(&rig).swaps >= 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        rig.collect().await;
        let from_v2 = rig
            .seen
            .values()
            .any(|(v, _)| v["body"].as_str().is_some_and(|b| b.contains("v2)")));
        if from_v2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no alert from the new version: {:?}",
            rig.seen.keys().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status(&rig).errors, 0, "{:?}", status(&rig).last_error);
    let (_, rule) = rig.get("/api/v1/rules/rsi-up70").await;
    assert_eq!(rule["state"], "active", "{rule}");
    rig.stop().await;
}
