//! Graph-based clustering (spec §7).
//!
//! The probe is cut into regions around a grid of centres ([`lateral_centres`],
//! [`vertical_centres`]); the spikes of each centre are put in a common feature space ([`data`])
//! and clustered on their own: a kNN graph from every spike to a subsample of landmark spikes
//! ([`knn`]), initial labels from greedy k-means++ ([`kmeanspp`]), label propagation on the graph
//! ([`propagate`]), a merge tree of the resulting clusters ([`tree`]) and a top-down pass that
//! undoes merges of distinct units ([`split`]). Centres run in parallel; labels are numbered
//! centre by centre, so they do not depend on the thread count.

mod centres;
pub mod data;
mod gains;
mod gemm;
pub mod kmeanspp;
pub mod knn;
pub mod propagate;
pub mod split;
pub mod tree;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::progress::Progress;
use crate::settings::Settings;

pub use centres::{lateral_centres, nearest_centre, vertical_centres};
pub use split::CcgVeto;

/// Centres with fewer spikes than this are one cluster, not worth a graph (Kilosort4's 1000).
const MIN_SPIKES_TO_CLUSTER: usize = 1000;

/// What clustering needs to know about the spikes and the templates that found them.
#[derive(Clone, Copy)]
pub struct ClusterInput<'a> {
    /// Spike features `(n_spikes, nearest_chans, n_pcs)` on each spike's template channels (`tF`).
    #[doc(alias = "tF")]
    pub features: ArrayView3<'a, f32>,
    /// Template of each spike: a grid position in the first clustering, a learned template in
    /// the final one.
    pub spike_template: &'a [u32],
    /// `(n_templates, nearest_chans)`: each template's channels, nearest first (Kilosort4's
    /// `iC`, transposed).
    #[doc(alias = "iC")]
    pub template_channels: ArrayView2<'a, usize>,
    /// Lateral position of each template, µm; decides its centre.
    pub template_x: &'a [f64],
    /// Depth of each template, µm.
    pub template_y: &'a [f64],
    /// Depths of the universal-template grid, µm (`ycup`): the vertical centres span them.
    #[doc(alias = "ycup")]
    pub grid_y: &'a [f64],
    /// Vertical spacing, µm: centres are `2·dmin` apart.
    pub dmin: f64,
    /// The probe: lateral centres come from its contacts, and `probe.len()` is the channel count.
    pub probe: &'a Probe,
    /// Spike times, s, when the split veto should look at correlograms (final clustering).
    pub spike_times_s: Option<&'a [f64]>,
    /// The correlogram test of the split veto (used when `split_ccg_check` is on and spike
    /// times are given): true when two spike trains are one unit.
    pub ccg_veto: Option<CcgVeto<'a>>,
}

/// The result of clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Cluster of each spike, `0..n_clusters`, numbered centre by centre.
    #[doc(alias = "clu")]
    pub labels: Vec<u32>,
    /// `(n_clusters, n_channels, n_pcs)`: each cluster's mean features, zero off its centre's
    /// channels (`Wall`).
    #[doc(alias = "Wall")]
    pub templates: Array3<f32>,
}

impl Clustering {
    /// Number of clusters.
    pub fn n_clusters(&self) -> usize {
        self.templates.dim().0
    }
}

/// One centre's clusters, before numbering across centres.
struct CentreClusters {
    spikes: Vec<usize>,
    labels: Vec<u32>,
    channels: Vec<usize>,
    /// `(n_clusters, channels · n_pcs)` mean features.
    means: Array2<f32>,
}

/// Clusters the spikes (Kilosort4's `clustering_qr.run`): each centre of the grid clusters the
/// spikes of the templates nearest to it.
#[doc(alias = "clustering_qr.run")]
pub fn cluster_spikes(input: &ClusterInput, settings: &Settings, progress: &dyn Progress) -> Result<Clustering> {
    check_shapes(input);
    let y_centres = vertical_centres(input.grid_y, input.dmin);
    let x_centres = lateral_centres(input.probe, settings.x_centers);
    let centre_of = nearest_centre(input.template_x, input.template_y, &x_centres, &y_centres);
    let n_centres = x_centres.len() * y_centres.len();
    let (mut templates, mut spikes): (Vec<Vec<usize>>, Vec<Vec<usize>>) =
        (vec![Vec::new(); n_centres], vec![Vec::new(); n_centres]);
    for (t, &c) in centre_of.iter().enumerate() {
        templates[c].push(t);
    }
    for (s, &t) in input.spike_template.iter().enumerate() {
        spikes[centre_of[t as usize]].push(s);
    }
    let visited: Vec<usize> = (0..n_centres).filter(|&c| !templates[c].is_empty() && !spikes[c].is_empty()).collect();
    progress.start("clustering", visited.len() as u64);
    let centres: Vec<CentreClusters> = visited
        .into_par_iter()
        .map(|c| {
            let result = cluster_centre(input, settings, &templates[c], spikes[c].clone());
            progress.advance(1);
            result
        })
        .collect();
    progress.finish();
    assemble(&centres, input)
}

