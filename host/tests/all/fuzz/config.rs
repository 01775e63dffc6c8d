//! The config loader, [`Config::load_with_env`]: a TOML file and `IMPRESSOX__...`
//! environment overrides, as `impressox run` reads them.
//!
//! Generated: the shipped `config/default.toml` and `config/production.example.toml`
//! (every key), edited (see [`super::mutate`]: keys mangled, values retyped, huge,
//! negative, unicode, sections nested or dropped, TOML fragments such as `inf`, dates and
//! duplicate keys spliced in), with up to eight environment overrides whose names are
//! real keys, near misses or junk; and raw bytes. Checked: no panic; a refusal names
//! where the problem is (the file, the variable, or the `[section]` key); an accepted
//! configuration written back out as TOML loads again to the same configuration, and
//! every time setting in it (`*_secs`, `*_ms`) is a duration the workers can sleep for.

use std::path::Path;
use std::time::Duration;

use bolero::generator::TypeGenerator;
use impressox_host::config::Config;
use serde_json::Value;

use super::mutate::{Doc, Grammar, Key, Text};
use super::{Meter, budget};

/// Keys, sections and values of the configuration format.
const WORDS: &[&str] = &[
    "data_dir",
    "api",
    "listen",
    "enabled",
    "plugins",
    "dir",
    "call_timeout_ms",
    "memory_limit_mib",
    "max_output_bytes",
    "quarantine_after",
    "grants",
    "settings",
    "storage",
    "backend",
    "redis_url",
    "documents",
    "mongodb_url",
    "workers",
    "market",
    "sources",
    "kind",
    "parser",
    "url",
    "interval_secs",
    "stale_after_secs",
    "speed",
    "chunk_lines",
    "fallback_for",
    "rules",
    "notify",
    "retry",
    "jitter",
    "lease_secs",
    "timeout_secs",
    "formatters",
    "telegram",
    "scraper",
    "browser",
    "pages_per_account",
    "accounts_file",
    "searches",
    "log",
    "level",
    "format",
    "market-monitor",
    "notify",
    "x-scraper",
    "embedded",
    "redis",
    "mongodb",
    "websocket",
    "http-poll",
    "replay",
    "127.0.0.1:8080",
    "0.0.0.0:80",
    "[::1]:65535",
    "localhost:8080",
    "wss://stream.binance.com:9443/ws",
    "http://127.0.0.1:1/x",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "inf",
    "nan",
    "18446744073709551616",
    "[1, 2]",
    "{a = 1}",
    "\"quoted\"",
    "x-accounts.txt",
    "",
];

/// One `IMPRESSOX__SECTION__KEY=value`.
#[derive(Debug, Clone, TypeGenerator)]
struct EnvVar {
    prefix: u8,
    path: Vec<Key>,
    value: Text,
}

const PREFIXES: &[&str] = &[
    "IMPRESSOX__",
    "IMPRESSOX__",
    "IMPRESSOX__",
    "IMPRESSOX_",
    "impressox__",
    "IMPRESSOX____",
];

impl EnvVar {
    fn render(&self) -> (String, String) {
        let path: Vec<String> = self
            .path
            .iter()
            .take(4)
            .map(|k| k.render(WORDS).to_uppercase())
            .collect();
        let prefix = PREFIXES[usize::from(self.prefix) % PREFIXES.len()];
        (
            format!("{prefix}{}", path.join("__")),
            self.value.render(WORDS),
        )
    }
}

#[derive(Debug, Clone, TypeGenerator)]
struct ConfigInput {
    file: Doc,
    env: Vec<EnvVar>,
}

#[test]
fn config_files_and_environment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let shipped: Vec<String> = ["default.toml", "production.example.toml"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join(f)).expect("shipped config"))
        .collect();
    let shipped: Vec<&str> = shipped.iter().map(String::as_str).collect();
    let grammar = Grammar::toml(&shipped, WORDS);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("impressox.toml");
    let echo = dir.path().join("echo.toml");
    // So that some inputs get past the scraper's "accounts_file exists" check.
    std::fs::write(dir.path().join("x-accounts.txt"), "alice:pw:a@b.c\n").unwrap();
    let meter = Meter::start("config");
    bolero::check!()
        .with_type::<ConfigInput>()
        .with_test_time(budget())
        .for_each(|input| {
            let Some(text) = grammar.render_toml(&input.file) else {
                return;
            };
            let env: Vec<(String, String)> = input.env.iter().take(8).map(EnvVar::render).collect();
            std::fs::write(&path, &text).unwrap();
            meter.input(&text, || match Config::load_with_env(Some(&path), &env) {
                Ok(config) => assert_sound(&config, &echo, &text, &env),
                Err(e) => {
                    let msg = format!("{e:#}");
                    let located = msg.contains(&path.display().to_string())
                        || msg.contains('[')
                        || env.iter().any(|(name, _)| msg.contains(name.as_str()));
                    assert!(
                        located,
                        "the error does not say where: {msg}\nfile {:?}\nenv {env:?}",
                        String::from_utf8_lossy(&text)
                    );
                    super::assert_names_something("config", &msg, &text);
                }
            })
        });
    meter.finish();
}

fn assert_sound(config: &Config, echo: &Path, text: &[u8], env: &[(String, String)]) {
    let input = || format!("file {:?}\nenv {env:?}", String::from_utf8_lossy(text));
    let tree = serde_json::to_value(config).expect("a config serialises");
    assert_durations(&tree, "", &input);
    // Written out and loaded again (no environment this time): the same configuration.
    let Ok(written) = toml::to_string(config) else {
        return;
    };
    std::fs::write(echo, &written).unwrap();
    let again = Config::load_with_env(Some(echo), &[]).unwrap_or_else(|e| {
        panic!(
            "the accepted config, written out, is refused: {e:#}\n{written}\n{}",
            input()
        )
    });
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        tree,
        "changed by writing it out and loading it again\n{}",
        input()
    );
}

/// Every `*_secs` / `*_ms` number converts to a `Duration`.
fn assert_durations(v: &Value, at: &str, input: &dyn Fn() -> String) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let here = format!("{at}.{k}");
                if let Value::Number(n) = child
                    && (k.ends_with("_secs") || k.ends_with("_ms"))
                {
                    let secs =
                        n.as_f64().unwrap_or(0.0) / if k.ends_with("_ms") { 1000.0 } else { 1.0 };
                    assert!(
                        Duration::try_from_secs_f64(secs).is_ok(),
                        "accepted `{here}` = {n} is no duration a worker can wait for\n{}",
                        input()
                    );
                }
                assert_durations(child, &here, input);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                assert_durations(child, &format!("{at}[{i}]"), input);
            }
        }
        _ => {}
    }
}
