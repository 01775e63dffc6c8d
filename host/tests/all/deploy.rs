//! deploy/: the files an operator runs the host with, checked as far as this machine
//! allows without a container engine (docs/design/console.md says what is not).
//!
//! - the systemd unit passes `systemd-analyze verify` (where systemd-analyze exists) and
//!   has the hardening the README promises;
//! - compose.yaml parses and has the host, Redis 7 and MongoDB with ports, volumes,
//!   health checks and the secrets' env file;
//! - the Dockerfile builds in two stages, runs as a non-root user with a health check,
//!   and its build steps run (deploy/check-build.sh, in this tree's target folder);
//! - config/production.example.toml loads with the host's parser;
//! - every metric the example alert rules name is in a real host's /metrics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{free_port, impressox, wait_until};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = read("deploy/impressox.service");
    for line in [
        "DynamicUser=yes",
        "StateDirectory=impressox",
        "ProtectSystem=strict",
        "Restart=on-failure",
        "LimitNOFILE=65536",
        "NoNewPrivileges=yes",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks `{line}`");
    }
    // wasmtime writes machine code at run time: this would stop every plugin.
    assert!(
        !unit
            .lines()
            .any(|l| l.starts_with("MemoryDenyWriteExecute=yes"))
    );
    let Some(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed (Debian: systemd); skipping verify");
        return;
    };
    // verify checks that ExecStart's program exists: point it at this build's binary.
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_impressox");
    let local = unit.replace("/usr/local/bin/impressox", bin);
    let path = dir.path().join("impressox.service");
    std::fs::write(&path, local).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on an unknown key or a bad value, warning on stderr with the file's
    // path and line: any such line fails the test.
    let file = path.display().to_string();
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(&file)).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {stderr}"
    );
    // The check can fail: a misspelt key is reported against the file.
    let bad = dir.path().join("bad.service");
    std::fs::write(
        &bad,
        format!("[Service]\nExecStart={bin} run\nProtectSystm=strict\n"),
    )
    .unwrap();
    let out = Command::new(which("systemd-analyze").unwrap())
        .arg("verify")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("ProtectSystm"));
    // systemd's own rating of the sandboxing (0 = locked down, 10 = none); 3.8 when
    // written. Older systemd has no --offline: then only verify counts.
    let security = Command::new(which("systemd-analyze").unwrap())
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&security.stdout);
    if let Some(level) = text
        .split("Overall exposure level for impressox.service: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
    {
        assert!(level <= 4.5, "exposure {level} (was 3.8):\n{text}");
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

#[test]
fn compose_has_the_host_redis_and_mongo_with_ports_volumes_and_health_checks() {
    let doc: serde_yaml::Value = serde_yaml::from_str(&read("deploy/compose.yaml")).unwrap();
    let services = &doc["services"];
    let host = &services["host"];
    assert_eq!(host["build"]["dockerfile"], "deploy/Dockerfile");
    assert_eq!(host["build"]["context"], "..");
    let ports: Vec<&str> = host["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert_eq!(ports, ["8080:8080"]);
    assert!(
        host["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.ends_with("/healthz")))
    );
    let env = &host["environment"];
    assert_eq!(env["IMPRESSOX__API__LISTEN"], "0.0.0.0:8080");
    assert_eq!(env["IMPRESSOX__STORAGE__REDIS_URL"], "redis://redis:6379");
    assert_eq!(
        env["IMPRESSOX__DOCUMENTS__MONGODB_URL"],
        "mongodb://mongo:27017"
    );
    // No secret in the file: they come from the env file.
    assert_eq!(host["env_file"][0], "./impressox.env");
    let text = read("deploy/compose.yaml");
    assert!(
        !text.contains("IMPRESSOX_API_TOKEN:"),
        "a secret in compose.yaml"
    );
    let volumes: Vec<&str> = host["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        volumes.contains(&"../config/production.example.toml:/etc/impressox/impressox.toml:ro")
    );
    assert!(volumes.contains(&"impressox-data:/var/lib/impressox"));
    for dep in ["redis", "mongo"] {
        assert_eq!(host["depends_on"][dep]["condition"], "service_healthy");
        assert!(services[dep]["healthcheck"]["test"].is_sequence(), "{dep}");
    }
    assert!(
        services["redis"]["image"]
            .as_str()
            .unwrap()
            .starts_with("redis:7")
    );
    assert!(
        services["mongo"]["image"]
            .as_str()
            .unwrap()
            .starts_with("mongo:")
    );
    for v in ["impressox-data", "redis-data", "mongo-data"] {
        assert!(doc["volumes"].get(v).is_some(), "volume {v}");
    }
    // The env file it names has a template with every secret the config reads.
    let example = read("deploy/impressox.env.example");
    for var in [
        "IMPRESSOX_API_TOKEN=",
        "IMPRESSOX_TELEGRAM_TOKEN=",
        "IMPRESSOX_SMTP_PASSWORD=",
    ] {
        assert!(example.lines().any(|l| l == var), "{var}");
    }
    // The paths compose and the unit use are the example config's.
    let config = read("config/production.example.toml");
    assert!(config.contains("data_dir = \"/var/lib/impressox\""));
    assert!(config.contains("dir = \"/opt/impressox/plugins.d\""));
}

#[test]
fn the_dockerfile_builds_in_two_stages_as_a_non_root_user_with_a_health_check() {
    let text = read("deploy/Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].ends_with(" AS build"));
    assert!(froms[1].starts_with("FROM debian:"));
    let runtime = text.split(froms[1]).nth(1).unwrap();
    assert!(
        runtime.contains("chromium"),
        "the runtime image has Chromium"
    );
    assert!(runtime.lines().any(|l| l == "USER impressox"));
    assert!(runtime.contains("HEALTHCHECK") && runtime.contains("/healthz"));
    assert!(runtime.contains("COPY --from=build /src/target/release/impressox"));
    assert!(runtime.contains("COPY --from=build /out/plugins.d/"));
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l == "target"));
}

/// The Dockerfile's build stage, run by deploy/check-build.sh: a clean copy of the build
/// context, then its RUN steps in this tree with this build's target folder (nothing is
/// rebuilt after `cargo test` built it), then the runtime stage's COPY sources.
#[test]
fn the_dockerfiles_build_steps_run() {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // The test binary is <target>/release/deps/all-<hash>.
            std::env::current_exe()
                .unwrap()
                .ancestors()
                .nth(3)
                .unwrap()
                .to_path_buf()
        });
    let work = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = Command::new("bash")
        .arg(root().join("deploy/check-build.sh"))
        .arg("--in-tree")
        .arg(work.path())
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check-build.sh failed:\n{stderr}");
    assert!(stderr.contains("check-build: ok:"), "{stderr}");
    let plugins = std::fs::read_dir(work.path().join("out/plugins.d"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wasm")
        })
        .count();
    assert!(plugins >= 10, "{plugins} plugins built");
    eprintln!("check-build.sh took {:?}", started.elapsed());
}

#[test]
fn the_production_example_config_loads() {
    let path = root().join("config/production.example.toml");
    let config = impressox_host::config::Config::load_with_env(Some(&path), &[]).unwrap();
    assert_eq!(config.data_dir(), Path::new("/var/lib/impressox"));
    assert_eq!(config.plugin_dir(), Path::new("/opt/impressox/plugins.d"));
    // The overrides compose sets are keys the parser knows.
    let env: Vec<(String, String)> = [
        ("IMPRESSOX__API__LISTEN", "0.0.0.0:8080"),
        ("IMPRESSOX__STORAGE__REDIS_URL", "redis://redis:6379"),
        ("IMPRESSOX__DOCUMENTS__MONGODB_URL", "mongodb://mongo:27017"),
        ("IMPRESSOX__SCRAPER__BROWSER__SANDBOX", "off"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = impressox_host::config::Config::load_with_env(Some(&path), &env).unwrap();
    assert_eq!(config.api.listen.to_string(), "0.0.0.0:8080");
}

/// Every `impressox_*` metric in deploy/prometheus/alerts.yml is exported by a real host
/// running the workers those metrics belong to.
#[test]
fn the_alert_rules_name_only_metrics_the_host_exports() {
    let rules = read("deploy/prometheus/alerts.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&rules).unwrap();
    let mut named = BTreeSet::new();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("impressox_") {
                    // A histogram's series are named after it.
                    named.insert(word.trim_end_matches("_bucket").to_string());
                }
            }
        }
    }
    assert!(named.len() >= 10, "{named:?}");

    let metrics = metrics_of_a_running_host();
    // Families by their TYPE lines, and every sample's name.
    let exported: BTreeSet<String> = metrics
        .lines()
        .filter_map(|l| match l.strip_prefix("# TYPE ") {
            Some(t) => t.split_whitespace().next(),
            None if l.starts_with("impressox_") => l.split(['{', ' ']).next(),
            None => None,
        })
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = named.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "not in /metrics: {missing:?}\n{metrics}"
    );
}

