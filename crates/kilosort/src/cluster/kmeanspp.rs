//! Greedy k-means++ initialisation (spec §7.5): centroids are spikes, each chosen among random
//! candidates for the variance it explains beyond the centroids already chosen.

use ndarray::ArrayView2;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

use super::gemm::product_transposed;

/// Centroids chosen, one per iteration; also the number of label slots of the propagation
/// (Kilosort4's `nclust`).
pub const N_INITIAL_CLUSTERS: usize = 200;
/// Candidate centroids drawn per iteration (Kilosort4's `ntry`).
const CANDIDATES: usize = 100;
/// Rows per block of the candidate GEMM: 2048 × 100 f32 = 800 kB of products per thread.
const BLOCK_ROWS: usize = 2048;
/// After this many draws of already chosen candidates, the sampler rebuilds its cumulative
/// weights without them, so a few heavy spikes cannot make drawing the rest slow.
const REJECTIONS_BEFORE_REBUILD: usize = 64;

/// Initial labels: `n_clusters` greedy k-means++ iterations on the rows of `data` (standard
/// layout), random draws from `seed`. Label j marks the spikes best explained by the j-th
/// centroid (label 0 also those that no centroid explains).
///
/// Each iteration draws 100 distinct candidate spikes with probability ∝ their unexplained
/// variance `relu(|x|² − v)`, scores each candidate μ by `Σᵢ relu(2·xᵢ·μ − |μ|² − vᵢ)`, and keeps
/// the best. The scores of all candidates come from one GEMM per block of rows.
pub fn kmeans_plusplus(data: ArrayView2<f32>, n_clusters: usize, seed: u64) -> Vec<u32> {
    let (n, d) = data.dim();
    let rows = data.as_slice().expect("standard layout");
    let totals: Vec<f32> = rows.chunks(d).map(|x| dot(x, x)).collect();
    let mut explained = vec![0f32; n];
    let mut labels = vec![0u32; n];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for j in 0..n_clusters {
        let residual: Vec<f32> = totals.iter().zip(&explained).map(|(t, e)| (t - e).max(0.0)).collect();
        let candidates = sample_distinct(&residual, CANDIDATES, &mut rng);
        if candidates.is_empty() {
            break; // every spike is fully explained
        }
        let centroids: Vec<f32> = candidates.iter().flat_map(|&c| rows[c * d..(c + 1) * d].to_vec()).collect();
        let gains = candidate_gains(rows, d, &centroids, &explained);
        let best = argmax_first(&gains);
        let centroid = &centroids[best * d..(best + 1) * d];
        let norm = dot(centroid, centroid);
        labels.par_iter_mut().zip(explained.par_iter_mut()).zip(rows.par_chunks(d)).for_each(|((label, v), x)| {
            let e = 2.0 * dot(x, centroid) - norm;
            if e > *v {
                *label = j as u32;
                *v = e;
            }
        });
    }
    labels
}

/// For each centroid (rows of `centroids`), `Σᵢ relu(2·xᵢ·μ − |μ|² − explainedᵢ)`, summed per
/// block in f64 and over blocks in order (independent of the thread count).
fn candidate_gains(rows: &[f32], d: usize, centroids: &[f32], explained: &[f32]) -> Vec<f64> {
    let norms: Vec<f32> = centroids.chunks(d).map(|c| dot(c, c)).collect();
    let n_c = norms.len();
    let partial: Vec<Vec<f64>> = rows
        .par_chunks(BLOCK_ROWS * d)
        .zip(explained.par_chunks(BLOCK_ROWS))
        .map(|(block, explained)| {
            let mut products = vec![0f32; explained.len() * n_c];
            product_transposed(block, centroids, d, &mut products, false);
            let mut gains = vec![0f64; n_c];
            for (row, &v) in products.chunks(n_c).zip(explained) {
                for ((g, &p), &norm) in gains.iter_mut().zip(row).zip(&norms) {
                    *g += (2.0 * p - norm - v).max(0.0) as f64;
                }
            }
            gains
        })
        .collect();
    let mut gains = vec![0f64; n_c];
    for block in partial {
        gains.iter_mut().zip(block).for_each(|(g, b)| *g += b);
    }
    gains
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

/// Dot product accumulated in f64 (so a spike's score against itself is exactly its norm).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>() as f32
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
        // Gains are exact: against a direct sum for a few centroids.
        let rows = data.as_slice().unwrap();
        let explained: Vec<f32> = (0..1200).map(|i| (i % 7) as f32).collect();
        let centroids: Vec<f32> = rows[..3 * 6].to_vec();
        let gains = candidate_gains(rows, 6, &centroids, &explained);
        for (c, &g) in gains.iter().enumerate() {
            let mu = &centroids[c * 6..(c + 1) * 6];
            let direct: f64 = rows
                .chunks(6)
                .zip(&explained)
                .map(|(x, &v)| (2.0 * dot(x, mu) as f64 - dot(mu, mu) as f64 - v as f64).max(0.0))
                .sum();
            assert!((g - direct).abs() < 1e-4 * direct.max(1.0), "{g} vs {direct}");
        }
    }
}
