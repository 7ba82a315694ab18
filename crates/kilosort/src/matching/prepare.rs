//! What the matcher computes once from the templates (Kilosort4's `prepare_extract` and
//! `prepare_matching`, spec §8.2): channel neighbourhoods, peak channels, each template's
//! channel support, waveforms, and the cross-correlations of the pairs that share channels.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

use super::xcorr::{channel_products, lag_matrix};
use crate::probe::Probe;

/// A channel belongs to a template's support when its energy (Σ_p W[c, p]²) exceeds this
/// fraction of the template's peak channel energy, i.e. its amplitude exceeds 1/1000 of the
/// peak. Channels below it are set to zero in the matcher's copy of the template. Templates from
/// clustering are exactly zero outside the clustering neighbourhood, so for them this only drops
/// exact zeros; for templates with smooth tails the dropped energy is below 1e-6 per channel.
pub const SUPPORT_ENERGY_FRACTION: f32 = 1e-6;

/// Templates with their supports: channels below [`SUPPORT_ENERGY_FRACTION`] zeroed.
pub(crate) fn truncate_to_support(templates: ArrayView3<f32>) -> (Array3<f32>, Vec<Vec<usize>>) {
    let mut out = templates.to_owned();
    let supports = out
        .outer_iter_mut()
        .map(|mut w| {
            let energy: Vec<f32> = w.outer_iter().map(|row| row.iter().map(|v| v * v).sum()).collect();
            let peak = energy.iter().copied().fold(0.0, f32::max);
            let cut = SUPPORT_ENERGY_FRACTION * peak;
            let mut support = Vec::new();
            for (c, mut row) in w.outer_iter_mut().enumerate() {
                if energy[c] > cut && energy[c] > 0.0 {
                    support.push(c);
                } else {
                    row.fill(0.0);
                }
            }
            support
        })
        .collect();
    (out, supports)
}

/// For every channel, its `count` nearest channels (itself first, ties by index) and whether each
/// lies closer than `limit` µm: Kilosort4's `iCC` and `iCC_mask`, transposed to
/// `(n_channels, count)`. Distances are computed in f32, as Kilosort4 does.
pub(crate) fn nearest_channels(probe: &Probe, count: usize, limit: f32) -> (Array2<usize>, Array2<bool>) {
    let n = probe.len();
    let count = count.min(n);
    let mut nearest = Array2::zeros((n, count));
    let mut within = Array2::from_elem((n, count), false);
    for j in 0..n {
        let d2 = |k: usize| (probe.x[k] - probe.x[j]).powi(2) + (probe.y[k] - probe.y[j]).powi(2);
        let mut order: Vec<(f32, usize)> = (0..n).map(|k| (d2(k), k)).collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (i, &(d, k)) in order.iter().take(count).enumerate() {
            nearest[[j, i]] = k;
            within[[j, i]] = d < limit * limit;
        }
    }
    (nearest, within)
}

/// The channel with the largest energy of each template, first on ties (Kilosort4's `iU`).
pub(crate) fn peak_channels(templates: ArrayView3<f32>) -> Vec<usize> {
    templates
        .outer_iter()
        .map(|w| {
            let energy: Vec<f32> = w.outer_iter().map(|row| row.iter().map(|v| v * v).sum()).collect();
            super::xcorr::max_and_argmax(&energy).1
        })
        .collect()
}

/// Each template's PC coefficients on its peak channel's neighbourhood, `(K, count, n_pcs)`
/// (Kilosort4's `Ucc`, axes reordered).
pub(crate) fn neighbourhood_coefficients(
    templates: ArrayView3<f32>,
    peaks: &[usize],
    nearest: &Array2<usize>,
) -> Array3<f32> {
    let (k, _, n_pcs) = templates.dim();
    Array3::from_shape_fn((k, nearest.ncols(), n_pcs), |(j, i, p)| templates[[j, nearest[[peaks[j], i]], p]])
}

/// Template order by the depth, then lateral position, of the peak channel (then by label), so
/// templates sharing channels have nearby indices.
pub(crate) fn depth_order(peaks: &[usize], probe: &Probe) -> Vec<usize> {
    let mut order: Vec<usize> = (0..peaks.len()).collect();
    let key = |j: usize| (probe.shank[peaks[j]], probe.y[peaks[j]], probe.x[peaks[j]]);
    order.sort_by(|&a, &b| {
        let (ka, kb) = (key(a), key(b));
        ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(ka.2.total_cmp(&kb.2)).then(a.cmp(&b))
    });
    order
}

/// For one template (the one subtracted): the range of template columns whose scores its
/// subtraction changes, and their cross-correlations with it, `(2nt + 1) × range` row-major:
/// `lags[τ·width + i] = ctc[start + i, this, τ]`.
#[derive(Debug, Clone)]
pub(crate) struct PartnerLags {
    pub start: usize,
    pub width: usize,
    pub lags: Vec<f32>,
}

