//! Plugins in Python and JavaScript against their Rust counterparts (issue 18): the `rsi`
//! rule processor (CPython) beside `threshold`, the `discord-embeds` formatter
//! (SpiderMonkey) beside `plain-formatter` and `telegram-markdown`, on the same inputs.
//! Compile time cold and from the cache (with the process's peak memory while compiling),
//! instantiate time, linear and resident memory per instance, and warm call cost with the
//! ratio to Rust.
//!
//! Run: `cargo bench -p impressox-host --bench guests` (the Python and JavaScript plugins
//! are built with the pinned toolchains `cargo test-all` installs, as the tests build
//! them). Prints a Markdown table for docs/BENCHMARKS.md.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use impressox_host::bindings::notify_formatter::NotifyFormatterPre;
use impressox_host::bindings::types::*;
use impressox_host::config::Config;
use impressox_host::runtime::cache::{Origin, sha256_hex};
use impressox_host::runtime::{LoadOutcome, Runtime};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

#[path = "../tests/all/componentize/build.rs"]
#[allow(dead_code)]
mod componentize;

/// A bare store: WASI, `log`, and a count of linear memory.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: usize,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl impressox_host::bindings::log::Host for Bare {
    fn log(&mut self, _: impressox_host::bindings::log::Level, _: String) {}
}

impl ResourceLimiter for Bare {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.memory += desired - current;
        Ok(true)
    }
    fn table_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

fn config(dir: &Path) -> Config {
    let p = dir.join("c.toml");
    std::fs::write(&p, "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n").unwrap();
    let c = Config::load_with_env(Some(&p), &[]).unwrap();
    std::fs::create_dir_all(c.plugin_dir()).unwrap();
    c
}

/// The process's resident memory (`VmRSS`) and its peak since the last reset (`VmHWM`), MiB.
fn memory_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024.0
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Best of `rounds` of the mean time of `n` calls, in ns.
fn best_ns(rounds: u32, n: u64, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    best
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

struct Guest {
    name: &'static str,
    file: PathBuf,
}

struct Loaded {
    cold_ms: f64,
    cold_peak_mib: f64,
    cached_ms: f64,
    size_mib: f64,
}

/// Load `guest` into a fresh data dir (a cold compile), then into a new runtime on the same
/// data dir (the compiled-code cache).
fn load_twice(guest: &Guest) -> (Runtime, tempfile::TempDir, Loaded) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let dest = cfg.plugin_dir().join(format!("{}.wasm", guest.name));
    std::fs::copy(&guest.file, &dest).unwrap();
    let time = |rt: &Runtime, want: Origin| {
        let t = Instant::now();
        match rt.load_file(&dest).unwrap() {
            LoadOutcome::Loaded { origin, .. } => assert_eq!(origin, want),
            other => panic!("{other:?}"),
        }
        t.elapsed().as_secs_f64() * 1000.0
    };
    let before = memory_mib("VmRSS:");
    reset_peak();
    let cold_ms = time(&Runtime::new(&cfg).unwrap(), Origin::Compiled);
    let cold_peak_mib = memory_mib("VmHWM:") - before;
    let rt = Runtime::new(&cfg).unwrap();
    let cached_ms = time(&rt, Origin::Cache);
    let size_mib = std::fs::metadata(&dest).unwrap().len() as f64 / (1024.0 * 1024.0);
    (
        rt,
        dir,
        Loaded {
            cold_ms,
            cold_peak_mib,
            cached_ms,
            size_mib,
        },
    )
}

fn example_notification() -> Notification {
    Notification {
        id: "rule-demo-btc-crosses-97k-1764300000".into(),
        user_id: "u1".into(),
        kind: "price_alert".into(),
        priority: Priority::Normal,
        title: "BTCUSDT crossed up through 97000".into(),
        body: "BTCUSDT is 97000.19 (binance): BTCUSDT crossed above 97000".into(),
        data_json: r#"{"rule_id": "demo-btc-crosses-97k", "symbol": "BTCUSDT", "price": 97000.19, "reference_price": 96990.5, "fired_at": "2025-11-28T03:20:00.000Z", "reason": "BTCUSDT crossed above 97000", "source": "binance", "note": null}"#.into(),
        created_at_ms: 1_764_300_000_000,
    }
}

