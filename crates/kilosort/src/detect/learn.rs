//! Learning the temporal basis from the data (Kilosort4's `extract_wPCA_wTEMP`, spec §6.1):
//! isolated single-channel peaks are cut out of every 25th whitened batch, normalised, and
//! summarised by their principal components (`wPCA`) and k-means centroids (`wTEMP`).

use faer::{Mat, Side};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::TemporalBasis;

/// Kilosort4 reads every 25th batch for snippets, whatever `nskip` is.
pub const SNIPPET_BATCH_STRIDE: usize = 25;
/// At most this many snippets are collected (Kilosort4's buffer size).
pub const MAX_SNIPPETS: usize = 500_000;
/// A peak must be the largest |value| within ±4 channel rows …
const PEAK_ROWS: usize = 4;
/// … and ±5 samples.
const PEAK_SAMPLES: usize = 5;
/// An isolated peak has no other peak within ±6 channel rows …
const ISOLATION_ROWS: usize = 6;
/// … and ±30 samples.
const ISOLATION_SAMPLES: usize = 30;
/// k-means of the snippets runs on at most this many, evenly spaced (see docs/differences.md):
/// six centroids of 61-sample shapes are well determined by far fewer.
const KMEANS_MAX_SNIPPETS: usize = 20_000;
/// Restarts of k-means, keeping the lowest inertia (scikit-learn's `n_init = 10`).
const KMEANS_RESTARTS: usize = 10;
/// Lloyd iterations per restart at most (scikit-learn's default).
const KMEANS_MAX_ITER: usize = 300;
/// Convergence: total squared centre movement below this times the mean per-feature variance
/// (scikit-learn's `tol = 1e-4`).
const KMEANS_TOL: f64 = 1e-4;
/// Seed of the k-means restarts (Kilosort4 leaves scikit-learn unseeded).
const KMEANS_SEED: u64 = 0x6b73_7274; // "ksrt"

/// Cuts out the isolated single-channel peaks of one whitened padded batch
/// (`channels × time`): each is `nt` samples starting `trough_index` before the peak.
///
/// A peak is a sample whose |value| exceeds `threshold` and is the largest within ±4 rows
/// (channel order, not geometry) and ±5 samples; it is isolated when no other peak lies within
/// ±6 rows and ±30 samples. Peaks in the first or last `nt` columns are ignored.
pub fn isolated_snippets(data: ArrayView2<f32>, nt: usize, trough_index: usize, threshold: f32) -> Vec<Vec<f32>> {
    let (n_chan, len) = data.dim();
    let peaks_per_row: Vec<Vec<usize>> = (0..n_chan).map(|c| row_peaks(data, c, threshold)).collect();
    let mut snippets = Vec::new();
    for (c, peaks) in peaks_per_row.iter().enumerate() {
        for &t in peaks {
            if t < nt || t + nt >= len {
                continue;
            }
            let rows = c.saturating_sub(ISOLATION_ROWS)..(c + ISOLATION_ROWS + 1).min(n_chan);
            let near: usize = rows
                .map(|r| count_in(&peaks_per_row[r], t.saturating_sub(ISOLATION_SAMPLES), t + ISOLATION_SAMPLES))
                .sum();
            if near == 1 {
                let start = t - trough_index;
                snippets.push(data.row(c).iter().skip(start).take(nt).copied().collect());
            }
        }
    }
    snippets
}

/// Samples of row `c` that are local maxima of |data| over ±4 rows × ±5 samples above `threshold`.
fn row_peaks(data: ArrayView2<f32>, c: usize, threshold: f32) -> Vec<usize> {
    let (n_chan, len) = data.dim();
    let rows = c.saturating_sub(PEAK_ROWS)..(c + PEAK_ROWS + 1).min(n_chan);
    let row = data.row(c);
    (0..len)
        .filter(|&t| {
            let a = row[t].abs();
            if a <= threshold {
                return false;
            }
            let cols = t.saturating_sub(PEAK_SAMPLES)..(t + PEAK_SAMPLES + 1).min(len);
            rows.clone().all(|r| cols.clone().all(|s| data[[r, s]].abs() <= a))
        })
        .collect()
}

/// Number of entries of the sorted `v` within `[lo, hi]`.
fn count_in(v: &[usize], lo: usize, hi: usize) -> usize {
    v.partition_point(|&x| x <= hi) - v.partition_point(|&x| x < lo)
}

