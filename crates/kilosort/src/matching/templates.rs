//! From the first clustering's cluster means to the learned templates used by matching
//! pursuit (Kilosort4's `postprocess_templates`, spec §8.1): each template is moved in time so
//! that it best matches a temporal template at the window centre, then near-duplicates merge.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use rayon::prelude::*;

use super::merge::{MergeOptions, merge_by_counts, similar_norms};
use super::xcorr::max_and_argmax;
use crate::detect::TemporalBasis;

/// Templates at least this similar are candidate duplicates (Kilosort4's `r_thresh` for 'mu').
pub const DUPLICATE_SIMILARITY: f32 = 0.9;

/// The learned templates: every cluster mean of `wall` (`(K, n_channels, n_pcs)`, Kilosort4's
/// `Wall`) aligned with [`align_template`], then merged where two are near-duplicates in shape
/// (similarity ≥ 0.9) and size (norms within 20 %), weighting by `counts` (spikes per cluster).
///
/// Returns `(K', n_channels, n_pcs)`. Unlike Kilosort4, each cluster's waveform is correlated on
/// its own, so the alignment never sees a neighbouring cluster's samples.
#[doc(alias = "postprocess_templates")]
pub fn learned_templates(wall: ArrayView3<f32>, counts: &[usize], basis: &TemporalBasis) -> Array3<f32> {
    let aligned = align_templates(wall, basis);
    let options = MergeOptions { r_thresh: DUPLICATE_SIMILARITY, check_dt: false };
    merge_by_counts(aligned.view(), counts.to_vec(), basis.pcs.view(), options, similar_norms).0
}

/// [`align_template`] for every template of `(K, n_channels, n_pcs)`.
#[doc(alias = "align_U")]
pub fn align_templates(wall: ArrayView3<f32>, basis: &TemporalBasis) -> Array3<f32> {
    let aligned: Vec<Array2<f32>> = wall.outer_iter().into_par_iter().map(|w| align_template(w, basis).0).collect();
    let mut out = Array3::zeros(wall.raw_dim());
    for (mut o, a) in out.outer_iter_mut().zip(&aligned) {
        o.assign(a);
    }
    out
}

/// Centres one template in time: its waveform (`n_channels × nt`) is correlated with every
/// temporal template on every channel; the lag of the largest absolute correlation is rolled
/// (circularly) to the window centre and the result projected back onto the PCs. Returns the
/// template `(n_channels, n_pcs)` and the lag index found (Kilosort4's `imax`, 0…nt−1).
pub fn align_template(template: ArrayView2<f32>, basis: &TemporalBasis) -> (Array2<f32>, usize) {
    let nt = basis.nt();
    let half = nt / 2;
    let wave = template.dot(&basis.pcs);
    let mut peak = vec![0.0f32; nt];
    for channel in wave.outer_iter() {
        if channel.iter().all(|&v| v == 0.0) {
            continue;
        }
        for q in basis.templates.outer_iter() {
            for (t, m) in peak.iter_mut().enumerate() {
                // "same" correlation: sample t + s − nt/2, zero outside the window.
                let lo = half.saturating_sub(t);
                let hi = (nt + half - t).min(nt);
                let c: f32 = (lo..hi).map(|s| q[s] * channel[t + s - half]).sum();
                *m = m.max(c.abs());
            }
        }
    }
    let best = max_and_argmax(&peak).1;
    // Roll by nt/2 − best: sample s of the result is sample (s − nt/2 + best) mod nt.
    let rolled = Array2::from_shape_fn(wave.dim(), |(c, s)| wave[[c, (s + best + nt - half) % nt]]);
    (rolled.dot(&basis.pcs.t()), best)
}

/// The basis used by the tests of this module and the matcher's.
#[cfg(test)]
pub(crate) fn test_basis(n_pcs: usize, nt: usize) -> TemporalBasis {
    let pcs = super::xcorr::tests::smooth_basis(n_pcs, nt);
    let templates = pcs.slice(ndarray::s![..2.min(n_pcs), ..]).to_owned();
    TemporalBasis { pcs, templates }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Axis};

    /// A template whose waveform is a negative Gaussian trough at `centre` (samples).
    fn trough_template(basis: &TemporalBasis, centre: f64, profile: &[f32]) -> Array2<f32> {
        let wave = Array1::from_shape_fn(basis.nt(), |s| {
            let x = (s as f64 - centre) / 3.0;
            -(-(x * x) / 2.0).exp() as f32
        });
        let coeffs = basis.project(wave.view());
        Array2::from_shape_fn((profile.len(), basis.n_pcs()), |(c, p)| profile[c] * coeffs[p])
    }

    #[test]
    fn a_late_template_is_moved_to_where_the_temporal_templates_match_best() {
        let basis = test_basis(10, 41);
        let at_trough = trough_template(&basis, 41.0 / 3.0, &[0.5, 1.0, 0.0]);
        let (aligned, lag) = align_template(at_trough.view(), &basis);
        assert_eq!(lag, 20, "already centred");
        let diff = (&aligned - &at_trough).iter().map(|v| v.abs()).fold(0.0, f32::max);
        assert!(diff < 1e-5, "{diff}");
        let late = trough_template(&basis, 41.0 / 3.0 + 4.0, &[0.5, 1.0, 0.0]);
        let (aligned, lag) = align_template(late.view(), &basis);
        assert_eq!(lag, 24);
        let err = (&aligned - &at_trough).iter().map(|v| v * v).sum::<f32>().sqrt();
        let norm = at_trough.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(err < 0.1 * norm, "{err} vs {norm}");
    }

    #[test]
    fn learned_templates_align_then_merge_duplicates() {
        let basis = test_basis(10, 41);
        let t0 = trough_template(&basis, 41.0 / 3.0, &[0.5, 1.0, 0.0, 0.0]);
        // The same unit seen 3 samples late and 5 % smaller: a duplicate after alignment.
        let dup = trough_template(&basis, 41.0 / 3.0 + 3.0, &[0.5, 1.0, 0.0, 0.0]) * 0.95;
        let other = trough_template(&basis, 41.0 / 3.0, &[0.0, 0.0, 1.0, 0.4]);
        let views = [t0.view(), dup.view(), other.view()];
        let wall = ndarray::stack(Axis(0), &views).unwrap();
        let learned = learned_templates(wall.view(), &[10, 30, 5], &basis);
        assert_eq!(learned.len_of(Axis(0)), 2);
        // The larger cluster (dup, 30 spikes) absorbed t0: weights 0.75 and 0.25.
        let expected = (&t0 * 0.25) + (&t0 * 0.95 * 0.75);
        let norm = |a: &Array2<f32>| a.iter().map(|v| v * v).sum::<f32>().sqrt();
        let err = norm(&(&learned.index_axis(Axis(0), 0) - &expected));
        assert!(err < 0.05 * norm(&expected), "{err}");
    }
}
