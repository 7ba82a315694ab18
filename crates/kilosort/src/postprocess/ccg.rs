//! Correlograms and the refractory-period metrics built on them (Kilosort4's `CCG.py`, spec §9.1).
//!
//! A unit is *refractory* when its auto-correlogram is nearly empty within a few ms of zero lag,
//! relative to its baseline further out; two units are *cross-refractory* when their
//! cross-correlogram is, which means they are likely one neuron.

use std::borrow::Cow;

use super::erf::erf;

/// Correlogram bin width used by every refractory test, s (Kilosort4's `tbin = 1/1000`).
pub const CCG_BIN_S: f64 = 1.0 / 1000.0;
/// Bins on each side of zero lag (Kilosort4's `nbins`): lags up to ±0.5 s at 1 ms.
pub const CCG_HALF_BINS: usize = 500;

/// Bins on either side of zero (excluded) forming the near-baseline windows I2 and I3: lags
/// ±10…49 ms, just past any refractory period but close enough to reflect the local rate.
const NEAR_WINDOW: std::ops::Range<usize> = 10..50;
/// Widest refractory window tested, in bins each side of zero (±10 ms).
const MAX_REFRACTORY_BINS: usize = 10;
/// Keeps R12 finite when the baseline is empty.
const RATIO_EPSILON: f64 = 1e-10;
/// `is_refractory` also needs the Poisson tail probability Q12 below this.
const ACG_Q_LIMIT: f64 = 0.2;
/// `cross_refractory` also needs Q12 below this.
const CCG_Q_LIMIT: f64 = 0.05;

/// A correlogram: counts of spike pairs by lag, with what the metrics need to normalise them.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlogram {
    /// Pair counts by lag `b − a` (a from the first train, b from the second), `2·n_bins + 1`
    /// bins; index `n_bins` is zero lag. An auto-correlogram includes each spike paired with itself.
    pub counts: Vec<u64>,
    /// Time spanned by both trains together, max − min, s (Kilosort4's `T`).
    pub span_s: f64,
    /// Spikes in the first train.
    pub n1: usize,
    /// Spikes in the second train.
    pub n2: usize,
}

impl Correlogram {
    /// Bins on each side of zero lag.
    pub fn half_bins(&self) -> usize {
        self.counts.len() / 2
    }
}

/// Correlogram of `st2` against `st1` (times in s, sorted or not), `n_bins` bins of `bin_s` on
/// each side of zero (Kilosort4's `compute_CCG`).
///
/// Every pair with lag `b − a` in `[−n_bins·bin_s, n_bins·bin_s)` is counted in bin
/// `round((b − a)/bin_s) + n_bins`, rounding half to even, found with a two-pointer sweep. Empty
/// trains give zero counts and a zero span.
#[doc(alias = "compute_CCG")]
pub fn correlogram(st1: &[f64], st2: &[f64], bin_s: f64, n_bins: usize) -> Correlogram {
    let (st1, st2) = (sorted(st1), sorted(st2));
    let mut counts = vec![0u64; 2 * n_bins + 1];
    let span_s = match (st1.first(), st1.last(), st2.first(), st2.last()) {
        (Some(&lo1), Some(&hi1), Some(&lo2), Some(&hi2)) => hi1.max(hi2) - lo1.min(lo2),
        _ => 0.0,
    };
    let window = n_bins as f64 * bin_s;
    let (mut low, mut high) = (0, 0);
    for &b in st2.iter() {
        while high < st1.len() && st1[high] <= b + window {
            high += 1;
        }
        while low < st1.len() && st1[low] <= b - window {
            low += 1;
        }
        if low >= st1.len() {
            break;
        }
        for &a in &st1[low..high] {
            let bin = ((b - a) / bin_s).round_ties_even() as i64 + n_bins as i64;
            counts[bin.clamp(0, 2 * n_bins as i64) as usize] += 1;
        }
    }
    Correlogram { counts, span_s, n1: st1.len(), n2: st2.len() }
}

fn sorted(times: &[f64]) -> Cow<'_, [f64]> {
    if times.is_sorted() {
        Cow::Borrowed(times)
    } else {
        let mut v = times.to_vec();
        v.sort_by(f64::total_cmp);
        Cow::Owned(v)
    }
}

