//! Cross-correlations between templates kept in PC space (spec §8.2, §8.5, §9.6).
//!
//! A template is `W[c, p]` (channels × PCs); its waveform is `T(c, s) = Σ_p W[c, p]·pcs[p, s]`.
//! The correlation of two waveforms at every lag then needs only the `P × P` channel products
//! `Σ_c W_a[c, p]·W_b[c, q]` and the lag products of the PCs (`WtW`), never the waveforms.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// Added to a template's norm before normalising it, as Kilosort4 (an all-zero template stays 0).
pub(crate) const NORM_FLOOR: f32 = 1e-6;

/// Lag products of the temporal PCs: `wtw[p, q, τ] = Σ_s pcs[p, s]·pcs[q, s + τ − nt]` for
/// τ = 0…2nt (lags −nt…nt), zero outside the window. Shape `(n_pcs, n_pcs, 2nt + 1)`.
#[doc(alias = "WtW")]
pub fn pc_lag_products(pcs: ArrayView2<f32>) -> Array3<f32> {
    let (n_pcs, nt) = pcs.dim();
    let mut wtw = Array3::zeros((n_pcs, n_pcs, 2 * nt + 1));
    for ((p, q, tau), v) in wtw.indexed_iter_mut() {
        // s + τ − nt must fall in 0..nt.
        let lo = nt.saturating_sub(tau);
        let hi = (2 * nt).saturating_sub(tau).min(nt);
        *v = (lo..hi).map(|s| pcs[[p, s]] * pcs[[q, s + tau - nt]]).sum();
    }
    wtw
}

/// The lag products as a `(n_pcs², 2nt + 1)` matrix, row `p·n_pcs + q`.
pub(crate) fn lag_matrix(pcs: ArrayView2<f32>) -> Array2<f32> {
    let wtw = pc_lag_products(pcs);
    let (p, q, lags) = wtw.dim();
    wtw.into_shape_with_order((p * q, lags)).expect("contiguous")
}

/// Cross-correlation of every pair of templates at lags −nt…nt (Kilosort4's `ctc`):
/// `ctc[a, b, τ] = Σ_c Σ_s T_a(c, s)·T_b(c, s + τ − nt)`, shape `(K, K, 2nt + 1)`.
///
/// `templates` is `(K, n_channels, n_pcs)`. Dense: memory grows as K²·(n_pcs² + 2nt + 1);
/// the matcher keeps only the pairs that share channels.
#[doc(alias = "ctc")]
pub fn template_cross_correlations(templates: ArrayView3<f32>, pcs: ArrayView2<f32>) -> Array3<f32> {
    let (k, n_chan, n_pcs) = templates.dim();
    let wtw = lag_matrix(pcs);
    let lags = wtw.ncols();
    // Rows (template, pc), columns channels; products of all rows with all rows.
    let flat = Mat::<f32>::from_fn(k * n_pcs, n_chan, |r, c| templates[[r / n_pcs, c, r % n_pcs]]);
    let mut products = Mat::<f32>::zeros(k * n_pcs, k * n_pcs);
    matmul(products.as_mut(), Accum::Replace, flat.as_ref(), flat.transpose(), 1.0, Par::rayon(0));
    let pairs = Mat::<f32>::from_fn(k * k, n_pcs * n_pcs, |r, pq| {
        products[((r / k) * n_pcs + pq / n_pcs, (r % k) * n_pcs + pq % n_pcs)]
    });
    let mut out = Mat::<f32>::zeros(k * k, lags);
    matmul(out.as_mut(), Accum::Replace, pairs.as_ref(), faer_view(&wtw), 1.0, Par::rayon(0));
    Array3::from_shape_fn((k, k, lags), |(a, b, t)| out[(a * k + b, t)])
}

/// A row-major ndarray matrix seen by faer.
pub(crate) fn faer_view(m: &Array2<f32>) -> MatRef<'_, f32> {
    MatRef::from_row_major_slice(m.as_slice().expect("standard layout"), m.nrows(), m.ncols())
}

/// The channels on which a template is not exactly zero, as a sorted list and a bit set.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Support {
    /// Channel indices, ascending.
    pub channels: Vec<usize>,
    bits: Vec<u64>,
}

impl Support {
    /// The support of the given channels out of `n_channels`.
    pub fn from_channels(channels: Vec<usize>, n_channels: usize) -> Self {
        let mut bits = vec![0u64; n_channels.div_ceil(64)];
        for &c in &channels {
            bits[c / 64] |= 1 << (c % 64);
        }
        Support { channels, bits }
    }

    /// Channels where any PC coefficient of `template` (`n_channels × n_pcs`) is non-zero.
    pub fn nonzero(template: ArrayView2<f32>) -> Self {
        let channels = (0..template.nrows()).filter(|&c| template.row(c).iter().any(|&v| v != 0.0)).collect();
        Self::from_channels(channels, template.nrows())
    }

