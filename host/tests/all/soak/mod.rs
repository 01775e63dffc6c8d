//! The soak run (issue 12): the demo pipeline on Redis with the notify worker, under a
//! steady load for 30 minutes, with Redis killed and restarted and the notify worker
//! stopped for a while in the middle; at the end every alert raised, request enqueued and
//! delivery made is counted from its own source, and the counts must be equal.
//!
//! ```sh
//! cargo soak                              # 30 minutes
//! IMPRESSOX_SOAK_MINUTES=3 cargo soak     # a short one
//! ```
//!
//! (`cargo soak` is `cargo test --release --workspace --test all soak:: -- --ignored
//! --nocapture`; the test is ignored otherwise, so `cargo test-all` does not run it.)
//!
//! What runs, all real: `redis-server` with its append-only file synced on every write
//! (`appendfsync always`: a killed Redis comes back with everything it acknowledged, which
//! is what the market engine's "checkpoint only after the alerts are queued" relies on);
//! the `impressox` binary twice — `--workers market-monitor` on a looping, rebased replay
//! file through the bundled `replay-rows` parser and `threshold` processor
//! ([`load`]: every tick fires one crossing rule, plus `cooldown` and `once` rules, 20
//! alerts/s with two symbols), and `--workers notify` delivering each alert to a webhook
//! receiver that checks its signature and records its notification id.
//!
//! Timeline, for a load of T minutes: at T/4 Redis is killed (SIGKILL) for T/30 (a
//! minute) and started again on its files; at T/2 the notify worker is stopped (SIGTERM)
//! for T/6 (five minutes), long enough that `notify:requests` reaches its bound
//! (`stream_maxlen`, a third of the outage's alerts) and the engine waits — back-pressure,
//! not loss; at T the market monitor is stopped, the notify worker drains what is left and
//! is stopped too. Then [`tally`] compares the counts and names every id that differs.
//!
//! Knobs: `IMPRESSOX_SOAK_MINUTES` (30), `IMPRESSOX_SOAK_SYMBOLS` (2; 10 crossing alerts/s
//! each), `IMPRESSOX_SOAK_STREAM_MAXLEN` (from the rate and the outage), and
//! `IMPRESSOX_SOAK_KEEP=1` to keep both hosts' folders (config, logs, data) even when the
//! run passes; a failing run always keeps them.

mod audit;
mod load;
mod tally;
mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::hardening::host_process::{HostDir, terminate_within};
use crate::servers::redis::RedisServer;
use crate::servers::webhook_receiver::WebhookReceiver;
use audit::Audit;
use timeline::{Sources, Timeline, clock};

const SECRET: &str = "soak-webhook-signing-secret";
/// The replay source's name (its checkpoint is `source:<name>@<host_id>`).
const SOURCE: &str = "wave";

/// The run's shape, from the environment.
#[derive(Debug)]
struct Plan {
    load: Duration,
    redis_down_at: Duration,
    redis_down_for: Duration,
    notify_down_at: Duration,
    notify_down_for: Duration,
    /// How long the notify worker may take to deliver what is left after the load.
    drain_limit: Duration,
    sample_every: Duration,
    symbols: usize,
    stream_maxlen: u64,
    keep: bool,
}

fn env_number(name: &str) -> Option<f64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Some(v),
        _ => panic!("{name}={text:?}: expected a positive number"),
    }
}

impl Plan {
    fn from_env() -> Plan {
        let minutes = env_number("IMPRESSOX_SOAK_MINUTES").unwrap_or(30.0);
        assert!(minutes >= 1.0, "IMPRESSOX_SOAK_MINUTES must be at least 1");
        let symbols = env_number("IMPRESSOX_SOAK_SYMBOLS").map_or(2, |v| v as usize);
        assert!(
            (1..=load::max_symbols()).contains(&symbols),
            "IMPRESSOX_SOAK_SYMBOLS: 1 to {}",
            load::max_symbols()
        );
        let load = Duration::from_secs_f64(minutes * 60.0);
        let notify_down_for = (load / 6).max(Duration::from_secs(20));
        // The bound is reached a third of the way into the notify outage.
        let per_sec = load::crossings_per_sec(symbols);
        let stream_maxlen = env_number("IMPRESSOX_SOAK_STREAM_MAXLEN")
            .map_or(
                (per_sec * notify_down_for.as_secs_f64() / 3.0) as u64,
                |v| v as u64,
            )
            .max(50);
        Plan {
            load,
            redis_down_at: load / 4,
            redis_down_for: (load / 30).max(Duration::from_secs(5)),
            notify_down_at: load / 2,
            notify_down_for,
            drain_limit: (load / 3).max(Duration::from_secs(180)),
            sample_every: (load / 180).clamp(Duration::from_secs(2), Duration::from_secs(10)),
            symbols,
            stream_maxlen,
            keep: std::env::var_os("IMPRESSOX_SOAK_KEEP").is_some_and(|v| v == "1"),
        }
    }
}

