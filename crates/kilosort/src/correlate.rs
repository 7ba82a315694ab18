//! Correlating one channel with a few short filters at once (the temporal templates of
//! detection, the PCs of matching): `Σ_s w[q, s] · x[i + s]`, about 8·10⁹ multiply-adds per 2 s
//! batch at 384 channels, the largest arithmetic cost of the pipeline.
//!
//! Register-blocked: a vector of consecutive outputs of every filter accumulates together, so
//! each input vector is loaded once per tap. Fused multiply-adds in a fixed order make every
//! code path (AVX-512, AVX2, plain) give the same bits.

/// Outputs per block of the output layout (one AVX2 register).
pub(crate) const LANES: usize = 8;
/// Filters correlated together; more are done in groups of this many.
const GROUP: usize = 8;

/// Where output column i of filter q goes: `first + (i / LANES)·block_stride + q·filter_stride
/// + i % LANES` (so blocks of `LANES` columns are contiguous).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FilterLayout {
    pub first: usize,
    pub block_stride: usize,
    pub filter_stride: usize,
}

impl FilterLayout {
    #[inline(always)]
    fn at(&self, q: usize, i: usize) -> usize {
        self.first + i / LANES * self.block_stride + q * self.filter_stride + i % LANES
    }
}

/// `out[layout(q, i)] = Σ_s w[s·nk + q] · x[i + s]` for every filter q < nk (the filters
/// transposed, `(tap, filter)`, `nk = w.len() / nt`) and `i < width = x.len() − nt + 1`;
/// columns from `width` to the end of the last `LANES` block are set to zero.
pub(crate) fn correlate_filters(x: &[f32], w: &[f32], nt: usize, out: &mut [f32], layout: FilterLayout) {
    let nk = w.len() / nt;
    assert_eq!(nk * nt, w.len(), "filters of nt taps");
    assert!(x.len() + 1 >= nt, "at least one window");
    for first in (0..nk).step_by(GROUP) {
        let group = Group { w, nk, first };
        let layout = FilterLayout { first: layout.first + first * layout.filter_stride, ..layout };
        match (nk - first).min(GROUP) {
            1 => correlate_group::<1>(x, group, nt, out, layout),
            2 => correlate_group::<2>(x, group, nt, out, layout),
            3 => correlate_group::<3>(x, group, nt, out, layout),
            4 => correlate_group::<4>(x, group, nt, out, layout),
            5 => correlate_group::<5>(x, group, nt, out, layout),
            6 => correlate_group::<6>(x, group, nt, out, layout),
            7 => correlate_group::<7>(x, group, nt, out, layout),
            _ => correlate_group::<8>(x, group, nt, out, layout),
        }
    }
}

/// Filters `first..first + NK` of the transposed filter bank `w` (`nk` filters).
#[derive(Debug, Clone, Copy)]
struct Group<'a> {
    w: &'a [f32],
    nk: usize,
    first: usize,
}

impl Group<'_> {
    #[inline(always)]
    fn taps<const NK: usize>(&self, s: usize) -> &[f32; NK] {
        let at = s * self.nk + self.first;
        self.w[at..at + NK].try_into().expect("NK taps")
    }
}

/// Monomorphised per group size, so the loop over filters unrolls without bounds checks.
fn correlate_group<const NK: usize>(x: &[f32], w: Group, nt: usize, out: &mut [f32], layout: FilterLayout) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,fma")]
        unsafe fn avx512<const NK: usize>(x: &[f32], w: Group, nt: usize, out: &mut [f32], layout: FilterLayout) {
            let done = correlate_512::<NK>(x, w, nt, out, layout);
            correlate_tail::<NK>(x, w, nt, out, layout, done);
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<const NK: usize>(x: &[f32], w: Group, nt: usize, out: &mut [f32], layout: FilterLayout) {
            let done = correlate_lanes::<LANES, NK>(x, w, nt, out, layout);
            correlate_tail::<NK>(x, w, nt, out, layout, done);
        }
        if crate::simd::has_avx512() {
            // SAFETY: the CPU supports AVX-512F and FMA, checked just above.
            return unsafe { avx512::<NK>(x, w, nt, out, layout) };
        }
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            return unsafe { avx2::<NK>(x, w, nt, out, layout) };
        }
    }
    let done = correlate_lanes::<LANES, NK>(x, w, nt, out, layout);
    correlate_tail::<NK>(x, w, nt, out, layout, done);
}

/// Whole blocks of `L` outputs (`L` a multiple of `LANES`); returns the columns done.
#[inline(always)]
fn correlate_lanes<const L: usize, const NK: usize>(
    x: &[f32],
    w: Group,
    nt: usize,
    out: &mut [f32],
    layout: FilterLayout,
) -> usize {
    let width = x.len() + 1 - nt;
    let mut i = 0;
    while i + L <= width {
        let mut acc = [[0.0f32; L]; NK];
        for s in 0..nt {
            let xs: &[f32; L] = x[i + s..i + s + L].try_into().expect("L samples");
            let ws = w.taps::<NK>(s);
            for q in 0..NK {
                for l in 0..L {
                    acc[q][l] = ws[q].mul_add(xs[l], acc[q][l]);
                }
            }
        }
        for (q, acc) in acc.iter().enumerate() {
            for part in (0..L).step_by(LANES) {
                let at = layout.at(q, i + part);
                out[at..at + LANES].copy_from_slice(&acc[part..part + LANES]);
            }
        }
        i += L;
    }
    i
}

