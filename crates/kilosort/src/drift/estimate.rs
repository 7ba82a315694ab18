//! Drift estimation from batch fingerprints (Kilosort4's `align_block2`, spec §5.3–5.4):
//! whole-bin rigid registration against an iteratively refined mean fingerprint, then sub-bin
//! refinement per depth block.

use ndarray::{Array2, Array3, ArrayView2, Axis, s};
use rayon::prelude::*;

use super::fingerprint::{Fingerprints, bin_spikes};
use super::smooth::gaussian_filter;
use super::{DriftModel, DriftSpikes};
use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::settings::Settings;

/// Largest rigid shift tried, in depth bins, each way (±75 µm at the default 5 µm bins).
pub const RIGID_MAX_LAG: usize = 15;
/// Rigid registration iterations. Kilosort4 moves the fingerprints in all but the last one;
/// the last only recomputes the mean fingerprint, which the previous one already left as is.
pub const RIGID_ITERATIONS: usize = 10;
/// The first reference fingerprint is this batch's, or the middle batch's if there are fewer.
const FIRST_REFERENCE_BATCH: usize = 300;
/// Largest per-block shift tried after rigid registration, in bins each way.
pub const BLOCK_MAX_LAG: usize = 5;
/// Steps per bin when upsampling the block correlations to find the sub-bin peak.
pub const UPSAMPLING: usize = 10;
/// Width, in bins, of the Gaussian kernel regression that upsamples the block correlations.
const UPSAMPLING_SIGMA: f64 = 1.0;

/// Estimates drift from the spikes of a first detection pass: fingerprints (spec §5.2), rigid
/// registration (§5.3) and per-block refinement (§5.4).
///
/// Returns `Ok(None)` when `nblocks` is 0 (drift correction off), and an error when `nblocks`
/// exceeds the number of depth bins (a block would be empty).
pub fn estimate_drift(
    spikes: &DriftSpikes,
    n_batches: usize,
    probe: &Probe,
    settings: &Settings,
) -> Result<Option<DriftModel>> {
    if settings.nblocks == 0 {
        return Ok(None);
    }
    let fingerprints = bin_spikes(spikes, n_batches, probe, settings.binning_depth, settings.th_universal);
    estimate_from_fingerprints(&fingerprints, settings).map(Some)
}

/// Rigid registration and block refinement of given fingerprints (`nblocks ≥ 1`).
#[doc(alias = "align_block2")]
pub fn estimate_from_fingerprints(fingerprints: &Fingerprints, settings: &Settings) -> Result<DriftModel> {
    let n_depth = fingerprints.n_depth_bins();
    if settings.nblocks == 0 || settings.nblocks > n_depth {
        return Err(Error::InvalidSetting {
            origin: "drift estimation".into(),
            name: "nblocks".into(),
            value: settings.nblocks.to_string(),
            reason: format!(
                "the probe spans {n_depth} depth bins of binning_depth = {} µm; nblocks must be between 1 and that",
                settings.binning_depth
            ),
        });
    }
    let mut centred = centre_over_depth(&fingerprints.values);
    let (rigid, reference) = register_rigid(&mut centred);
    let blocks = block_ranges(n_depth, settings.nblocks);
    let block_centres_um =
        blocks.iter().map(|&(a, b)| fingerprints.depths_um[a..b].iter().sum::<f64>() / (b - a) as f64).collect();
    let fractions = refine_blocks(&centred, reference.view(), &blocks, settings.drift_smoothing);
    let shifts_um =
        Array2::from_shape_fn(fractions.dim(), |(t, j)| (rigid[t] as f64 + fractions[[t, j]]) * settings.binning_depth);
    Ok(DriftModel { block_centres_um, shifts_um })
}

/// Subtracts from every (batch, amplitude bin) column its mean over depth.
fn centre_over_depth(values: &Array3<f32>) -> Array3<f32> {
    let mut centred = values.clone();
    centred.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut batch| {
        for mut column in batch.columns_mut() {
            let mean = column.iter().map(|&v| v as f64).sum::<f64>() / column.len() as f64;
            column.mapv_inplace(|v| (v as f64 - mean) as f32);
        }
    });
    centred
}

