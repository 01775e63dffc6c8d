//! The Chroma store with token authentication switched on, through the `impressox` CLI (so
//! what a user sees, logs included, is what is checked): the right token from
//! `[rag.store] token_env` ingests and answers queries; a wrong or missing token stops at
//! start-up with an error naming the store and the variable; the token is in no output.
//!
//! The server is Chroma's own token authentication (`TokenAuthenticationServerProvider`).
//! `chroma run` cannot serve it: the Rust server of chromadb 1.x has no authentication (it
//! ignores `CHROMA_SERVER_AUTHN_*` and answers everything, checked on 1.5.9), so the
//! launcher starts the same package's Python server, which implements the same v2 API.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{pages_source, write_host_dir};
use crate::harness::impressox_in;
use crate::servers::chroma::ChromaServer;

const TOKEN: &str = "ixq-7Hn2-test-token-c4";
const WRONG: &str = "ixq-wrong-token-99";

fn write_config(dir: &Path, url: &str, token_env: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir.join("pages")).unwrap();
    std::fs::write(
        dir.join("pages/hashrate.md"),
        "# Hashrate\n\nThe network hashrate reached a record after the halving.\n",
    )
    .unwrap();
    let token_line = token_env
        .map(|v| format!("token_env = \"{v}\"\n"))
        .unwrap_or_default();
    write_host_dir(
        dir,
        &format!(
            "[rag.store]\nkind = \"chroma\"\nurl = \"{url}\"\ntenant = \"impressox_auth\"\n\
             database = \"rag\"\n{token_line}{}",
            pages_source("")
        ),
    )
}

/// Runs the CLI with `RUST_LOG=debug` and the variables given: its whole output.
fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, String) {
    let mut cmd = impressox_in(config, args);
    cmd.env("RUST_LOG", "debug");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

#[test]
fn chroma_token_auth_works_and_failures_name_the_variable_never_the_token() {
    let server = ChromaServer::start_with_token(TOKEN);
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();

    // The right token: ingest, then a query finds the page.
    let config = write_config(dir.path(), &url, Some("IMPRESSOX_TEST_CHROMA_TOKEN"));
    let env = [("IMPRESSOX_TEST_CHROMA_TOKEN", TOKEN)];
    let (out, text) = run(&config, &["rag", "ingest"], &env);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("pages: 1 changed"), "{text}");
    let (out, text) = run(&config, &["rag", "query", "network hashrate record"], &env);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("hashrate reached a record"), "{text}");
    assert!(!text.contains(TOKEN), "the token was printed: {text}");

    // A wrong token: refused at start-up, naming the store and the variable.
    let wrong = [("IMPRESSOX_TEST_CHROMA_TOKEN", WRONG)];
    let (out, text) = run(&config, &["rag", "ingest"], &wrong);
    assert!(!out.status.success(), "{text}");
    for needle in [
        "[rag.store] chroma",
        url.as_str(),
        "refused the credentials",
        "IMPRESSOX_TEST_CHROMA_TOKEN",
    ] {
        assert!(text.contains(needle), "missing {needle:?}: {text}");
    }
    assert!(!text.contains(WRONG) && !text.contains(TOKEN), "{text}");

    // The variable unset, or empty: said so before anything is sent.
    let (out, text) = run(&config, &["rag", "ingest"], &[]);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("IMPRESSOX_TEST_CHROMA_TOKEN is not set"),
        "{text}"
    );
    let (out, text) = run(
        &config,
        &["rag", "ingest"],
        &[("IMPRESSOX_TEST_CHROMA_TOKEN", "")],
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("IMPRESSOX_TEST_CHROMA_TOKEN is empty"),
        "{text}"
    );

    // No token_env at all: the server's refusal says which key sends one.
    let bare = tempfile::tempdir().unwrap();
    let config = write_config(bare.path(), &url, None);
    let (out, text) = run(&config, &["rag", "ingest"], &[]);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("requires a token") && text.contains("[rag.store] token_env"),
        "{text}"
    );

    // The server saw the requests (it is the one refusing), and never logged our token.
    let log = server.log();
    assert!(log.contains("403"), "{log}");
    assert!(!log.contains(TOKEN) && !log.contains(WRONG), "{log}");
}
