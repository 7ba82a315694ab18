//! Template features for Phy's TemplateFeatureView, which Kilosort4 does not write (its issue
//! #978) but Kilosort 2 did: each spike projected onto the templates of the clusters most similar
//! to its own, so two clusters can be compared in the plane of their two templates.
//!
//! phylib reads `template_features.npy` `(n_spikes, n_tf)` with `template_feature_ind.npy`
//! `(n_templates, n_tf)`: column j of spike i is its feature on template
//! `template_feature_ind[spike_templates[i], j]`; templates not listed count as 0. Phy plots, for
//! a selected pair (A, B), each spike's feature on A against its feature on B.

use ndarray::{Array2, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

use super::positions::SpikeChannels;

/// Clusters each spike is projected onto: its own and the 9 most similar. Phy only shows the
/// pair selected in its similarity view, which lists the most similar clusters first, and 10
/// columns keep the file at 40 bytes per spike (the PC features take 240).
pub const TEMPLATE_FEATURE_COUNT: usize = 10;

/// Regulariser of the template norm, as in the similarity of spec §9.6.
const NORM_EPSILON: f64 = 1e-6;

/// Phy's `template_features.npy` and `template_feature_ind.npy`.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateFeatures {
    /// `(n_spikes, n_tf)`: spike i's projection on the unit-norm template of each cluster in
    /// `template_index[cluster(i)]`.
    pub features: Array2<f32>,
    /// `(n_clusters, n_tf)`: each cluster itself first, then the others by decreasing
    /// similarity (ties: lower id first).
    #[doc(alias = "template_feature_ind")]
    pub template_index: Array2<u32>,
}

/// Projects every spike onto the templates of its cluster's `n_features` most similar clusters
/// (itself first; fewer if there are fewer clusters).
///
/// With `f` the spike's features `(nC, nPC)` on channels `ch[c]` and `W_m` the template of
/// cluster m `(Nchan, nPC)` (`templates`, the final `Wall`), the feature is
/// `Σ_c Σ_p f[c, p] · W_m[ch[c], p] / (1e-6 + ‖W_m‖)`: the spike's amplitude along template m,
/// in the units of the amplitudes (for a spike shaped exactly like its own template, its
/// amplitude). `similarity` is the `(K, K)` similar-templates matrix; NaN counts as least similar.
pub fn template_features(
    features: ArrayView3<f32>,
    labels: &[u32],
    channels: &SpikeChannels,
    templates: ArrayView3<f32>,
    similarity: ArrayView2<f32>,
    n_features: usize,
) -> TemplateFeatures {
    let n_clusters = templates.len_of(Axis(0));
    assert_eq!(similarity.dim(), (n_clusters, n_clusters), "similarity is (K, K)");
    assert_eq!(labels.len(), features.len_of(Axis(0)), "one label per spike");
    let template_index = most_similar(similarity, n_features.min(n_clusters));
    let scale: Vec<f64> = templates
        .outer_iter()
        .map(|w| 1.0 / (NORM_EPSILON + w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()))
        .collect();
    let mut out = Array2::<f32>::zeros((labels.len(), template_index.ncols()));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(i, mut row)| {
        let own = channels.channels(i);
        let f = features.index_axis(Axis(0), i);
        for (slot, &m) in row.iter_mut().zip(template_index.row(labels[i] as usize)) {
            let w = templates.index_axis(Axis(0), m as usize);
            let dot: f64 = own
                .iter()
                .enumerate()
                .map(|(c, &ch)| f.row(c).iter().zip(w.row(ch)).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>())
                .sum();
            *slot = (dot * scale[m as usize]) as f32;
        }
    });
    TemplateFeatures { features: out, template_index }
}

/// For each cluster: itself, then the others by decreasing similarity, `count` in all.
fn most_similar(similarity: ArrayView2<f32>, count: usize) -> Array2<u32> {
    let k = similarity.nrows();
    let mut out = Array2::<u32>::zeros((k, count));
    for (a, mut row) in out.outer_iter_mut().enumerate() {
        let key = |b: usize| {
            let s = similarity[[a, b]];
            if s.is_nan() { f32::NEG_INFINITY } else { s }
        };
        let mut others: Vec<usize> = (0..k).filter(|&b| b != a).collect();
        others.sort_by(|&x, &y| key(y).total_cmp(&key(x)));
        for (slot, b) in row.iter_mut().zip(std::iter::once(a).chain(others)) {
            *slot = b as u32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    #[test]
    fn neighbours_start_with_the_cluster_itself() {
        let s = array![[1.0f32, 0.2, 0.9, f32::NAN], [0.2, 1.0, 0.5, 0.5], [0.9, 0.5, 1.0, 0.1], [0.0, 0.5, 0.1, 1.0]];
        assert_eq!(most_similar(s.view(), 3), array![[0u32, 2, 1], [1, 2, 3], [2, 0, 1], [3, 1, 2]]);
    }

    #[test]
    fn projections_by_hand() {
        // 3 channels, nC = 2, nPC = 2. Cluster 0's template: (3, 4) on channel 0 (norm 5);
        // cluster 1's: (1, 0) on channel 1 and (0, 1) on channel 2 (norm √2).
        let mut w = Array3::<f32>::zeros((2, 3, 2));
        w[[0, 0, 0]] = 3.0;
        w[[0, 0, 1]] = 4.0;
        w[[1, 1, 0]] = 1.0;
        w[[1, 2, 1]] = 1.0;
        let s = array![[1.0f32, 0.3], [0.3, 1.0]];
        let nearest = array![[0usize, 1], [1, 2], [2, 1]];
        let within = Array2::from_elem((3, 2), true);
        let peaks = [0usize, 1];
        let spike_template = [0u32, 1];
        let channels = SpikeChannels {
            nearest: nearest.view(),
            within_limit: within.view(),
            template_peak: &peaks,
            spike_template: &spike_template,
        };
        // Spike 0 (cluster 0, channels 0, 1): 2× cluster 0's shape plus (5, 0) on channel 1.
        // Spike 1 (cluster 1, channels 1, 2): (2, 7) on channel 1, (1, 3) on channel 2.
        let f = array![[[6.0f32, 8.0], [5.0, 0.0]], [[2.0, 7.0], [1.0, 3.0]]];
        let tf = template_features(f.view(), &[0, 1], &channels, w.view(), s.view(), TEMPLATE_FEATURE_COUNT);
        assert_eq!(tf.template_index, array![[0u32, 1], [1, 0]]);
        let scale0 = 1.0 / (1e-6 + 5.0);
        let scale1 = 1.0 / (1e-6 + 2f64.sqrt());
        let expected = [[(18.0 + 32.0) * scale0, 5.0 * scale1], [(2.0 + 3.0) * scale1, 0.0]];
        for ((i, j), &got) in tf.features.indexed_iter() {
            assert!((got as f64 - expected[i][j]).abs() < 1e-6, "{i},{j}: {got}");
        }
    }
}
