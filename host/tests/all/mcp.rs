//! The Model Context Protocol at `/mcp`, driven by a real MCP client (the official Python
//! SDK, `mcp`, from the test virtualenv: `mcp_agent.py`) against the real `impressox`
//! binary with Redis, the embedded document store, the market monitor and the notify
//! worker: the tools are listed with their schemas, a rule made with `watch_market` is the
//! one the REST API shows, a replayed price crosses it and `recent_alerts` returns the
//! alert, a bad argument is a tool error naming the field with nothing stored, and without
//! the token `/mcp` answers 401.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::hardening::host_process::{HostDir, terminate_within};
use crate::servers::mongo::venv;
use crate::servers::redis::RedisServer;

const TOKEN: &str = "mcp-test-token-4f1c9a";

/// The Python agent: one MCP session over streamable HTTP for the whole test.
struct Agent {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: tempfile::NamedTempFile,
}

impl Agent {
    fn start(url: &str, token: Option<&str>) -> Agent {
        let python = venv().join("bin/python");
        assert!(
            python.is_file(),
            "no Python in the test virtualenv {}: run `cargo test-all` once (it installs \
             host/tests/all/servers/python/requirements.txt, with the `mcp` client)",
            venv().display()
        );
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/all/mcp_agent.py");
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .arg(url)
            .env_remove("MCP_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr.reopen().unwrap()));
        if let Some(t) = token {
            cmd.env("MCP_TOKEN", t);
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Agent {
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// Send one command and read its answer (a minute at most).
    fn ask(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => serde_json::from_str(&line).unwrap(),
            Err(e) => panic!(
                "the MCP agent gave no answer to {cmd} ({e}); its stderr:\n{}",
                std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
            ),
        }
    }

    fn call(&mut self, name: &str, arguments: Value) -> Value {
        self.ask(json!({"op": "call", "name": name, "arguments": arguments}))
    }

    /// Call a tool that must succeed; its structured result.
    fn ok(&mut self, name: &str, arguments: Value) -> Value {
        let r = self.call(name, arguments.clone());
        assert_eq!(r["is_error"], false, "{name} {arguments}: {r}");
        r["structured"].clone()
    }

    /// Call a tool that must fail; the error's message.
    fn refused(&mut self, name: &str, arguments: Value, code: &str) -> String {
        let r = self.call(name, arguments.clone());
        assert_eq!(r["is_error"], true, "{name} {arguments} should fail: {r}");
        assert_eq!(r["structured"]["error"]["code"], code, "{r}");
        r["structured"]["error"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// End the session (the client sends DELETE) and wait for the process.
    fn quit(mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"op": "quit"}));
        let _ = self.stdin.flush();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "the MCP agent exited with {status:?}: {}",
                    std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the MCP agent did not exit after quit");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A host with the market monitor and the notify worker (and `extra` config), its store
/// `storage`. Its feed
/// replays a 100 → 136 → 104 sawtooth of BTCUSDT, one row a second, ten times faster and
/// looped: it crosses 121 upwards every two seconds for as long as the host runs.
fn market_host(storage: &str, workers: &str, extra: &str) -> HostDir {
    let host = HostDir::new(
        &[
            (test_artifacts::THRESHOLD, "threshold"),
            (test_artifacts::REPLAY_ROWS, "replay-rows"),
            (test_artifacts::PLAIN_FORMATTER, "plain-formatter"),
            (test_artifacts::MARKDOWN_CHUNKER, "markdown-chunker"),
        ],
        "",
    );
    let mut csv = String::from("ts_ms,symbol,price,volume\n");
    for (ts, sym, price) in crate::market::rig::sawtooth(1_764_300_000_000, 20) {
        csv.push_str(&format!("{ts},{sym},{price},1\n"));
    }
    let path = host.dir.path().join("btc.csv");
    std::fs::write(&path, csv).unwrap();
    host.write_config(&format!(
        "{storage}\n[documents]\nbackend = \"embedded\"\n\
         [workers]\nenabled = [\"market-monitor\", \"notify\"{workers}]\n\
         [market]\nrule_symbols = \"any\"\nconsole_alerts = false\ncommit_interval_ms = 50\n\
         [[market.sources]]\nname = \"file\"\nkind = \"replay\"\nparser = \"replay-rows\"\n\
         path = \"{}\"\nspeed = 10\nloop = true\n\
         [notify]\nrate_limits = false\npoll_interval_ms = 20\n{extra}",
        path.display()
    ));
    host
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// An `initialize` request as a client's first POST.
fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "curl", "version": "1"}}})
}

