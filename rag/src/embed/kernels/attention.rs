//! Self-attention of one sequence, all heads, from the fused Q|K|V projection.
//!
//! The encoder runs sequences unpadded (every sequence's tokens back to back), so there is
//! no mask: a sequence attends over exactly its own tokens. With a head size of 32 and
//! tweet-length sequences this is a few percent of the work; it runs per sequence on
//! rayon's pool, the loops vectorised by [`per_level!`].

use super::math::{per_level, softmax};

per_level! {
    /// `ctx (len × hidden) = softmax(q·kᵀ/√d) · v` per head, where row `i` of `qkv` is token
    /// `i`'s `[q | k | v]` (`3 × hidden`).
    pub fn attend(qkv: &[f32], len: usize, hidden: usize, heads: usize, ctx: &mut [f32]) {
        let d = hidden / heads;
        let stride = 3 * hidden;
        let scale = 1.0 / (d as f32).sqrt();
        // One head's keys transposed (d × len): a query's scores are then d multiply-adds
        // of whole rows, which vectorise, instead of len dot products of 32 (a serial sum
        // each, since float addition is not reassociated).
        let mut keys = vec![0f32; d * len];
        let mut scores = vec![0f32; len];
        for h in 0..heads {
            let (qo, ko, vo) = (h * d, hidden + h * d, 2 * hidden + h * d);
            for j in 0..len {
                for c in 0..d {
                    keys[c * len + j] = qkv[j * stride + ko + c];
                }
            }
            for i in 0..len {
                let q = &qkv[i * stride + qo..i * stride + qo + d];
                scores.fill(0.0);
                for (c, &qc) in q.iter().enumerate() {
                    let qc = qc * scale;
                    for (s, k) in scores.iter_mut().zip(&keys[c * len..(c + 1) * len]) {
                        *s += qc * k;
                    }
                }
                softmax(&mut scores);
                let out = &mut ctx[i * hidden + qo..i * hidden + qo + d];
                out.fill(0.0);
                for (j, &p) in scores.iter().enumerate() {
                    let v = &qkv[j * stride + vo..j * stride + vo + d];
                    for (o, x) in out.iter_mut().zip(v) {
                        *o += p * x;
                    }
                }
            }
        }
    }
}
