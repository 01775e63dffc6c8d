//! The BERT encoder of the `local` embedder, on our own kernels (`kernels`): embeddings,
//! then `num_hidden_layers` post-LayerNorm blocks (self-attention, feed-forward with the
//! exact GELU), as Hugging Face's `BertModel` computes them in inference.
//!
//! Differences in *how*, not *what*:
//! - Sequences run unpadded: the tokens of every text of a batch sit back to back in one
//!   `tokens × hidden` matrix, so the Linear layers do no work on padding and attention
//!   needs no mask (each sequence attends over its own rows only).
//! - Q, K and V are one Linear layer (their weights stacked at load time): one pass over
//!   the activations instead of three.
//! - The residual additions happen inside the output projections (`Epilogue::Accumulate`),
//!   the GELU inside the feed-forward's first projection.
//! - Four activation buffers per forward pass, reused by every layer; no per-op tensors.
//!
//! Weights are read with candle's safetensors loader (which also converts f16/bf16 files to
//! f32) and packed once by `kernels::PackedLinear`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::Deserialize;

use super::kernels::{Epilogue, PackedLinear, attention, linear, math};

/// The fields of a Hugging Face BERT `config.json` the encoder needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_position() -> String {
    "absolute".into()
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: PackedLinear,
    out: PackedLinear,
    attn_norm: Norm,
    up: PackedLinear,
    down: PackedLinear,
    out_norm: Norm,
}

/// A loaded BERT encoder.
pub struct Bert {
    word: Vec<f32>,
    position: Vec<f32>,
    /// Token type 0's row: sentence-transformers passes all-zero token types.
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    hidden: usize,
    heads: usize,
    intermediate: usize,
    vocab: usize,
    max_positions: usize,
    eps: f32,
}

/// Tensors by name, as f32, with the `bert.` prefix some exports carry removed.
struct Weights(HashMap<String, Tensor>);

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, String> {
        let t = self
            .0
            .get(name)
            .or_else(|| self.0.get(&format!("bert.{name}")))
            .ok_or_else(|| format!("no tensor {name}"))?;
        if t.dims() != shape {
            return Err(format!("{name}: shape {:?}, expected {shape:?}", t.dims()));
        }
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("{name}: {e}"))
    }

    fn norm(&self, prefix: &str, d: usize) -> Result<Norm, String> {
        Ok(Norm {
            gamma: self.get(&format!("{prefix}.weight"), &[d])?,
            beta: self.get(&format!("{prefix}.bias"), &[d])?,
        })
    }

    fn linear(&self, prefix: &str, n: usize, k: usize) -> Result<(Vec<f32>, Vec<f32>), String> {
        Ok((
            self.get(&format!("{prefix}.weight"), &[n, k])?,
            self.get(&format!("{prefix}.bias"), &[n])?,
        ))
    }

    fn packed(&self, prefix: &str, n: usize, k: usize) -> Result<PackedLinear, String> {
        let (w, b) = self.linear(prefix, n, k)?;
        Ok(PackedLinear::new(&w, &b, n, k))
    }
}

