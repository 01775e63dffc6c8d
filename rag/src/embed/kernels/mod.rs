//! CPU kernels of the `local` embedder's own BERT encoder (see `embed::bert`): the matrix
//! product of a Linear layer against weights packed once at load time, and the element-wise
//! math around it (GELU, the softmax's exp).
//!
//! Why our own: candle's CPU matmul (through the `gemm` crate) runs its AVX2 micro-kernel on
//! stable Rust (its AVX-512 kernels need `nightly`), allocates every intermediate tensor, and
//! computed the exact GELU with a scalar `erf`; all-MiniLM-L6-v2 ran at 0.2x of
//! sentence-transformers on this machine. A BERT this small spends ~95% of its time in six
//! fixed-weight Linear layers per block, so a kernel for exactly that shape (activations ×
//! packed weightsᵀ, bias and GELU fused in) is where the time is.
//!
//! The instruction set is picked at run time ([`level`]): AVX-512 (16-wide FMA, 32 vector
//! registers), else AVX2+FMA, else portable scalar code. All three compute the same thing
//! in the same packed layout; tests force each one with [`force_level`].
//!
//! - [`matmul`]: packing, the parallel driver and the three micro-kernels.
//! - [`math`]: a vectorisable `exp` and `erf`, GELU, softmax, LayerNorm.
//! - [`attention`]: one sequence's self-attention.

pub mod attention;
pub mod math;
pub mod matmul;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

pub use matmul::{Epilogue, PackedLinear, linear};

/// The instruction set the kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Portable Rust, whatever the compiler makes of it for the baseline target.
    Scalar = 1,
    /// AVX2 with FMA and F16C (x86-64 since Haswell).
    Avx2 = 2,
    /// AVX-512F (Skylake-SP and later Xeons, Zen 4).
    Avx512 = 3,
}

/// 0: no override; otherwise a `Level as u8`.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// The best level this CPU supports (detected once).
pub fn detected() -> Level {
    static DETECTED: OnceLock<Level> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Level::Avx2;
            }
        }
        Level::Scalar
    })
}

/// The level in use: the detected one, or a lower one forced by [`force_level`].
pub fn level() -> Level {
    let detected = detected();
    match FORCED.load(Ordering::Relaxed) {
        1 => Level::Scalar,
        2 => Level::Avx2.min(detected),
        _ => detected,
    }
}

/// Test hook: run the kernels at `level` (never above what the CPU has), or at the detected
/// level again with `None`. Process-wide; every level computes the same results (within
/// float rounding), so a concurrent caller only changes speed, not answers.
#[doc(hidden)]
pub fn force_level(level: Option<Level>) {
    FORCED.store(level.map_or(0, |l| l as u8), Ordering::Relaxed);
}
