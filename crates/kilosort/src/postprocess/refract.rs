//! Per-cluster refractoriness and contamination (Kilosort4's `refract`, spec §9.2): the "good"
//! label and the ContamPct column of Phy.

use rayon::prelude::*;

use super::ccg::check_ccg;
use super::{group_by_label, label_count};

/// Clusters with at most this many spikes are not tested: too few pairs for any statistic.
/// They get "not refractory" (label mua) and contamination 0, as in Kilosort4.
pub const MIN_SPIKES_FOR_REFRACTORINESS: usize = 10;

/// Refractoriness of every cluster `0..=max(label)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Refractoriness {
    /// Passes the auto-correlogram test (R12 < `acg_threshold`, Q12 < 0.2): a "good" unit.
    #[doc(alias = "is_ref")]
    pub is_refractory: Vec<bool>,
    /// Estimated contamination: R12 of the auto-correlogram (×100 is Phy's ContamPct).
    #[doc(alias = "est_contam_rate")]
    pub contamination: Vec<f64>,
}

/// Tests the auto-correlogram of each cluster's spikes (`times_s` in seconds, one label per spike).
///
/// A cluster is tested only if it has more than [`MIN_SPIKES_FOR_REFRACTORINESS`] spikes spread
/// over a non-zero time; otherwise it is not refractory with contamination 0. `ccg_threshold`
/// is accepted for symmetry with Kilosort4 and does not affect the result.
#[doc(alias = "refract")]
pub fn refractoriness(labels: &[u32], times_s: &[f64], acg_threshold: f64, ccg_threshold: f64) -> Refractoriness {
    assert_eq!(labels.len(), times_s.len(), "one label per spike time");
    let groups = group_by_label(labels, label_count(labels));
    let results: Vec<(bool, f64)> = groups
        .par_iter()
        .map(|spikes| {
            let times: Vec<f64> = spikes.iter().map(|&i| times_s[i]).collect();
            let (lo, hi) = times.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &t| (l.min(t), h.max(t)));
            if times.len() <= MIN_SPIKES_FOR_REFRACTORINESS || hi == lo {
                return (false, 0.0);
            }
            let check = check_ccg(&times, None, acg_threshold, ccg_threshold);
            (check.is_refractory, check.r12)
        })
        .collect();
    let (is_refractory, contamination) = results.into_iter().unzip();
    Refractoriness { is_refractory, contamination }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_instantaneous_clusters_are_mua_with_zero_contamination() {
        // Cluster 0: 10 spikes (not more than 10); cluster 1: none; cluster 2: 12 at one instant;
        // cluster 3: a regular 20 ms train, refractory.
        let mut labels = vec![0u32; 10];
        let mut times: Vec<f64> = (0..10).map(|i| i as f64).collect();
        labels.extend([2u32; 12]);
        times.extend([5.0; 12]);
        labels.extend([3u32; 400]);
        times.extend((0..400).map(|i| i as f64 * 0.02));
        let r = refractoriness(&labels, &times, 0.2, 0.25);
        assert_eq!(r.is_refractory, vec![false, false, false, true]);
        assert_eq!(r.contamination, vec![0.0, 0.0, 0.0, 0.0]);
        assert_eq!(refractoriness(&[], &[], 0.2, 0.25).is_refractory, Vec::<bool>::new());
    }
}