impl Bert {
    /// Builds the encoder from a safetensors file's bytes. Errors name the tensor or the
    /// config field that does not fit.
    pub fn load(config: &BertConfig, safetensors: &[u8]) -> Result<Self, String> {
        if config.hidden_act != "gelu" {
            return Err(format!(
                "config.json: hidden_act {:?} (only \"gelu\" is supported)",
                config.hidden_act
            ));
        }
        if config.position_embedding_type != "absolute" {
            return Err(format!(
                "config.json: position_embedding_type {:?} (only \"absolute\" is supported)",
                config.position_embedding_type
            ));
        }
        let (h, i) = (config.hidden_size, config.intermediate_size);
        if config.num_attention_heads == 0 || !h.is_multiple_of(config.num_attention_heads) {
            return Err(format!(
                "config.json: hidden_size {h} is not a multiple of num_attention_heads {}",
                config.num_attention_heads
            ));
        }
        let w = Weights(
            candle_core::safetensors::load_buffer(safetensors, &Device::Cpu)
                .map_err(|e| e.to_string())?,
        );
        let word = w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = w.get(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let types = w.get(
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?;
        let embed_norm = w.norm("embeddings.LayerNorm", h)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            // Q, K, V stacked into one (3h × h) layer.
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                let (pw, pb) = w.linear(&format!("{p}.attention.self.{part}"), h, h)?;
                qkv_w.extend_from_slice(&pw);
                qkv_b.extend_from_slice(&pb);
            }
            layers.push(Layer {
                qkv: PackedLinear::new(&qkv_w, &qkv_b, 3 * h, h),
                out: w.packed(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                up: w.packed(&format!("{p}.intermediate.dense"), i, h)?,
                down: w.packed(&format!("{p}.output.dense"), h, i)?,
                out_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        Ok(Self {
            word,
            position,
            token_type: types[..h].to_vec(),
            embed_norm,
            layers,
            hidden: h,
            heads: config.num_attention_heads,
            intermediate: i,
            vocab: config.vocab_size,
            max_positions: config.max_position_embeddings,
            eps: config.layer_norm_eps as f32,
        })
    }

    /// The hidden size (the embedding's dimension).
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The last hidden state's mean over each sequence's tokens (not normalised), one
    /// vector per sequence. `seqs` are token ids with the special tokens, each at most
    /// `max_position_embeddings` long and non-empty.
    pub fn mean_pooled(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>, String> {
        let h = self.hidden;
        let mut starts = Vec::with_capacity(seqs.len() + 1);
        let mut total = 0;
        for (s, ids) in seqs.iter().enumerate() {
            if ids.is_empty() || ids.len() > self.max_positions {
                return Err(format!(
                    "text {s}: {} tokens (1 to {} fit the model)",
                    ids.len(),
                    self.max_positions
                ));
            }
            if let Some(&bad) = ids.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(format!("text {s}: token id {bad} beyond the vocabulary"));
            }
            starts.push(total);
            total += ids.len();
        }
        starts.push(total);

        // Embeddings: word + position + token type 0, then LayerNorm.
        let mut hidden = vec![0f32; total * h];
        for (ids, &start) in seqs.iter().zip(&starts) {
            for (pos, &id) in ids.iter().enumerate() {
                let row = &mut hidden[(start + pos) * h..(start + pos + 1) * h];
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let place = &self.position[pos * h..(pos + 1) * h];
                for (((x, w), p), t) in row.iter_mut().zip(word).zip(place).zip(&self.token_type) {
                    *x = w + p + t;
                }
            }
        }
        math::layer_norm(
            &mut hidden,
            &self.embed_norm.gamma,
            &self.embed_norm.beta,
            self.eps,
        );

        let mut qkv = vec![0f32; total * 3 * h];
        let mut ctx = vec![0f32; total * h];
        let mut ffn = vec![0f32; total * self.intermediate];
        for layer in &self.layers {
            linear(&hidden, total, &layer.qkv, &mut qkv, Epilogue::Bias);
            self.attention(&qkv, &starts, &mut ctx);
            linear(&ctx, total, &layer.out, &mut hidden, Epilogue::Accumulate);
            math::layer_norm(
                &mut hidden,
                &layer.attn_norm.gamma,
                &layer.attn_norm.beta,
                self.eps,
            );
            linear(&hidden, total, &layer.up, &mut ffn, Epilogue::BiasGelu);
            linear(&ffn, total, &layer.down, &mut hidden, Epilogue::Accumulate);
            math::layer_norm(
                &mut hidden,
                &layer.out_norm.gamma,
                &layer.out_norm.beta,
                self.eps,
            );
        }

        Ok(starts
            .windows(2)
            .map(|w| {
                let mut mean = vec![0f32; h];
                for row in hidden[w[0] * h..w[1] * h].chunks_exact(h) {
                    for (m, x) in mean.iter_mut().zip(row) {
                        *m += x;
                    }
                }
                let count = (w[1] - w[0]) as f32;
                mean.iter_mut().for_each(|m| *m /= count);
                mean
            })
            .collect())
    }

    /// Self-attention of every sequence, in parallel (each writes its own rows of `ctx`).
    fn attention(&self, qkv: &[f32], starts: &[usize], ctx: &mut [f32]) {
        let h = self.hidden;
        let mut parts = Vec::with_capacity(starts.len() - 1);
        let mut rest = ctx;
        for w in starts.windows(2) {
            let (part, tail) = rest.split_at_mut((w[1] - w[0]) * h);
            parts.push((w[0], w[1] - w[0], part));
            rest = tail;
        }
        parts.into_par_iter().for_each(|(start, len, part)| {
            attention::attend(
                &qkv[start * 3 * h..(start + len) * 3 * h],
                len,
                h,
                self.heads,
                part,
            );
        });
    }
}