/// `/metrics` of `impressox run` with the market monitor (a replay source), notify,
/// events (one listener) and the scheduler.
fn metrics_of_a_running_host() -> String {
    let redis = crate::servers::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    for (from, to) in [
        (test_artifacts::THRESHOLD, "threshold.wasm"),
        (test_artifacts::REPLAY_ROWS, "replay-rows.wasm"),
        (test_artifacts::PLAIN_FORMATTER, "plain-formatter.wasm"),
        (test_artifacts::EVENT_LOGGER, "event-logger.wasm"),
        (test_artifacts::GUEST_SCHED_PROBE, "sched-probe.wasm"),
    ] {
        std::fs::copy(from, plugins.join(to)).unwrap();
    }
    std::fs::write(
        dir.path().join("prices.csv"),
        "1700000000000,BTCUSDT,70000\n1700000001000,BTCUSDT,70010\n",
    )
    .unwrap();
    let cfg = dir.path().join("host.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"data\"\n[api]\nlisten = \"127.0.0.1:{port}\"\n[plugins]\ndir = \"plugins.d\"\n\
             [plugins.grants.sched-probe]\nkv = true\n\
             [storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n\
             [workers]\nenabled = [\"market-monitor\", \"notify\", \"events\", \"scheduler\"]\n\
             [market]\nconsole_alerts = false\n\
             [[market.sources]]\nname = \"replay\"\nkind = \"replay\"\nparser = \"replay-rows\"\npath = \"prices.csv\"\n\
             [[listeners]]\nname = \"log\"\nstream = \"ops:events\"\ngroup = \"log\"\nplugin = \"event-logger\"\n\
             [[schedules]]\nname = \"tick\"\nevery = \"1s\"\nplugin = \"sched-probe\"\n",
            redis.url()
        ),
    )
    .unwrap();
    let mut child = impressox()
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut body = String::new();
    // A schedule's first run and a delivery's first count arrive within a few seconds.
    let ok = wait_until(Duration::from_secs(60), || {
        body = get(&url).unwrap_or_default();
        body.contains("impressox_scheduler_runs_total{") && body.contains("impressox_source_state{")
    });
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(ok && status.success(), "{status:?}\n{stderr}\n{body}");
    body
}

fn get(url: &str) -> Option<String> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}