/// Learns `wPCA` (top `n_pcs` right singular vectors of the uncentred, unit-norm snippets) and
/// `wTEMP` (`n_templates` k-means centroids, re-normalised) from snippets of length `nt`.
///
/// Returns `None` when there are fewer snippets than components or templates.
pub fn learn_basis(snippets: &[Vec<f32>], nt: usize, n_pcs: usize, n_templates: usize) -> Option<TemporalBasis> {
    let unit: Vec<Vec<f64>> = snippets.iter().filter_map(|s| normalised(s)).collect();
    if unit.len() < n_pcs.max(n_templates) || n_pcs > nt {
        return None;
    }
    let pcs = principal_components(&unit, nt, n_pcs);
    let step = unit.len().div_ceil(KMEANS_MAX_SNIPPETS);
    let subset: Vec<&[f64]> = unit.iter().step_by(step).map(|v| v.as_slice()).collect();
    let centroids = kmeans(&subset, n_templates);
    let mut templates = Array2::zeros((n_templates, nt));
    for (mut row, c) in templates.rows_mut().into_iter().zip(&centroids) {
        let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        row.iter_mut().zip(c).for_each(|(r, v)| *r = (v / norm) as f32);
    }
    Some(TemporalBasis { pcs, templates })
}

fn normalised(s: &[f32]) -> Option<Vec<f64>> {
    let norm = s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
    (norm > 0.0).then(|| s.iter().map(|&v| v as f64 / norm).collect())
}

/// Top right singular vectors via the `nt × nt` Gram matrix; each sign is chosen so its
/// largest-magnitude entry is positive (scikit-learn's `svd_flip` convention).
fn principal_components(unit: &[Vec<f64>], nt: usize, n_pcs: usize) -> Array2<f32> {
    let gram = unit
        .par_chunks(4096)
        .map(|chunk| {
            let mut g = vec![0.0f64; nt * nt];
            for v in chunk {
                for i in 0..nt {
                    let vi = v[i];
                    g[i * nt..(i + 1) * nt].iter_mut().zip(v).for_each(|(g, &vj)| *g += vi * vj);
                }
            }
            g
        })
        .reduce(|| vec![0.0; nt * nt], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect());
    let g = Mat::<f64>::from_fn(nt, nt, |i, j| gram[i * nt + j]);
    let eig = g.self_adjoint_eigen(Side::Lower).expect("a Gram matrix has an eigendecomposition");
    let (u, s) = (eig.U(), eig.S().column_vector());
    let mut order: Vec<usize> = (0..nt).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    let mut pcs = Array2::zeros((n_pcs, nt));
    for (p, &k) in order.iter().take(n_pcs).enumerate() {
        let big = (0..nt).max_by(|&a, &b| u[(a, k)].abs().total_cmp(&u[(b, k)].abs())).unwrap_or(0);
        let sign = if u[(big, k)] < 0.0 { -1.0 } else { 1.0 };
        for t in 0..nt {
            pcs[[p, t]] = (sign * u[(t, k)]) as f32;
        }
    }
    pcs
}

