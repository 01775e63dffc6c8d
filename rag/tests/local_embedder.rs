//! The `local` embedder against the reference implementation: every sentence of
//! tests/data/corpus.json embedded by candle must match the vector sentence-transformers
//! produced for it (tests/data/minilm_reference.json, made once by
//! tests/data/make_reference.py) with a cosine of at least 0.999.
//!
//! Needs the model folder from `cargo xtask models`.

use impressox_rag::embed::kernels::{self, Level};
use impressox_rag::embed::local::{MODEL_ID, default_model_dir};
use impressox_rag::{Embedder, LocalEmbedder};

fn corpus() -> Vec<String> {
    serde_json::from_str(include_str!("data/corpus.json")).unwrap()
}

fn reference() -> Vec<Vec<f32>> {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("data/minilm_reference.json")).unwrap();
    assert_eq!(v["model"], MODEL_ID);
    assert_eq!(v["max_seq_length"], 256);
    let scale = v["scale"].as_f64().unwrap() as f32;
    v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32 / scale)
                .collect()
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn embedder() -> LocalEmbedder {
    LocalEmbedder::open(&default_model_dir()).expect("the model folder (cargo xtask models)")
}

#[test]
fn every_corpus_sentence_matches_sentence_transformers() {
    let corpus = corpus();
    let reference = reference();
    assert_eq!(corpus.len(), reference.len());
    let e = embedder();
    assert_eq!(e.dimension(), 384);
    let texts: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let got = e.embed(&texts).unwrap();
    assert_eq!(got.len(), texts.len());
    let mut worst = (1.0f32, 0usize);
    for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
        assert_eq!(g.len(), 384);
        let norm: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "text {i} not normalised: {norm}");
        let c = cosine(g, r);
        if c < worst.0 {
            worst = (c, i);
        }
        assert!(c >= 0.999, "text {i} {:?}: cosine {c}", corpus[i]);
    }
    eprintln!("worst cosine {} (text {})", worst.0, worst.1);
}

/// The AVX2 and portable kernels (what a machine without AVX-512, or without AVX2, runs)
/// against the same reference vectors; the detected level is the test above.
#[test]
fn every_kernel_level_matches_sentence_transformers() {
    let corpus = corpus();
    let reference = reference();
    let e = embedder();
    let texts: Vec<&str> = corpus.iter().map(String::as_str).collect();
    for level in [Level::Avx2, Level::Scalar] {
        kernels::force_level(Some(level));
        let got = e.embed(&texts);
        kernels::force_level(None);
        let got = got.unwrap();
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            let c = cosine(g, r);
            assert!(
                c >= 0.999,
                "{level:?}: text {i} {:?}: cosine {c}",
                corpus[i]
            );
        }
    }
}

/// A sentence embedded alone is a query's path: at most `HALF_MAX_ROWS` tokens read the
/// `f16` weights (kernels/matmul.rs). Every corpus sentence, alone, at every level, stays
/// within the same bound of the reference.
#[test]
fn each_sentence_alone_matches_sentence_transformers_at_every_level() {
    let corpus = corpus();
    let reference = reference();
    let e = embedder();
    for level in [None, Some(Level::Avx2), Some(Level::Scalar)] {
        kernels::force_level(level);
        let got: Result<Vec<Vec<f32>>, _> = corpus
            .iter()
            .map(|t| e.embed(&[t.as_str()]).map(|mut v| v.remove(0)))
            .collect();
        kernels::force_level(None);
        let mut worst = 1.0f32;
        for (i, (g, r)) in got.unwrap().iter().zip(&reference).enumerate() {
            let c = cosine(g, r);
            worst = worst.min(c);
            assert!(
                c >= 0.999,
                "{level:?}: text {i} {:?} alone: cosine {c}",
                corpus[i]
            );
        }
        eprintln!("{level:?}: worst cosine of a sentence alone {worst}");
    }
}

#[test]
fn batching_and_order_do_not_change_a_vector() {
    let corpus = corpus();
    let e = embedder();
    let texts: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let together = e.embed(&texts).unwrap();
    // One at a time (no padding at all) and reversed (other batch neighbours).
    for (i, t) in texts.iter().enumerate().step_by(7) {
        let alone = e.embed(&[t]).unwrap().remove(0);
        assert!(cosine(&alone, &together[i]) > 0.99999, "text {i}");
    }
    let reversed: Vec<&str> = texts.iter().rev().copied().collect();
    let back = e.embed(&reversed).unwrap();
    for (i, v) in back.iter().rev().enumerate() {
        assert!(cosine(v, &together[i]) > 0.99999, "text {i}");
    }
    assert!(e.embed(&[]).unwrap().is_empty());
}

#[test]
fn a_missing_model_folder_names_the_path_and_the_fix() {
    let err = LocalEmbedder::open(std::path::Path::new("/nonexistent/minilm"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("/nonexistent/minilm"), "{err}");
    assert!(err.contains("cargo xtask models"), "{err}");
}
