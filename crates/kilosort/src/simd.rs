//! Running hot loops with wider vectors where the CPU has them.
//!
//! The crate is built for baseline x86-64 (SSE2) so the binary runs anywhere. Plain loops (no
//! intrinsics) get 8-wide AVX2 code when compiled inside a `#[target_feature(enable = "avx2")]`
//! function, and Rust never fuses `a * b + c` into one rounding, so results are bit-identical
//! either way. [`avx2_dispatch!`](crate::avx2_dispatch) writes that function and the run-time
//! check. (A generic "run this closure with AVX2" helper does not work: the compiler keeps
//! larger closures out of line, compiled without AVX2.)

/// Defines `fn $name(args) -> ret` that calls the `#[inline(always)]` function `$portable`
/// compiled with AVX2 when the CPU supports it, and as plain code otherwise.
#[macro_export]
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$($lt:lifetime),*>)? ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $portable:path) => {
        $(#[$meta])*
        $vis fn $name $(<$($lt),*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn wide $(<$($lt),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    $portable($($arg),*)
                }
                if ::std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { wide($($arg),*) };
                }
            }
            $portable($($arg),*)
        }
    };
}

/// Like [`avx2_dispatch!`](crate::avx2_dispatch) for loops written with fused multiply-add
/// (`f32::mul_add`): runs `$portable` compiled for AVX-512 + FMA or AVX2 + FMA when the CPU has
/// them, and as plain code otherwise. A fused multiply-add rounds once whatever instruction
/// computes it, so every path gives the same bits; without FMA hardware `mul_add` is emulated
/// (correct, slow). An optional second function serves the AVX-512 path, for kernels whose
/// register blocking should be twice as wide there.
#[macro_export]
macro_rules! fma_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$($lt:lifetime),*>)? ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $portable:expr) => {
        $crate::fma_dispatch! {
            $(#[$meta])* $vis fn $name $(<$($lt),*>)? ($($arg: $ty),*) $(-> $ret)? => $portable, $portable
        }
    };
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$($lt:lifetime),*>)? ($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? => $portable:expr, $wide:expr) => {
        $(#[$meta])*
        $vis fn $name $(<$($lt),*>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,fma")]
                unsafe fn avx512 $(<$($lt),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    $wide($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2 $(<$($lt),*>)? ($($arg: $ty),*) $(-> $ret)? {
                    $portable($($arg),*)
                }
                if $crate::simd::has_avx512() {
                    // SAFETY: the CPU supports AVX-512F and FMA, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::simd::has_avx2_fma() {
                    // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }
    };
}

/// True when the CPU runs AVX-512F and FMA (and `KILOSORT_NO_AVX512` is unset, to compare paths).
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub fn has_avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::env::var_os("KILOSORT_NO_AVX512").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("fma")
    })
}

/// True when the CPU runs AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
pub fn has_avx2_fma() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}
