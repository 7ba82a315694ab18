//! Post-processing (spec §9): correlograms and refractory-period metrics, duplicate-spike
//! removal, spike positions and amplitudes, and the per-spike features Phy shows.
//!
//! Every function takes plain arrays (spike times, labels, features) so that the clustering
//! stage can reuse the correlogram tests as its split veto and merge criterion
//! ([`cross_refractory`]), and the results writer can call the rest at export.

mod ccg;
mod duplicates;
mod erf;
mod pc_features;
mod positions;
mod refract;
mod template_features;

pub use ccg::{
    CCG_BIN_S, CCG_HALF_BINS, CcgCheck, CcgMetrics, Correlogram, ccg_metrics, check_ccg, correlogram, cross_refractory,
};
pub use duplicates::remove_duplicates;
pub use erf::erf;
pub use pc_features::{PcFeatures, pc_features};
pub use positions::{SpikeChannels, cluster_amplitudes, spike_amplitudes, spike_positions};
pub use refract::{MIN_SPIKES_FOR_REFRACTORINESS, Refractoriness, refractoriness};
pub use template_features::{TEMPLATE_FEATURE_COUNT, TemplateFeatures, template_features};

/// Spike indices of each label `0..n_groups`, ascending within a group (a counting sort).
///
/// Labels `>= n_groups` are a caller bug.
fn group_by_label(labels: &[u32], n_groups: usize) -> Vec<Vec<usize>> {
    let mut counts = vec![0usize; n_groups];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let mut groups: Vec<Vec<usize>> = counts.into_iter().map(Vec::with_capacity).collect();
    for (i, &l) in labels.iter().enumerate() {
        groups[l as usize].push(i);
    }
    groups
}

/// Number of clusters implied by the labels: the largest label plus one (0 when empty), as
/// Kilosort4 sizes its per-cluster arrays.
fn label_count(labels: &[u32]) -> usize {
    labels.iter().max().map_or(0, |&m| m as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_spike_order_and_empty_labels() {
        let groups = group_by_label(&[2, 0, 2, 2, 0], 4);
        assert_eq!(groups, vec![vec![1, 4], vec![], vec![0, 2, 3], vec![]]);
        assert_eq!(label_count(&[2, 0, 5]), 6);
        assert_eq!(label_count(&[]), 0);
    }
}
