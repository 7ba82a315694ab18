//! Which merges of the tree to undo (spec §7.8–7.9): walking down from the root, a node stays
//! split when its two halves are weakly linked or, seen along the direction that best tells them
//! apart, form two modes; otherwise its whole subtree collapses into one cluster.

use faer::Mat;
use faer::linalg::solvers::Solve;
use ndarray::ArrayView2;
use rayon::prelude::*;

use super::gemm::transposed_product;
use super::tree::MergeTree;

/// Halves linked more weakly than this (observed/expected edges) stay split (Kilosort4's 0.2).
pub const MODULARITY_SPLIT: f64 = 0.2;
/// Halves whose projection scores below this bimodality are merged (Kilosort4's 0.6).
pub const BIMODALITY_SPLIT: f64 = 0.6;
/// Ridge added to the weighted normal equations (Kilosort4's 0.01).
const RIDGE: f64 = 0.01;
/// Histogram of projections: bins over [−2, 2] (Kilosort4's `linspace(-2, 2, 400)` edges).
const HISTOGRAM_BINS: usize = 399;
const HISTOGRAM_LIMIT: f64 = 2.0;
/// Gaussian smoothing of the histogram: σ in bins and radius (scipy's 4σ truncation).
const SMOOTHING_SIGMA: f64 = 4.0;
const SMOOTHING_RADIUS: usize = 16;
/// Bins searched for the dip between the modes (around the centre, projection ≈ 0).
const DIP_BINS: std::ops::Range<usize> = 175..225;
/// Rows per block when forming the normal equations.
const BLOCK_ROWS: usize = 4096;

/// The cross-correlogram veto: given the spike times (s) of two halves, true when their
/// cross-correlogram is refractory, i.e. they are one unit and must be merged.
pub type CcgVeto<'a> = &'a (dyn Fn(&[f64], &[f64]) -> bool + Sync);

