//! Score a sorting against ground truth, exactly as SpikeInterface 0.105's
//! `compare_sorter_to_ground_truth` does (the comparison `/work/shared/bench/score.py` runs), plus
//! Kilosort4's own `bench.py` score.
//!
//! SpikeInterface convention, step by step:
//! 1. `delta_frames = int(delta_ms / 1000 * fs)` (truncation).
//! 2. Match counts per (GT unit, sorted unit) from one sweep over time-sorted spikes, each spike
//!    counted at most once per pair, clipped to the sorted unit's spike count.
//! 3. Agreement `n_match / (n_gt + n_sorted − n_match)` (0 when both trains are empty).
//! 4. Hungarian assignment (scipy `linear_sum_assignment` semantics, ties included) on the
//!    agreement matrix with entries `< match_score` set to 0; only pairs with agreement
//!    `≥ match_score` count as matched.
//! 5. Per GT unit: `tp` = matches with its matched unit, `fn = n_gt − tp`, `fp = n_sorted − tp`;
//!    accuracy `tp/(tp+fn+fp)`, recall `tp/(tp+fn)`, precision `tp/(tp+fp)`. Unmatched GT units
//!    (and any unit with `tp = 0`) get 0 for every rate, not NaN, as SpikeInterface does.
//! 6. Sorted-unit categories: well detected, false positive, redundant, overmerged, bad (see
//!    [`Comparison`]); "best match" there uses `chance_score`.
//!
//! Kilosort convention (`kilosort/bench.py`): per GT unit, the sorted unit maximising
//! `1 − miss − fpos` with spikes matched within `ks_delta_ms`, where `miss = max(0, 1 − n0/n_gt)`,
//! `fpos = max(0, 1 − n0/n_sorted)` and `n0` counts GT spikes that have a sorted spike within the
//! window; "correct" when the score is ≥ 0.8. bench.py only tries the 20 clusters nearest in depth;
//! we try all of them (no positions needed), which can only raise a score.
//!
//! ```
//! use groundtruth::compare::{compare, CompareOptions, SpikeTrains};
//! let gt = SpikeTrains { times: vec![100, 400, 900, 1500], units: vec![0, 0, 1, 1] };
//! let sorted = SpikeTrains { times: vec![103, 398, 905], units: vec![7, 7, 8] };
//! let c = compare(&gt, &sorted, 30_000.0, &CompareOptions::default());
//! assert_eq!(c.per_gt_unit[0].matched_unit, Some(7));
//! assert_eq!(c.per_gt_unit[1].accuracy, 0.5);
//! assert_eq!(c.well_detected, 1);
//! ```

mod hungarian;
mod load;
mod matching;
mod report;

pub use hungarian::{AssignmentError, linear_sum_assignment};
pub use load::{CompareError, load_gt_folder, load_gt_snr, load_npy_pair, load_phy_folder};
pub use report::Summary;

use matching::Indexed;
use ndarray::Array2;

/// Spike times (sample indices) and the unit id of each spike; the two vectors have equal length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpikeTrains {
    /// Sample index of every spike (any order).
    pub times: Vec<i64>,
    /// Unit (cluster) id of every spike.
    pub units: Vec<i64>,
}

impl SpikeTrains {
    /// Keep only spikes with `0 ≤ time < n_samples`, as score.py does with a sorting before
    /// comparing; returns how many were dropped.
    ///
    /// # Panics
    /// If `times` and `units` differ in length.
    pub fn retain_in_range(&mut self, n_samples: i64) -> usize {
        assert_eq!(self.times.len(), self.units.len(), "SpikeTrains: times and units differ in length");
        let before = self.times.len();
        let keep: Vec<bool> = self.times.iter().map(|&t| (0..n_samples).contains(&t)).collect();
        let mut k = keep.iter();
        self.times.retain(|_| *k.next().unwrap_or(&false));
        let mut k = keep.iter();
        self.units.retain(|_| *k.next().unwrap_or(&false));
        before - self.times.len()
    }
}

