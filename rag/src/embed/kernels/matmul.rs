//! `out = act(a · wᵀ + bias)` for a Linear layer whose weights `w` (`n × k`, PyTorch's
//! `(out_features, in_features)` layout) are fixed: they are packed once, at load time,
//! into panels of [`NR`] output columns, `k`-major (`panel[kk][0..NR]`), so the
//! micro-kernel reads each step's 32 weights as two contiguous 64-byte loads.
//!
//! The micro-kernel keeps a tile of `MR` rows × 32 columns of the result in registers
//! (AVX-512: 12 × 2 zmm = 24 of the 32 registers) and walks `k` once, broadcasting one
//! activation per row per step. The driver splits the rows into blocks and, when there are
//! too few rows to keep every thread busy (a single query), the panels into groups, and
//! runs the pieces on rayon's pool; every piece writes its own part of `out`.
//!
//! A call with few rows (a query: one short sentence, ~10 tokens) does ten multiply-adds
//! per weight it reads, so its time is the time to read the weights (42 MB for
//! all-MiniLM-L6-v2), not the arithmetic. Each layer therefore also keeps a copy of its
//! panels in IEEE half precision (`f16`: 11 significant bits, every weight of this model in
//! range), which calls of at most [`HALF_MAX_ROWS`] rows read and widen to `f32` in
//! registers (`vcvtph2ps`): half the bytes. The sums stay `f32`. Batches keep the `f32`
//! panels: they are bound by arithmetic, where the widening would be an extra instruction
//! per load. The portable level reads `f32` always.
//!
//! The bias is added as the tile is stored; [`Epilogue::Accumulate`] adds the product into
//! `out` (a residual connection needs no separate pass); GELU runs over a block's rows right
//! after they are written, while they are still in cache.

use rayon::prelude::*;

use super::{Level, level, math};

/// Output columns per packed panel (two AVX-512 vectors).
pub const NR: usize = 32;
/// Rows per block a task owns: a block's activations (`ROW_BLOCK × k`) stay in L2 while
/// every panel passes over them.
const ROW_BLOCK: usize = 48;
/// Calls with at most this many rows read the `f16` panels (see the module overview).
pub const HALF_MAX_ROWS: usize = 32;

/// What happens to `a · wᵀ + bias` on its way into `out`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    /// `out = a·wᵀ + bias`.
    Bias,
    /// `out = gelu(a·wᵀ + bias)` (the exact, erf-based GELU).
    BiasGelu,
    /// `out += a·wᵀ + bias` (a residual connection).
    Accumulate,
}

/// A Linear layer's weights and bias, packed for [`linear`].
pub struct PackedLinear {
    n: usize,
    k: usize,
    /// `ceil(n / NR)` panels of `k × NR`, zero beyond column `n`.
    panels: Vec<f32>,
    /// The same panels as `f16` bit patterns (round to nearest even).
    half_panels: Vec<u16>,
    /// `ceil(n / NR) × NR`, zero beyond `n`.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `weight` (`n × k`, row-major) and `bias` (`n`).
    pub fn new(weight: &[f32], bias: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not {n} x {k}");
        assert_eq!(bias.len(), n, "bias is not {n} long");
        let np = n.div_ceil(NR);
        let mut panels = vec![0f32; np * k * NR];
        for col in 0..n {
            let (p, j) = (col / NR, col % NR);
            let panel = &mut panels[p * k * NR..(p + 1) * k * NR];
            for (kk, &w) in weight[col * k..(col + 1) * k].iter().enumerate() {
                panel[kk * NR + j] = w;
            }
        }
        let mut padded = vec![0f32; np * NR];
        padded[..n].copy_from_slice(bias);
        let half_panels = panels
            .iter()
            .map(|&w| half::f16::from_f32(w).to_bits())
            .collect();
        Self {
            n,
            k,
            panels,
            half_panels,
            bias: padded,
        }
    }

    /// Output columns.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input columns.
    pub fn k(&self) -> usize {
        self.k
    }

