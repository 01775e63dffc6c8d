//! Hybrid retrieval with the real `local` embedder: a ticker query finds the tweets naming
//! the ticker, which vector search alone ranks below k (a small embedding model knows
//! little of `$IREN`), and the query's validation names the field at fault.
//!
//! Needs the model folder from `cargo xtask models`. Runs on both vector stores: the
//! embedded one (`embedded::`) and a real Chroma server (`chroma::`).

mod common;

use common::chroma::ChromaServer;
use impressox_rag::embed::local::default_model_dir;
use impressox_rag::{
    ChromaConfig, ChunkText, DocumentChunks, Filter, LocalEmbedder, Mode, Query, QueryError,
    RagIndex,
};

#[derive(Clone, Copy)]
enum Kind {
    Embedded,
    Chroma,
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(super::Kind::Embedded) } )*
        }
        mod chroma {
            $( #[test] fn $name() { super::$name(super::Kind::Chroma) } )*
        }
    };
}

on_both_backends!(
    a_ticker_query_finds_what_vector_search_ranks_below_k,
    hybrid_keeps_semantic_matches_and_filters,
    bad_queries_name_the_field,
);

/// What a test holds on to: the data dir and the server, if any.
type Held = (tempfile::TempDir, Option<ChromaServer>);

/// Tweets about markets; three name $IREN, among tickers that look like it to a WordPiece
/// model (`$IREX`, `$IRE`, `$IR`, `$REN`...): the case where exact tickers matter.
const TWEETS: &[(&str, &str)] = &[
    (
        "1",
        "Bitcoin miners are pivoting to AI data centers as hashprice falls.",
    ),
    (
        "2",
        "$BTC holding 97k support, bulls need a daily close above 100k.",
    ),
    (
        "3",
        "$ETH gas fees are at multi-year lows, good time to bridge.",
    ),
    (
        "4",
        "Added more $IREN on the dip today, the 50 MW expansion in Childress is on schedule \
         and the GPU cloud contracts look solid.",
    ),
    (
        "5",
        "Crypto stocks rallied hard: $MARA $RIOT $CLSK all green.",
    ),
    (
        "6",
        "Nvidia GPUs remain sold out; cloud providers keep raising capex.",
    ),
    (
        "7",
        "$SOL memecoin season is back, volumes up 3x this week.",
    ),
    (
        "8",
        "Long $IREN, short the index into earnings next week; hashprice is weak but the AI \
         pivot is real.",
    ),
    (
        "9",
        "Stock tickers to watch this week: $NVDA $TSLA $AAPL $MSFT.",
    ),
    ("10", "The Fed minutes were more hawkish than expected."),
    (
        "11",
        "Mining stocks outperform bitcoin for the third straight week.",
    ),
    ("12", "$COIN volume surged after the ETF approval news."),
    (
        "13",
        "Which ticker should I buy next? Drop your favourite below.",
    ),
    (
        "14",
        "$IREN Q3 revenue beat and guidance raised, management sounded confident on the call.",
    ),
    (
        "15",
        "Hashrate is at an all-time high, difficulty adjusts up 4%.",
    ),
    (
        "16",
        "$HUT and $CIFR are following the AI hosting playbook.",
    ),
    ("17", "$REN is up 12% after the Ren protocol relaunch."),
    (
        "18",
        "Irene from the trading desk says $IRE is not a real ticker.",
    ),
    ("19", "$IRBT fell after Amazon walked away from the deal."),
    ("20", "Ireland's central bank warned about crypto exposure."),
    ("21", "$IRM data center REIT hits a new all-time high."),
    ("22", "$IRDM satellite stock gaps up on earnings."),
    ("23", "$IR Ingersoll Rand beats estimates."),
    ("24", "$IREX and $IRNT were the meme tickers of 2021."),
    ("25", "IRENA report: renewable capacity grew 50% last year."),
    ("26", "$RENT and $REAL are down after guidance cuts."),
];

fn tweet(id: &str, text: &str) -> DocumentChunks {
    let tags: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '$'))
        .filter(|w| w.starts_with('$') && w.len() > 1)
        .collect();
    DocumentChunks {
        document_id: id.into(),
        version: "1".into(),
        source: "tweets".into(),
        url: Some(format!("https://x.com/i/status/{id}")),
        time_ms: Some(1_700_000_000_000 + id.parse::<i64>().unwrap()),
        chunks: vec![ChunkText {
            text: text.into(),
            start: 0,
            end: text.chars().count() as u32,
            metadata: vec![("cashtags".into(), tags.join(","))],
        }],
    }
}