/// How strongly the histogram of `projection` has two modes: 1 − (dip / lower peak), with the
/// dip searched near 0 in the smoothed histogram on [−2, 2]. NaN when a side of the dip is empty.
#[doc(alias = "bimod_score")]
pub fn bimodality_score(projection: &[f64]) -> f64 {
    let smoothed = smooth(&histogram(projection));
    let window = &smoothed[DIP_BINS];
    let (offset, dip) =
        window.iter().enumerate().fold((0, f32::INFINITY), |best, (i, &v)| if v < best.1 { (i, v) } else { best });
    let at = DIP_BINS.start + offset;
    let left = smoothed[..at].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let right = smoothed[at..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (a, b) = (dip / left, dip / right);
    // np.maximum: NaN if either ratio is NaN.
    let worst = if a.is_nan() || b.is_nan() { f32::NAN } else { a.max(b) };
    (1.0 - worst) as f64
}

/// Counts in 399 equal bins over [−2, 2], the last bin closed, other values ignored (as
/// `np.histogram`, including its edge corrections).
fn histogram(values: &[f64]) -> Vec<f32> {
    let step = 2.0 * HISTOGRAM_LIMIT / HISTOGRAM_BINS as f64;
    let edge = |i: usize| if i == HISTOGRAM_BINS { HISTOGRAM_LIMIT } else { i as f64 * step - HISTOGRAM_LIMIT };
    let mut counts = vec![0f32; HISTOGRAM_BINS];
    for &v in values {
        if !(-HISTOGRAM_LIMIT..=HISTOGRAM_LIMIT).contains(&v) {
            continue;
        }
        let mut i = (((v + HISTOGRAM_LIMIT) * (HISTOGRAM_BINS as f64 / (2.0 * HISTOGRAM_LIMIT))) as usize)
            .min(HISTOGRAM_BINS - 1);
        if v < edge(i) {
            i -= 1;
        } else if i + 1 < HISTOGRAM_BINS && v >= edge(i + 1) {
            i += 1;
        }
        counts[i] += 1.0;
    }
    counts
}

/// Gaussian filter (σ = 4 bins, radius 16, reflected edges), in f64 with an f32 result as
/// `scipy.ndimage.gaussian_filter1d` on f32 input.
fn smooth(x: &[f32]) -> Vec<f32> {
    let r = SMOOTHING_RADIUS as i64;
    let weights: Vec<f64> =
        (-r..=r).map(|k| (-0.5 * (k * k) as f64 / (SMOOTHING_SIGMA * SMOOTHING_SIGMA)).exp()).collect();
    let total: f64 = weights.iter().sum();
    let n = x.len() as i64;
    let reflect = |i: i64| {
        let i = i.rem_euclid(2 * n);
        (if i < n { i } else { 2 * n - 1 - i }) as usize
    };
    (0..n)
        .map(|i| ((-r..=r).map(|k| weights[(k + r) as usize] / total * x[reflect(i + k)] as f64).sum::<f64>()) as f32)
        .collect()
}

/// The projection of the rows `rows` of `data` that best separates `in_a` (+1) from the rest
/// (−1): class-balanced weighted ridge regression of the labels on the rows, whose last column is
/// replaced by a constant 1 (Kilosort4's `check_split`).
pub fn discriminant_projection(data: ArrayView2<f32>, rows: &[usize], in_a: &[bool]) -> Vec<f64> {
    let d = data.ncols();
    let n_a = in_a.iter().filter(|&&a| a).count();
    let n = rows.len();
    // Each class weighs as much as the other: A rows by B's share, B rows by A's.
    let (weight_a, weight_b) = ((n - n_a) as f64 / n as f64, n_a as f64 / n as f64);
    let design = |i: usize| -> Vec<f64> {
        let mut x: Vec<f64> = data.row(rows[i]).iter().map(|&v| v as f64).collect();
        x[d - 1] = 1.0;
        x
    };
    let blocks: Vec<(Vec<f64>, Vec<f64>)> = (0..n.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let range = b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(n);
            let x: Vec<f64> = range.clone().flat_map(design).collect();
            let mut weighted = x.clone();
            let mut rhs = vec![0.0; d];
            for (row, i) in weighted.chunks_mut(d).zip(range) {
                let (w, label) = if in_a[i] { (weight_a, 1.0) } else { (weight_b, -1.0) };
                row.iter_mut().zip(&mut rhs).for_each(|(v, r)| {
                    *v *= w;
                    *r += label * *v;
                });
            }
            let mut gram = vec![0.0; d * d];
            transposed_product(&x, d, &weighted, d, &mut gram, false);
            (gram, rhs)
        })
        .collect();
    let mut gram = Mat::<f64>::from_fn(d, d, |i, j| if i == j { RIDGE } else { 0.0 });
    let mut rhs = Mat::<f64>::zeros(d, 1);
    for (g, r) in blocks {
        gram += Mat::<f64>::from_fn(d, d, |i, j| g[i * d + j]);
        rhs += Mat::<f64>::from_fn(d, 1, |i, _| r[i]);
    }
    let b = gram.partial_piv_lu().solve(&rhs);
    (0..n).into_par_iter().map(|i| design(i).iter().enumerate().map(|(k, x)| x * b[(k, 0)]).sum()).collect()
}

