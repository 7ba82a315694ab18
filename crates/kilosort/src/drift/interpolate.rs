//! Undoing drift in a batch by kriging (spec §5.5–5.6): each contact's value is re-estimated
//! at the position its signal drifted to, from all contacts, with a Gaussian kernel.

use faer::Mat;
use faer::linalg::solvers::DenseSolveCore;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::DriftModel;
use crate::preprocess::SparseRows;
use crate::probe::Probe;

/// Entries of a row of the correction matrix smaller in magnitude than this fraction of the
/// row's largest are dropped when applying it. The kernel is local (σ = `sig_interp`), so on
/// Neuropixels 1.0 a row keeps ~30 of 383 contacts, and the output changes by ≈ 1.3e-4 of its
/// norm for white-noise input (measured in the tests; 1e-5 would keep ~40 for ≈ 1e-5).
pub const SPARSE_CUT: f64 = 1e-4;
/// Added to the kernel matrix's diagonal before inverting it, as Kilosort4, for stability
/// (the Gaussian kernel matrix of a dense contact grid is nearly singular).
const KRIGING_RIDGE: f64 = 0.01;

/// Applies a [`DriftModel`] to whitened batches: `out = M_t · input` for batch `t`.
#[derive(Debug, Clone)]
pub struct DriftCorrector {
    model: DriftModel,
    x: Vec<f64>,
    y: Vec<f64>,
    depths: Vec<f32>,
    sig_interp: f64,
    kernel_inverse: Mat<f64>,
}

impl DriftCorrector {
    /// Precomputes the inverse kernel matrix of the contacts, `(K(P, P) + 0.01·I)⁻¹`, for a
    /// model estimated on this probe.
    pub fn new(model: &DriftModel, probe: &Probe, sig_interp: f64) -> Self {
        let x: Vec<f64> = probe.x.iter().map(|&v| v as f64).collect();
        let y: Vec<f64> = probe.y.iter().map(|&v| v as f64).collect();
        let n = x.len();
        let kxx = gaussian_kernel(&x, &y, &x, &y, sig_interp);
        let ridged = Mat::<f64>::from_fn(n, n, |i, j| kxx[(i, j)] + if i == j { KRIGING_RIDGE } else { 0.0 });
        let kernel_inverse = ridged.partial_piv_lu().inverse();
        DriftCorrector { model: model.clone(), x, y, depths: probe.y.clone(), sig_interp, kernel_inverse }
    }

    /// `(K(P, P) + 0.01·I)⁻¹`, channels × channels.
    #[doc(alias = "iKxx")]
    pub fn kernel_inverse(&self) -> Array2<f64> {
        let n = self.x.len();
        Array2::from_shape_fn((n, n), |(i, j)| self.kernel_inverse[(i, j)])
    }

    /// The dense correction matrix of `batch` (channels × channels): `K(Q, P)·iKxx`, where
    /// `Q` are the contacts moved to `y − shift` by the batch's per-contact shifts.
    #[doc(alias = "get_drift_matrix")]
    pub fn matrix(&self, batch: usize) -> Array2<f64> {
        let m = self.matrix_faer(batch);
        Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)])
    }

    fn matrix_faer(&self, batch: usize) -> Mat<f64> {
        let shifts = self.model.shifts_at(batch, &self.depths);
        let qy: Vec<f64> = self.y.iter().zip(&shifts).map(|(y, s)| y - s).collect();
        let kqp = gaussian_kernel(&self.x, &qy, &self.x, &self.y, self.sig_interp);
        &kqp * &self.kernel_inverse
    }

    /// The correction matrix of `batch` as sparse rows, with entries below [`SPARSE_CUT`] × the
    /// row's largest dropped.
    pub fn sparse_rows(&self, batch: usize) -> SparseRows {
        let m = self.matrix_faer(batch);
        let rows: Vec<Vec<(usize, f32)>> = (0..m.nrows())
            .map(|i| {
                let largest = (0..m.ncols()).map(|j| m[(i, j)].abs()).fold(0.0, f64::max);
                (0..m.ncols())
                    .filter(|&j| m[(i, j)].abs() >= SPARSE_CUT * largest && m[(i, j)] != 0.0)
                    .map(|j| (j, m[(i, j)] as f32))
                    .collect()
            })
            .collect();
        SparseRows::from_rows(&rows)
    }

    /// `out = M_batch · input` for a whitened batch (channels × samples, padding included);
    /// `out` must have the same shape.
    pub fn apply(&self, batch_index: usize, input: ArrayView2<f32>, out: ArrayViewMut2<f32>) {
        assert_eq!(input.nrows(), self.x.len(), "drift correction: batch has the wrong number of channels");
        self.sparse_rows(batch_index).apply(input, out);
    }

    /// The model applied.
    pub fn model(&self) -> &DriftModel {
        &self.model
    }
}

/// `K[i, j] = exp(−|a_i − b_j|² / (2σ²))` for points `a = (ax, ay)`, `b = (bx, by)`.
fn gaussian_kernel(ax: &[f64], ay: &[f64], bx: &[f64], by: &[f64], sigma: f64) -> Mat<f64> {
    let scale = 1.0 / (2.0 * sigma * sigma);
    Mat::from_fn(ax.len(), bx.len(), |i, j| {
        let d2 = (ax[i] - bx[j]).powi(2) + (ay[i] - by[j]).powi(2);
        (-d2 * scale).exp()
    })
}