    /// True when both supports share a channel.
    pub fn overlaps(&self, other: &Support) -> bool {
        self.bits.iter().zip(&other.bits).any(|(a, b)| a & b != 0)
    }
}

/// `Σ_{c ∈ channels} a[c, p]·b[c, q]` into `out[p·n_pcs + q]`.
pub(crate) fn channel_products(a: ArrayView2<f32>, b: ArrayView2<f32>, channels: &[usize], out: &mut [f32]) {
    let n_pcs = a.ncols();
    out.fill(0.0);
    for &c in channels {
        let (ra, rb) = (a.row(c), b.row(c));
        for p in 0..n_pcs {
            for q in 0..n_pcs {
                out[p * n_pcs + q] += ra[p] * rb[q];
            }
        }
    }
}

/// `out[τ] = Σ_{pq} products[pq]·wtw[pq, τ]`: the waveform cross-correlation at every lag.
pub(crate) fn lags_from_products(products: &[f32], wtw: &Array2<f32>, out: &mut [f32]) {
    out.fill(0.0);
    for (&g, row) in products.iter().zip(wtw.outer_iter()) {
        if g != 0.0 {
            out.iter_mut().zip(row).for_each(|(o, &w)| *o += g * w);
        }
    }
}

/// The maximum of `values` and the first index where it occurs (`torch.max` semantics).
pub(crate) fn max_and_argmax(values: &[f32]) -> (f32, usize) {
    let mut best = (f32::NEG_INFINITY, 0);
    for (i, &v) in values.iter().enumerate() {
        if v > best.0 {
            best = (v, i);
        }
    }
    best
}

/// Templates divided by `(NORM_FLOOR + ‖W_k‖)` (Frobenius norm over channels and PCs), and the norms.
pub(crate) fn normalised(templates: ArrayView3<f32>) -> (Array3<f32>, Vec<f32>) {
    let mut out = templates.to_owned();
    let mut norms = Vec::with_capacity(out.len_of(Axis(0)));
    for mut w in out.outer_iter_mut() {
        let norm = w.iter().map(|v| v * v).sum::<f32>().sqrt();
        w.mapv_inplace(|v| v / (NORM_FLOOR + norm));
        norms.push(norm);
    }
    (out, norms)
}

/// For template `a` against every template b: the best normalised cross-correlation over lags
/// −nt…nt and its lag index (0…2nt). Templates must already be normalised; pairs that share no
/// channel give `(0, 0)`, as an all-zero correlation row does in Kilosort4.
pub(crate) fn best_lags_against(
    a: usize,
    unit: ArrayView3<f32>,
    supports: &[Support],
    wtw: &Array2<f32>,
) -> Vec<(f32, usize)> {
    let n_pcs = unit.len_of(Axis(2));
    let mut products = vec![0.0; n_pcs * n_pcs];
    let mut lags = vec![0.0; wtw.ncols()];
    let wa = unit.index_axis(Axis(0), a);
    (0..unit.len_of(Axis(0)))
        .map(|b| {
            if !supports[a].overlaps(&supports[b]) {
                return (0.0, 0);
            }
            channel_products(wa, unit.index_axis(Axis(0), b), &supports[a].channels, &mut products);
            lags_from_products(&products, wtw, &mut lags);
            max_and_argmax(&lags)
        })
        .collect()
}

