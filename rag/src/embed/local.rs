//! The `local` embedder: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions) run in-process
//! in pure Rust (our encoder, `embed::bert`, on our kernels, `embed::kernels`; candle reads
//! the weights), from the model folder that `cargo xtask models` unpacks. Nothing is
//! fetched.
//!
//! It reproduces sentence-transformers' pipeline for this model (modules.json: Transformer,
//! Pooling, Normalize):
//! 1. WordPiece with `[CLS]`/`[SEP]`, truncated at `max_seq_length` (256 for this model,
//!    from `sentence_bert_config.json`; the 128 saved in `tokenizer.json` is not what
//!    sentence-transformers uses, it sets its own).
//! 2. The BERT encoder's last hidden state.
//! 3. Mean over the tokens the attention mask keeps (padding excluded).
//! 4. L2 normalisation.
//!
//! Speed: the encoder runs a batch's texts unpadded, back to back, so no work goes to
//! padding and the order of texts does not matter; a batch is cut at [`MAX_BATCH`] texts or
//! [`MAX_BATCH_TOKENS`] tokens, which bounds the activation buffers (the feed-forward's is
//! `tokens × 1536` floats, 25 MB at the cap).

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use super::bert::{Bert, BertConfig};
use super::{EmbedError, Embedder, normalise};

/// The model id collections record for this embedder.
pub const MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// At most this many texts go through the model at once.
const MAX_BATCH: usize = 64;
/// At most this many tokens per forward pass (a text alone may have up to the model's
/// 256).
const MAX_BATCH_TOKENS: usize = 4096;

/// all-MiniLM-L6-v2 on the CPU.
pub struct LocalEmbedder {
    model: Bert,
    tokenizer: Tokenizer,
    dimension: usize,
    dir: PathBuf,
}

impl LocalEmbedder {
    /// Opens the sentence-transformers folder `dir` (config.json, model.safetensors,
    /// tokenizer.json, sentence_bert_config.json).
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
        let config: BertConfig = serde_json::from_slice(&read("config.json")?)
            .map_err(|e| err(format!("config.json: {e}")))?;
        let max_seq = match read("sentence_bert_config.json") {
            Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("max_seq_length")?.as_u64())
                .map(|n| n as usize)
                .ok_or_else(|| err("sentence_bert_config.json: no max_seq_length".into()))?,
            // A plain BERT folder: the model's own position limit.
            Err(_) => config_max_positions(&read("config.json")?).unwrap_or(512),
        };
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| err(format!("tokenizer.json: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq,
                strategy: TruncationStrategy::LongestFirst,
                ..Default::default()
            }))
            .map_err(|e| err(format!("tokenizer truncation: {e}")))?;
        // Padding is ours, per sorted batch.
        tokenizer.with_padding(None);
        let weights = read("model.safetensors")?;
        let model =
            Bert::load(&config, &weights).map_err(|e| err(format!("model.safetensors: {e}")))?;
        let dimension = model.hidden();
        Ok(Self {
            model,
            tokenizer,
            dimension,
            dir: dir.to_path_buf(),
        })
    }

    /// One forward pass over texts already tokenized: `ids[i]` are token ids with the
    /// special tokens. Returns one normalised vector per text.
    fn forward(&self, ids: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = self
            .model
            .mean_pooled(ids)
            .map_err(|message| EmbedError::Compute {
                model: self.dir.display().to_string(),
                message,
            })?;
        for v in &mut out {
            normalise(v);
        }
        Ok(out)
    }
}

fn config_max_positions(config: &[u8]) -> Option<usize> {
    serde_json::from_slice::<serde_json::Value>(config)
        .ok()?
        .get("max_position_embeddings")?
        .as_u64()
        .map(|n| n as usize)
}

impl Embedder for LocalEmbedder {
    fn model_id(&self) -> &str {
        MODEL_ID
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize {
                index: 0,
                message: e.to_string(),
            })?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < ids.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < ids.len()
                && end - start < MAX_BATCH
                && (end == start || tokens + ids[end].len() <= MAX_BATCH_TOKENS)
            {
                tokens += ids[end].len();
                end += 1;
            }
            out.extend(self.forward(&ids[start..end])?);
            start = end;
        }
        Ok(out)
    }
}

/// `~/.cache/impressox/models/all-MiniLM-L6-v2`: where `cargo xtask models` unpacks the
/// model (the default of `[rag.embedder] model_dir`).
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
        .join(".cache/impressox/models/all-MiniLM-L6-v2")
}