/// Thresholds of the comparison; the defaults are score.py's.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareOptions {
    /// Matching window, ms, inclusive (SpikeInterface `delta_time`, 0.4).
    pub delta_ms: f64,
    /// Minimum agreement for a Hungarian match (0.5).
    pub match_score: f64,
    /// Minimum agreement for a "best match" (0.1), used by the redundant / false-positive tests.
    pub chance_score: f64,
    /// Agreement at or above which a matched sorted unit is "well detected" (0.8).
    pub well_detected_score: f64,
    /// Agreement at or above which an unmatched sorted unit is redundant, not a false positive (0.2).
    pub redundant_score: f64,
    /// Agreement above which a sorted unit counts towards a GT unit for "overmerged" (0.2).
    pub overmerged_score: f64,
    /// Whether the ground truth holds every unit; the false-positive, redundant, overmerged and
    /// bad counts are only defined then (true, as score.py uses).
    pub exhaustive_gt: bool,
    /// Kilosort bench.py matching window, ms (0.2 = 6 samples at 30 kHz).
    pub ks_delta_ms: f64,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            delta_ms: 0.4,
            match_score: 0.5,
            chance_score: 0.1,
            well_detected_score: 0.8,
            redundant_score: 0.2,
            overmerged_score: 0.2,
            exhaustive_gt: true,
            ks_delta_ms: 0.2,
        }
    }
}

/// The scores of one ground-truth unit.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitScore {
    /// GT unit id.
    pub gt_unit: i64,
    /// Hungarian-matched sorted unit, if any.
    pub matched_unit: Option<i64>,
    /// Spikes of the GT unit.
    pub n_spikes: usize,
    /// Agreement with the matched unit (0 when unmatched).
    pub agreement: f64,
    /// True positives: matched spikes (0 when unmatched).
    pub tp: u64,
    /// False negatives: GT spikes not matched.
    pub fn_count: u64,
    /// False positives: spikes of the matched unit not matched (0 when unmatched).
    pub fp_count: u64,
    /// `tp/(tp+fn+fp)`, 0 when unmatched.
    pub accuracy: f64,
    /// `tp/(tp+fp)`, 0 when unmatched.
    pub precision: f64,
    /// `tp/(tp+fn)`, 0 when unmatched.
    pub recall: f64,
    /// `fp/(tp+fp)`, 0 when unmatched (SpikeInterface's convention).
    pub false_discovery_rate: f64,
    /// `fn/n_spikes`, 0 when unmatched (SpikeInterface's convention, although 1 would be natural).
    pub miss_rate: f64,
    /// Kilosort bench.py score `1 − fpos − miss` against the best sorted unit (0 if none).
    pub ks_score: f64,
    /// The sorted unit giving `ks_score`.
    pub ks_best_unit: Option<i64>,
}

/// The result of [`compare`]: SpikeInterface's numbers and Kilosort's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Options used.
    pub options: CompareOptions,
    /// Sampling rate, Hz.
    pub fs: f64,
    /// Matching window in samples, `int(delta_ms/1000·fs)`.
    pub delta_frames: i64,
    /// Kilosort window in samples, `round(ks_delta_ms·fs/1000)`.
    pub ks_delta_frames: i64,
    /// Number of GT units.
    pub n_gt_units: usize,
    /// Number of sorted units (distinct labels).
    pub n_sorted_units: usize,
    /// Number of GT spikes.
    pub n_gt_spikes: usize,
    /// Number of sorted spikes.
    pub n_sorted_spikes: usize,
    /// GT unit ids, ascending (rows of the matrices).
    pub gt_unit_ids: Vec<i64>,
    /// Sorted unit ids, ascending (columns of the matrices).
    pub sorted_unit_ids: Vec<i64>,
    /// Spikes per sorted unit.
    pub sorted_spike_counts: Vec<usize>,
    /// Matched spike counts, GT × sorted.
    pub match_counts: Array2<u64>,
    /// Agreement scores, GT × sorted.
    pub agreement: Array2<f64>,
    /// Best match of each GT unit (highest agreement, first on ties, if ≥ `chance_score`).
    pub best_match_12: Vec<Option<i64>>,
    /// Best match of each sorted unit (highest agreement, first on ties, if ≥ `chance_score`).
    pub best_match_21: Vec<Option<i64>>,
    /// Hungarian match of each sorted unit.
    pub hungarian_match_21: Vec<Option<i64>>,
    /// Sorted units matched to a GT unit with agreement ≥ `well_detected_score`.
    pub well_detected_units: Vec<i64>,
    /// Unmatched sorted units whose best match is none or below `redundant_score`.
    pub false_positive_unit_ids: Vec<i64>,
    /// Unmatched sorted units whose best GT unit (agreement ≥ `redundant_score`) prefers another.
    pub redundant_units: Vec<i64>,
    /// Sorted units with agreement > `overmerged_score` with two or more GT units.
    pub overmerged_units: Vec<i64>,
    /// Unmatched sorted units.
    pub bad_unit_ids: Vec<i64>,
    /// `well_detected_units.len()`.
    pub well_detected: usize,
    /// Count of false-positive units; `None` unless `exhaustive_gt`.
    pub false_positive_units: Option<usize>,
    /// Count of redundant units; `None` unless `exhaustive_gt`.
    pub redundant: Option<usize>,
    /// Count of overmerged units; `None` unless `exhaustive_gt`.
    pub overmerged: Option<usize>,
    /// Count of bad units (unmatched); `None` unless `exhaustive_gt`.
    pub bad_units: Option<usize>,
    /// Mean accuracy over all GT units (0 for unmatched ones; 0 when there are no GT units).
    pub accuracy_mean: f64,
    /// Median accuracy over all GT units.
    pub accuracy_median: f64,
    /// Mean precision over all GT units.
    pub precision_mean: f64,
    /// Mean recall over all GT units.
    pub recall_mean: f64,
    /// score.py's median (sorted − GT) lag in samples over matched pairs, window ±round(delta).
    pub median_lag_samples: Option<f64>,
    /// Per GT unit, in `gt_unit_ids` order.
    pub per_gt_unit: Vec<UnitScore>,
    /// GT units with `ks_score ≥ 0.8`.
    pub ks_correct: usize,
}