const TOOLS: [&str; 5] = [
    "delete_rule",
    "list_rules",
    "recent_alerts",
    "search_context",
    "watch_market",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_agent_watches_the_market_lists_and_deletes_rules_and_reads_alerts() {
    let redis = RedisServer::start();
    let host = market_host(
        &format!(
            "[storage]\nbackend = \"redis\"\nredis_url = \"{}\"\n",
            redis.url()
        ),
        "",
        "",
    );
    let mut child = host.spawn(&[("IMPRESSOX_API_TOKEN", TOKEN)]);
    let http = reqwest::Client::new();
    host.wait_ready(&http).await;
    let mcp = format!("{}/mcp", host.api());

    // No token, a wrong one: 401 before any MCP is spoken.
    for auth in [None, Some("Bearer wrong")] {
        let mut req = http
            .post(&mcp)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize_body());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
    }

    let mut agent = Agent::start(&mcp, Some(TOKEN));
    let listed = agent.ask(json!({"op": "list_tools"}));
    assert_eq!(listed["server"]["name"], "impressox-workers", "{listed}");
    assert!(
        listed["server"]["instructions"]
            .as_str()
            .unwrap()
            .contains("watch_market")
    );
    let mut names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, TOOLS, "{listed}");
    for t in listed["tools"].as_array().unwrap() {
        assert!(
            t["description"].as_str().unwrap().len() > 40,
            "{t}: a description an agent can follow"
        );
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(t["inputSchema"]["properties"].is_object(), "{t}");
    }
    let watch = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "watch_market")
        .unwrap();
    let mut required: Vec<&str> = watch["inputSchema"]["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(required, ["condition", "symbol", "user_id"], "{watch}");

    // Bad arguments: a tool error naming the field, nothing stored.
    for (args, field) in [
        (
            json!({"symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}}),
            "user_id",
        ),
        (
            json!({"user_id": "agent-1", "symbol": "BTCUSDT", "condition": {"op": "sideways", "value": 1}}),
            "condition.op",
        ),
        (
            json!({"user_id": "agent-1", "symbol": "btc/usdt", "condition": {"op": "above", "value": 1}}),
            "symbol",
        ),
        (
            json!({"user_id": "agent-1", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}, "trigger": {"mode": "cooldown"}}),
            "trigger.cooldown_secs",
        ),
        (
            json!({"user_id": "agent-1", "symbol": "BTCUSDT", "condition": {"op": "above", "value": 1}, "colour": "red"}),
            "colour",
        ),
    ] {
        let msg = agent.refused("watch_market", args.clone(), "invalid_field");
        assert!(msg.contains(field), "{args}: {msg:?} should name {field}");
    }
    let (_, rules) = get(&http, format!("{}/api/v1/rules", host.api())).await;
    assert_eq!(rules["rules"], json!([]), "nothing stored: {rules}");
    let msg = agent.refused("list_rules", json!({"limit": 0}), "invalid_field");
    assert!(msg.contains("limit"), "{msg}");
    let msg = agent.refused("recent_alerts", json!({"limit": "all"}), "invalid_field");
    assert!(msg.contains("limit"), "{msg}");

    // A rule through MCP is the rule the REST API shows.
    let rule = agent.ok(
        "watch_market",
        json!({"id": "mcp-btc-121", "user_id": "agent-1", "symbol": "BTCUSDT",
               "condition": {"op": "crosses_up", "value": 121}, "note": "from the agent"}),
    );
    assert_eq!(rule["id"], "mcp-btc-121", "{rule}");
    assert_eq!(rule["state"], "active", "{rule}");
    let (status, stored) = get(&http, format!("{}/api/v1/rules/mcp-btc-121", host.api())).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["note"], "from the agent");
    assert_eq!(stored["condition"]["op"], "crosses_up");
    let (_, listed_rest) = get(
        &http,
        format!("{}/api/v1/rules?user_id=agent-1", host.api()),
    )
    .await;
    assert_eq!(listed_rest["rules"].as_array().unwrap().len(), 1);
    let again = agent.refused(
        "watch_market",
        json!({"id": "mcp-btc-121", "user_id": "agent-1", "symbol": "BTCUSDT",
               "condition": {"op": "above", "value": 5}}),
        "conflict",
    );
    assert!(again.contains("mcp-btc-121"), "{again}");

    let page = agent.ok("list_rules", json!({"user_id": "agent-1"}));
    assert_eq!(page["rules"][0]["id"], "mcp-btc-121", "{page}");
    assert_eq!(page["next_offset"], Value::Null);
    let none = agent.ok("list_rules", json!({"symbol": "ETHUSDT"}));
    assert_eq!(none["rules"], json!([]));

    // The replayed feed crosses 121 within seconds: the alert comes back through MCP.
    let start = Instant::now();
    let alerts = loop {
        let a = agent.ok("recent_alerts", json!({"user_id": "agent-1"}));
        if !a["alerts"].as_array().unwrap().is_empty() {
            break a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no alert after a minute; host log:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["rule_id"], "mcp-btc-121", "{alerts}");
    assert_eq!(alert["symbol"], "BTCUSDT");
    assert_eq!(alert["user_id"], "agent-1");
    assert!(alert["price"].as_f64().unwrap() > 121.0, "{alert}");
    assert_eq!(alert["note"], "from the agent");
    assert!(alert["fired_at"].is_string() && alert["received_at"].is_string());
    // A `once` rule fires once.
    assert_eq!(alerts["alerts"].as_array().unwrap().len(), 1, "{alerts}");
    let by_symbol = agent.ok("recent_alerts", json!({"symbol": "btcusdt", "limit": 5}));
    assert_eq!(by_symbol["alerts"][0]["rule_id"], "mcp-btc-121");
    let other = agent.ok("recent_alerts", json!({"symbol": "ETHUSDT"}));
    assert_eq!(other["alerts"], json!([]));
    let other = agent.ok("recent_alerts", json!({"user_id": "someone-else"}));
    assert_eq!(other["alerts"], json!([]));

    // Deleting: another user's rule is not found (and stays); then it goes.
    agent.refused(
        "delete_rule",
        json!({"id": "mcp-btc-121", "user_id": "someone-else"}),
        "not_found",
    );
    let (status, _) = get(&http, format!("{}/api/v1/rules/mcp-btc-121", host.api())).await;
    assert_eq!(status, 200);
    let deleted = agent.ok(
        "delete_rule",
        json!({"id": "mcp-btc-121", "user_id": "agent-1"}),
    );
    assert_eq!(deleted["deleted"]["id"], "mcp-btc-121", "{deleted}");
    let (status, _) = get(&http, format!("{}/api/v1/rules/mcp-btc-121", host.api())).await;
    assert_eq!(status, 404);
    let page = agent.ok("list_rules", json!({}));
    assert_eq!(page["rules"], json!([]), "{page}");
    agent.refused("delete_rule", json!({"id": "mcp-btc-121"}), "not_found");

    // The host stops promptly with the agent's session (and its event stream) still open.
    let took = terminate_within(&mut child, Duration::from_secs(15));
    assert!(
        took.is_some(),
        "the host did not stop within 15 s with an MCP session open; log:\n{}",
        host.log()
    );
    drop(agent);
    drop(redis);
}

/// The rag worker's settings: the local model of the test cache, one folder of Markdown.
fn rag_section() -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    format!(
        "[rag.embedder]\nkind = \"local\"\n\
         model_dir = \"{home}/.cache/impressox/models/all-MiniLM-L6-v2\"\n\
         [[rag.sources]]\nname = \"pages\"\nkind = \"files\"\npath = \"pages\"\ncollection = \"pages\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_mcp_serves_loopback_on_the_embedded_store_and_searches_context() {
    let host = market_host(
        "[storage]\nbackend = \"embedded\"\n",
        ", \"rag\"",
        &rag_section(),
    );
    let pages = host.dir.path().join("pages");
    std::fs::create_dir_all(&pages).unwrap();
    std::fs::write(
        pages.join("miners.md"),
        "# Bitcoin miners\n\nIREN ($IREN) reported its hashrate guidance for the quarter: \
         50 EH/s of installed capacity, with new sites in Texas coming online.\n",
    )
    .unwrap();
    std::fs::write(
        pages.join("weather.md"),
        "# Weather\n\nRain is expected over the coast this weekend, with strong winds.\n",
    )
    .unwrap();
    let _child = host.spawn(&[]);
    let http = reqwest::Client::new();
    host.wait_ready(&http).await;
    let mut agent = Agent::start(&format!("{}/mcp", host.api()), None);
    let listed = agent.ask(json!({"op": "list_tools"}));
    assert_eq!(listed["tools"].as_array().unwrap().len(), TOOLS.len());
    let rule = agent.ok(
        "watch_market",
        json!({"user_id": "agent-2", "symbol": "BTCUSDT",
               "condition": {"op": "above", "value": 1000}}),
    );
    let id = rule["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("r_"), "{rule}");
    let page = agent.ok("list_rules", json!({"user_id": "agent-2"}));
    assert_eq!(page["rules"][0]["id"], id.as_str());
    agent.ok("delete_rule", json!({"id": id}));

    // A context comes back once the rag worker has ingested the folder.
    let start = Instant::now();
    let found = loop {
        let r = agent.call(
            "search_context",
            json!({"collection": "pages", "query": "IREN hashrate guidance", "k": 3}),
        );
        if r["is_error"] == false && !r["structured"]["results"].as_array().unwrap().is_empty() {
            break r["structured"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no context after a minute: {r}; host log:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let top = &found["results"][0];
    assert!(
        top["text"].as_str().unwrap().contains("hashrate"),
        "{found}"
    );
    assert!(
        top["document_id"].is_string() && top["score"].is_number(),
        "{top}"
    );
    let msg = agent.refused(
        "search_context",
        json!({"collection": "pages", "query": "x", "k": 0}),
        "invalid_field",
    );
    assert!(msg.contains('k'), "{msg}");
    agent.quit();
}