/// Whole-bin rigid registration: each round scores every batch against the reference at each
/// lag, rolls each batch by its best lag and makes the mean of the rolled batches the new
/// reference. Returns each batch's total lag (bins) and the final reference.
fn register_rigid(fg: &mut Array3<f32>) -> (Vec<i64>, Array2<f32>) {
    let n_batches = fg.dim().0;
    let mut reference = fg.index_axis(Axis(0), FIRST_REFERENCE_BATCH.min(n_batches / 2)).to_owned();
    let mut total = vec![0i64; n_batches];
    for _ in 0..RIGID_ITERATIONS - 1 {
        let reference_flat = reference.as_slice().expect("reference is contiguous");
        let moves: Vec<i64> = fg
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .map(|mut batch| {
                let flat = batch.as_slice_mut().expect("fingerprints are contiguous");
                let cols = reference.ncols();
                let scores: Vec<f64> =
                    lags(RIGID_MAX_LAG).map(|s| roll_score(flat, reference_flat, s * cols as i64)).collect();
                let lag = best_lag(&scores, RIGID_MAX_LAG);
                roll(flat, lag * cols as i64);
                lag
            })
            .collect();
        total.iter_mut().zip(&moves).for_each(|(t, l)| *t += l);
        reference = mean_over_batches(fg);
    }
    (total, reference)
}

/// The lags `−max…max` in order.
fn lags(max: usize) -> impl Iterator<Item = i64> {
    -(max as i64)..=max as i64
}

/// The lag (in `−max…max`) of the highest score. Exact ties (a batch without spikes scores 0 at
/// every lag) go to the lag nearest zero, so an empty batch stays where it is; Kilosort4 takes
/// the most negative lag there (a deviation only in that case).
fn best_lag(scores: &[f64], max: usize) -> i64 {
    let centre = max as i64;
    let mut best = 0i64;
    for k in 1..=centre {
        for lag in [-k, k] {
            if scores[(centre + lag) as usize] > scores[(centre + best) as usize] {
                best = lag;
            }
        }
    }
    best
}

/// Mean over (depth, amplitude) of `roll(x, shift)·y`, where `roll(x, m)[k] = x[(k − m) mod n]`
/// on the flattened arrays (a roll by `m = lag·AMPLITUDE_BINS` rolls whole depth rows).
fn roll_score(x: &[f32], y: &[f32], shift: i64) -> f64 {
    let n = x.len();
    let m = shift.rem_euclid(n as i64) as usize;
    (dot(&x[..n - m], &y[m..]) + dot(&x[n - m..], &y[..m])) / n as f64
}

/// Rolls `x` in place: `x'[k] = x[(k − shift) mod n]` (`numpy.roll`/`torch.roll`).
fn roll(x: &mut [f32], shift: i64) {
    let m = shift.rem_euclid(x.len() as i64) as usize;
    x.rotate_right(m);
}

crate::avx2_dispatch! {
    /// `Σ xₖ·yₖ`, accumulated in f64.
    fn dot(x: &[f32], y: &[f32]) -> f64 => dot_portable
}