/// Decides every merge of `tree`, root first: true where the merge is kept (its halves stay
/// separate clusters), false where it was collapsed or lies under a collapsed one (Kilosort4's
/// `split`, the surviving `valid_merge`).
///
/// A node stays split when its halves are weakly linked (strength < 0.2). Otherwise, if `veto`
/// is given (spike times of every row and the correlogram test), halves whose cross-correlogram
/// is refractory are merged; then halves whose discriminant projection is not bimodal (score
/// < 0.6) are merged.
pub fn keep_splits(
    tree: &MergeTree,
    data: ArrayView2<f32>,
    spike_labels: &[u32],
    veto: Option<(&[f64], CcgVeto)>,
) -> Vec<bool> {
    let members = tree.members();
    let n_clusters = tree.n_clusters;
    let mut kept = vec![true; tree.merges.len()];
    for t in (0..tree.merges.len()).rev() {
        if !kept[t] {
            continue;
        }
        let merge = &tree.merges[t];
        if merge.strength < MODULARITY_SPLIT {
            continue;
        }
        let (a, b) = (mask(&members[merge.absorbed], n_clusters), mask(&members[merge.absorber], n_clusters));
        let rows: Vec<usize> =
            (0..spike_labels.len()).filter(|&i| a[spike_labels[i] as usize] || b[spike_labels[i] as usize]).collect();
        let in_a: Vec<bool> = rows.iter().map(|&i| a[spike_labels[i] as usize]).collect();
        let one_unit = veto.is_some_and(|(times, is_refractory)| {
            let (ta, tb): (Vec<f64>, Vec<f64>) = (
                rows.iter().zip(&in_a).filter(|(_, a)| **a).map(|(&i, _)| times[i]).collect(),
                rows.iter().zip(&in_a).filter(|(_, a)| !**a).map(|(&i, _)| times[i]).collect(),
            );
            is_refractory(&ta, &tb)
        });
        // A NaN score (an empty side) keeps the split, as in Kilosort4.
        if one_unit || bimodality_score(&discriminant_projection(data, &rows, &in_a)) < BIMODALITY_SPLIT {
            collapse(tree, &mut kept, t);
        }
    }
    kept
}

/// Marks merge t and every merge below it as collapsed (`clean_tree`).
fn collapse(tree: &MergeTree, kept: &mut [bool], t: usize) {
    kept[t] = false;
    let merge = &tree.merges[t];
    for child in [merge.absorbed, merge.absorber] {
        if child >= tree.n_clusters {
            collapse(tree, kept, child - tree.n_clusters);
        }
    }
}

fn mask(labels: &[u32], n: usize) -> Vec<bool> {
    let mut m = vec![false; n];
    labels.iter().for_each(|&l| m[l as usize] = true);
    m
}

