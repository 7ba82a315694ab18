//! Local whitening: each channel is decorrelated from its nearest neighbours (Kilosort4's
//! `whitening_local`), so noise becomes ≈ white with unit variance and thresholds can be given
//! in noise standard deviations.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::probe::Probe;

/// Added to the covariance eigenvalues before inverting their square roots, as Kilosort4.
const EIGENVALUE_FLOOR: f64 = 1e-6;
/// Added to the diagonal before inverting the whitening matrix for Phy (`whitening_mat_inv`).
const INVERSE_RIDGE: f64 = 1e-5;

/// Samples per chunk when applying the whitening (all channels' chunks fit in L2 cache).
const TIME_CHUNK: usize = 1024;

/// Running sum of `X·Xᵀ / NT` over batches (the channel covariance of filtered data).
#[derive(Debug, Clone)]
pub struct CovarianceSum {
    sum: Array2<f64>,
    batches: usize,
}

impl CovarianceSum {
    /// An empty sum for `n_chan` channels.
    pub fn new(n_chan: usize) -> Self {
        CovarianceSum { sum: Array2::zeros((n_chan, n_chan)), batches: 0 }
    }

    /// Adds one batch (channels × samples, padding already removed).
    pub fn add(&mut self, batch: ArrayView2<f32>) {
        let n = batch.nrows();
        let samples = batch.ncols();
        let x = Mat::<f32>::from_fn(n, samples, |i, j| batch[[i, j]]);
        let xxt = &x * x.transpose();
        let scale = 1.0 / samples as f64;
        for ((i, j), s) in self.sum.indexed_iter_mut() {
            *s += xxt[(i, j)] as f64 * scale;
        }
        self.batches += 1;
    }

    /// The mean covariance over the batches added.
    pub fn mean(&self) -> Array2<f64> {
        &self.sum / self.batches.max(1) as f64
    }

    /// Batches added so far.
    pub fn batches(&self) -> usize {
        self.batches
    }
}

/// The whitening matrix (`Wrot`), kept also as sparse rows for fast application.
#[derive(Debug, Clone, PartialEq)]
pub struct Whitening {
    /// Dense matrix, channels × channels (row j mixes channel j's neighbourhood).
    #[doc(alias = "Wrot")]
    pub matrix: Array2<f32>,
    /// Row j's non-zero entries as (channel, weight).
    rows: Vec<Vec<(usize, f32)>>,
}

impl Whitening {
    /// Local ZCA whitening from a covariance: for each channel, the ZCA transform of the
    /// covariance of its `range` nearest channels (itself first), keeping the row of the centre.
    pub fn local(covariance: &Array2<f64>, probe: &Probe, range: usize) -> Self {
        let n = probe.len();
        let range = range.min(n);
        let rows: Vec<Vec<(usize, f32)>> = (0..n)
            .into_par_iter()
            .map(|j| {
                let near = nearest_channels(probe, j, range);
                let local = Mat::<f64>::from_fn(range, range, |a, b| covariance[[near[a], near[b]]]);
                let zca = zca_row0(&local);
                near.iter().zip(zca).map(|(&k, w)| (k, w as f32)).collect()
            })
            .collect();
        let mut matrix = Array2::zeros((n, n));
        for (j, row) in rows.iter().enumerate() {
            for &(k, w) in row {
                matrix[[j, k]] = w;
            }
        }
        Whitening { matrix, rows }
    }

    /// Wraps a given matrix (e.g. one read back from `whitening_mat.npy`).
    pub fn from_matrix(matrix: Array2<f32>) -> Self {
        let rows = matrix
            .rows()
            .into_iter()
            .map(|r| r.iter().enumerate().filter(|(_, w)| **w != 0.0).map(|(k, &w)| (k, w)).collect())
            .collect();
        Whitening { matrix, rows }
    }

    /// `out = W · data` (channels × time); `out` must have the same shape as `data`.
    ///
    /// Works through time in short chunks so one chunk of every input channel stays in cache
    /// while all output channels are formed from it.
    pub fn apply(&self, data: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
        assert_eq!(data.dim(), out.dim(), "whitening input and output shapes differ");
        out.axis_chunks_iter_mut(Axis(1), TIME_CHUNK)
            .into_par_iter()
            .zip(data.axis_chunks_iter(Axis(1), TIME_CHUNK))
            .for_each(|(mut out, data)| {
                let mut inputs: Vec<(f32, &[f32])> = Vec::new();
                for (mut y, row) in out.rows_mut().into_iter().zip(&self.rows) {
                    let y = y.as_slice_mut().expect("rows of a time chunk are contiguous");
                    inputs.clear();
                    inputs.extend(
                        row.iter()
                            .map(|&(k, w)| (w, data.row(k).to_slice().expect("rows of a time chunk are contiguous"))),
                    );
                    weighted_sum(y, &inputs);
                }
            });
    }

    /// `inverse(W + 1e-5·I)`, what Kilosort4 saves as `whitening_mat_inv.npy` so Phy can
    /// un-whiten templates.
    pub fn inverse_for_phy(&self) -> Array2<f32> {
        let n = self.matrix.nrows();
        let m = Mat::<f64>::from_fn(n, n, |i, j| self.matrix[[i, j]] as f64 + if i == j { INVERSE_RIDGE } else { 0.0 });
        let inv = m.partial_piv_lu().inverse();
        Array2::from_shape_fn((n, n), |(i, j)| inv[(i, j)] as f32)
    }
}

