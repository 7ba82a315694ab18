//! Summaries, JSON (score.py's key names) and a human-readable table.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde::Serialize;

use super::{Comparison, UnitScore};

/// Metrics over a set of GT units, with score.py's `summarize` keys (plus `ks_correct`).
/// Means and medians are `None` for an empty set, as score.py writes `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// GT units summarised.
    pub n_gt_units: usize,
    /// Units with accuracy ≥ 0.8.
    pub n_acc_ge_0_8: usize,
    /// Units with accuracy ≥ 0.5.
    pub n_acc_ge_0_5: usize,
    /// Mean accuracy (unmatched units count as 0).
    pub accuracy_mean: Option<f64>,
    /// Median accuracy.
    pub accuracy_median: Option<f64>,
    /// Mean recall.
    pub recall_mean: Option<f64>,
    /// Median recall.
    pub recall_median: Option<f64>,
    /// Mean precision.
    pub precision_mean: Option<f64>,
    /// Median precision.
    pub precision_median: Option<f64>,
    /// Mean precision over units with accuracy > 0.
    pub precision_mean_matched: Option<f64>,
    /// Units with Kilosort score ≥ 0.8.
    pub ks_correct: usize,
}

/// numpy's pairwise summation (`pairwise_sum`, blocks of 128, 8 accumulators).
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |r, &x| r + x)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[i..] {
            res += x;
        }
        res
    } else {
        let half = n / 2;
        let half = half - half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

/// `np.mean` of a contiguous float64 vector, bit for bit (checked against numpy 2.4 in the
/// SpikeInterface fixtures): the pairwise sum divided by the count.
fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| pairwise_sum(v) / v.len() as f64)
}

/// numpy's median: the middle value, or the mean of the two middle values.
fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 })
}

fn summarize<'a>(units: impl Iterator<Item = &'a UnitScore>) -> Summary {
    let units: Vec<&UnitScore> = units.collect();
    let acc: Vec<f64> = units.iter().map(|u| u.accuracy).collect();
    let rec: Vec<f64> = units.iter().map(|u| u.recall).collect();
    let pre: Vec<f64> = units.iter().map(|u| u.precision).collect();
    let pre_matched: Vec<f64> = units.iter().filter(|u| u.accuracy > 0.0).map(|u| u.precision).collect();
    Summary {
        n_gt_units: units.len(),
        n_acc_ge_0_8: acc.iter().filter(|&&a| a >= 0.8).count(),
        n_acc_ge_0_5: acc.iter().filter(|&&a| a >= 0.5).count(),
        accuracy_mean: mean(&acc),
        accuracy_median: median(&acc),
        recall_mean: mean(&rec),
        recall_median: median(&rec),
        precision_mean: mean(&pre),
        precision_median: median(&pre),
        precision_mean_matched: mean(&pre_matched),
        ks_correct: units.iter().filter(|u| u.ks_score >= 0.8).count(),
    }
}

#[derive(Serialize)]
struct UnitJson {
    gt_unit: i64,
    matched_unit: Option<i64>,
    accuracy: f64,
    recall: f64,
    precision: f64,
    n_spikes: usize,
    agreement: f64,
    tp: u64,
    #[serde(rename = "fn")]
    fn_count: u64,
    fp: u64,
    ks_score: f64,
    ks_best_unit: Option<i64>,
}

#[derive(Serialize)]
struct ComparisonJson<'a> {
    scorer: &'static str,
    fs: f64,
    delta_time_ms: f64,
    delta_frames: i64,
    n_gt_units: usize,
    n_sorted_units: usize,
    n_gt_spikes: usize,
    n_sorted_spikes: usize,
    well_detected: usize,
    redundant: Option<usize>,
    overmerged: Option<usize>,
    false_positive_units: Option<usize>,
    bad_units: Option<usize>,
    all_gt: Summary,
    n_acc_ge_0_8: usize,
    n_acc_ge_0_5: usize,
    accuracy_mean: Option<f64>,
    accuracy_median: Option<f64>,
    precision_mean: Option<f64>,
    recall_mean: Option<f64>,
    median_lag_samples: Option<f64>,
    ks_delta_ms: f64,
    ks_delta_frames: i64,
    ks_correct: usize,
    per_gt_unit: Vec<UnitJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gt_subset: Option<&'a Summary>,
}

impl Comparison {
    /// Metrics over all GT units (score.py's `all_gt`).
    pub fn summary(&self) -> Summary {
        summarize(self.per_gt_unit.iter())
    }

    /// Metrics over the given GT units only (e.g. those with SNR ≥ 5, score.py's `gt_snr_ge_5`);
    /// ids that are not GT units are ignored, duplicates count once.
    pub fn restrict_to(&self, gt_units: &[i64]) -> Summary {
        let keep: HashSet<i64> = gt_units.iter().copied().collect();
        summarize(self.per_gt_unit.iter().filter(|u| keep.contains(&u.gt_unit)))
    }

