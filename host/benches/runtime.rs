//! Runtime benchmarks (issue 2): warm call vs bare wasmtime, instantiation, hot-swap
//! latency (cold compile and cache), caller latency while a swap compiles, and the
//! `threshold` processor in wasm vs native. Run: `cargo bench -p impressox-host --bench runtime`.
//! Prints a Markdown table to paste into docs/BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use impressox_host::bindings::event_handler::EventHandlerPre;
use impressox_host::bindings::types::*;
use impressox_host::config::Config;
use impressox_host::runtime::Runtime;
use impressox_host::runtime::metrics::LatencyHistogram;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
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
impl impressox_host::bindings::config::Host for Bare {
    fn get(&mut self, _: String) -> Option<String> {
        None
    }
    fn secret(&mut self, _: String) -> Option<String> {
        None
    }
}

fn config(dir: &std::path::Path, extra: &str) -> Config {
    let p = dir.join("c.toml");
    std::fs::write(
        &p,
        format!("data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\ndebounce_ms = 1\n{extra}"),
    )
    .unwrap();
    let c = Config::load_with_env(Some(&p), &[]).unwrap();
    std::fs::create_dir_all(c.plugin_dir()).unwrap();
    c
}

fn per_call(n: u64, f: impl FnMut()) -> f64 {
    let mut f = f;
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn trivial_event() -> Event {
    Event {
        stream: String::new(),
        id: String::new(),
        fields: Vec::new(),
        attempt: 1,
        received_at_ms: 0,
    }
}

fn tweak(bytes: &[u8], n: u32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let name = format!("x{n:08}");
    b.push(0x00);
    b.push((name.len() + 1) as u8);
    b.push(name.len() as u8);
    b.extend_from_slice(name.as_bytes());
    b
}

fn write_atomic(path: &std::path::Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn main() {
    let mut rows: Vec<(String, String)> = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let rt = Runtime::new(&cfg).unwrap();

    // 1. Warm call: runtime path vs bare wasmtime, same component, same engine.
    let path = cfg.plugin_dir().join("misbehave.wasm");
    std::fs::copy(test_artifacts::GUEST_MISBEHAVE, &path).unwrap();
    rt.load_file(&path).unwrap();
    let handle = rt.plugin("misbehave");
    let ev = trivial_event();
    for _ in 0..10_000 {
        handle.handle_event(&ev).unwrap();
    }
    let engine = rt.engine().clone();
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    impressox_host::bindings::log::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s)
        .unwrap();
    impressox_host::bindings::config::add_to_linker::<Bare, HasSelf<Bare>>(&mut linker, |s| s)
        .unwrap();
    let component =
        wasmtime::component::Component::from_file(&engine, test_artifacts::GUEST_MISBEHAVE)
            .unwrap();
    let pre = EventHandlerPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let new_store = || {
        let mut s = Store::new(
            &engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        s.set_epoch_deadline(1_000_000);
        s
    };
    let mut store = new_store();
    let bare = pre.instantiate(&mut store).unwrap();
    let n = 1_000_000;
    let mut best_bare = f64::MAX;
    let mut best_rt = f64::MAX;
    for _ in 0..5 {
        best_bare = best_bare.min(per_call(n, || {
            black_box(
                bare.impressox_plugin_handle_event()
                    .call_handle(&mut store, &ev)
                    .unwrap(),
            );
        }));
        best_rt = best_rt.min(per_call(n, || {
            black_box(handle.handle_event(&ev).unwrap());
        }));
    }
    rows.push((
        "warm trivial call, bare wasmtime".into(),
        format!("{:.0} ns", best_bare),
    ));
    rows.push((
        "warm trivial call, runtime path (lookup, pool, limits, metrics)".into(),
        format!("{:.0} ns ({:.2}x bare)", best_rt, best_rt / best_bare),
    ));

    // 2. Instantiation from the pre-instantiated component (fresh store each time).
    let mut best_inst = f64::MAX;
    for _ in 0..5 {
        best_inst = best_inst.min(per_call(2_000, || {
            let mut s = new_store();
            black_box(pre.instantiate(&mut s).unwrap());
        }));
    }
    rows.push((
        "instantiate from InstancePre (pooling allocator, new store + WASI ctx)".into(),
        format!("{:.1} µs", best_inst / 1000.0),
    ));

    // 3. File written -> new version serving, through the watcher.
    let watcher =
        impressox_host::runtime::watcher::Watcher::start(rt.clone(), Duration::from_millis(1))
            .unwrap();
    let tpath = cfg.plugin_dir().join("threshold.wasm");
    let tbytes = std::fs::read(test_artifacts::THRESHOLD).unwrap();
    let th = rt.plugin("threshold");
    let swap_once = |bytes: &[u8]| -> f64 {
        let before = th.current().map(|l| l.sha256.clone());
        let t = Instant::now();
        write_atomic(&tpath, bytes);
        while th.current().map(|l| l.sha256.clone()) == before {
            std::thread::sleep(Duration::from_micros(200));
            assert!(t.elapsed() < Duration::from_secs(30), "swap never happened");
        }
        t.elapsed().as_secs_f64() * 1000.0
    };
    let mut cold = Vec::new();
    for i in 0..8 {
        cold.push(swap_once(&tweak(&tbytes, 1000 + i)));
    }
    // The same variants again: now every one is in the compiled-code cache.
    let mut warm = Vec::new();
    for i in 0..8 {
        warm.push(swap_once(&tweak(&tbytes, 1000 + i)));
    }
    cold.sort_by(f64::total_cmp);
    warm.sort_by(f64::total_cmp);
    rows.push((
        format!(
            "file written -> serving, cold compile of threshold.wasm ({} KB), median / max",
            tbytes.len() / 1024
        ),
        format!(
            "{:.0} ms / {:.0} ms",
            cold[cold.len() / 2],
            cold[cold.len() - 1]
        ),
    ));
    rows.push((
        "file written -> serving, from the compiled-code cache, median / max".into(),
        format!(
            "{:.1} ms / {:.1} ms",
            warm[warm.len() / 2],
            warm[warm.len() - 1]
        ),
    ));

    // 4. Caller latency while swaps compile (2 callers on a 2-core machine).
    let stop = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(LatencyHistogram::default());
    let callers: Vec<_> = (0..1)
        .map(|_| {
            let (stop, hist, handle) = (stop.clone(), hist.clone(), handle.clone());
            std::thread::spawn(move || {
                let ev = trivial_event();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    handle.handle_event(&ev).unwrap();
                    hist.record(t.elapsed().as_nanos() as u64);
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        })
        .collect();
    for i in 0..6 {
        swap_once(&tweak(&tbytes, 5000 + i));
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    rows.push((
        "caller p99 / max-bucket while 6 cold swaps compile".into(),
        format!(
            "{:.1} µs p99 over {} calls",
            hist.quantile_ns(0.99).unwrap() as f64 / 1000.0,
            hist.count()
        ),
    ));
    drop(watcher);

    // 5. threshold: 100,000 rules over 1,000 symbols, batches of 1,000 ticks, wasm vs native.
    let (rules, batches) = threshold_workload(100_000, 1_000, 200);
    let mut native = threshold::Engine::new();
    native
        .upsert_rules(rules.iter().map(to_sdk_rule).collect())
        .unwrap();
    let native_batches: Vec<sdk::TickBatch> = batches.iter().map(to_sdk_batch).collect();
    // The first batches fire most `once` level rules (true at first sight); after that,
    // prices wander between thresholds. Both phases are reported.
    const WARMUP: usize = 20;
    let (native_burst, native_burst_alerts) =
        timed(&native_batches[..WARMUP], |b| native.evaluate(b).len());
    let (native_rate, native_alerts) =
        timed(&native_batches[WARMUP..], |b| native.evaluate(b).len());
    let mut session = th.session();
    let mut init = |p: &mut impressox_host::runtime::invoke::RuleProcessorInit<'_>| {
        p.upsert_rules(&rules)?.map_err(wasmtime::Error::msg)
    };
    let empty = TickBatch::from_ticks(0, Vec::new());
    session.evaluate(&mut init, &empty).unwrap();
    let (wasm_burst, wasm_burst_alerts) = timed(&batches[..WARMUP], |b| {
        session.evaluate(&mut init, b).unwrap().len()
    });
    let (wasm_rate, wasm_alerts) = timed(&batches[WARMUP..], |b| {
        session.evaluate(&mut init, b).unwrap().len()
    });
    assert_eq!(
        (native_burst_alerts, native_alerts),
        (wasm_burst_alerts, wasm_alerts),
        "wasm and native disagree"
    );
    rows.push((
        format!("threshold, 100k rules / 1k symbols, 1k-tick batches, first {WARMUP}k ticks ({native_burst_alerts} alerts): native / wasm session"),
        format!("{:.2} / {:.2} M ticks/s ({:.2}x native time)", native_burst / 1e6, wasm_burst / 1e6, native_burst / wasm_burst),
    ));
    rows.push((
        format!(
            "threshold, same, next {}k ticks ({native_alerts} alerts): native / wasm session",
            batches.len() - WARMUP
        ),
        format!(
            "{:.2} / {:.2} M ticks/s ({:.2}x native time)",
            native_rate / 1e6,
            wasm_rate / 1e6,
            native_rate / wasm_rate
        ),
    ));

    println!("| measurement | result |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
}

/// Deterministic rules and a random walk of prices (xorshift, no dependency).
fn threshold_workload(
    n_rules: usize,
    n_symbols: u32,
    n_batches: usize,
) -> (Vec<Rule>, Vec<TickBatch>) {
    let mut s: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    let base: Vec<f64> = (0..n_symbols).map(|i| 10.0 + i as f64).collect();
    let ops = [
        ConditionOp::Above,
        ConditionOp::Below,
        ConditionOp::CrossesUp,
        ConditionOp::CrossesDown,
    ];
    let rules = (0..n_rules)
        .map(|i| {
            let sym = (i as u32) % n_symbols;
            Rule {
                id: format!("r{i}"),
                symbol: format!("S{sym}USDT"),
                symbol_id: sym,
                condition: Condition {
                    op: ops[i % 4],
                    value: base[sym as usize] * (0.95 + 0.1 * rnd()),
                    direction: Direction::Any,
                    window_secs: 0,
                },
                trigger: Trigger {
                    mode: TriggerMode::Once,
                    cooldown_secs: 0,
                },
                expires_at_ms: None,
                state: RuleState {
                    armed: true,
                    last_fired_ms: None,
                    fired_count: 0,
                },
            }
        })
        .collect();
    let mut price = base.clone();
    let mut ts = 1_764_300_000_000i64;
    let batches = (0..n_batches)
        .map(|_| {
            let ticks = (0..1000)
                .map(|_| {
                    let sym = ((rnd() * n_symbols as f64) as u32).min(n_symbols - 1);
                    let p = &mut price[sym as usize];
                    *p *= 1.0 + (rnd() - 0.5) * 0.002;
                    ts += 1;
                    Tick {
                        symbol_id: sym,
                        price: *p,
                        ts_ms: ts,
                    }
                })
                .collect();
            TickBatch::from_ticks(ts, ticks)
        })
        .collect();
    (rules, batches)
}

use impressox_plugin_sdk::types as sdk;

/// The same records as the SDK's types, for the native engine.
fn to_sdk_rule(r: &Rule) -> sdk::Rule {
    sdk::Rule {
        id: r.id.clone(),
        symbol: r.symbol.clone(),
        symbol_id: r.symbol_id,
        condition: sdk::Condition {
            op: match r.condition.op {
                ConditionOp::Above => sdk::ConditionOp::Above,
                ConditionOp::Below => sdk::ConditionOp::Below,
                ConditionOp::CrossesUp => sdk::ConditionOp::CrossesUp,
                ConditionOp::CrossesDown => sdk::ConditionOp::CrossesDown,
                ConditionOp::PctChange => sdk::ConditionOp::PctChange,
            },
            value: r.condition.value,
            direction: sdk::Direction::Any,
            window_secs: r.condition.window_secs,
        },
        trigger: sdk::Trigger {
            mode: sdk::TriggerMode::Once,
            cooldown_secs: 0,
        },
        expires_at_ms: r.expires_at_ms,
        state: sdk::RuleState {
            armed: r.state.armed,
            last_fired_ms: r.state.last_fired_ms,
            fired_count: r.state.fired_count,
        },
    }
}

fn to_sdk_batch(b: &TickBatch) -> sdk::TickBatch {
    sdk::TickBatch {
        now_ms: b.now_ms,
        symbol_ids: b.symbol_ids.clone(),
        prices: b.prices.clone(),
        ts_ms: b.ts_ms.clone(),
    }
}

/// Ticks per second over `batches` of 1,000 ticks, and the alerts counted.
fn timed<B>(batches: &[B], mut eval: impl FnMut(&B) -> usize) -> (f64, usize) {
    let t = Instant::now();
    let alerts = batches.iter().map(&mut eval).sum();
    (
        (batches.len() * 1000) as f64 / t.elapsed().as_secs_f64(),
        alerts,
    )
}