/// 100 rules over 10 symbols (levels and crossings), for either processor: `threshold`
/// reads the values as prices, `rsi` as RSI levels.
fn rules(rsi: bool) -> Vec<Rule> {
    let mut out = Vec::new();
    for sym in 0..10u32 {
        for (i, op) in [
            ConditionOp::Above,
            ConditionOp::Below,
            ConditionOp::CrossesUp,
            ConditionOp::CrossesDown,
        ]
        .into_iter()
        .cycle()
        .take(10)
        .enumerate()
        {
            let value = if rsi {
                20.0 + 6.0 * i as f64
            } else {
                95.0 + i as f64
            };
            out.push(Rule {
                id: format!("s{sym}-r{i}"),
                symbol: format!("SYM{sym}USDT"),
                symbol_id: sym,
                condition: Condition {
                    op,
                    value,
                    direction: Direction::Any,
                    window_secs: 0,
                },
                trigger: Trigger {
                    mode: TriggerMode::Every,
                    cooldown_secs: 0,
                },
                expires_at_ms: None,
                state: RuleState {
                    armed: true,
                    last_fired_ms: None,
                    fired_count: 0,
                },
            });
        }
    }
    out
}

/// `batches` batches of 100 ticks (10 per symbol, 6 s apart: a symbol's one-minute bar
/// closes once per batch), prices wandering around 100.
fn batches(count: usize) -> Vec<TickBatch> {
    let mut out = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut prices = [100.0f64; 10];
    let mut ts = 1_764_300_000_000i64;
    for _ in 0..count {
        let mut ticks = Vec::new();
        for _ in 0..10 {
            ts += 6_000;
            for (sym, p) in prices.iter_mut().enumerate() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *p = (*p + ((seed % 2001) as f64 - 1000.0) / 1000.0).clamp(90.0, 110.0);
                ticks.push(Tick {
                    symbol_id: sym as u32,
                    price: *p,
                    ts_ms: ts,
                });
            }
        }
        out.push(TickBatch::from_ticks(ts, ticks));
    }
    out
}

/// Warm cost of one batch through a session (the market monitor's path), ns, and the
/// alerts of the best round. Each round plays new batches (times only move forward).
fn evaluate_cost(rt: &Runtime, name: &str, rules: &[Rule], batches: &[TickBatch]) -> (f64, usize) {
    let handle = rt.plugin(name);
    let mut session = handle.session();
    let mut init = |p: &mut impressox_host::runtime::invoke::RuleProcessorInit<'_>| {
        p.upsert_rules(rules)?.map_err(wasmtime::Error::msg)
    };
    // Warm up: the first batches build indexes (threshold) and fill RSI's history.
    for b in &batches[..WARMUP] {
        session.evaluate(&mut init, b).unwrap();
    }
    let mut best = (f64::MAX, 0);
    for round in batches[WARMUP..].chunks(ROUND) {
        let t = Instant::now();
        let mut alerts = 0;
        for b in round {
            alerts += session.evaluate(&mut init, b).unwrap().len();
        }
        let ns = t.elapsed().as_nanos() as f64 / round.len() as f64;
        if ns < best.0 {
            best = (ns, alerts);
        }
    }
    best
}

const WARMUP: usize = 20;
const ROUND: usize = 200;

/// A store for bare instantiation: WASI and `log`, memory counted.
fn bare_store(engine: &wasmtime::Engine) -> Store<Bare> {
    let mut store = Store::new(
        engine,
        Bare {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            memory: 0,
        },
    );
    store.limiter(|s| s as &mut dyn ResourceLimiter);
    store.set_epoch_deadline(u64::MAX / 2);
    store
}

fn bare_linker(engine: &wasmtime::Engine) -> Linker<Bare> {
    let mut linker: Linker<Bare> = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    impressox_host::bindings::log::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s)
        .unwrap();
    linker
}

/// The component the runtime compiled (from its cache).
fn component(rt: &Runtime, wasm: &Path) -> wasmtime::component::Component {
    let bytes = std::fs::read(wasm).unwrap();
    rt.compile_cache()
        .unwrap()
        .load_or_compile(rt.engine(), &sha256_hex(&bytes), &bytes)
        .unwrap()
        .0
}

/// Per instance of `n` kept alive, each having made one call: instantiation time (bare
/// wasmtime on the runtime's engine: new store, WASI ctx, instantiate), linear memory and
/// resident memory.
struct PerInstance {
    instantiate_ns: f64,
    linear_mib: f64,
    resident_mib: f64,
}