/// Refractory-period metrics of a correlogram (Kilosort4's `CCG_metrics`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CcgMetrics {
    /// Smallest rate within ±1…±10 ms of zero lag (zero-lag bin excluded) relative to the
    /// baseline max(R00, R01): the refractory-violation ratio, Kilosort4's contamination estimate.
    pub r12: f64,
    /// Smallest probability, over the same windows, of seeing so few pairs from a Poisson
    /// process at the baseline count per bin (normal approximation).
    pub q12: f64,
    /// Baseline pair count per bin: the largest mean over the shoulders and the near windows.
    pub q00: f64,
    /// Rate over the shoulders (|lag| 250–499 ms) relative to independent Poisson trains.
    pub r00: f64,
    /// The larger rate of the near windows (lags −50…−11 ms and +10…+49 ms), same normalisation.
    pub r01: f64,
}

/// The metrics of `ccg` with bins of `bin_s` (Kilosort4's `CCG_metrics`); NaN when a train is
/// empty. Needs at least 50 bins each side.
#[doc(alias = "CCG_metrics")]
pub fn ccg_metrics(ccg: &Correlogram, bin_s: f64) -> CcgMetrics {
    let nb = ccg.half_bins();
    assert!(nb >= NEAR_WINDOW.end, "correlogram metrics need at least {} bins each side", NEAR_WINDOW.end);
    let k = &ccg.counts;
    let (n1, n2, span) = (ccg.n1 as f64, ccg.n2 as f64, ccg.span_s);
    // Expected pairs in `w` bins for independent Poisson trains, in Kilosort4's order of operations.
    let expected = |w: usize| w as f64 * bin_s * n1 * n2 / span;
    let sum = |r: std::ops::Range<usize>| k[r].iter().sum::<u64>() as f64;

    let shoulders = [1..nb / 2, 3 * nb / 2..2 * nb];
    let shoulder_bins: usize = shoulders.iter().map(|r| r.len()).sum();
    let shoulder_sum: f64 = shoulders.iter().map(|r| sum(r.clone())).sum();
    let left = nb - NEAR_WINDOW.end..nb - NEAR_WINDOW.start;
    let right = nb + NEAR_WINDOW.start..nb + NEAR_WINDOW.end;
    let near_bins = NEAR_WINDOW.len();

    let r00 = shoulder_sum / expected(shoulder_bins);
    let r01 = nan_max(sum(left.clone()) / expected(near_bins), sum(right.clone()) / expected(near_bins));
    let q00 = nan_max(
        nan_max(sum(left) / near_bins as f64, sum(right) / near_bins as f64),
        shoulder_sum / shoulder_bins as f64,
    );

    let (mut r_min, mut q_min) = (f64::INFINITY, f64::INFINITY);
    for i in 1..=MAX_REFRACTORY_BINS {
        // The zero-lag bin is left out: in an auto-correlogram it holds every spike's self-pair.
        let pairs = sum(nb - i..nb) + sum(nb + 1..nb + i + 1);
        r_min = nan_min(r_min, pairs / expected(2 * i));
        let lambda = q00 * i as f64;
        let q = 0.5 * (1.0 + erf((pairs / 2.0 - lambda) / (RATIO_EPSILON + 2.0 * lambda).sqrt()));
        q_min = nan_min(q_min, q);
    }
    let r12 = r_min / (RATIO_EPSILON + nan_max(r00, r01));
    CcgMetrics { r12, q12: q_min, q00, r00, r01 }
}

/// NumPy's `maximum`: NaN if either is NaN.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// NumPy's `min` over a sequence: NaN if any is NaN.
fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Outcome of the refractory tests on one train or a pair (Kilosort4's `check_CCG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CcgCheck {
    /// R12 < `acg_threshold` and Q12 < 0.2: a well-isolated unit ("good").
    pub is_refractory: bool,
    /// R12 < `ccg_threshold` and Q12 < 0.05: the two trains behave as one neuron.
    pub cross_refractory: bool,
    /// The refractory-violation ratio R12 (NaN for an empty train).
    pub r12: f64,
}