fn check_shapes(input: &ClusterInput) {
    let (n_spikes, n_near, _) = input.features.dim();
    assert_eq!(input.spike_template.len(), n_spikes, "one template per spike");
    assert_eq!(input.template_channels.ncols(), n_near, "template channels match the feature rows");
    let n_templates = input.template_channels.nrows();
    assert!(input.template_x.len() == n_templates && input.template_y.len() == n_templates, "template positions");
    assert!(input.spike_template.iter().all(|&t| (t as usize) < n_templates), "spike template out of range");
    assert!(input.spike_times_s.is_none_or(|t| t.len() == n_spikes), "one time per spike");
}

/// Clusters one centre's spikes (ascending indices), all of whose templates are `templates`.
fn cluster_centre(
    input: &ClusterInput,
    settings: &Settings,
    templates: &[usize],
    spikes: Vec<usize>,
) -> CentreClusters {
    let data = data::centre_data(input.features, input.spike_template, input.template_channels, templates, spikes);
    let (labels, n_clusters) = if data.matrix.nrows() < MIN_SPIKES_TO_CLUSTER {
        (vec![0; data.matrix.nrows()], 1)
    } else {
        let times: Option<Vec<f64>> = input.spike_times_s.map(|t| data.spikes.iter().map(|&s| t[s]).collect());
        let veto = match (settings.split_ccg_check, &times, input.ccg_veto) {
            (true, Some(times), Some(test)) => Some((times.as_slice(), test)),
            _ => None,
        };
        graph_clusters(data.matrix.view(), settings, veto)
    };
    let means = cluster_means(data.matrix.view(), &labels, n_clusters);
    CentreClusters { spikes: data.spikes, labels, channels: data.channels, means }
}

/// kNN graph, k-means++ start, label propagation, merge tree and splits (§7.4–7.9).
fn graph_clusters(matrix: ArrayView2<f32>, settings: &Settings, veto: Option<(&[f64], CcgVeto)>) -> (Vec<u32>, usize) {
    let graph = knn::NeighbourGraph::build(
        matrix,
        settings.cluster_downsampling,
        settings.cluster_neighbors,
        settings.max_cluster_subset,
    );
    let degrees = graph.degrees();
    let initial = kmeanspp::kmeans_plusplus(matrix, kmeanspp::N_INITIAL_CLUSTERS, settings.cluster_init_seed);
    let found = propagate::propagate_labels(
        &graph,
        &degrees,
        initial,
        kmeanspp::N_INITIAL_CLUSTERS,
        propagate::PROPAGATION_ROUNDS,
    );
    let tree = tree::merge_tree(&graph, &degrees, &found.spike_labels, &found.landmark_labels, found.n_clusters);
    let kept = split::keep_splits(&tree, matrix, &found.spike_labels, veto);
    split::split_labels(&tree, &kept, &found.spike_labels)
}

/// Mean row of each label.
fn cluster_means(matrix: ArrayView2<f32>, labels: &[u32], n_clusters: usize) -> Array2<f32> {
    let mut sums = Array2::<f64>::zeros((n_clusters, matrix.ncols()));
    let mut counts = vec![0usize; n_clusters];
    for (row, &l) in matrix.rows().into_iter().zip(labels) {
        sums.row_mut(l as usize).zip_mut_with(&row, |s, &x| *s += x as f64);
        counts[l as usize] += 1;
    }
    for (mut row, &n) in sums.rows_mut().into_iter().zip(&counts) {
        row.mapv_inplace(|s| s / n.max(1) as f64);
    }
    sums.mapv(|s| s as f32)
}

/// Numbers the clusters centre by centre and places their means on the probe's channels.
fn assemble(centres: &[CentreClusters], input: &ClusterInput) -> Result<Clustering> {
    if centres.is_empty() {
        return Err(Error::Clustering {
            detail: "no clustering centre holds any spike; check that detection found spikes".into(),
        });
    }
    let n_pcs = input.features.dim().2;
    let n_clusters: usize = centres.iter().map(|c| c.means.nrows()).sum();
    let mut labels = vec![0u32; input.spike_template.len()];
    let mut templates = Array3::zeros((n_clusters, input.probe.len(), n_pcs));
    let mut offset = 0;
    for centre in centres {
        for (&s, &l) in centre.spikes.iter().zip(&centre.labels) {
            labels[s] = offset as u32 + l;
        }
        for (j, mean) in centre.means.rows().into_iter().enumerate() {
            for (slot, &channel) in centre.channels.iter().enumerate() {
                for p in 0..n_pcs {
                    templates[[offset + j, channel, p]] = mean[slot * n_pcs + p];
                }
            }
        }
        offset += centre.means.nrows();
    }
    if templates.iter().all(|&v| v == 0.0) {
        return Err(Error::Clustering {
            detail: format!("all {n_clusters} cluster templates are zero: the spike features are all zero"),
        });
    }
    Ok(Clustering { labels, templates })
}
