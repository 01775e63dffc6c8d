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
//!   own path; other sizes take a plain loop), summed over the keys;
//! - both for [`QUERIES`] queries at a time, so each key or value row loaded from memory
//!   serves that many multiply-adds (1.15x → 1.24x of sentence-transformers).

use super::math::{per_level, softmax};

/// Keys per block of a query's scores: one AVX-512 register.
const KEYS: usize = 16;

/// Queries per step: each key or value row loaded serves this many FMAs.
const QUERIES: usize = 4;

per_level! {
    /// `ctx (len × hidden) = softmax(q·kᵀ/√d) · v` per head, where row `i` of `qkv` is token
    /// `i`'s `[q | k | v]` (`3 × hidden`).
    pub fn attend(qkv: &[f32], len: usize, hidden: usize, heads: usize, ctx: &mut [f32]) {
        let d = hidden / heads;
        let stride = 3 * hidden;
        let scale = 1.0 / (d as f32).sqrt();
        let padded = len.div_ceil(KEYS) * KEYS;
        let mut keys = vec![0f32; d * padded];
        // The scores of a step's queries, one padded row each.
        let mut scores = vec![0f32; QUERIES * padded];
        for h in 0..heads {
            let (qo, ko, vo) = (h * d, hidden + h * d, 2 * hidden + h * d);
            for j in 0..len {
                for c in 0..d {
                    keys[c * padded + j] = qkv[j * stride + ko + c];
                }
            }
            let values = |j: usize| &qkv[j * stride + vo..j * stride + vo + d];
            for first in (0..len).step_by(QUERIES) {
                let rows = QUERIES.min(len - first);
                // A short last step repeats its last query; those rows are not written.
                let q = |r: usize, c: usize| qkv[(first + r.min(rows - 1)) * stride + qo + c];
                for block in 0..padded / KEYS {
                    let mut acc = [[0f32; KEYS]; QUERIES];
                    for c in 0..d {
                        let k = &keys[c * padded + block * KEYS..][..KEYS];
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let qc = q(r, c);
                            for (a, &kv) in acc.iter_mut().zip(k) {
                                *a += qc * kv;
                            }
                        }
                    }
                    for (r, acc) in acc.iter().enumerate() {
                        let out = &mut scores[r * padded + block * KEYS..][..KEYS];
                        for (o, a) in out.iter_mut().zip(acc) {
                            *o = a * scale;
                        }
                    }
                }
                for r in 0..rows {
                    softmax(&mut scores[r * padded..r * padded + len]);
                }
                let p = |r: usize, j: usize| scores[r * padded + j];
                let ctx_rows = &mut ctx[first * hidden..];
                match d {
                    32 => weighted_sums::<32>(len, rows, hidden, qo, p, values, ctx_rows),
                    64 => weighted_sums::<64>(len, rows, hidden, qo, p, values, ctx_rows),
                    _ => {
                        for r in 0..rows {
                            let out = &mut ctx_rows[r * hidden + qo..r * hidden + qo + d];
                            out.fill(0.0);
                            for j in 0..len {
                                let pj = p(r, j);
                                for (o, x) in out.iter_mut().zip(values(j)) {
                                    *o += pj * x;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// For each of a step's `rows` queries `r`: its head's `D` context columns (from `qo`) of
/// row `r` of `ctx` = `Σ_j p(r, j) · value(j)`, all [`QUERIES`] sums held in registers (a
/// short step computes its missing rows from stale scores and drops them).
#[inline(always)]
fn weighted_sums<'a, const D: usize>(
    len: usize,
    rows: usize,
    hidden: usize,
    qo: usize,
    p: impl Fn(usize, usize) -> f32,
    value: impl Fn(usize) -> &'a [f32],
    ctx: &mut [f32],
) {
    let mut acc = [[0f32; D]; QUERIES];
    for j in 0..len {
        let v = &value(j)[..D];
        for (r, acc) in acc.iter_mut().enumerate() {
            let pj = p(r, j);
            for (a, &x) in acc.iter_mut().zip(v) {
                *a += pj * x;
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(rows) {
        ctx[r * hidden + qo..r * hidden + qo + D].copy_from_slice(acc);
    }
}
