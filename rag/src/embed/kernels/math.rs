//! Element-wise math of the encoder, written so the compiler vectorises it: `exp` and `erf`
//! as branch-free polynomials (libm's `expf`/`erff` are opaque calls, one element at a
//! time; the exact GELU's `erf` was a tenth of candle's run time).
//!
//! Each public function compiles three times (see [`per_level!`]): for AVX-512, for
//! AVX2+FMA and for the baseline target, and picks one by [`super::level`], so the loops
//! are 16, 8 or 4 wide.
//!
//! Accuracy: [`exp`] is within ~2 ulp over the range it is used on (range reduction by
//! powers of two, then a degree-7 Taylor polynomial on |g| ≤ ln2/2); [`erf`] is the
//! Abramowitz & Stegun 7.1.26 approximation (absolute error ≤ 1.5e-7, under 1e-6 in f32), far inside
//! the 0.999 cosine the embedder is held to.

/// Declares `fn name(args) body` once and compiles the body for each [`super::Level`].
macro_rules! per_level {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")]
            fn wide($($arg: $ty),*) { body($($arg),*) }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn mid($($arg: $ty),*) { body($($arg),*) }
            match $crate::embed::kernels::level() {
                // SAFETY: `level()` never reports a level the CPU lacks.
                #[cfg(target_arch = "x86_64")]
                $crate::embed::kernels::Level::Avx512 => unsafe { wide($($arg),*) },
                // SAFETY: as above.
                #[cfg(target_arch = "x86_64")]
                $crate::embed::kernels::Level::Avx2 => unsafe { mid($($arg),*) },
                _ => body($($arg),*),
            }
        }
    };
}
pub(crate) use per_level;

/// `e^x`, for `x` clamped to [-86, 88] (below: ~4e-38; the softmax never needs less).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer, branch-free.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-86.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // n as an integer, read off the mantissa of `shifted` (it holds ROUND's bits plus n):
    // `n as i32` is a saturating conversion the compiler emits one lane at a time, which
    // made `exp` a scalar loop inside the GELU and the softmax.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    // g = x − n·ln2 in two steps, so the reduction does not lose the low bits.
    let g = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + g * (1.0
            + g * (1.0 / 2.0
                + g * (1.0 / 6.0
                    + g * (1.0 / 24.0
                        + g * (1.0 / 120.0 + g * (1.0 / 720.0 + g * (1.0 / 5040.0)))))));
    // Multiply by 2^n by adding n to the exponent field (n ∈ [-124, 127], no overflow).
    f32::from_bits(p.to_bits().wrapping_add((n_int << 23) as u32))
}

/// The error function (Abramowitz & Stegun 7.1.26).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let y = 1.0 - poly * exp(-ax * ax);
    y.copysign(x)
}

per_level! {
    /// The exact GELU in place: `x · (1 + erf(x/√2)) / 2`, as BERT's `hidden_act = "gelu"`.
    pub fn gelu(xs: &mut [f32]) {
        for x in xs.iter_mut() {
            *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// Lanes of the reductions below: 16 independent partial results, so the loops vectorise
/// (a single running sum is a chain of dependent additions the compiler must keep in order,
/// one element at a time; the softmax was 6% of the encoder's time that way).
const LANES: usize = 16;

/// `Σ xs`, in [`LANES`] partial sums.
#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, x) in lanes.iter_mut().zip(c) {
            *l += x;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `max xs` (`-inf` for none), in [`LANES`] partial maxima.
#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x > *l { x } else { *l };
        }
    }
    lanes
        .iter()
        .chain(chunks.remainder())
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

per_level! {
    /// Softmax in place (max subtracted first, so `exp` never overflows).
    pub fn softmax(xs: &mut [f32]) {
        let max = max(xs);
        for x in xs.iter_mut() {
            *x = exp(*x - max);
        }
        let inv = 1.0 / sum(xs);
        for x in xs.iter_mut() {
            *x *= inv;
        }
    }
}

per_level! {
    /// LayerNorm of every `gamma.len()`-long row of `rows`, in place (biased variance, as
    /// PyTorch).
    pub fn layer_norm(rows: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let d = gamma.len();
        for row in rows.chunks_exact_mut(d) {
            let mean = sum(row) / d as f32;
            let mut sq = [0f32; LANES];
            let mut chunks = row.chunks_exact(LANES);
            for c in &mut chunks {
                for (l, x) in sq.iter_mut().zip(c) {
                    *l += (x - mean) * (x - mean);
                }
            }
            let tail: f32 = chunks.remainder().iter().map(|x| (x - mean) * (x - mean)).sum();
            let var = (sq.iter().sum::<f32>() + tail) / d as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((x, g), b) in row.iter_mut().zip(gamma).zip(beta) {
                *x = (*x - mean) * inv * g + b;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::embed::kernels::{Level, force_level};

    /// erf by its Taylor series in f64 (to ~1e-9 on |x| ≤ 4.5, where the alternating terms
    /// still cancel without losing the digits that matter); ±1 beyond, where 1 − erf is
    /// below 2e-10.
    pub(crate) fn erf_reference(x: f64) -> f64 {
        if x.abs() > 4.5 {
            return x.signum();
        }
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_and_erf_are_accurate() {
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        for i in -80_000..=80_000 {
            let x = i as f32 / 1000.0;
            let e = exp(x) as f64;
            let want = (x as f64).exp();
            worst_exp = worst_exp.max(((e - want) / want).abs());
            if x.abs() <= 8.0 {
                worst_erf = worst_erf.max((erf(x) as f64 - erf_reference(x as f64)).abs());
            }
        }
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp}");
        // A&S's 1.5e-7 plus f32 rounding (an ulp near 1 is 6e-8).
        assert!(worst_erf < 1e-6, "erf absolute error {worst_erf}");
    }

    #[test]
    fn every_level_computes_the_same_gelu_softmax_and_norm() {
        let xs: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) / 60.0).collect();
        let mut results = Vec::new();
        for lvl in [Level::Scalar, Level::Avx2, Level::Avx512] {
            force_level(Some(lvl));
            let mut g = xs.clone();
            gelu(&mut g);
            let mut s = xs[..100].to_vec();
            softmax(&mut s);
            let mut n = xs[..200].to_vec();
            layer_norm(&mut n, &[1.5; 100], &[0.25; 100], 1e-12);
            results.push((g, s, n));
        }
        force_level(None);
        for (i, &x) in xs.iter().enumerate() {
            let want = 0.5 * x as f64 * (1.0 + erf_reference(x as f64 / 2f64.sqrt()));
            for r in &results {
                assert!((r.0[i] as f64 - want).abs() < 1e-6, "gelu({x})");
            }
        }
        let sum: f32 = results[0].1.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        for r in &results[1..] {
            for (a, b) in r.1.iter().zip(&results[0].1) {
                assert!((a - b).abs() < 1e-6);
            }
            for (a, b) in r.2.iter().zip(&results[0].2) {
                assert!((a - b).abs() < 1e-4);
            }
        }
    }
}