fn per_instance<B>(
    rt: &Runtime,
    wasm: &Path,
    n: usize,
    instantiate: impl Fn(&Linker<Bare>, &wasmtime::component::Component, &mut Store<Bare>) -> B,
    call: impl Fn(&B, &mut Store<Bare>),
) -> PerInstance {
    let engine = rt.engine().clone();
    let linker = bare_linker(&engine);
    let component = component(rt, wasm);
    // One to warm up the code pages, not counted.
    let mut first = bare_store(&engine);
    let b = instantiate(&linker, &component, &mut first);
    call(&b, &mut first);
    let rss = memory_mib("VmRSS:");
    let mut kept = Vec::new();
    let mut instantiate_ns = 0.0;
    for _ in 0..n {
        let mut store = bare_store(&engine);
        let t = Instant::now();
        let b = instantiate(&linker, &component, &mut store);
        instantiate_ns += t.elapsed().as_nanos() as f64;
        call(&b, &mut store);
        kept.push(store);
    }
    PerInstance {
        instantiate_ns: instantiate_ns / n as f64,
        linear_mib: kept.iter().map(|s| s.data().memory).sum::<usize>() as f64
            / n as f64
            / (1024.0 * 1024.0),
        resident_mib: (memory_mib("VmRSS:") - rss) / n as f64,
    }
}

/// A call on a fresh instance every time, through the runtime (idle pool off): what a
/// caller pays when no idle instance is left.
fn fresh_instance_call(
    dir: &Path,
    name: &str,
    call: impl Fn(&impressox_host::runtime::PluginHandle),
) -> f64 {
    let p = dir.join("fresh.toml");
    std::fs::write(
        &p,
        "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\nidle_instances = 0\n",
    )
    .unwrap();
    let cfg = Config::load_with_env(Some(&p), &[]).unwrap();
    let rt = Runtime::new(&cfg).unwrap();
    rt.load_file(&cfg.plugin_dir().join(format!("{name}.wasm")))
        .unwrap();
    let handle = rt.plugin(name);
    best_ns(3, 100, || call(&handle))
}

