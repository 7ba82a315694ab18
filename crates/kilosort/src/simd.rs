//! Running hot loops with wider vectors where the CPU has them.
//!
//! The crate is built for baseline x86-64 (SSE2) so the binary runs anywhere; loops written
//! plainly (no intrinsics) get 8-wide AVX2 code when compiled inside [`with_avx2`]. Rust never
//! fuses `a * b + c` into one rounding, so the results are bit-identical either way.

/// Runs `f`, compiled with AVX2 enabled when the CPU supports it. `f` should call
/// `#[inline(always)]` code so that it is compiled into the AVX2 context.
#[inline(always)]
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        #[inline]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { run(f) };
    }
    f()
}