/// Four independent accumulators so the loop vectorises.
#[inline(always)]
fn dot_portable(x: &[f32], y: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let (xq, yq) = (x.chunks_exact(4), y.chunks_exact(4));
    let tail: f64 = xq.remainder().iter().zip(yq.remainder()).map(|(&a, &b)| a as f64 * b as f64).sum();
    for (a, b) in xq.zip(yq) {
        for k in 0..4 {
            acc[k] += a[k] as f64 * b[k] as f64;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Mean fingerprint over batches (summed in f64, batch by batch, so the result does not depend
/// on the thread count).
fn mean_over_batches(fg: &Array3<f32>) -> Array2<f32> {
    let (n_batches, rows, cols) = fg.dim();
    let mut sum = Array2::<f64>::zeros((rows, cols));
    for batch in fg.axis_iter(Axis(0)) {
        sum.zip_mut_with(&batch, |s, &v| *s += v as f64);
    }
    sum.mapv(|s| (s / n_batches.max(1) as f64) as f32)
}

/// The depth-bin ranges `[first, last)` of the `2·nblocks − 1` blocks: `ny div nblocks` bins
/// each, first bins spread evenly from 0 to `ny − len` (rounded half to even), so consecutive
/// blocks overlap by about half.
pub fn block_ranges(n_depth: usize, nblocks: usize) -> Vec<(usize, usize)> {
    let len = n_depth / nblocks;
    let count = 2 * nblocks - 1;
    let last_start = (n_depth - len) as f64;
    (0..count)
        .map(|i| {
            // numpy.linspace: i·step + start, with the end point exact.
            let start = if i + 1 == count && count > 1 {
                last_start
            } else {
                i as f64 * (last_start / (count - 1).max(1) as f64)
            };
            let first = start.round_ties_even() as usize;
            (first, first + len)
        })
        .collect()
}

/// Sub-bin refinement per block: correlations at lags `±BLOCK_MAX_LAG` (rolling within the
/// block), smoothed over (lag, batch, block), upsampled by Gaussian kernel regression; the
/// peak's position, in bins, for each (batch, block).
fn refine_blocks(
    fg: &Array3<f32>,
    reference: ArrayView2<f32>,
    blocks: &[(usize, usize)],
    smoothing: [f64; 3],
) -> Array2<f64> {
    let n_batches = fg.dim().0;
    let n_lags = 2 * BLOCK_MAX_LAG + 1;
    let mut scores = Array3::<f64>::zeros((n_lags, n_batches, blocks.len()));
    for (j, &(a, b)) in blocks.iter().enumerate() {
        let reference_block = reference.slice(s![a..b, ..]);
        let reference_flat = reference_block.as_slice().expect("row ranges of the reference are contiguous");
        let cols = reference.ncols() as i64;
        let per_batch: Vec<Vec<f64>> = fg
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|batch| {
                let block = batch.slice_move(s![a..b, ..]);
                let flat = block.as_slice().expect("row ranges of a fingerprint are contiguous");
                lags(BLOCK_MAX_LAG).map(|s| roll_score(flat, reference_flat, s * cols)).collect()
            })
            .collect();
        for (t, row) in per_batch.iter().enumerate() {
            for (l, &v) in row.iter().enumerate() {
                scores[[l, t, j]] = v;
            }
        }
    }
    gaussian_filter(&mut scores, smoothing);
    upsampled_peaks(&scores)
}

/// For each (batch, block), the lag (bins, a multiple of 1/UPSAMPLING) where the kernel
/// regression `Σ_l exp(−(l − u)²/2)·score[l]` of the smoothed scores peaks.
fn upsampled_peaks(scores: &Array3<f64>) -> Array2<f64> {
    let (n_lags, n_batches, n_blocks) = scores.dim();
    let max = BLOCK_MAX_LAG as f64;
    let n_fine = 2 * BLOCK_MAX_LAG * UPSAMPLING + 1;
    // numpy.linspace(−max, max, n_fine): i·step + start, end point exact.
    let step = 2.0 * max / (n_fine - 1) as f64;
    let fine: Vec<f64> = (0..n_fine).map(|i| if i + 1 == n_fine { max } else { i as f64 * step - max }).collect();
    let kernel = Array2::from_shape_fn((n_fine, n_lags), |(u, l)| {
        let d = (l as f64 - max) - fine[u];
        (-d * d / (2.0 * UPSAMPLING_SIGMA * UPSAMPLING_SIGMA)).exp()
    });
    Array2::from_shape_fn((n_batches, n_blocks), |(t, j)| {
        let curve: Vec<f64> = kernel.rows().into_iter().map(|k| k.dot(&scores.slice(s![.., t, j]))).collect();
        let centre = BLOCK_MAX_LAG * UPSAMPLING;
        fine[(centre as i64 + best_lag(&curve, centre)) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ranges_match_numpy_for_neuropixels() {
        // ny = 766: one block covers everything; five give nine blocks of 153 bins starting at
        // round(linspace(0, 613, 9)) = [0, 77, 153, 230, 306, 383, 460, 536, 613].
        assert_eq!(block_ranges(766, 1), [(0, 766)]);
        let starts: Vec<usize> = block_ranges(766, 5).iter().map(|r| r.0).collect();
        assert_eq!(starts, [0, 77, 153, 230, 306, 383, 460, 536, 613]);
        assert!(block_ranges(766, 5).iter().all(|&(a, b)| b - a == 153));
        // linspace(0, 2, 5) = [0, .5, 1, 1.5, 2] rounds half to even: [0, 0, 1, 2, 2].
        let starts: Vec<usize> = block_ranges(3, 3).iter().map(|r| r.0).collect();
        assert_eq!(starts, [0, 0, 1, 2, 2]);
    }

    #[test]
    fn roll_and_roll_score_agree_with_numpy_roll() {
        let mut x = [1.0f32, 2.0, 3.0, 4.0, 5.0];
        roll(&mut x, 2);
        assert_eq!(x, [4.0, 5.0, 1.0, 2.0, 3.0]);
        roll(&mut x, -7);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0, 5.0]);
        let y = [0.5f32, -1.0, 2.0, 0.0, 3.0];
        for shift in -6..=6 {
            let mut r = x;
            roll(&mut r, shift);
            let direct: f64 = r.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / 5.0;
            assert!((roll_score(&x, &y, shift) - direct).abs() < 1e-12, "shift {shift}");
        }
    }

    #[test]
    fn best_lag_takes_the_maximum_and_breaks_ties_toward_zero() {
        assert_eq!(best_lag(&[0.0, 1.0, 3.0, 2.0, 0.5], 2), 0);
        assert_eq!(best_lag(&[4.0, 1.0, 3.0, 2.0, 0.5], 2), -2);
        assert_eq!(best_lag(&[0.0; 5], 2), 0);
        assert_eq!(best_lag(&[1.0, 2.0, 0.0, 2.0, 1.0], 2), -1);
    }

    #[test]
    fn a_shifted_copy_is_registered_by_its_shift() {
        // Three batches: a pattern, the same pattern 4 bins up, and 3 bins down.
        let (rows, cols) = (60, AMP);
        let base = Array2::from_shape_fn((rows, cols), |(r, c)| {
            let bump = |centre: f64, width: f64| (-((r as f64 - centre) / width).powi(2)).exp();
            ((bump(20.0, 2.0) + 0.6 * bump(31.0, 3.0) + 0.8 * bump(40.0, 1.5)) * (1.0 + 0.1 * c as f64)) as f32
        });
        let mut values = Array3::zeros((3, rows, cols));
        for (t, shift) in [0i64, 4, -3].into_iter().enumerate() {
            let mut flat = base.as_slice().unwrap().to_vec();
            roll(&mut flat, shift * cols as i64);
            values.index_axis_mut(Axis(0), t).assign(&Array2::from_shape_vec((rows, cols), flat).unwrap());
        }
        let f = Fingerprints { values, depths_um: (0..rows).map(|k| 5.0 * k as f64).collect() };
        let model = estimate_from_fingerprints(&f, &Settings::default()).unwrap();
        let d = model.shifts_um.column(0);
        // Relative to batch 0, batch 1 must move down 4 bins (−20 µm), batch 2 up 3 (+15 µm).
        assert!((d[1] - d[0] + 20.0).abs() < 0.3, "{d}");
        assert!((d[2] - d[0] - 15.0).abs() < 0.3, "{d}");
    }

    const AMP: usize = super::super::AMPLITUDE_BINS;
}