/// Refractory tests on the auto-correlogram of `st1` (`st2 = None`) or the cross-correlogram of
/// `st1` and `st2` (times in s), with 1 ms bins over ±0.5 s (Kilosort4's `check_CCG`).
#[doc(alias = "check_CCG")]
pub fn check_ccg(st1: &[f64], st2: Option<&[f64]>, acg_threshold: f64, ccg_threshold: f64) -> CcgCheck {
    let m = ccg_metrics(&correlogram(st1, st2.unwrap_or(st1), CCG_BIN_S, CCG_HALF_BINS), CCG_BIN_S);
    CcgCheck {
        is_refractory: m.r12 < acg_threshold && m.q12 < ACG_Q_LIMIT,
        cross_refractory: m.r12 < ccg_threshold && m.q12 < CCG_Q_LIMIT,
        r12: m.r12,
    }
}

/// Whether two spike trains (times in s) are cross-refractory: the criterion for merging two
/// clusters into one unit. Empty trains never are.
pub fn cross_refractory(times_a: &[f64], times_b: &[f64], ccg_threshold: f64) -> bool {
    // acg_threshold only affects is_refractory, which is not used here.
    check_ccg(times_a, Some(times_b), ccg_threshold, ccg_threshold).cross_refractory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_built_correlogram() {
        // 3 bins of 1 s each side. Lags b − a for a in st1, b in st2:
        // b=1.0: 1.0−0.0=1.0 → bin 1+3=4; 1.0−2.5=−1.5 → round-half-even −2 → 1; 1.0−3.2=−2.2 → −2 → 1
        // b=2.5: 2.5−0=2.5 → 2 (half to even) → 5; 2.5−2.5=0 → 3; 2.5−3.2=−0.7 → −1 → 2
        // b=6.0: 6−2.5=3.5 is ≥ 3 s: outside; 6−3.2=2.8 → 3 → 6
        let ccg = correlogram(&[3.2, 0.0, 2.5], &[1.0, 6.0, 2.5], 1.0, 3);
        assert_eq!(ccg.counts, vec![0, 2, 1, 1, 1, 1, 1]);
        assert_eq!((ccg.span_s, ccg.n1, ccg.n2), (6.0, 3, 3));
        // Lag exactly −window is in, +window is out.
        let edge = correlogram(&[0.0, 4.0], &[2.0], 1.0, 2);
        assert_eq!(edge.counts, vec![1, 0, 0, 0, 0]);
    }

    #[test]
    fn auto_correlogram_counts_self_pairs_at_zero_lag() {
        let st = [0.0, 0.0104, 0.5];
        let acg = correlogram(&st, &st, CCG_BIN_S, CCG_HALF_BINS);
        assert_eq!(acg.counts[CCG_HALF_BINS], 3);
        assert_eq!((acg.counts[CCG_HALF_BINS + 10], acg.counts[CCG_HALF_BINS - 10]), (1, 1));
        // The pair (0.5, 0) has lags −0.5 s (kept, first bin) and +0.5 s (outside [−0.5, 0.5)).
        assert_eq!(acg.counts[0], 1);
        assert_eq!(acg.counts.iter().sum::<u64>(), 8);
    }

    #[test]
    fn regular_train_metrics_by_hand() {
        // One spike every 20 ms for 10 s: ACG peaks at multiples of 20 bins, nothing within ±10 ms.
        let st: Vec<f64> = (0..500).map(|i| i as f64 * 0.02).collect();
        let acg = correlogram(&st, &st, CCG_BIN_S, CCG_HALF_BINS);
        let m = ccg_metrics(&acg, CCG_BIN_S);
        assert_eq!(m.r12, 0.0);
        // Near windows: lags 20 and 40 ms lie in 10…49 ms; 499 + 498 pairs on the right.
        assert_eq!(acg.counts[CCG_HALF_BINS + 20], 499);
        let expected40 = 40.0 * CCG_BIN_S * 500.0 * 500.0 / acg.span_s;
        assert!((m.r01 - (499.0 + 498.0) / expected40).abs() < 1e-12);
        assert!(m.q12 < 1e-10);
        let check = check_ccg(&st, None, 0.2, 0.25);
        assert!(check.is_refractory && check.cross_refractory);
    }

    #[test]
    fn empty_trains_are_never_refractory() {
        let check = check_ccg(&[], None, 0.2, 0.25);
        assert!(!check.is_refractory && !check.cross_refractory && check.r12.is_nan());
        assert!(!cross_refractory(&[1.0, 2.0], &[], 0.25));
    }
}