crate::fma_dispatch! {
    /// `y = Σ wₖ·xₖ` (fused multiply-adds in input order), vectorised where the CPU can.
    pub(crate) fn weighted_sum(y: &mut [f32], inputs: &[(f32, &[f32])]) => weighted_sum_portable
}

/// Four inputs per pass over `y`, so `y` is loaded and stored a quarter as often.
#[inline(always)]
fn weighted_sum_portable(y: &mut [f32], inputs: &[(f32, &[f32])]) {
    y.fill(0.0);
    let mut quads = inputs.chunks_exact(4);
    for q in &mut quads {
        let [(w0, x0), (w1, x1), (w2, x2), (w3, x3)] = [q[0], q[1], q[2], q[3]];
        let n = y.len().min(x0.len()).min(x1.len()).min(x2.len()).min(x3.len());
        for t in 0..n {
            y[t] = w3.mul_add(x3[t], w2.mul_add(x2[t], w1.mul_add(x1[t], w0.mul_add(x0[t], y[t]))));
        }
    }
    for &(w, x) in quads.remainder() {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = w.mul_add(x, *y));
    }
}

/// The first row of `E·diag(1/√(D + ε))·Eᵀ` for the symmetric `c = E·diag(D)·Eᵀ`.
fn zca_row0(c: &Mat<f64>) -> Vec<f64> {
    let n = c.nrows();
    let eig = c.self_adjoint_eigen(Side::Lower).expect("a covariance matrix has an eigendecomposition");
    let (e, d) = (eig.U(), eig.S().column_vector());
    let scale: Vec<f64> = (0..n).map(|k| 1.0 / (d[k].max(0.0) + EIGENVALUE_FLOOR).sqrt()).collect();
    (0..n).map(|b| (0..n).map(|k| e[(0, k)] * scale[k] * e[(b, k)]).sum()).collect()
}

/// Channel `j` and its `count − 1` nearest channels by distance (ties broken by index).
pub fn nearest_channels(probe: &Probe, j: usize, count: usize) -> Vec<usize> {
    let d2 = |k: usize| (probe.x[k] - probe.x[j]).powi(2) + (probe.y[k] - probe.y[j]).powi(2);
    let mut order: Vec<usize> = (0..probe.len()).filter(|&k| k != j).collect();
    order.sort_by(|&a, &b| d2(a).total_cmp(&d2(b)).then(a.cmp(&b)));
    std::iter::once(j).chain(order).take(count).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::builtin;

    /// Correlated noise: channel c = white_c + 0.8·white_{c+1}.
    fn correlated(n: usize, len: usize, seed: u64) -> Array2<f32> {
        let mut state = seed;
        let mut white = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.46
        };
        let w = Array2::from_shape_fn((n + 1, len), |_| white());
        Array2::from_shape_fn((n, len), |(c, t)| w[[c, t]] + 0.8 * w[[c + 1, t]])
    }

    #[test]
    fn whitened_noise_has_identity_covariance_in_each_neighbourhood() {
        let probe = builtin::by_name("linear16").unwrap();
        let n = probe.len();
        let data = correlated(n, 40_000, 9);
        let mut cov = CovarianceSum::new(n);
        cov.add(data.view());
        let whitening = Whitening::local(&cov.mean(), &probe, 6);
        let mut out = Array2::zeros(data.dim());
        whitening.apply(data.view(), out.view_mut());
        let mut after = CovarianceSum::new(n);
        after.add(out.view());
        let c = after.mean();
        for j in 0..n {
            assert!((c[[j, j]] - 1.0).abs() < 0.03, "variance of channel {j}: {}", c[[j, j]]);
        }
        // Neighbours within the whitening range are decorrelated.
        for j in 1..n - 1 {
            assert!(c[[j, j + 1]].abs() < 0.1, "corr({j}, {}) = {}", j + 1, c[[j, j + 1]]);
        }
        assert!(cov.mean()[[3, 4]] > 0.3, "the input really was correlated");
    }

    #[test]
    fn full_range_local_whitening_is_global_zca() {
        let probe = builtin::by_name("linear16").unwrap();
        let n = probe.len();
        let data = correlated(n, 20_000, 3);
        let mut cov = CovarianceSum::new(n);
        cov.add(data.view());
        let w = Whitening::local(&cov.mean(), &probe, n).matrix;
        // Global ZCA is symmetric and W·C·Wᵀ = I.
        let c = cov.mean().mapv(|v| v as f32);
        let wcw = w.dot(&c).dot(&w.t());
        for i in 0..n {
            for j in 0..n {
                assert!((w[[i, j]] - w[[j, i]]).abs() < 1e-4);
                let target = if i == j { 1.0 } else { 0.0 };
                assert!((wcw[[i, j]] - target).abs() < 1e-3, "({i},{j}) {}", wcw[[i, j]]);
            }
        }
        let inv = Whitening::from_matrix(w.clone()).inverse_for_phy();
        let id = inv.dot(&w);
        assert!((id[[2, 2]] - 1.0).abs() < 1e-3 && id[[2, 3]].abs() < 1e-3);
    }

    #[test]
    fn nearest_channels_start_with_the_channel_itself() {
        let probe = builtin::by_name("np1").unwrap();
        let near = nearest_channels(&probe, 10, 5);
        assert_eq!(near[0], 10);
        let d = |k: usize| ((probe.x[k] - probe.x[10]).powi(2) + (probe.y[k] - probe.y[10]).powi(2)).sqrt();
        assert!(near.windows(2).all(|w| d(w[0]) <= d(w[1])));
    }
}