/// k-means with greedy k-means++ seeding, several restarts in parallel, lowest inertia kept.
fn kmeans(points: &[&[f64]], k: usize) -> Vec<Vec<f64>> {
    let dim = points[0].len();
    let mean_var = {
        let n = points.len() as f64;
        (0..dim)
            .map(|j| {
                let m = points.iter().map(|p| p[j]).sum::<f64>() / n;
                points.iter().map(|p| (p[j] - m).powi(2)).sum::<f64>() / n
            })
            .sum::<f64>()
            / dim as f64
    };
    let tol = KMEANS_TOL * mean_var;
    (0..KMEANS_RESTARTS as u64)
        .into_par_iter()
        .map(|restart| {
            let mut rng = ChaCha8Rng::seed_from_u64(KMEANS_SEED ^ restart.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            lloyd(points, kmeans_plus_plus(points, k, &mut rng), tol)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(centres, _)| centres)
        .expect("at least one restart")
}

fn squared_distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// Greedy k-means++: each new centre is the best of `2 + ln k` candidates drawn ∝ D².
fn kmeans_plus_plus(points: &[&[f64]], k: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f64>> {
    let trials = 2 + (k as f64).ln() as usize;
    let mut centres = vec![points[rng.random_range(0..points.len())].to_vec()];
    let mut nearest: Vec<f64> = points.iter().map(|p| squared_distance(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = nearest.iter().sum();
        let best = (0..trials)
            .map(|_| {
                let candidate = sample_proportional(&nearest, total, rng);
                let potential: Vec<f64> =
                    points.iter().zip(&nearest).map(|(p, &d)| d.min(squared_distance(p, points[candidate]))).collect();
                (potential.iter().sum::<f64>(), candidate, potential)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("at least two trials");
        centres.push(points[best.1].to_vec());
        nearest = best.2;
    }
    centres
}

fn sample_proportional(weights: &[f64], total: f64, rng: &mut ChaCha8Rng) -> usize {
    if total <= 0.0 {
        return rng.random_range(0..weights.len());
    }
    let mut target = rng.random::<f64>() * total;
    for (i, &w) in weights.iter().enumerate() {
        target -= w;
        if target < 0.0 {
            return i;
        }
    }
    weights.len() - 1
}

/// Lloyd iterations from `centres`; returns the centres and their inertia.
fn lloyd(points: &[&[f64]], mut centres: Vec<Vec<f64>>, tol: f64) -> (Vec<Vec<f64>>, f64) {
    let (k, dim) = (centres.len(), points[0].len());
    let mut inertia = f64::INFINITY;
    for _ in 0..KMEANS_MAX_ITER {
        let mut sums = vec![vec![0.0; dim]; k];
        let mut counts = vec![0usize; k];
        inertia = 0.0;
        for p in points {
            let (j, d) = nearest_centre(p, &centres);
            inertia += d;
            counts[j] += 1;
            sums[j].iter_mut().zip(*p).for_each(|(s, v)| *s += v);
        }
        let mut shift = 0.0;
        for j in 0..k {
            // An empty cluster keeps its centre (it cannot happen with k-means++ seeding on
            // distinct points, but duplicates can produce it).
            if counts[j] > 0 {
                let new: Vec<f64> = sums[j].iter().map(|s| s / counts[j] as f64).collect();
                shift += squared_distance(&new, &centres[j]);
                centres[j] = new;
            }
        }
        if shift <= tol {
            break;
        }
    }
    (centres, inertia)
}

fn nearest_centre(p: &[f64], centres: &[Vec<f64>]) -> (usize, f64) {
    centres
        .iter()
        .enumerate()
        .map(|(j, c)| (j, squared_distance(p, c)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .expect("at least one centre")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trough at `at` with a slower positive lobe after it.
    fn spike_shape(nt: usize, at: usize, width: f64) -> Vec<f32> {
        (0..nt)
            .map(|t| {
                let d = t as f64 - at as f64;
                0.3 * (-((d - 3.0 * width) / (2.0 * width)).powi(2)).exp() - (-(d / width).powi(2)).exp()
            })
            .map(|v| v as f32)
            .collect()
    }

    #[test]
    fn isolated_peaks_are_cut_with_the_trough_at_trough_index() {
        let (nt, trough) = (61, 20);
        let mut data = Array2::<f32>::zeros((20, 1000));
        let shape = spike_shape(nt, trough, 3.0);
        // An isolated spike on channel 3 at sample 200 (trough), scaled to 10.
        for (s, v) in shape.iter().enumerate() {
            data[[3, 200 - trough + s]] = 10.0 * v;
        }
        // Two spikes 10 samples apart on channel 12: neither is isolated.
        for at in [500, 510] {
            data[[12, at]] = -8.0;
        }
        // Below threshold: ignored.
        data[[16, 700]] = -5.0;
        let snippets = isolated_snippets(data.view(), nt, trough, 6.0);
        assert_eq!(snippets.len(), 1);
        assert_eq!(snippets[0].len(), nt);
        assert_eq!(snippets[0][trough], data[[3, 200]], "trough at index {trough}");
        let deepest = (0..nt).min_by(|&a, &b| snippets[0][a].total_cmp(&snippets[0][b])).unwrap();
        assert_eq!(deepest, trough);
    }

    #[test]
    fn peaks_in_the_padding_are_ignored() {
        let mut data = Array2::<f32>::zeros((4, 400));
        data[[1, 30]] = -9.0; // inside the first nt columns
        data[[2, 380]] = -9.0; // inside the last nt columns
        assert!(isolated_snippets(data.view(), 61, 20, 6.0).is_empty());
    }

    #[test]
    fn basis_recovers_the_shapes_it_was_made_of() {
        let nt = 61;
        let shapes = [spike_shape(nt, 20, 2.0), spike_shape(nt, 20, 5.0), spike_shape(nt, 24, 3.0)];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let snippets: Vec<Vec<f32>> = (0..3000)
            .map(|i| {
                let amp = 5.0 + 5.0 * rng.random::<f32>();
                shapes[i % 3].iter().map(|v| amp * v + 0.02 * (rng.random::<f32>() - 0.5)).collect()
            })
            .collect();
        let basis = learn_basis(&snippets, nt, 3, 3).unwrap();
        // PCs are orthonormal and span the shapes.
        let gram = basis.pcs.dot(&basis.pcs.t());
        for i in 0..3 {
            for j in 0..3 {
                assert!((gram[[i, j]] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-4);
            }
        }
        for shape in &shapes {
            let v = ndarray::Array1::from(shape.clone());
            let back = basis.reconstruct(basis.project(v.view()).view());
            let err = (&back - &v).mapv(|e| e * e).sum() / v.mapv(|e| e * e).sum();
            assert!(err < 1e-3, "relative residual {err}");
        }
        // Each shape has a k-means template within a small angle of it.
        for shape in &shapes {
            let norm = shape.iter().map(|v| v * v).sum::<f32>().sqrt();
            let best =
                basis.templates.rows().into_iter().map(|t| t.iter().zip(shape).map(|(a, b)| a * b).sum::<f32>() / norm);
            assert!(best.fold(f32::MIN, f32::max) > 0.999);
        }
    }

    #[test]
    fn too_few_snippets_give_no_basis() {
        assert!(learn_basis(&[vec![1.0; 61]], 61, 6, 6).is_none());
    }
}