/// Template similarity for Phy (`similar_templates.npy`, spec §9.6): the best normalised
/// waveform cross-correlation over lags −nt…nt of every pair, `(K, K)`; the diagonal is ≈ 1.
///
/// `templates` is `(K, n_channels, n_pcs)`. Pairs that share no channel are 0, exactly what
/// Kilosort4's dense computation gives for them.
#[doc(alias = "similarity")]
pub fn similar_templates(templates: ArrayView3<f32>, pcs: ArrayView2<f32>) -> Array2<f32> {
    let (unit, _) = normalised(templates);
    let supports: Vec<Support> = unit.outer_iter().map(Support::nonzero).collect();
    let wtw = lag_matrix(pcs);
    let k = unit.len_of(Axis(0));
    let rows: Vec<Vec<f32>> = (0..k)
        .into_par_iter()
        .map(|a| best_lags_against(a, unit.view(), &supports, &wtw).into_iter().map(|(v, _)| v).collect())
        .collect();
    Array2::from_shape_fn((k, k), |(a, b)| rows[a][b])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ndarray::{Array1, array};

    /// `n_pcs` orthonormal smooth waveforms of `nt` samples (Gram–Schmidt on Gaussian-windowed
    /// polynomials around the trough at `nt/3`).
    pub fn smooth_basis(n_pcs: usize, nt: usize) -> Array2<f32> {
        let centre = nt as f64 / 3.0;
        let width = nt as f64 / 6.0;
        let mut rows: Vec<Array1<f64>> = Vec::new();
        for p in 0..n_pcs {
            let mut v = Array1::from_shape_fn(nt, |s| {
                let x = (s as f64 - centre) / width;
                x.powi(p as i32) * (-x * x / 2.0).exp()
            });
            for r in &rows {
                let d = v.dot(r);
                v = &v - &(r * d);
            }
            let n = v.dot(&v).sqrt();
            rows.push(v / n);
        }
        Array2::from_shape_fn((n_pcs, nt), |(p, s)| rows[p][s] as f32)
    }

    /// A template's waveform `T(c, s)`, `(n_channels, nt)`.
    pub fn waveform(template: ArrayView2<f32>, pcs: ArrayView2<f32>) -> Array2<f32> {
        template.dot(&pcs)
    }

    /// Direct time-domain `Σ_c Σ_s Ta(c, s)·Tb(c, s + lag)`.
    fn direct(ta: &Array2<f32>, tb: &Array2<f32>, lag: isize) -> f32 {
        let nt = ta.ncols() as isize;
        let mut sum = 0.0;
        for c in 0..ta.nrows() {
            for s in 0..nt {
                let u = s + lag;
                if (0..nt).contains(&u) {
                    sum += ta[[c, s as usize]] * tb[[c, u as usize]];
                }
            }
        }
        sum
    }

    fn two_templates() -> (Array3<f32>, Array2<f32>) {
        let pcs = smooth_basis(3, 21);
        let t = array![
            [[1.0, 0.5, -0.2], [0.3, -0.1, 0.4], [0.0, 0.0, 0.0], [0.2, 0.2, 0.2]],
            [[0.0, 0.0, 0.0], [-0.6, 0.9, 0.1], [0.7, 0.2, -0.3], [0.1, -0.4, 0.8]],
        ];
        (t, pcs)
    }

    #[test]
    fn basis_is_orthonormal() {
        let pcs = smooth_basis(4, 31);
        let g = pcs.dot(&pcs.t());
        for ((i, j), v) in g.indexed_iter() {
            assert!((v - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5, "{i} {j} {v}");
        }
    }

    #[test]
    fn lag_products_at_zero_lag_are_the_identity() {
        let pcs = smooth_basis(3, 21);
        let wtw = pc_lag_products(pcs.view());
        assert_eq!(wtw.dim(), (3, 3, 43));
        for p in 0..3 {
            for q in 0..3 {
                assert!((wtw[[p, q, 21]] - if p == q { 1.0 } else { 0.0 }).abs() < 1e-5);
                assert_eq!(wtw[[p, q, 0]], 0.0, "lag −nt: no overlap");
                // Swapping p and q mirrors the lag.
                assert!((wtw[[p, q, 5]] - wtw[[q, p, 37]]).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn ctc_equals_direct_time_domain_correlation() {
        let (t, pcs) = two_templates();
        let ctc = template_cross_correlations(t.view(), pcs.view());
        let nt = 21;
        let wave: Vec<Array2<f32>> = t.outer_iter().map(|w| waveform(w, pcs.view())).collect();
        for a in 0..2 {
            for b in 0..2 {
                for tau in 0..=2 * nt {
                    let expected = direct(&wave[a], &wave[b], tau as isize - nt as isize);
                    assert!((ctc[[a, b, tau]] - expected).abs() < 1e-5, "{a} {b} {tau}");
                }
            }
        }
    }

    #[test]
    fn similarity_is_one_on_the_diagonal_and_sees_shifted_copies() {
        let (t, pcs) = two_templates();
        let s = similar_templates(t.view(), pcs.view());
        assert!((s[[0, 0]] - 1.0).abs() < 1e-4 && (s[[1, 1]] - 1.0).abs() < 1e-4);
        assert!((s[[0, 1]] - s[[1, 0]]).abs() < 1e-5, "symmetric");
        let ctc = template_cross_correlations(t.view(), pcs.view());
        let norm = |k: usize| ctc[[k, k, 21]].sqrt();
        let best = (0..43).map(|l| ctc[[0, 1, l]]).fold(f32::MIN, f32::max);
        assert!((s[[0, 1]] - best / (norm(0) * norm(1))).abs() < 1e-4);
    }

    #[test]
    fn templates_without_shared_channels_have_zero_similarity() {
        let pcs = smooth_basis(2, 11);
        let mut t = Array3::zeros((2, 4, 2));
        t[[0, 0, 0]] = 1.0;
        t[[1, 3, 1]] = 1.0;
        assert_eq!(similar_templates(t.view(), pcs.view())[[0, 1]], 0.0);
        let supports: Vec<Support> = t.outer_iter().map(Support::nonzero).collect();
        assert_eq!(supports[1].channels, [3]);
        assert!(!supports[0].overlaps(&supports[1]) && supports[1].overlaps(&supports[1]));
    }
}