/// The columns from `done` on, one at a time, and the zero padding of the last block.
#[inline(always)]
fn correlate_tail<const NK: usize>(x: &[f32], w: Group, nt: usize, out: &mut [f32], layout: FilterLayout, done: usize) {
    let width = x.len() + 1 - nt;
    for i in done..width.div_ceil(LANES) * LANES {
        for q in 0..NK {
            out[layout.at(q, i)] =
                if i < width { (0..nt).fold(0.0f32, |acc, s| w.taps::<NK>(s)[q].mul_add(x[i + s], acc)) } else { 0.0 };
        }
    }
}

/// [`correlate_lanes`] with 16 outputs per 512-bit register. LLVM splits 16-lane loops into
/// two 256-bit halves on its default tuning, so this uses the intrinsics directly (the same
/// fused multiply-adds in the same order). Only inlined into the AVX-512 function above.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn correlate_512<const NK: usize>(x: &[f32], w: Group, nt: usize, out: &mut [f32], layout: FilterLayout) -> usize {
    // Two registers of outputs per filter: 2·NK accumulators hide the multiply-add latency and
    // each broadcast tap serves both, so the loop is bound by arithmetic, not loads.
    let done = correlate_512_vectors::<NK, 2>(x, w, nt, out, layout, 0);
    correlate_512_vectors::<NK, 1>(x, w, nt, out, layout, done)
}

/// Blocks of `V` registers (16·V outputs) per filter from column `start`; returns the columns done.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn correlate_512_vectors<const NK: usize, const V: usize>(
    x: &[f32],
    w: Group,
    nt: usize,
    out: &mut [f32],
    layout: FilterLayout,
    start: usize,
) -> usize {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };
    const L: usize = 16;
    let width = x.len() + 1 - nt;
    let mut lanes = [0.0f32; L];
    let mut i = start;
    while i + V * L <= width {
        // SAFETY: only called where the CPU runs AVX-512F and FMA (checked by the caller);
        // each load reads x[i + v·16 + s..][..16], within x as i + V·16 ≤ width and s < nt.
        unsafe {
            let mut acc: [[__m512; V]; NK] = [[_mm512_setzero_ps(); V]; NK];
            for s in 0..nt {
                let mut xs = [_mm512_setzero_ps(); V];
                for (v, xs) in xs.iter_mut().enumerate() {
                    *xs = _mm512_loadu_ps(x.as_ptr().add(i + v * L + s));
                }
                let ws = w.taps::<NK>(s);
                for (q, acc) in acc.iter_mut().enumerate() {
                    let wq = _mm512_set1_ps(ws[q]);
                    for (acc, &xs) in acc.iter_mut().zip(&xs) {
                        *acc = _mm512_fmadd_ps(wq, xs, *acc);
                    }
                }
            }
            for (q, acc) in acc.iter().enumerate() {
                for (v, acc) in acc.iter().enumerate() {
                    _mm512_storeu_ps(lanes.as_mut_ptr(), *acc);
                    for part in (0..L).step_by(LANES) {
                        let at = layout.at(q, i + v * L + part);
                        out[at..at + LANES].copy_from_slice(&lanes[part..part + LANES]);
                    }
                }
            }
        }
        i += V * L;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filters transposed `(tap, filter)` and a signal, both deterministic and irregular.
    fn case(nk: usize, nt: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
        let w = (0..nt * nk).map(|j| ((j * 29 % 17) as f32 - 8.0) / 9.0).collect();
        let x = (0..len).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        (w, x)
    }

    #[test]
    fn every_layout_entry_is_the_correlation_and_the_padding_is_zero() {
        for (nk, nt, len) in [(6, 61, 61 + 100), (3, 13, 13 + 7), (11, 5, 5 + 40), (1, 1, 17)] {
            let (w, x) = case(nk, nt, len);
            let width = len + 1 - nt;
            let blocks = width.div_ceil(LANES);
            // Blocked as detection uses it: (block, filter, lane) for one channel.
            let layout = FilterLayout { first: 0, block_stride: nk * LANES, filter_stride: LANES };
            let mut out = vec![f32::NAN; blocks * nk * LANES];
            correlate_filters(&x, &w, nt, &mut out, layout);
            for q in 0..nk {
                for i in 0..blocks * LANES {
                    let expected: f32 = if i < width { (0..nt).map(|s| w[s * nk + q] * x[i + s]).sum() } else { 0.0 };
                    let got = out[layout.at(q, i)];
                    assert!(
                        (got - expected).abs() <= 1e-4 * (1.0 + expected.abs()),
                        "nk {nk} q {q} i {i}: {got} vs {expected}"
                    );
                }
            }
        }
    }

    #[test]
    fn vector_paths_give_the_bits_of_the_plain_path() {
        let (nk, nt, len) = (6, 61, 61 + 1000);
        let (w, x) = case(nk, nt, len);
        let width = len + 1 - nt;
        let layout = FilterLayout { first: 0, block_stride: LANES, filter_stride: width.div_ceil(LANES) * LANES };
        let mut dispatched = vec![0.0; nk * layout.filter_stride];
        correlate_filters(&x, &w, nt, &mut dispatched, layout);
        let mut plain = vec![0.0; nk * layout.filter_stride];
        let group = Group { w: &w, nk, first: 0 };
        let done = correlate_lanes::<LANES, 6>(&x, group, nt, &mut plain, layout);
        correlate_tail::<6>(&x, group, nt, &mut plain, layout, done);
        assert!(dispatched.iter().zip(&plain).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