/// New labels after the splits: each leaf of the kept part of the tree (a node that a kept
/// merge joins but that no kept merge creates), by ascending node id, becomes one cluster of all
/// its original clusters; with nothing kept, everything is one cluster (`new_clusters`).
/// Returns the labels and their count.
pub fn split_labels(tree: &MergeTree, kept: &[bool], spike_labels: &[u32]) -> (Vec<u32>, usize) {
    let n_nodes = tree.n_clusters + tree.merges.len();
    let mut is_leaf = vec![false; n_nodes];
    let kept_merges = || tree.merges.iter().enumerate().filter(|(t, _)| kept[*t]);
    for (_, merge) in kept_merges() {
        is_leaf[merge.absorbed] = true;
        is_leaf[merge.absorber] = true;
    }
    for (t, _) in kept_merges() {
        is_leaf[tree.n_clusters + t] = false;
    }
    let members = tree.members();
    let mut new_label = vec![0u32; tree.n_clusters];
    let leaves: Vec<usize> = (0..n_nodes).filter(|&v| is_leaf[v]).collect();
    for (label, &node) in leaves.iter().enumerate() {
        members[node].iter().for_each(|&c| new_label[c as usize] = label as u32);
    }
    (spike_labels.iter().map(|&l| new_label[l as usize]).collect(), leaves.len().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tree::Merge;
    use ndarray::Array2;

    /// Deterministic, roughly normal values: the sum of 12 equispaced-phase uniforms.
    fn normal_like(n: usize, seed: u64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                (0..12)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (state >> 11) as f64 / (1u64 << 53) as f64
                    })
                    .sum::<f64>()
                    - 6.0
            })
            .collect()
    }

    #[test]
    fn two_modes_score_high_and_one_low() {
        let noise = normal_like(4000, 1);
        let bimodal: Vec<f64> =
            noise.iter().enumerate().map(|(i, z)| if i % 2 == 0 { 1.0 } else { -1.0 } + 0.2 * z).collect();
        let unimodal: Vec<f64> = noise.iter().map(|z| 0.4 * z).collect();
        let high = bimodality_score(&bimodal);
        let low = bimodality_score(&unimodal);
        assert!(high > 0.9, "{high}");
        assert!(low < 0.2, "{low}");
        // Everything on one side of the dip window: no left peak, NaN.
        assert!(bimodality_score(&[1.5; 100]).is_nan());
    }

    #[test]
    fn histogram_follows_numpy_edges() {
        let h = histogram(&[-2.0, 2.0, 2.5, -2.5, 0.0, -1e-12]);
        assert_eq!((h[0], h[398], h.iter().sum::<f32>()), (1.0, 1.0, 4.0));
        // 0 lies in bin 199 ([−0.005, 0.005)), as does −1e−12.
        assert_eq!(h[199], 2.0);
    }

    #[test]
    fn projection_separates_two_groups() {
        // Two groups differing along the first coordinate; the last column is the bias.
        let noise = normal_like(2 * 600 * 3, 7);
        let data = Array2::from_shape_fn((1200, 3), |(i, k)| {
            (if k == 0 { if i < 600 { 3.0 } else { -3.0 } } else { 0.0 }) + noise[i * 3 + k] as f32
        });
        let rows: Vec<usize> = (0..1200).collect();
        let in_a: Vec<bool> = (0..1200).map(|i| i < 600).collect();
        let z = discriminant_projection(data.view(), &rows, &in_a);
        let mean_a = z[..600].iter().sum::<f64>() / 600.0;
        let mean_b = z[600..].iter().sum::<f64>() / 600.0;
        assert!(mean_a > 0.8 && mean_b < -0.8, "{mean_a} {mean_b}");
        assert!(bimodality_score(&z) > BIMODALITY_SPLIT);
    }

    fn merge(absorbed: usize, absorber: usize, strength: f64) -> Merge {
        Merge { absorbed, absorber, strength, n_leaves: 0, local_modularity: 0.0 }
    }

    #[test]
    fn weak_links_stay_split_and_collapsed_subtrees_relabel() {
        // One Gaussian blob cut into quadrants: leaf = 2·[x₁ > 0] + [x₀ > 0]. Merges: 4 = 1→0,
        // 5 = 3→2 (each joins two halves of a continuous density), 6 = 5→4 (the root, weak).
        let noise = normal_like(2000 * 3, 3);
        let data = Array2::from_shape_fn((2000, 3), |(i, k)| noise[i * 3 + k] as f32);
        let labels: Vec<u32> =
            (0..2000).map(|i| 2 * (data[[i, 1]] > 0.0) as u32 + (data[[i, 0]] > 0.0) as u32).collect();
        let tree = MergeTree { n_clusters: 4, merges: vec![merge(1, 0, 5.0), merge(3, 2, 5.0), merge(5, 4, 0.1)] };
        let kept = keep_splits(&tree, data.view(), &labels, None);
        assert_eq!(kept, [false, false, true]);
        let (new, n) = split_labels(&tree, &kept, &labels);
        // Leaves 4 = {0, 1} and 5 = {2, 3}: the sign of x₁.
        assert_eq!(n, 2);
        assert!(new.iter().zip(&labels).all(|(&n, &l)| n == l / 2));
        // A veto that always merges collapses a strong root too: one cluster.
        let times = vec![0.0; 2000];
        let always: CcgVeto = &|_, _| true;
        let strong = MergeTree { n_clusters: 4, merges: vec![merge(1, 0, 5.0), merge(3, 2, 5.0), merge(5, 4, 0.5)] };
        let kept = keep_splits(&strong, data.view(), &labels, Some((&times, always)));
        assert_eq!(kept, [false, false, false]);
        assert_eq!(split_labels(&strong, &kept, &labels), (vec![0; 2000], 1));
    }
}
