//! Self-attention of one sequence, all heads, from the fused Q|K|V projection.
//!
//! The encoder runs sequences unpadded (every sequence's tokens back to back), so there is
//! no mask: a sequence attends over exactly its own tokens. It runs per sequence on
//! rayon's pool, the loops vectorised by [`per_level!`].
//!
//! Its arithmetic is small beside the Linear layers' (2·len²·hidden multiply-adds a layer
//! against ~1.8M per token), but written as plain loops it took a third of the encoder's
//! time: every step of a query's scores went through memory. So both halves keep their
//! running results in registers, as fixed-size arrays the compiler vectorises:
//! - scores: a block of [`KEYS`] keys at a time, summed over the head's dimensions, from
//!   the head's keys transposed (`d × len`, rows padded to a whole block with zeros);
//! - the context row: the head's `d` outputs at once (`d` = 32 in MiniLM; 64 also has its
//!   own path; other sizes take a plain loop), summed over the keys.

use super::math::{per_level, softmax};

/// Keys per block of a query's scores: one AVX-512 register.
const KEYS: usize = 16;

per_level! {
    /// `ctx (len × hidden) = softmax(q·kᵀ/√d) · v` per head, where row `i` of `qkv` is token
    /// `i`'s `[q | k | v]` (`3 × hidden`).
    pub fn attend(qkv: &[f32], len: usize, hidden: usize, heads: usize, ctx: &mut [f32]) {
        let d = hidden / heads;
        let stride = 3 * hidden;
        let scale = 1.0 / (d as f32).sqrt();
        let padded = len.div_ceil(KEYS) * KEYS;
        let mut keys = vec![0f32; d * padded];
        let mut scores = vec![0f32; padded];
        for h in 0..heads {
            let (qo, ko, vo) = (h * d, hidden + h * d, 2 * hidden + h * d);
            for j in 0..len {
                for c in 0..d {
                    keys[c * padded + j] = qkv[j * stride + ko + c];
                }
            }
            for i in 0..len {
                let q = &qkv[i * stride + qo..i * stride + qo + d];
                for (block, out) in scores.chunks_exact_mut(KEYS).enumerate() {
                    let mut acc = [0f32; KEYS];
                    for (c, &qc) in q.iter().enumerate() {
                        let k = &keys[c * padded + block * KEYS..][..KEYS];
                        for (a, &kv) in acc.iter_mut().zip(k) {
                            *a += qc * kv;
                        }
                    }
                    for (o, a) in out.iter_mut().zip(acc) {
                        *o = a * scale;
                    }
                }
                softmax(&mut scores[..len]);
                let out = &mut ctx[i * hidden + qo..i * hidden + qo + d];
                let values = |j: usize| &qkv[j * stride + vo..j * stride + vo + d];
                match d {
                    32 => weighted_sum::<32>(&scores[..len], values, out),
                    64 => weighted_sum::<64>(&scores[..len], values, out),
                    _ => {
                        out.fill(0.0);
                        for (j, &p) in scores[..len].iter().enumerate() {
                            for (o, x) in out.iter_mut().zip(values(j)) {
                                *o += p * x;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `out = Σ_j p[j] · value(j)` for `D`-long rows, the sum held in registers.
#[inline(always)]
fn weighted_sum<'a, const D: usize>(
    p: &[f32],
    value: impl Fn(usize) -> &'a [f32],
    out: &mut [f32],
) {
    let mut acc = [0f32; D];
    for (j, &pj) in p.iter().enumerate() {
        for (a, &x) in acc.iter_mut().zip(&value(j)[..D]) {
            *a += pj * x;
        }
    }
    out[..D].copy_from_slice(&acc);
}