/// [`PartnerLags`] of every template (in table column order): partners are the templates whose
/// supports share a channel with it.
pub(crate) fn partner_lags(
    templates: ArrayView3<f32>,
    supports: &[Vec<usize>],
    pcs: ArrayView2<f32>,
) -> Vec<PartnerLags> {
    let (k, n_channels, n_pcs) = templates.dim();
    let wtw = lag_matrix(pcs);
    let n_lags = wtw.ncols();
    let mut at_channel = vec![Vec::new(); n_channels];
    for (j, s) in supports.iter().enumerate() {
        for &c in s {
            at_channel[c].push(j);
        }
    }
    (0..k)
        .into_par_iter()
        .map(|b| {
            let partners = supports[b].iter().flat_map(|&c| at_channel[c].iter().copied());
            let (lo, hi) = partners.fold((usize::MAX, 0), |(lo, hi), j| (lo.min(j), hi.max(j)));
            if lo > hi {
                return PartnerLags { start: 0, width: 0, lags: Vec::new() };
            }
            let width = hi - lo + 1;
            let mut products = vec![0.0f32; width * n_pcs * n_pcs];
            let wb = templates.index_axis(Axis(0), b);
            for (i, g) in products.chunks_exact_mut(n_pcs * n_pcs).enumerate() {
                channel_products(templates.index_axis(Axis(0), lo + i), wb, &supports[b], g);
            }
            let mut lags = vec![0.0f32; n_lags * width];
            let g = MatRef::from_row_major_slice(&products, width, n_pcs * n_pcs);
            let w = MatRef::from_row_major_slice(wtw.as_slice().expect("standard"), n_pcs * n_pcs, n_lags);
            let dst = MatMut::from_row_major_slice_mut(&mut lags, n_lags, width);
            matmul(dst, Accum::Replace, w.transpose(), g.transpose(), 1.0, Par::Seq);
            PartnerLags { start: lo, width, lags }
        })
        .collect()
}

/// Each template's waveform on its support, `(support, nt)`.
pub(crate) fn support_waveforms(
    templates: ArrayView3<f32>,
    supports: &[Vec<usize>],
    pcs: ArrayView2<f32>,
) -> Vec<Array2<f32>> {
    templates.outer_iter().zip(supports).map(|(w, s)| w.select(Axis(0), s).dot(&pcs)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::template_cross_correlations;
    use crate::matching::xcorr::tests::smooth_basis;

    #[test]
    fn truncation_keeps_channels_above_a_millionth_of_the_peak_energy() {
        let mut t = Array3::zeros((1, 4, 2));
        t[[0, 0, 0]] = 1.0;
        t[[0, 1, 1]] = 2e-3; // energy 4e-6: kept
        t[[0, 2, 0]] = 5e-4; // energy 2.5e-7: dropped
        let (out, supports) = truncate_to_support(t.view());
        assert_eq!(supports, [vec![0, 1]]);
        assert_eq!(out[[0, 2, 0]], 0.0);
        assert_eq!(out[[0, 1, 1]], 2e-3);
    }

    #[test]
    fn nearest_channels_sort_by_distance_then_index() {
        let probe =
            Probe::new("p", vec![0, 1, 2, 3], vec![0.0, 10.0, -10.0, 0.0], vec![0.0, 0.0, 0.0, 150.0], vec![0.0; 4], 4)
                .unwrap();
        let (near, within) = nearest_channels(&probe, 3, 100.0);
        assert_eq!(near.row(0).to_vec(), [0, 1, 2], "a tie at 10 µm goes to the lower index");
        assert_eq!(near.row(3).to_vec(), [3, 0, 1]);
        assert_eq!(within.row(3).to_vec(), [true, false, false]);
    }

    #[test]
    fn partner_lags_equal_the_dense_cross_correlations() {
        let pcs = smooth_basis(3, 15);
        // Four templates on 8 channels: 0 and 1 overlap, 2 overlaps 1, 3 is alone.
        let mut t = Array3::<f32>::zeros((4, 8, 3));
        for (j, chans) in [[0usize, 1, 2], [2, 3, 4], [4, 5, 5], [7, 7, 7]].iter().enumerate() {
            for (i, &c) in chans.iter().enumerate() {
                for p in 0..3 {
                    t[[j, c, p]] = ((j + 1) * (i + 2) * (p + 1)) as f32 * if p % 2 == 0 { 0.1 } else { -0.07 };
                }
            }
        }
        let (_, supports) = truncate_to_support(t.view());
        let partners = partner_lags(t.view(), &supports, pcs.view());
        let dense = template_cross_correlations(t.view(), pcs.view());
        assert_eq!((partners[0].start, partners[0].width), (0, 2));
        assert_eq!((partners[1].start, partners[1].width), (0, 3));
        assert_eq!((partners[3].start, partners[3].width), (3, 1));
        for (b, pl) in partners.iter().enumerate() {
            for tau in 0..31 {
                for i in 0..pl.width {
                    let expected = dense[[pl.start + i, b, tau]];
                    assert!((pl.lags[tau * pl.width + i] - expected).abs() < 1e-5, "{b} {tau} {i}");
                }
            }
        }
    }
}