fn storage(redis_url: &str, stream_maxlen: u64) -> String {
    format!(
        "[storage]\nbackend = \"redis\"\nredis_url = \"{redis_url}\"\n\
         [market]\nconsole_alerts = false\nstream_maxlen = {stream_maxlen}\n"
    )
}

fn market_config(redis_url: &str, plan: &Plan, rules: &str) -> String {
    format!(
        "[workers]\nenabled = [\"market-monitor\"]\n{}\
         [[market.sources]]\nname = \"{SOURCE}\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
         path = \"prices.csv\"\nspeed = 1.0\nloop = true\nrebase_time = true\n{rules}",
        storage(redis_url, plan.stream_maxlen)
    )
}

fn notify_config(redis_url: &str, plan: &Plan) -> String {
    format!(
        "[workers]\nenabled = [\"notify\"]\n{}\
         [notify]\nconsumer = \"soak-notify\"\n\
         [notify.webhook]\nallow_private_addresses = true\n",
        storage(redis_url, plan.stream_maxlen)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a 30-minute soak run: `cargo soak` (IMPRESSOX_SOAK_MINUTES=N for another length)"]
async fn soak_alerts_raised_enqueued_and_delivered_stay_equal_through_a_redis_crash_and_a_notify_outage()
 {
    let plan = Plan::from_env();
    eprintln!("soak: {plan:?}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // Redis, the audit group (before any producer), the receiver.
    let mut redis = RedisServer::start_persistent();
    let client = redis::Client::open(redis.url()).unwrap();
    audit::create_group(&client).await.unwrap();
    let audit = Audit::start(client.clone());
    let receiver = Arc::new(WebhookReceiver::start(SECRET).await);

    // The two hosts, each in a folder of its own.
    let rules = load::rules(plan.symbols);
    let notify = HostDir::new(
        &[(test_artifacts::PLAIN_FORMATTER, "plain-formatter")],
        &notify_config(&redis.url(), &plan),
    );
    let market = HostDir::new(
        &[
            (test_artifacts::THRESHOLD, "threshold"),
            (test_artifacts::REPLAY_ROWS, "replay-rows"),
        ],
        "",
    );
    let replay = load::write_replay(&market.dir.path().join("prices.csv"), plan.symbols);
    market.write_config(&market_config(&redis.url(), &plan, &rules.toml));
    eprintln!(
        "soak: market monitor in {}, notify worker in {}",
        market.dir.path().display(),
        notify.dir.path().display()
    );

    // The notify worker first, so every user has a webhook before the first alert.
    let notify_env = [("IMPRESSOX_WEBHOOK_SECRET", SECRET)];
    let mut notify_child = notify.spawn(&notify_env);
    notify.wait_ready(&http).await;
    for user in &rules.users {
        let r = http
            .put(format!("{}/api/v1/users/{user}/preferences", notify.api()))
            .json(
                &json!({"channels": {"webhook": {"url": receiver.url(user)}},
                          "enabled": ["webhook"]}),
            )
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "preferences of {user}: {}",
            r.status()
        );
    }
    let mut market_child = market.spawn(&[]);
    market.wait_ready(&http).await;

    let timeline = Timeline::new();
    timeline.note(format!(
        "market monitor ({} rules, {} symbols) and notify worker running; stream_maxlen {}",
        rules.crossing.len() + 3 * plan.symbols,
        plan.symbols,
        plan.stream_maxlen
    ));
    let sampler = timeline.start_sampling(
        Sources {
            http: http.clone(),
            market_api: market.api(),
            notify_api: notify.api(),
            receiver: receiver.clone(),
            audit: audit.seen.clone(),
        },
        plan.sample_every,
    );
    let at = |d: Duration| tokio::time::Instant::from_std(timeline.started() + d);

    // Redis crashes and comes back on its files.
    tokio::time::sleep_until(at(plan.redis_down_at)).await;
    tokio::task::block_in_place(|| redis.stop());
    timeline.note("Redis killed (SIGKILL)");
    tokio::time::sleep(plan.redis_down_for).await;
    tokio::task::block_in_place(|| redis.restart());
    timeline.note("Redis started again on its append-only file");

    // The notify worker is stopped; the backlog grows to the bound.
    tokio::time::sleep_until(at(plan.notify_down_at)).await;
    let took = tokio::task::block_in_place(|| {
        terminate_within(&mut notify_child, Duration::from_secs(60))
    });
    let took = took.unwrap_or_else(|| panic!("the notify worker did not stop within 60 s"));
    timeline.note(format!(
        "notify worker stopped (SIGTERM; exited in {took:.1?})"
    ));
    tokio::time::sleep(plan.notify_down_for).await;
    notify_child = notify.spawn(&notify_env);
    notify.wait_ready(&http).await;
    timeline.note("notify worker started again");

    // End of the load.
    tokio::time::sleep_until(at(plan.load)).await;
    let took = tokio::task::block_in_place(|| {
        terminate_within(&mut market_child, Duration::from_secs(60))
    });
    let took = took.unwrap_or_else(|| panic!("the market monitor did not stop within 60 s"));
    timeline.note(format!(
        "market monitor stopped (SIGTERM; exited in {took:.1?})"
    ));

    // Drain: everything in the stream delivered and nothing left waiting.
    let drained = drain(&client, &http, &notify.api(), plan.drain_limit).await;
    timeline.note(if drained {
        "drained: both groups caught up, no delivery queued or sending".to_string()
    } else {
        format!(
            "NOT drained within {:?}: counting what there is",
            plan.drain_limit
        )
    });
    let dead_letters = dead_letters(&http, &notify.api()).await;
    let last = Sources {
        http: http.clone(),
        market_api: market.api(),
        notify_api: notify.api(),
        receiver: receiver.clone(),
        audit: audit.seen.clone(),
    }
    .sample(timeline.elapsed())
    .await;
    let took = tokio::task::block_in_place(|| {
        terminate_within(&mut notify_child, Duration::from_secs(60))
    });
    let took = took.unwrap_or_else(|| panic!("the notify worker did not stop within 60 s"));
    timeline.note(format!(
        "notify worker stopped (SIGTERM; exited in {took:.1?})"
    ));
    sampler.abort();
    let seen = audit.finish().await;

    // Count.
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let stored: BTreeMap<String, String> = c.hgetall("market:rules").await.unwrap();
    let fired: BTreeMap<String, u64> = stored
        .iter()
        .map(|(id, json)| {
            let v: Value = serde_json::from_str(json).unwrap();
            (id.clone(), v["firing"]["fired_count"].as_u64().unwrap_or(0))
        })
        .collect();
    // On Redis each host keeps its own checkpoint (`source:<name>@<host_id>`).
    let checkpoints: BTreeMap<String, String> = c.hgetall("market:checkpoints").await.unwrap();
    let checkpoint = checkpoints
        .iter()
        .find(|(k, _)| k.starts_with(&format!("source:{SOURCE}@")))
        .map(|(_, v)| v.clone())
        .expect("the replay's checkpoint");
    let checkpoint: Value = serde_json::from_str(&checkpoint).unwrap();
    let (pass, offset) = (
        checkpoint["pass"].as_u64().unwrap(),
        checkpoint["offset"].as_u64().unwrap() as usize,
    );
    let idem_keys = idempotency_keys(&mut c).await;
    let seen = seen.lock();
    let inputs = tally::Inputs {
        fired,
        crossing: rules.crossing.iter().cloned().collect(),
        expected_crossings: replay.expected_crossings(pass, offset),
        enqueued: seen.entries.values().cloned().collect(),
        idem_keys,
        deliveries: receiver.received(),
        dead_letters,
    };
    let mut verdict = tally::tally(&inputs);

    // The disruptions must have happened as planned, or the run proved less than it says.
    let samples = timeline.samples();
    let max = |f: fn(&timeline::MarketSample) -> f64| {
        samples
            .iter()
            .filter_map(|s| s.market.as_ref().map(f))
            .fold(0.0, f64::max)
    };
    let (refused, longest, store_errors) = (
        max(|m| m.refused),
        max(|m| m.stream_len),
        max(|m| m.store_errors),
    );
    if refused == 0.0 {
        verdict.failures.push(format!(
            "notify:requests never reached its bound ({}) during the notify outage: \
             lower IMPRESSOX_SOAK_STREAM_MAXLEN",
            plan.stream_maxlen
        ));
    }
    if store_errors == 0.0 || seen.errors == 0 {
        verdict
            .failures
            .push("the Redis outage was not seen by the market monitor or the audit".into());
    }
    if !drained {
        verdict.failures.push(format!(
            "the notify worker did not drain within {:?} (a hang?)",
            plan.drain_limit
        ));
    }

    // The report.
    let ticks = replay.ticks_at(pass, offset);
    let raised: u64 = inputs.fired.values().sum();
    let load_mins = plan.load.as_secs_f64() / 60.0;
    println!("\n## Soak run\n");
    println!("Timeline (mm:ss since the load started):\n");
    for (at, what) in timeline.events() {
        println!("- {}: {what}", clock(at));
    }
    println!("\n{}", verdict.table);
    println!(
        "Replay checkpoint: pass {pass}, offset {offset} ({} ticks per symbol). \
         notify:requests peaked at {longest:.0} of {} entries; {refused:.0} enqueues were \
         refused at the bound; {store_errors:.0} store operations of the market monitor were \
         retried; the audit reader reconnected after {} failed reads.",
        ticks
            .iter()
            .map(|t| tally::thousands(*t))
            .collect::<Vec<_>>()
            .join(" / "),
        plan.stream_maxlen,
        seen.errors
    );
    println!(
        "Throughput: {:.0} alerts/min raised over the {load_mins:.0}-minute load ({:.1}/s); {}",
        raised as f64 / load_mins,
        raised as f64 / plan.load.as_secs_f64(),
        rates(&samples, &timeline.events())
    );
    println!("Last sample: {}", last.line());

    let failed = !verdict.failures.is_empty();
    if failed || plan.keep {
        let keep = |h: HostDir| h.dir.keep().display().to_string();
        eprintln!(
            "soak: kept the hosts' folders: {} (market monitor), {} (notify worker)",
            keep(market),
            keep(notify)
        );
    }
    assert!(
        !failed,
        "the soak found {} problem(s):\n- {}",
        verdict.failures.len(),
        verdict.failures.join("\n- ")
    );
}

/// Wait until both groups have read and acknowledged everything in `notify:requests` and
/// the notify worker has no delivery queued or sending; false at `limit`.
async fn drain(
    client: &redis::Client,
    http: &reqwest::Client,
    notify_api: &str,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut settled = 0;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Redis unreachable counts as "not yet".
        let groups_done = groups_caught_up(client).await.unwrap_or(false);
        let metrics = match http.get(format!("{notify_api}/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let idle = ["queued", "sending"].iter().all(|state| {
            metrics.contains(&format!(
                "impressox_notify_records{{state=\"{state}\"}} 0\n"
            ))
        });
        // Two quiet seconds in a row: nothing was between the two checks.
        settled = if groups_done && idle { settled + 1 } else { 0 };
        if settled >= 2 {
            return true;
        }
    }
    false
}

/// Every group's last read entry is the stream's last entry and nothing is pending.
async fn groups_caught_up(client: &redis::Client) -> redis::RedisResult<bool> {
    let mut c = client.get_multiplexed_async_connection().await?;
    // Read as a plain map: the typed reply does not take an empty stream's nil entries.
    let stream: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(audit::STREAM)
        .query_async(&mut c)
        .await?;
    let last_generated = match stream.get("last-generated-id") {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s.clone(),
        _ => return Ok(false),
    };
    let groups: redis::streams::StreamInfoGroupsReply = c.xinfo_groups(audit::STREAM).await?;
    Ok(groups
        .groups
        .iter()
        .all(|g| g.pending == 0 && g.last_delivered_id == last_generated))
}

/// Every dead letter the notify worker keeps: (notification id, reason).
async fn dead_letters(http: &reqwest::Client, notify_api: &str) -> Vec<(String, String)> {
    let v: Value = http
        .get(format!("{notify_api}/api/v1/dead-letters?limit=500"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["dead_letters"]
        .as_array()
        .unwrap_or_else(|| panic!("dead letters: {v}"))
        .iter()
        .map(|d| {
            (
                d["notification_id"].as_str().unwrap_or("?").to_string(),
                d["reason"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// The idempotency keys the store holds for `notify:requests` (`<stream>:idem:<key>`).
async fn idempotency_keys(c: &mut redis::aio::MultiplexedConnection) -> BTreeSet<String> {
    let prefix = format!("{}:idem:", audit::STREAM);
    let mut keys = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(c)
            .await
            .unwrap();
        keys.extend(
            batch
                .into_iter()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string)),
        );
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Delivery rates from the samples: steady (before the first disruption) and the fastest
/// catch-up after the notify worker came back.
fn rates(samples: &[timeline::Sample], events: &[(Duration, String)]) -> String {
    let first_disruption = events.get(1).map_or(Duration::MAX, |(at, _)| *at);
    let steady: Vec<_> = samples.iter().filter(|s| s.at < first_disruption).collect();
    let steady_rate = match (steady.first(), steady.last()) {
        (Some(a), Some(b)) if b.at > a.at => {
            (b.received - a.received) as f64 / (b.at - a.at).as_secs_f64()
        }
        _ => 0.0,
    };
    let peak = samples
        .windows(2)
        .map(|w| {
            (w[1].received.saturating_sub(w[0].received)) as f64
                / (w[1].at - w[0].at).as_secs_f64().max(0.001)
        })
        .fold(0.0, f64::max);
    format!(
        "deliveries {steady_rate:.1}/s in steady state, {peak:.1}/s at the fastest (catching up)"
    )
}
