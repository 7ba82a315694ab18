//! Local whitening: each channel is decorrelated from its nearest neighbours (Kilosort4's
//! `whitening_local`), so noise becomes ≈ white with unit variance and thresholds can be given
//! in noise standard deviations.

use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

use super::BLOCK_ROWS;
use crate::probe::Probe;

/// Added to the covariance eigenvalues before inverting their square roots, as Kilosort4.
const EIGENVALUE_FLOOR: f64 = 1e-6;
/// Added to the diagonal before inverting the whitening matrix for Phy (`whitening_mat_inv`).
const INVERSE_RIDGE: f64 = 1e-5;

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
        self.add_product(Self::batch_product(batch));
    }

    /// `X·Xᵀ / NT` of one batch (channels × samples), to be added with [`Self::add_product`].
    pub fn batch_product(batch: ArrayView2<f32>) -> Array2<f64> {
        let (n, samples) = batch.dim();
        // Contiguous batches (either order) are multiplied in place, without a copy of the batch.
        let copy;
        let x = if let Some(slice) = batch.to_slice() {
            faer::MatRef::from_row_major_slice(slice, n, samples)
        } else if let Some(slice) = batch.t().to_slice() {
            faer::MatRef::from_column_major_slice(slice, n, samples)
        } else {
            copy = Mat::<f32>::from_fn(n, samples, |i, j| batch[[i, j]]);
            copy.as_ref()
        };
        let xxt = x * x.transpose();
        let scale = 1.0 / samples as f64;
        Array2::from_shape_fn((n, n), |(i, j)| xxt[(i, j)] as f64 * scale)
    }

    /// Adds one batch's `X·Xᵀ / NT`.
    pub fn add_product(&mut self, product: Array2<f64>) {
        self.sum += &product;
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
    sparse: SparseRows,
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
        Whitening { matrix, sparse: SparseRows::from_rows(&rows) }
    }

    /// Wraps a given matrix (e.g. one read back from `whitening_mat.npy`).
    pub fn from_matrix(matrix: Array2<f32>) -> Self {
        let rows: Vec<Vec<(usize, f32)>> = matrix
            .rows()
            .into_iter()
            .map(|r| r.iter().enumerate().filter(|(_, w)| **w != 0.0).map(|(k, &w)| (k, w)).collect())
            .collect();
        Whitening { matrix, sparse: SparseRows::from_rows(&rows) }
    }

    /// The non-zero entries, row by row.
    pub(crate) fn sparse(&self) -> &SparseRows {
        &self.sparse
    }

    /// `out = W · data` (channels × time); `out` must have the same shape as `data`.
    pub fn apply(&self, data: ArrayView2<f32>, out: ArrayViewMut2<f32>) {
        self.sparse.apply(data, out);
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

/// A sparse square matrix stored row by row (compressed sparse rows), applied to data a block
/// of [`BLOCK_ROWS`] samples at a time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseRows {
    starts: Vec<usize>,
    columns: Vec<u32>,
    weights: Vec<f32>,
}

impl SparseRows {
    /// From each row's `(column, weight)` entries.
    pub fn from_rows(rows: &[Vec<(usize, f32)>]) -> Self {
        let mut sparse = SparseRows { starts: vec![0], ..Default::default() };
        for row in rows {
            sparse.columns.extend(row.iter().map(|&(k, _)| k as u32));
            sparse.weights.extend(row.iter().map(|&(_, w)| w));
            sparse.starts.push(sparse.columns.len());
        }
        sparse
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// Row `i`'s entries as `(column, weight)`.
    pub fn row(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = self.starts[i]..self.starts[i + 1];
        self.columns[range.clone()].iter().zip(&self.weights[range]).map(|(&k, &w)| (k as usize, w))
    }

    /// Stored entries.
    pub fn nnz(&self) -> usize {
        self.columns.len()
    }

    /// `out = M · data` for channels × time arrays of the same shape.
    pub fn apply(&self, data: ArrayView2<f32>, mut out: ArrayViewMut2<f32>) {
        assert_eq!(data.dim(), out.dim(), "sparse product: input and output shapes differ");
        assert_eq!(data.nrows(), self.n_rows(), "sparse product: data has the wrong number of channels");
        let (n, len) = data.dim();
        let mut block = vec![0.0f32; n * BLOCK_ROWS];
        let mut product = vec![0.0f32; n * BLOCK_ROWS];
        for first in (0..len).step_by(BLOCK_ROWS) {
            let width = BLOCK_ROWS.min(len - first);
            block.fill(0.0);
            for (c, row) in data.rows().into_iter().enumerate() {
                block[c * BLOCK_ROWS..][..width].iter_mut().zip(row.iter().skip(first)).for_each(|(b, &v)| *b = v);
            }
            self.times_block(&block, &mut product, BLOCK_ROWS, 0, BLOCK_ROWS);
            for (c, mut row) in out.rows_mut().into_iter().enumerate() {
                row.iter_mut().skip(first).zip(&product[c * BLOCK_ROWS..][..width]).for_each(|(o, &v)| *o = v);
            }
        }
    }

    /// Multiplies a channel-major block (row `c` at `block[c·BLOCK_ROWS..]`, [`BLOCK_ROWS`]
    /// samples) and writes the first `width` samples of output row `i` at
    /// `out[i·stride + offset..]`.
    pub(crate) fn times_block(&self, block: &[f32], out: &mut [f32], stride: usize, offset: usize, width: usize) {
        assert_eq!(block.len(), self.n_rows() * BLOCK_ROWS, "block has the wrong size");
        assert!(width <= BLOCK_ROWS && self.n_rows() <= out.len().div_ceil(stride), "output too small");
        for i in 0..self.n_rows() {
            let range = self.starts[i]..self.starts[i + 1];
            let target = &mut out[i * stride + offset..][..width];
            let (columns, weights) = (&self.columns[range.clone()], &self.weights[range]);
            if width == BLOCK_ROWS {
                sparse_row_times_block(columns, weights, block, target.try_into().expect("a whole block"));
            } else {
                let mut values = [0.0f32; BLOCK_ROWS];
                sparse_row_times_block(columns, weights, block, &mut values);
                target.copy_from_slice(&values[..width]);
            }
        }
    }
}

crate::fma_dispatch! {
    /// `out = Σₖ wₖ · block[cₖ]` over one sparse row (fused multiply-adds in entry order).
    fn sparse_row_times_block(columns: &[u32], weights: &[f32], block: &[f32], out: &mut [f32; BLOCK_ROWS])
        => sparse_row_times_block_portable
}

#[inline(always)]
fn sparse_row_times_block_portable(columns: &[u32], weights: &[f32], block: &[f32], out: &mut [f32; BLOCK_ROWS]) {
    let mut acc = [0.0f32; BLOCK_ROWS];
    for (&c, &w) in columns.iter().zip(weights) {
        let x: &[f32; BLOCK_ROWS] = block[c as usize * BLOCK_ROWS..][..BLOCK_ROWS].try_into().expect("block rows");
        acc.iter_mut().zip(x).for_each(|(a, &x)| *a = w.mul_add(x, *a));
    }
    *out = acc;
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
