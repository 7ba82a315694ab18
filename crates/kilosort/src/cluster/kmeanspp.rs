//! Greedy k-means++ initialisation (spec §7.5): centroids are spikes, each chosen among random
//! candidates for the variance it explains beyond the centroids already chosen.

use ndarray::ArrayView2;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

use super::gains::{Explained, Gains};

/// Centroids chosen, one per iteration; also the number of label slots of the propagation
/// (Kilosort4's `nclust`).
pub const N_INITIAL_CLUSTERS: usize = 200;
/// Candidate centroids drawn per iteration (Kilosort4's `ntry`).
const CANDIDATES: usize = 100;
/// After this many draws of already chosen candidates, the sampler rebuilds its cumulative
/// weights without them, so a few heavy spikes cannot make drawing the rest slow.
const REJECTIONS_BEFORE_REBUILD: usize = 64;

/// Initial labels: `n_clusters` greedy k-means++ iterations on the rows of `data` (standard
/// layout), random draws from `seed`. Label j marks the spikes best explained by the j-th
/// centroid (label 0 also those that no centroid explains).
///
/// Each iteration draws 100 distinct candidate spikes with probability ∝ their unexplained
/// variance `relu(|x|² − v)`, scores each candidate μ by `Σᵢ relu(2·xᵢ·μ − |μ|² − vᵢ)`, and keeps
/// the best. The scores of all candidates come from GEMMs (see `gains.rs` for how spikes
/// that cannot gain from a candidate are skipped).
pub fn kmeans_plusplus(data: ArrayView2<f32>, n_clusters: usize, seed: u64) -> Vec<u32> {
    let mut gains = Gains::default();
    greedy(data, n_clusters, seed, &mut |s, c| gains.compute(s, c))
}

/// The k-means++ loop with a given way of computing the candidates' gains.
fn greedy(
    data: ArrayView2<f32>,
    n_clusters: usize,
    seed: u64,
    gains: &mut dyn FnMut(&Explained, &[f32]) -> Vec<f64>,
) -> Vec<u32> {
    let (n, d) = data.dim();
    let rows = data.as_slice().expect("standard layout");
    let totals: Vec<f32> = rows.chunks(d).map(|x| dot(x, x)).collect();
    let mut explained = vec![0f32; n];
    let mut labels = vec![0u32; n];
    // Which centroid explains each spike (0: none) and the centroids, after the origin: they
    // let the gains skip spikes that cannot gain from a candidate.
    let mut anchor = vec![0u32; n];
    let mut anchors = vec![0f32; d];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for j in 0..n_clusters {
        let residual: Vec<f32> = totals.iter().zip(&explained).map(|(t, e)| (t - e).max(0.0)).collect();
        let candidates = sample_distinct(&residual, CANDIDATES, &mut rng);
        if candidates.is_empty() {
            break; // every spike is fully explained
        }
        let centroids: Vec<f32> = candidates.iter().flat_map(|&c| rows[c * d..(c + 1) * d].to_vec()).collect();
        let state = Explained { rows, d, totals: &totals, explained: &explained, anchor: &anchor, anchors: &anchors };
        let best = argmax_first(&gains(&state, &centroids));
        let centroid = &centroids[best * d..(best + 1) * d];
        let norm = dot(centroid, centroid);
        labels
            .par_iter_mut()
            .zip(explained.par_iter_mut())
            .zip(anchor.par_iter_mut())
            .zip(rows.par_chunks(d))
            .for_each(|(((label, v), a), x)| {
                let e = 2.0 * dot(x, centroid) - norm;
                if e > *v {
                    (*label, *v, *a) = (j as u32, e, j as u32 + 1);
                }
            });
        anchors.extend_from_slice(centroid);
    }
    labels
}