    fn panel_count(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

/// A raw pointer that tasks share: each writes a disjoint part of the output.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the driver hands every task a disjoint set of (row, column) cells.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `out (m × n) = epilogue(a (m × k) · wᵀ + bias)`, on rayon's pool.
pub fn linear(a: &[f32], m: usize, w: &PackedLinear, out: &mut [f32], epilogue: Epilogue) {
    let (n, k) = (w.n, w.k);
    assert!(a.len() >= m * k, "activations shorter than {m} x {k}");
    assert!(out.len() >= m * n, "output shorter than {m} x {n}");
    if m == 0 {
        return;
    }
    let level = level();
    let half = m <= HALF_MAX_ROWS && level >= Level::Avx2;
    let row_blocks = m.div_ceil(ROW_BLOCK);
    let panels = w.panel_count();
    let threads = rayon::current_num_threads().max(1);
    // Few rows (a single query): split the columns too, or one thread does all the work.
    let col_groups = if row_blocks >= 2 * threads {
        1
    } else {
        (2 * threads).div_ceil(row_blocks).min(panels)
    };
    let per_group = panels.div_ceil(col_groups);
    let ptr = OutPtr(out.as_mut_ptr());
    let task = |t: usize| {
        let (rb, g) = (t / col_groups, t % col_groups);
        let rows = rb * ROW_BLOCK..((rb + 1) * ROW_BLOCK).min(m);
        let cols = g * per_group..((g + 1) * per_group).min(panels);
        // SAFETY: `rows × cols` of different tasks do not overlap, `out` outlives the
        // tasks (they end before `linear` returns), and the bounds were checked above.
        unsafe { block(level, half, a, w, ptr, rows, cols, epilogue) };
    };
    let tasks = row_blocks * col_groups;
    if tasks == 1 {
        task(0);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

/// Rows `rows` × panels `panels` of the output.
///
/// # Safety
/// `out` points to at least `rows.end × w.n` floats, and no one else touches this part.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    level: Level,
    half: bool,
    a: &[f32],
    w: &PackedLinear,
    out: OutPtr,
    rows: std::ops::Range<usize>,
    panels: std::ops::Range<usize>,
    epilogue: Epilogue,
) {
    let (n, k) = (w.n, w.k);
    let mr = match level {
        Level::Avx512 => 12,
        Level::Avx2 => 3,
        Level::Scalar => 4,
    };
    let accumulate = epilogue == Epilogue::Accumulate;
    for p in panels.clone() {
        let col0 = p * NR;
        let cols = NR.min(n - col0);
        let span = p * k * NR..(p + 1) * k * NR;
        let b = if half {
            Panel::Half(&w.half_panels[span])
        } else {
            Panel::Full(&w.panels[span])
        };
        let bias = &w.bias[col0..col0 + NR];
        let mut r = rows.start;
        while r < rows.end {
            let h = mr.min(rows.end - r);
            let a_tile = &a[r * k..];
            // SAFETY: rows r..r+h and columns col0..col0+cols lie inside `out`.
            let c = unsafe { out.0.add(r * n + col0) };
            if cols == NR {
                // SAFETY: as above; the tile is h × NR with row stride n.
                unsafe { tile(level, h, a_tile, k, b, bias, c, n, accumulate) };
            } else {
                // The last, partial panel: compute a full tile aside, keep `cols` columns.
                let mut aside = [0f32; 12 * NR];
                for i in 0..h {
                    for j in 0..cols {
                        // SAFETY: inside the output, see above.
                        aside[i * NR + j] = unsafe { *c.add(i * n + j) };
                    }
                }
                // SAFETY: `aside` holds h × NR floats with row stride NR.
                unsafe {
                    tile(
                        level,
                        h,
                        a_tile,
                        k,
                        b,
                        bias,
                        aside.as_mut_ptr(),
                        NR,
                        accumulate,
                    )
                };
                for i in 0..h {
                    for j in 0..cols {
                        // SAFETY: inside the output, see above.
                        unsafe { *c.add(i * n + j) = aside[i * NR + j] };
                    }
                }
            }
            r += h;
        }
    }
    if epilogue == Epilogue::BiasGelu {
        let col0 = panels.start * NR;
        let col1 = (panels.end * NR).min(n);
        for r in rows {
            // SAFETY: this task's own cells of row r.
            let row =
                unsafe { std::slice::from_raw_parts_mut(out.0.add(r * n + col0), col1 - col0) };
            math::gelu(row);
        }
    }
}

/// One panel of `k × NR` weights, in either precision.
#[derive(Clone, Copy)]
enum Panel<'a> {
    Full(&'a [f32]),
    /// `f16` bits; only at [`Level::Avx2`] and above.
    Half(&'a [u16]),
}

/// One tile of `h ≤ MR` rows: `c[i][0..NR] (+)= bias + Σ_kk a[i·k + kk] · b[kk·NR..]`.
///
/// # Safety
/// `c` addresses `h` rows of `NR` floats with row stride `ldc`; `a` holds `h` rows of `k`.
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    level: Level,
    h: usize,
    a: &[f32],
    k: usize,
    b: Panel<'_>,
    bias: &[f32],
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let (bp, half, b_len) = match b {
        Panel::Full(p) => (p.as_ptr().cast::<u8>(), false, p.len()),
        Panel::Half(p) => (p.as_ptr().cast::<u8>(), true, p.len()),
    };
    debug_assert!(a.len() >= (h - 1) * k + k && b_len >= k * NR && bias.len() >= NR);
    let (a, bias) = (a.as_ptr(), bias.as_ptr());
    // SAFETY (all arms): the caller's contract; each level's kernel only runs when the CPU
    // has its features (`level()` never reports more than `detected()`).
    match (level, b) {
        #[cfg(target_arch = "x86_64")]
        (Level::Avx512, _) => unsafe {
            macro_rules! go { ($half:literal; $($r:literal)*) => { match h {
                $($r => avx512::tile::<$r, $half>(a, k, bp, k, bias, c, ldc, accumulate),)*
                _ => unreachable!(),
            } } }
            if half {
                go!(true; 1 2 3 4 5 6 7 8 9 10 11 12)
            } else {
                go!(false; 1 2 3 4 5 6 7 8 9 10 11 12)
            }
        },
        #[cfg(target_arch = "x86_64")]
        (Level::Avx2, _) => unsafe {
            macro_rules! go {
                ($half:literal) => {
                    match h {
                        1 => avx2::tile::<1, $half>(a, k, bp, k, bias, c, ldc, accumulate),
                        2 => avx2::tile::<2, $half>(a, k, bp, k, bias, c, ldc, accumulate),
                        3 => avx2::tile::<3, $half>(a, k, bp, k, bias, c, ldc, accumulate),
                        _ => unreachable!(),
                    }
                };
            }
            if half { go!(true) } else { go!(false) }
        },
        (_, Panel::Full(b)) => unsafe {
            scalar_tile(h, a, k, b.as_ptr(), k, bias, c, ldc, accumulate)
        },
        (_, Panel::Half(_)) => unreachable!("f16 panels are read from AVX2 up only"),
    }
}

/// The portable kernel: one row at a time, 32 accumulators the compiler may vectorise.
///
/// # Safety
/// As [`tile`].
#[allow(clippy::too_many_arguments)]
unsafe fn scalar_tile(
    h: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    k: usize,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    for i in 0..h {
        let mut acc = [0f32; NR];
        for kk in 0..k {
            // SAFETY: inside the caller's rows and panel.
            let (av, brow) = unsafe {
                (
                    *a.add(i * lda + kk),
                    std::slice::from_raw_parts(b.add(kk * NR), NR),
                )
            };
            for (x, &bw) in acc.iter_mut().zip(brow) {
                *x += av * bw;
            }
        }
        for (j, x) in acc.iter().enumerate() {
            // SAFETY: inside the caller's tile.
            unsafe {
                let dst = c.add(i * ldc + j);
                let v = x + *bias.add(j);
                *dst = if accumulate { *dst + v } else { v };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::NR;

    /// `R` rows × 32 columns in 2R zmm accumulators; one broadcast per row per `k` step
    /// (folded into the FMA's memory operand), two weight loads shared by all rows. `b`
    /// is a panel of `f32`, or of `f16` bits when `HALF` (widened as loaded).
    ///
    /// # Safety
    /// AVX-512F present; pointers as [`super::tile`].
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile<const R: usize, const HALF: bool>(
        a: *const f32,
        lda: usize,
        b: *const u8,
        k: usize,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        // SAFETY: all reads are inside `a`'s R rows of `k` and the panel's k × NR.
        unsafe {
            for kk in 0..k {
                let (b0, b1) = if HALF {
                    let p = b.cast::<u16>().add(kk * NR);
                    (
                        _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())),
                        _mm512_cvtph_ps(_mm256_loadu_si256(p.add(16).cast())),
                    )
                } else {
                    let p = b.cast::<f32>().add(kk * NR);
                    (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)))
                };
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r * lda + kk));
                    acc[0] = _mm512_fmadd_ps(av, b0, acc[0]);
                    acc[1] = _mm512_fmadd_ps(av, b1, acc[1]);
                }
            }
            let bias0 = _mm512_loadu_ps(bias);
            let bias1 = _mm512_loadu_ps(bias.add(16));
            for (r, acc) in acc.iter().enumerate() {
                let dst = c.add(r * ldc);
                let mut v0 = _mm512_add_ps(acc[0], bias0);
                let mut v1 = _mm512_add_ps(acc[1], bias1);
                if accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(dst));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(dst.add(16)));
                }
                _mm512_storeu_ps(dst, v0);
                _mm512_storeu_ps(dst.add(16), v1);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::NR;

    /// `R ≤ 3` rows × 32 columns in 4R ymm accumulators (AVX2 has 16 registers); `b` as
    /// in the AVX-512 kernel.
    ///
    /// # Safety
    /// AVX2, FMA and F16C present; pointers as [`super::tile`].
    #[target_feature(enable = "avx2,fma,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn tile<const R: usize, const HALF: bool>(
        a: *const f32,
        lda: usize,
        b: *const u8,
        k: usize,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        // SAFETY: as the AVX-512 kernel.
        unsafe {
            for kk in 0..k {
                let bv = if HALF {
                    let p = b.cast::<u16>().add(kk * NR);
                    [
                        _mm256_cvtph_ps(_mm_loadu_si128(p.cast())),
                        _mm256_cvtph_ps(_mm_loadu_si128(p.add(8).cast())),
                        _mm256_cvtph_ps(_mm_loadu_si128(p.add(16).cast())),
                        _mm256_cvtph_ps(_mm_loadu_si128(p.add(24).cast())),
                    ]
                } else {
                    let p = b.cast::<f32>().add(kk * NR);
                    [
                        _mm256_loadu_ps(p),
                        _mm256_loadu_ps(p.add(8)),
                        _mm256_loadu_ps(p.add(16)),
                        _mm256_loadu_ps(p.add(24)),
                    ]
                };
                for (r, acc) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*a.add(r * lda + kk));
                    for (x, &w) in acc.iter_mut().zip(&bv) {
                        *x = _mm256_fmadd_ps(av, w, *x);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let dst = c.add(r * ldc);
                for (q, &x) in acc.iter().enumerate() {
                    let mut v = _mm256_add_ps(x, _mm256_loadu_ps(bias.add(q * 8)));
                    if accumulate {
                        v = _mm256_add_ps(v, _mm256_loadu_ps(dst.add(q * 8)));
                    }
                    _mm256_storeu_ps(dst.add(q * 8), v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::kernels::force_level;

    /// Every level against a plain triple loop, on shapes with partial tiles and panels.
    /// Calls of at most `HALF_MAX_ROWS` rows at AVX2 and up must equal the product with the
    /// weights rounded to `f16` (and differ from the `f32` one where `k` is large: the
    /// shape 8 × 64 × 384 tells the two apart), the others the `f32` product.
    #[test]
    fn every_level_matches_the_naive_product() {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        for &(m, n, k) in &[
            (1, 32, 8),
            (8, 64, 384),
            (32, 40, 100),
            (33, 40, 100),
            (13, 70, 33),
            (50, 96, 384),
            (5, 1536, 64),
            (97, 40, 17),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| rnd()).collect();
            let w: Vec<f32> = (0..n * k).map(|_| rnd()).collect();
            let bias: Vec<f32> = (0..n).map(|_| rnd()).collect();
            let resid: Vec<f32> = (0..m * n).map(|_| rnd()).collect();
            let packed = PackedLinear::new(&w, &bias, n, k);
            let naive = |w: &[f32]| {
                let mut want = vec![0f32; m * n];
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|kk| a[i * k + kk] as f64 * w[j * k + kk] as f64)
                            .sum();
                        want[i * n + j] = dot as f32 + bias[j];
                    }
                }
                want
            };
            let want_full = naive(&w);
            let w_half: Vec<f32> = w.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect();
            let want_half = naive(&w_half);
            for lvl in [Level::Scalar, Level::Avx2, Level::Avx512] {
                force_level(Some(lvl));
                let half = m <= HALF_MAX_ROWS && level() >= Level::Avx2;
                let want = if half { &want_half } else { &want_full };
                let mut got = vec![f32::NAN; m * n];
                linear(&a, m, &packed, &mut got, Epilogue::Bias);
                let mut acc = resid.clone();
                linear(&a, m, &packed, &mut acc, Epilogue::Accumulate);
                let mut gelu = vec![0f32; m * n];
                linear(&a, m, &packed, &mut gelu, Epilogue::BiasGelu);
                for i in 0..m * n {
                    assert!(
                        (got[i] - want[i]).abs() < 1e-4,
                        "{lvl:?} {m}x{n}x{k} at {i}"
                    );
                    assert!(
                        (acc[i] - want[i] - resid[i]).abs() < 1e-4,
                        "{lvl:?} accumulate"
                    );
                    let x = want[i] as f64;
                    let g = 0.5 * x * (1.0 + math::tests::erf_reference(x / 2f64.sqrt()));
                    assert!((gelu[i] as f64 - g).abs() < 1e-4, "{lvl:?} gelu");
                }
            }
            force_level(None);
        }
    }
}
