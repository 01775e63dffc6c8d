//! The `local` embedder: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions) run in-process
//! with candle, from the model folder that `cargo xtask models` unpacks. Nothing is fetched.
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
//! Speed: texts are sorted by token count before batching, so a batch pads to a length
//! close to each of its texts' (padding is wasted attention and matmul work); batches are cut
//! at [`MAX_BATCH_TOKENS`] padded tokens so long texts do not build huge attention tensors.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams, TruncationStrategy};

use super::{EmbedError, Embedder, normalise};

/// The model id collections record for this embedder.
pub const MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// At most this many texts go through the model at once.
const MAX_BATCH: usize = 32;
/// At most this many padded tokens (texts × longest) per forward pass.
const MAX_BATCH_TOKENS: usize = 32 * 64;

/// all-MiniLM-L6-v2 on the CPU.
pub struct LocalEmbedder {
    model: BertModel,
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
        let config: Config = serde_json::from_slice(&read("config.json")?)
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
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| err(format!("model.safetensors: {e}")))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| err(format!("model.safetensors: {e}")))?;
        let dimension = serde_json::from_slice::<serde_json::Value>(&read("config.json")?)
            .ok()
            .and_then(|v| v.get("hidden_size")?.as_u64())
            .ok_or_else(|| err("config.json: no hidden_size".into()))?
            as usize;
        Ok(Self {
            model,
            tokenizer,
            dimension,
            dir: dir.to_path_buf(),
        })
    }

    fn compute_err(&self, e: candle_core::Error) -> EmbedError {
        EmbedError::Compute {
            model: self.dir.display().to_string(),
            message: e.to_string(),
        }
    }

    /// One forward pass over texts already tokenized: `ids[i]` are token ids with the
    /// special tokens. Returns one normalised vector per text.
    fn forward(&self, ids: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = ids.len();
        let len = ids.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut flat_ids = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (row, t) in ids.iter().enumerate() {
            flat_ids[row * len..row * len + t.len()].copy_from_slice(t);
            mask[row * len..row * len + t.len()].fill(1);
        }
        let dev = &Device::Cpu;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let input = Tensor::from_vec(flat_ids, (n, len), dev)?;
            let mask_t = Tensor::from_vec(mask.clone(), (n, len), dev)?;
            let types = input.zeros_like()?;
            let hidden = self.model.forward(&input, &types, Some(&mask_t))?;
            // (n, len, dim) → rows; mean over the kept tokens, done here on plain slices
            // (cheaper than building mask tensors for a sum).
            let hidden = hidden
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let dim = self.dimension;
            let mut out = Vec::with_capacity(n);
            for (row, t) in ids.iter().enumerate() {
                let mut v = vec![0f32; dim];
                for tok in 0..t.len() {
                    let at = (row * len + tok) * dim;
                    for (acc, x) in v.iter_mut().zip(&hidden[at..at + dim]) {
                        *acc += x;
                    }
                }
                let count = (t.len() as f32).max(1e-9);
                for x in &mut v {
                    *x /= count;
                }
                normalise(&mut v);
                out.push(v);
            }
            Ok(out)
        };
        run().map_err(|e| self.compute_err(e))
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
        // Longest first, so the first batch (the most expensive) sets the pace and every
        // batch pads to about its own texts' length.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let longest = ids[order[start]].len().max(1);
            let fit = (MAX_BATCH_TOKENS / longest).clamp(1, MAX_BATCH);
            let end = (start + fit).min(order.len());
            let batch: Vec<&[u32]> = order[start..end].iter().map(|&i| ids[i]).collect();
            for (&i, v) in order[start..end].iter().zip(self.forward(&batch)?) {
                out[i] = v;
            }
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