/// Draws `count` distinct indices (fewer if fewer weights are positive) with probability ∝
/// `weights`, one after the other without replacement (as `torch.multinomial`).
fn sample_distinct(weights: &[f32], count: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let count = count.min(weights.iter().filter(|&&w| w > 0.0).count());
    let mut weights: Vec<f64> = weights.iter().map(|&w| w.max(0.0) as f64).collect();
    let mut cumulative = cumulative_sum(&weights);
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    let mut rejections = 0;
    while chosen.len() < count {
        let total = *cumulative.last().expect("positive weights exist");
        let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * total;
        let i = cumulative.partition_point(|&c| c <= u);
        // Rounding at the top end: fall back to the last index with weight.
        let i = if i < weights.len() { i } else { weights.iter().rposition(|&w| w > 0.0).expect("positive weight") };
        if !chosen.contains(&i) {
            chosen.push(i);
            continue;
        }
        // Drawing from all weights and rejecting repeats samples the remaining weights exactly;
        // when repeats pile up, remove the chosen weights instead.
        rejections += 1;
        if rejections > REJECTIONS_BEFORE_REBUILD {
            for &c in &chosen {
                weights[c] = 0.0;
            }
            cumulative = cumulative_sum(&weights);
            rejections = 0;
        }
    }
    chosen
}

fn cumulative_sum(weights: &[f64]) -> Vec<f64> {
    weights
        .iter()
        .scan(0.0, |s, &w| {
            *s += w;
            Some(*s)
        })
        .collect()
}

crate::avx2_dispatch! {
    /// Dot product in f32 with eight running sums; the same code for every pair, so a spike's
    /// score against itself, `2·x·x − |x|²`, is exactly its norm `x·x`.
    fn dot(a: &[f32], b: &[f32]) -> f32 => dot_portable
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    sums.iter().sum::<f32>() + tail
}

/// Index of the largest value; the first one on ties (as `torch.argmax`).
fn argmax_first(values: &[f64]) -> usize {
    values.iter().enumerate().fold((0, f64::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best }).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Blobs of `per` points around well separated centres in `d` dimensions.
    pub(crate) fn blobs(centres: &[Vec<f32>], per: usize, spread: f32, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = centres[0].len();
        let mut data = Array2::zeros((centres.len() * per, d));
        let mut truth = Vec::new();
        for i in 0..centres.len() * per {
            let c = i % centres.len();
            truth.push(c);
            for k in 0..d {
                data[[i, k]] = centres[c][k] + spread * gaussian(&mut rng);
            }
        }
        (data, truth)
    }

    pub(crate) fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
        let u = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let v = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }

    #[test]
    fn sampling_follows_the_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let weights = [0.0, 1.0, 3.0, 0.0];
        let mut first = [0usize; 4];
        for _ in 0..4000 {
            let s = sample_distinct(&weights, 100, &mut rng);
            assert_eq!(s.len(), 2, "only positive weights are drawn");
            first[s[0]] += 1;
        }
        // P(first = 2) = 3/4.
        assert!((first[2] as f64 / 4000.0 - 0.75).abs() < 0.03, "{first:?}");
        // A heavy weight does not stall drawing the light ones.
        let mut weights = vec![1e-6f32; 1000];
        weights[7] = 1e6;
        let s = sample_distinct(&weights, 100, &mut rng);
        assert_eq!((s.len(), s[0]), (100, 7));
    }

    #[test]
    fn centroids_land_in_every_blob() {
        let centres: Vec<Vec<f32>> =
            (0..4).map(|c| (0..6).map(|k| if k == c { 10.0 } else { 0.0 }).collect()).collect();
        let (data, truth) = blobs(&centres, 300, 0.5, 2);
        let labels = kmeans_plusplus(data.view(), 20, 5);
        // Every label is pure: a centroid explains only spikes of its own blob.
        let mut owner = vec![None; 20];
        for (&l, &t) in labels.iter().zip(&truth) {
            assert!(owner[l as usize].is_none_or(|o| o == t), "label {l} mixes blobs");
            owner[l as usize] = Some(t);
        }
    }

    #[test]
    fn pruning_changes_nothing() {
        // Eight blobs with overlapping noise, so pruning skips much but not all.
        let centres: Vec<Vec<f32>> =
            (0..8).map(|c| (0..10).map(|k| if k == c { 6.0 } else { 0.0 }).collect()).collect();
        let (data, _) = blobs(&centres, 400, 1.0, 4);
        let pruned = kmeans_plusplus(data.view(), 60, 9);
        let plain = greedy(data.view(), 60, 9, &mut super::super::gains::unpruned_gains);
        assert_eq!(pruned, plain);
    }
}
