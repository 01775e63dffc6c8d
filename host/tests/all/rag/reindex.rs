//! `impressox rag reindex` as a user runs it: a folder ingested with the `local` embedder,
//! the config switched to `static`, every command refusing the collection's old model with
//! the way out, `reindex`, and then queries and ingests working on the new model without
//! re-embedding anything.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::harness::impressox;

fn write_config(dir: &Path, embedder: &str) -> std::path::PathBuf {
    let path = dir.join("impressox.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = \"data\"\n[plugins]\ndir = \"plugins.d\"\n[rag.embedder]\nkind = \"{embedder}\"\n\
             [[rag.sources]]\nname = \"pages\"\nkind = \"files\"\npath = \"pages\"\ncollection = \"docs\"\n"
        ),
    )
    .unwrap();
    path
}

fn rag(config: &Path, args: &[&str]) -> Output {
    impressox()
        .args(["--config", config.to_str().unwrap(), "rag"])
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn reindex_moves_a_collection_to_the_new_embedder_and_nothing_else_is_re_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins.d");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        test_artifacts::MARKDOWN_CHUNKER,
        plugins.join("markdown-chunker.wasm"),
    )
    .unwrap();
    let pages = dir.path().join("pages");
    std::fs::create_dir_all(&pages).unwrap();
    std::fs::write(
        pages.join("a.md"),
        "# Funding\n\nFunding rates turned negative on perpetuals.",
    )
    .unwrap();
    std::fs::write(
        pages.join("b.md"),
        "# Miners\n\n$IREN added hashrate in November.",
    )
    .unwrap();

    let local = write_config(dir.path(), "local");
    let out = rag(&local, &["ingest"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pages: 2 changed"), "{}", text(&out));

    // Another embedder: the collection's model is refused, naming the fix.
    let fixed = write_config(dir.path(), "static");
    for args in [&["query", "hashrate"][..], &["ingest"][..]] {
        let out = rag(&fixed, args);
        let said = text(&out);
        assert!(!out.status.success(), "{args:?}: {said}");
        assert!(said.contains("reindex"), "{args:?}: {said}");
    }

    let out = rag(&fixed, &["reindex"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("docs: 2 chunks re-embedded"),
        "{}",
        text(&out)
    );

    let out = rag(&fixed, &["query", "hashrate miners", "--json", "-k", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["results"][0]["document_id"], "pages/b.md",
        "{answer}"
    );
    // Versions stayed valid: a new ingest embeds nothing.
    let out = rag(&fixed, &["ingest"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 chunks embedded"), "{}", text(&out));
}