fn setup(kind: Kind) -> (Held, RagIndex, LocalEmbedder) {
    let dir = tempfile::tempdir().unwrap();
    let (server, index) = match kind {
        Kind::Embedded => (None, RagIndex::open(dir.path()).unwrap()),
        Kind::Chroma => {
            let server = ChromaServer::start();
            let index = RagIndex::open_chroma(ChromaConfig::new(server.url()), dir.path()).unwrap();
            (Some(server), index)
        }
    };
    let embedder = LocalEmbedder::open(&default_model_dir()).expect("cargo xtask models");
    let docs = TWEETS.iter().map(|(id, t)| tweet(id, t)).collect();
    index.embed_and_upsert("tweets", &embedder, docs).unwrap();
    ((dir, server), index, embedder)
}

fn query(text: &str, k: usize, mode: Mode) -> Query {
    Query {
        collection: "tweets".into(),
        text: text.into(),
        k,
        mode,
        filter: Filter::default(),
        min_score: None,
    }
}

fn ids(hits: &[impressox_rag::Hit]) -> Vec<String> {
    hits.iter().map(|h| h.chunk.document_id.clone()).collect()
}

fn a_ticker_query_finds_what_vector_search_ranks_below_k(kind: Kind) {
    let (_held, index, e) = setup(kind);
    let iren = ["4", "8", "14"];
    let k = 3;
    let vector = index.query(&e, &query("$IREN", k, Mode::Vector)).unwrap();
    let vector_ids = ids(&vector);
    eprintln!("vector: {vector_ids:?}");
    let missed = iren
        .iter()
        .filter(|id| !vector_ids.iter().any(|v| v == *id))
        .count();
    assert!(
        missed > 0,
        "vector search alone found every $IREN tweet: {vector_ids:?}"
    );

    let hybrid = index.query(&e, &query("$IREN", k, Mode::Hybrid)).unwrap();
    let mut hybrid_ids = ids(&hybrid);
    eprintln!("hybrid: {hybrid_ids:?}");
    hybrid_ids.sort();
    assert_eq!(hybrid_ids, ["14", "4", "8"]);
    for h in &hybrid {
        assert!(h.lexical_score.is_some());
        assert!(h.score > 0.0);
    }

    // Lexical alone finds them too, and not the tweets that only say "ticker".
    let lexical = index.query(&e, &query("$IREN", 10, Mode::Lexical)).unwrap();
    let mut lexical_ids = ids(&lexical);
    lexical_ids.sort();
    assert_eq!(lexical_ids, ["14", "4", "8"]);

    // The default mode is hybrid.
    assert_eq!(Mode::default(), Mode::Hybrid);
}

fn hybrid_keeps_semantic_matches_and_filters(kind: Kind) {
    let (_held, index, e) = setup(kind);
    let hits = index
        .query(
            &e,
            &query(
                "companies turning mining sites into AI hosting",
                5,
                Mode::Hybrid,
            ),
        )
        .unwrap();
    assert_eq!(hits.len(), 5);
    assert!(hits.iter().any(|h| h.vector_score.is_some()));
    let mut q = query("$IREN earnings", 5, Mode::Hybrid);
    q.filter.cashtag = Some("IREN".into());
    q.filter.since_ms = Some(1_700_000_000_005);
    let hits = index.query(&e, &q).unwrap();
    let mut got = ids(&hits);
    got.sort();
    assert_eq!(got, ["14", "8"]);
    let first = &hits[0].chunk;
    assert_eq!(first.source, "tweets");
    assert!(
        first
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://x.com/i/status/")
    );
}

fn bad_queries_name_the_field(kind: Kind) {
    let (_held, index, e) = setup(kind);
    let field = |q: Query| match index.query(&e, &q) {
        Err(QueryError::Invalid { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(query("  ", 5, Mode::Hybrid)), "query");
    assert_eq!(field(query("btc", 0, Mode::Hybrid)), "k");
    assert_eq!(field(query("btc", 101, Mode::Hybrid)), "k");
    let mut q = query("btc", 5, Mode::Hybrid);
    q.collection = "nope".into();
    assert_eq!(field(q), "collection");
    let mut q = query("btc", 5, Mode::Vector);
    q.min_score = Some(f32::NAN);
    assert_eq!(field(q), "min_score");
    assert!(matches!(
        "fuzzy".parse::<Mode>(),
        Err(QueryError::Invalid { field: "mode", .. })
    ));
    // A query that is all punctuation has no lexical terms: no lexical hits, no error.
    assert!(
        index
            .query(&e, &query("!!!", 5, Mode::Lexical))
            .unwrap()
            .is_empty()
    );
}
