//! The single-channel temporal waveforms every later stage is expressed in: the principal
//! components used for features and template reconstruction (`wPCA`) and the temporal templates
//! used for universal detection (`wTEMP`), spec §6.1.

use ndarray::{Array1, Array2, ArrayView1};

/// Temporal PCs and temporal templates, each row unit L2 norm over `nt` samples.
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalBasis {
    /// Orthonormal temporal principal components, `(n_pcs, nt)` (Kilosort4's `wPCA`).
    #[doc(alias = "wPCA")]
    pub pcs: Array2<f32>,
    /// Unit-norm temporal templates, `(n_templates, nt)` (Kilosort4's `wTEMP`).
    #[doc(alias = "wTEMP")]
    pub templates: Array2<f32>,
}

impl TemporalBasis {
    /// Waveform length in samples (`nt`).
    pub fn nt(&self) -> usize {
        self.pcs.ncols()
    }

    /// Number of principal components (`n_pcs`).
    pub fn n_pcs(&self) -> usize {
        self.pcs.nrows()
    }

    /// Number of temporal templates (`n_templates`).
    pub fn n_templates(&self) -> usize {
        self.templates.nrows()
    }

    /// Projects a waveform of `nt` samples onto the PCs.
    pub fn project(&self, waveform: ArrayView1<f32>) -> Array1<f32> {
        self.pcs.dot(&waveform)
    }

    /// Rebuilds a waveform of `nt` samples from its PC coefficients.
    pub fn reconstruct(&self, coefficients: ArrayView1<f32>) -> Array1<f32> {
        self.pcs.t().dot(&coefficients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn project_and_reconstruct_are_inverse_on_the_span() {
        let basis = TemporalBasis { pcs: array![[1.0, 0.0, 0.0], [0.0, 0.6, 0.8]], templates: array![[0.0, 1.0, 0.0]] };
        let w = array![2.0, 0.6, 0.8];
        let c = basis.project(w.view());
        assert_eq!(c, array![2.0, 1.0]);
        assert_eq!(basis.reconstruct(c.view()), w);
        assert_eq!((basis.nt(), basis.n_pcs(), basis.n_templates()), (3, 2, 1));
    }
}