    /// The comparison as pretty JSON with score.py's key names (`n_gt_units`, `n_sorted_units`,
    /// `well_detected`, `false_positive_units`, `redundant`, `overmerged`, `bad_units`,
    /// `accuracy_mean`, `accuracy_median`, `precision_mean`, `recall_mean`, `all_gt`,
    /// `median_lag_samples`, `per_gt_unit` with `gt_unit`, `matched_unit`, `accuracy`, `recall`,
    /// `precision`), plus `ks_score` per unit and `ks_correct`.
    pub fn to_json(&self) -> String {
        self.json_with(None)
    }

    /// [`to_json`](Self::to_json) plus a `gt_subset` summary (e.g. from [`restrict_to`](Self::restrict_to)).
    pub fn to_json_with_subset(&self, subset: &Summary) -> String {
        self.json_with(Some(subset))
    }

    fn json_with(&self, subset: Option<&Summary>) -> String {
        let all = self.summary();
        let out = ComparisonJson {
            scorer: "kilosort-rs groundtruth::compare (SpikeInterface 0.105 compare_sorter_to_ground_truth)",
            fs: self.fs,
            delta_time_ms: self.options.delta_ms,
            delta_frames: self.delta_frames,
            n_gt_units: self.n_gt_units,
            n_sorted_units: self.n_sorted_units,
            n_gt_spikes: self.n_gt_spikes,
            n_sorted_spikes: self.n_sorted_spikes,
            well_detected: self.well_detected,
            redundant: self.redundant,
            overmerged: self.overmerged,
            false_positive_units: self.false_positive_units,
            bad_units: self.bad_units,
            n_acc_ge_0_8: all.n_acc_ge_0_8,
            n_acc_ge_0_5: all.n_acc_ge_0_5,
            accuracy_mean: all.accuracy_mean,
            accuracy_median: all.accuracy_median,
            precision_mean: all.precision_mean,
            recall_mean: all.recall_mean,
            all_gt: all,
            median_lag_samples: self.median_lag_samples,
            ks_delta_ms: self.options.ks_delta_ms,
            ks_delta_frames: self.ks_delta_frames,
            ks_correct: self.ks_correct,
            per_gt_unit: self
                .per_gt_unit
                .iter()
                .map(|u| UnitJson {
                    gt_unit: u.gt_unit,
                    matched_unit: u.matched_unit,
                    accuracy: u.accuracy,
                    recall: u.recall,
                    precision: u.precision,
                    n_spikes: u.n_spikes,
                    agreement: u.agreement,
                    tp: u.tp,
                    fn_count: u.fn_count,
                    fp: u.fp_count,
                    ks_score: u.ks_score,
                    ks_best_unit: u.ks_best_unit,
                })
                .collect(),
            gt_subset: subset,
        };
        serde_json::to_string_pretty(&out).expect("plain data serialises")
    }

    /// A plain-text report: headline counts, then one line per GT unit.
    pub fn table(&self) -> String {
        let opt = |x: Option<usize>| x.map_or("n/a".to_string(), |v| v.to_string());
        let mut t = String::new();
        let _ = writeln!(
            t,
            "GT units {}  sorted units {}  GT spikes {}  sorted spikes {}  (fs {} Hz, delta {} ms = {} samples)",
            self.n_gt_units,
            self.n_sorted_units,
            self.n_gt_spikes,
            self.n_sorted_spikes,
            self.fs,
            self.options.delta_ms,
            self.delta_frames
        );
        let _ = writeln!(
            t,
            "well detected {}  false positive {}  redundant {}  overmerged {}  bad {}",
            self.well_detected,
            opt(self.false_positive_units),
            opt(self.redundant),
            opt(self.overmerged),
            opt(self.bad_units)
        );
        let _ = writeln!(
            t,
            "accuracy mean {:.4} median {:.4}  precision mean {:.4}  recall mean {:.4}  KS correct (score >= 0.8, {} samples) {}/{}",
            self.accuracy_mean,
            self.accuracy_median,
            self.precision_mean,
            self.recall_mean,
            self.ks_delta_frames,
            self.ks_correct,
            self.n_gt_units
        );
        let _ = writeln!(
            t,
            "{:>8} {:>7} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "gt_unit", "spikes", "matched", "agree", "acc", "prec", "recall", "fp", "ks", "ks_unit"
        );
        for u in &self.per_gt_unit {
            let m = u.matched_unit.map_or("-".to_string(), |v| v.to_string());
            let k = u.ks_best_unit.map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                t,
                "{:>8} {:>7} {:>8} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>7} {:>7.3} {:>7}",
                u.gt_unit, u.n_spikes, m, u.agreement, u.accuracy, u.precision, u.recall, u.fp_count, u.ks_score, k
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_like_numpy() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 2.0]), Some(1.5));
        let v: Vec<f64> = (0..1000).map(|k| 1.0 / (k as f64 + 1.0)).collect();
        assert!((mean(&v).unwrap() - v.iter().sum::<f64>() / 1000.0).abs() < 1e-15);
    }
}