/// Compare a sorting to ground truth; see the [module docs](self) for the exact conventions.
///
/// GT units are the distinct labels of `gt`. `fs` is the sampling rate in Hz.
///
/// # Panics
/// If `times` and `units` of either train differ in length.
pub fn compare(gt: &SpikeTrains, sorted: &SpikeTrains, fs: f64, opts: &CompareOptions) -> Comparison {
    compare_with_gt_units(gt, sorted, &[], fs, opts)
}

/// [`compare`] with extra GT unit ids that may have no spikes (for example every `unit_id` of
/// `gt_units.json`); they get a row of zeros and count in the means.
///
/// # Panics
/// If `times` and `units` of either train differ in length.
pub fn compare_with_gt_units(
    gt: &SpikeTrains,
    sorted: &SpikeTrains,
    gt_units: &[i64],
    fs: f64,
    opts: &CompareOptions,
) -> Comparison {
    let g = Indexed::new(gt, gt_units);
    let s = Indexed::new(sorted, &[]);
    let (n1, n2) = (g.ids.len(), s.ids.len());
    let delta_frames = matching::si_delta_frames(opts.delta_ms, fs);
    let ks_delta_frames = (opts.ks_delta_ms * fs / 1000.0).round_ties_even() as i64;

    let counts = matching::si_match_counts(&g, &s, delta_frames);
    let mut agreement = vec![0.0f64; n1 * n2];
    for i in 0..n1 {
        for j in 0..n2 {
            let m = counts[i * n2 + j];
            let denom = (g.counts[i] + s.counts[j]) as f64 - m as f64;
            agreement[i * n2 + j] = if denom == 0.0 { 0.0 } else { m as f64 / denom };
        }
    }
    let at = |i: usize, j: usize| agreement[i * n2 + j];

    // Best matches (np.argmax: first maximum), kept if >= chance_score.
    let argmax = |vals: &mut dyn Iterator<Item = (usize, f64)>| {
        let mut best: Option<(usize, f64)> = None;
        for (k, v) in vals {
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((k, v));
            }
        }
        best.filter(|&(_, v)| v >= opts.chance_score).map(|(k, _)| k)
    };
    let best12: Vec<Option<usize>> = (0..n1).map(|i| argmax(&mut (0..n2).map(|j| (j, at(i, j))))).collect();
    let best21: Vec<Option<usize>> = (0..n2).map(|j| argmax(&mut (0..n1).map(|i| (i, at(i, j))))).collect();

    // Hungarian on -(scores thresholded at match_score); keep pairs with agreement >= match_score.
    let cost: Vec<f64> = agreement.iter().map(|&a| if a < opts.match_score { -0.0 } else { -a }).collect();
    let pairs = linear_sum_assignment(&cost, n1, n2).expect("agreement scores are finite");
    let mut h12 = vec![None; n1];
    let mut h21 = vec![None; n2];
    for (i, j) in pairs {
        if at(i, j) >= opts.match_score {
            h12[i] = Some(j);
            h21[j] = Some(i);
        }
    }

    // Sorted-unit categories, in sorted-unit order.
    let ids2 = |keep: &dyn Fn(usize) -> bool| (0..n2).filter(|&j| keep(j)).map(|j| s.ids[j]).collect::<Vec<_>>();
    let well_detected_units = ids2(&|j| h21[j].is_some_and(|i| at(i, j) >= opts.well_detected_score));
    let false_positive_unit_ids =
        ids2(&|j| h21[j].is_none() && best21[j].is_none_or(|i| at(i, j) < opts.redundant_score));
    let redundant_units = ids2(&|j| {
        h21[j].is_none() && best21[j].is_some_and(|i| best12[i] != Some(j) && at(i, j) >= opts.redundant_score)
    });
    let overmerged_units = ids2(&|j| (0..n1).filter(|&i| at(i, j) > opts.overmerged_score).count() > 1);
    let bad_unit_ids = ids2(&|j| h21[j].is_none());
    let exhaustive = |v: &Vec<i64>| opts.exhaustive_gt.then_some(v.len());

    // Kilosort bench.py score.
    let n0 = matching::ks_match_counts(&g, &s, ks_delta_frames);
    let ks = matching::ks_scores(&n0, &g.counts, &s.counts);

    let per_gt_unit: Vec<UnitScore> = (0..n1)
        .map(|i| {
            let n_gt = g.counts[i] as u64;
            let (tp, fp, agr) = match h12[i] {
                Some(j) => (counts[i * n2 + j], s.counts[j] as u64 - counts[i * n2 + j], at(i, j)),
                None => (0, 0, 0.0),
            };
            let fn_count = n_gt - tp;
            let keep = n_gt > 0 && tp > 0;
            let rate = |num: u64, den: u64| if keep { num as f64 / den as f64 } else { 0.0 };
            UnitScore {
                gt_unit: g.ids[i],
                matched_unit: h12[i].map(|j| s.ids[j]),
                n_spikes: g.counts[i],
                agreement: agr,
                tp,
                fn_count,
                fp_count: fp,
                accuracy: rate(tp, tp + fn_count + fp),
                precision: rate(tp, tp + fp),
                recall: rate(tp, tp + fn_count),
                false_discovery_rate: rate(fp, tp + fp),
                miss_rate: rate(fn_count, n_gt),
                ks_score: ks[i].0,
                ks_best_unit: ks[i].1.map(|j| s.ids[j]),
            }
        })
        .collect();

    let matched: Vec<(usize, usize)> = (0..n1).filter_map(|i| h12[i].map(|j| (i, j))).collect();
    let window = (opts.delta_ms * fs / 1000.0).round_ties_even() as i64;
    let median_lag_samples = matching::median_lag(&g.per_unit_times(), &s.per_unit_times(), &matched, window);

    let mut c = Comparison {
        options: opts.clone(),
        fs,
        delta_frames,
        ks_delta_frames,
        n_gt_units: n1,
        n_sorted_units: n2,
        n_gt_spikes: g.times.len(),
        n_sorted_spikes: s.times.len(),
        best_match_12: best12.iter().map(|b| b.map(|j| s.ids[j])).collect(),
        best_match_21: best21.iter().map(|b| b.map(|i| g.ids[i])).collect(),
        hungarian_match_21: h21.iter().map(|b| b.map(|i| g.ids[i])).collect(),
        match_counts: Array2::from_shape_vec((n1, n2), counts).expect("n1*n2 counts"),
        agreement: Array2::from_shape_vec((n1, n2), agreement).expect("n1*n2 scores"),
        well_detected: well_detected_units.len(),
        false_positive_units: exhaustive(&false_positive_unit_ids),
        redundant: exhaustive(&redundant_units),
        overmerged: exhaustive(&overmerged_units),
        bad_units: exhaustive(&bad_unit_ids),
        well_detected_units,
        false_positive_unit_ids,
        redundant_units,
        overmerged_units,
        bad_unit_ids,
        gt_unit_ids: g.ids,
        sorted_unit_ids: s.ids,
        sorted_spike_counts: s.counts,
        accuracy_mean: 0.0,
        accuracy_median: 0.0,
        precision_mean: 0.0,
        recall_mean: 0.0,
        median_lag_samples,
        ks_correct: ks.iter().filter(|k| k.0 >= 0.8).count(),
        per_gt_unit,
    };
    let all = c.summary();
    c.accuracy_mean = all.accuracy_mean.unwrap_or(0.0);
    c.accuracy_median = all.accuracy_median.unwrap_or(0.0);
    c.precision_mean = all.precision_mean.unwrap_or(0.0);
    c.recall_mean = all.recall_mean.unwrap_or(0.0);
    c
}
