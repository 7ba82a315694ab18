//! Phy's PC features (Kilosort4's `make_pc_features`, spec §9.7): each spike's features
//! re-expressed on a fixed set of channels per cluster, so Phy's FeatureView can compare the
//! spikes of a cluster on common axes.
//!
//! Kilosort4 processes clusters in order and writes, for each, the features of every spike
//! whose *learned template* the cluster uses, including spikes that ended up in other clusters;
//! the last cluster written wins, so such spikes can carry another cluster's channel set while
//! `pc_feature_ind` names their own. Here every spike is written once, on its own cluster's
//! channels, and a cluster's channels are chosen from its own spikes only (docs/differences.md).

use ndarray::{Array2, Array3, ArrayView3};
use rayon::prelude::*;

use super::group_by_label;
use super::positions::SpikeChannels;

/// Phy's `pc_features.npy` and `pc_feature_ind.npy`.
#[derive(Debug, Clone, PartialEq)]
pub struct PcFeatures {
    /// `(n_spikes, nPC, nC)`: spike i's PC features on the channels of `channel_index[cluster(i)]`,
    /// 0 where the spike has no feature on that channel.
    pub features: Array3<f32>,
    /// `(n_clusters, nC)`: each cluster's feature channels (indices into the sorted channels),
    /// strongest first.
    #[doc(alias = "pc_feature_ind")]
    pub channel_index: Array2<u32>,
}

/// PC features of every spike on its cluster's channels, made in the features' own memory (the
/// two tables have the same size, and at export this is the largest per-spike table).
///
/// `features` `(n_spikes, nC, nPC)` are the matching-stage features of the kept spikes, on the
/// channels given by `channels`; `labels` the final cluster of each spike, `< n_clusters`.
/// A cluster's channels are the union of its templates' neighbourhoods ranked by the norm of its
/// spikes' mean feature there (ties: lower channel first), of which the first nC are kept. A
/// cluster without spikes gets channels `0..nC` (never read).
#[doc(alias = "make_pc_features")]
pub fn pc_features(features: Array3<f32>, labels: &[u32], channels: &SpikeChannels, n_clusters: usize) -> PcFeatures {
    let (n, n_near, n_pcs) = features.dim();
    assert_eq!(labels.len(), n, "one label per spike");
    let groups = group_by_label(labels, n_clusters);
    let ranked: Vec<Vec<usize>> =
        groups.par_iter().map(|spikes| cluster_channels(features.view(), spikes, channels)).collect();
    let mut channel_index = Array2::<u32>::zeros((n_clusters, n_near));
    for (mut row, chans) in channel_index.outer_iter_mut().zip(&ranked) {
        for (j, slot) in row.iter_mut().enumerate() {
            *slot = chans.get(j).copied().unwrap_or(j) as u32;
        }
    }
    let mut values = features.as_standard_layout().into_owned().into_raw_vec_and_offset().0;
    let row_len = n_near * n_pcs;
    if row_len > 0 {
        values.par_chunks_mut(row_len).enumerate().for_each_init(
            || vec![0.0f32; row_len],
            |own_features, (i, row)| {
                // Row i goes from (channel, PC) on the spike's channels to (PC, channel) on its
                // cluster's channels.
                own_features.copy_from_slice(row);
                row.fill(0.0);
                let own = channels.channels(i);
                for (j, &target) in ranked[labels[i] as usize].iter().enumerate() {
                    if let Some(c) = own.iter().position(|&ch| ch == target) {
                        for p in 0..n_pcs {
                            row[p * n_near + j] = own_features[c * n_pcs + p];
                        }
                    }
                }
            },
        );
    }
    let features = Array3::from_shape_vec((n, n_pcs, n_near), values).expect("same size as the input");
    PcFeatures { features, channel_index }
}

/// The cluster's nC strongest channels: over the union of its spikes' feature channels, ranked
/// by the L2 norm (over PCs) of the spikes' mean feature.
fn cluster_channels(features: ArrayView3<f32>, spikes: &[usize], channels: &SpikeChannels) -> Vec<usize> {
    let (_, n_near, n_pcs) = features.dim();
    if spikes.is_empty() {
        return Vec::new();
    }
    let mut union: Vec<usize> = spikes.iter().flat_map(|&i| channels.channels(i).to_vec()).collect();
    union.sort_unstable();
    union.dedup();
    let mut sums = vec![0.0f64; union.len() * n_pcs];
    for &i in spikes {
        for (c, &ch) in channels.channels(i).iter().enumerate() {
            let u = union.binary_search(&ch).expect("the union holds every spike channel");
            for p in 0..n_pcs {
                sums[u * n_pcs + p] += features[[i, c, p]] as f64;
            }
        }
    }
    // The mean's norm is the sum's norm over the spike count: the ranking is the same.
    let norms: Vec<f64> = sums.chunks(n_pcs).map(|s| s.iter().map(|v| v * v).sum::<f64>()).collect();
    let mut order: Vec<usize> = (0..union.len()).collect();
    order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]));
    order.into_iter().take(n_near).map(|u| union[u]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Axis, array};

    #[test]
    fn spikes_are_written_on_their_own_clusters_channels() {
        // 4 channels; neighbourhoods of 2. Template 0 sits on channel 1 (1, 0); template 1 on
        // channel 2 (2, 3). Cluster 0 has spikes of both templates, cluster 1 one spike of template 1.
        let nearest = array![[0usize, 1], [1, 0], [2, 3], [3, 2]];
        let within = Array2::from_elem((4, 2), true);
        let peaks = [1usize, 2];
        let spike_template = [0u32, 1, 1];
        let channels = SpikeChannels {
            nearest: nearest.view(),
            within_limit: within.view(),
            template_peak: &peaks,
            spike_template: &spike_template,
        };
        // nPC = 1. Spike 0 (template 0): ch1 = 4, ch0 = 1. Spike 1 (template 1): ch2 = 3, ch3 = -1.
        // Spike 2 (template 1, cluster 1): ch2 = 0.5, ch3 = 2.
        let f = array![[[4.0f32], [1.0]], [[3.0], [-1.0]], [[0.5], [2.0]]];
        let out = pc_features(f, &[0, 0, 1], &channels, 2);
        // Cluster 0: mean-norm ranking ch1 (4) > ch2 (3) > ch0 = ch3 (1): channels 1, 2.
        // Cluster 1: ch3 (2) > ch2 (0.5).
        assert_eq!(out.channel_index, array![[1u32, 2], [3, 2]]);
        assert_eq!(out.features.shape(), &[3, 1, 2]);
        assert_eq!(out.features.index_axis(Axis(0), 0), array![[4.0f32, 0.0]]);
        assert_eq!(out.features.index_axis(Axis(0), 1), array![[0.0f32, 3.0]]);
        assert_eq!(out.features.index_axis(Axis(0), 2), array![[2.0f32, 0.5]]);
    }
}
