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