fn main() {
    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {machine}, {cores} cores");

    let guests = [
        Guest {
            name: "rsi",
            file: componentize::rsi().to_path_buf(),
        },
        Guest {
            name: "threshold",
            file: test_artifacts::THRESHOLD.into(),
        },
        Guest {
            name: "discord-embeds",
            file: componentize::discord_embeds().to_path_buf(),
        },
        Guest {
            name: "plain-formatter",
            file: test_artifacts::PLAIN_FORMATTER.into(),
        },
        Guest {
            name: "telegram-markdown",
            file: test_artifacts::TELEGRAM_MARKDOWN.into(),
        },
    ];
    let mut runtimes = Vec::new();
    println!(
        "\n| plugin | .wasm | compile, cold | peak memory while compiling | load from the compiled-code cache |"
    );
    println!("|---|---|---|---|---|");
    for g in &guests {
        let (rt, dir, l) = load_twice(g);
        println!(
            "| `{}` | {:.2} MiB | {:.1} s | +{:.0} MiB | {:.0} ms |",
            g.name,
            l.size_mib,
            l.cold_ms / 1000.0,
            l.cold_peak_mib,
            l.cached_ms
        );
        runtimes.push((rt, dir));
    }

    // Warm calls, same input.
    let notification = example_notification();
    let mut format_ns = Vec::new();
    for (i, name) in [
        (2, "discord-embeds"),
        (3, "plain-formatter"),
        (4, "telegram-markdown"),
    ] {
        let handle = runtimes[i].0.plugin(name);
        let channel = if name == "telegram-markdown" {
            "telegram"
        } else {
            "webhook"
        };
        for _ in 0..200 {
            handle.format(&notification, channel).unwrap().unwrap();
        }
        let n = if name == "discord-embeds" {
            2_000
        } else {
            50_000
        };
        format_ns.push((
            name,
            best_ns(5, n, || {
                black_box(handle.format(&notification, channel).unwrap().unwrap());
            }),
        ));
    }
    let all_batches = batches(WARMUP + 3 * ROUND);
    let (rsi_ns, rsi_alerts) = evaluate_cost(&runtimes[0].0, "rsi", &rules(true), &all_batches);
    let (th_ns, th_alerts) =
        evaluate_cost(&runtimes[1].0, "threshold", &rules(false), &all_batches);

    println!("\n| warm call (same input) | cost | vs Rust |");
    println!("|---|---|---|");
    println!(
        "| `rsi` (Python): one batch of 100 ticks, 100 rules on 10 symbols ({rsi_alerts} alerts in {ROUND} batches) | {} ({} per tick) | **{:.0}x** `threshold` |",
        fmt_ns(rsi_ns),
        fmt_ns(rsi_ns / 100.0),
        rsi_ns / th_ns
    );
    println!(
        "| `threshold` (Rust): the same batches and rule shapes ({th_alerts} alerts in {ROUND} batches) | {} ({} per tick) | 1x |",
        fmt_ns(th_ns),
        fmt_ns(th_ns / 100.0)
    );
    let js = format_ns[0].1;
    for (name, ns) in &format_ns {
        let vs = if *name == "discord-embeds" {
            format!(
                "**{:.0}x** `plain-formatter`, **{:.0}x** `telegram-markdown`",
                js / format_ns[1].1,
                js / format_ns[2].1
            )
        } else {
            "1x".into()
        };
        println!(
            "| `{name}`: one price alert ({}) | {} | {vs} |",
            if *name == "telegram-markdown" {
                "telegram"
            } else {
                "webhook"
            },
            fmt_ns(*ns)
        );
    }

    // Instances.
    println!(
        "\n| per instance | instantiate (bare: new store, WASI ctx, instantiate) | a call on a fresh instance (runtime, idle_instances = 0) vs warm | linear memory | resident memory (after one call) |"
    );
    println!("|---|---|---|---|---|");
    let rules_rsi = rules(true);
    let rules_th = rules(false);
    let info_only = |h: &impressox_host::runtime::PluginHandle| {
        black_box(h.info().unwrap());
    };
    for (i, rules) in [(0usize, &rules_rsi), (1, &rules_th)] {
        let g = &guests[i];
        let p = per_instance(
            &runtimes[i].0,
            &g.file,
            16,
            |l, c, s| {
                impressox_host::bindings::rule_processor::RuleProcessorPre::new(
                    l.instantiate_pre(c).unwrap(),
                )
                .unwrap()
                .instantiate(s)
                .unwrap()
            },
            |b, s| {
                let r = b.impressox_plugin_process_rules();
                r.call_upsert_rules(&mut *s, rules).unwrap().unwrap();
                black_box(r.call_evaluate(&mut *s, &all_batches[0]).unwrap());
            },
        );
        let handle = runtimes[i].0.plugin(g.name);
        let warm = best_ns(3, 1000, || info_only(&handle));
        let fresh = fresh_instance_call(runtimes[i].1.path(), g.name, info_only);
        println!(
            "| `{}` (load 100 rules, one batch) | {} | `info()`: {} vs {} | {:.1} MiB | {:.1} MiB |",
            g.name,
            fmt_ns(p.instantiate_ns),
            fmt_ns(fresh),
            fmt_ns(warm),
            p.linear_mib,
            p.resident_mib
        );
    }
    for i in [2usize, 3, 4] {
        let g = &guests[i];
        let channel = if g.name == "telegram-markdown" {
            "telegram"
        } else {
            "webhook"
        };
        let p = per_instance(
            &runtimes[i].0,
            &g.file,
            16,
            |l, c, s| {
                NotifyFormatterPre::new(l.instantiate_pre(c).unwrap())
                    .unwrap()
                    .instantiate(s)
                    .unwrap()
            },
            |b, s| {
                black_box(
                    b.impressox_plugin_format_notification()
                        .call_format(&mut *s, &notification, channel)
                        .unwrap()
                        .unwrap(),
                );
            },
        );
        let warm = format_ns.iter().find(|(n, _)| *n == g.name).unwrap().1;
        let fresh = fresh_instance_call(runtimes[i].1.path(), g.name, |h| {
            black_box(h.format(&notification, channel).unwrap().unwrap());
        });
        println!(
            "| `{}` (one format) | {} | `format`: {} vs {} | {:.1} MiB | {:.1} MiB |",
            g.name,
            fmt_ns(p.instantiate_ns),
            fmt_ns(fresh),
            fmt_ns(warm),
            p.linear_mib,
            p.resident_mib
        );
    }
}
