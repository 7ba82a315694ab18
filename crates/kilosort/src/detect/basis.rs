//! The single-channel temporal waveforms every later stage is expressed in: the principal
//! components used for features and template reconstruction (`wPCA`) and the temporal templates
//! used for universal detection (`wTEMP`), spec §6.1.

use ndarray::{Array1, Array2, ArrayView1};

use super::builtin_templates::{BUILTIN_PCS, BUILTIN_TEMPLATES};

/// Samples per waveform of the built-in set ([`TemporalBasis::builtin`]); Kilosort4's stored set
/// has the same (its default `nt`).
pub const BUILTIN_NT: usize = 61;
/// Principal components in the built-in set (as in Kilosort4's stored `wPCA`).
pub const BUILTIN_N_PCS: usize = 6;
/// Temporal templates in the built-in set (as in Kilosort4's stored `wTEMP`).
pub const BUILTIN_N_TEMPLATES: usize = 6;

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
    /// The built-in universal set used when `templates_from_data` is false: 6 PCs and 6
    /// templates of 61 samples, trough at sample 20 (the default `nt0min`).
    ///
    /// Kilosort4 downloads its stored `wTEMP.npz` for this; kilosort-rs ships its own set,
    /// learned by the §6.1 procedure from a fixed simulated recording (see
    /// `groundtruth::universal` and the `make_universal_templates` example that writes
    /// `detect/builtin_templates.rs`).
    #[doc(alias = "wTEMP.npz")]
    pub fn builtin() -> TemporalBasis {
        fn matrix<const N: usize>(rows: &[[f32; BUILTIN_NT]; N]) -> Array2<f32> {
            Array2::from_shape_fn((N, BUILTIN_NT), |(i, t)| rows[i][t])
        }
        let pcs: &[[f32; BUILTIN_NT]; BUILTIN_N_PCS] = &BUILTIN_PCS;
        let templates: &[[f32; BUILTIN_NT]; BUILTIN_N_TEMPLATES] = &BUILTIN_TEMPLATES;
        TemporalBasis { pcs: matrix(pcs), templates: matrix(templates) }
    }

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

    /// The default trough index (`nt0min` for nt = 61).
    const NT0MIN: usize = 20;

    #[test]
    fn builtin_set_has_unit_rows_orthonormal_pcs_and_troughs_at_nt0min() {
        let b = TemporalBasis::builtin();
        assert_eq!((b.n_pcs(), b.n_templates(), b.nt()), (6, 6, 61));
        let gram = b.pcs.dot(&b.pcs.t());
        for ((i, j), &g) in gram.indexed_iter() {
            let expected = if i == j { 1.0 } else { 0.0 };
            assert!((g - expected).abs() < 1e-5, "PC Gram [{i}, {j}] = {g}");
        }
        for (k, row) in b.templates.rows().into_iter().enumerate() {
            let norm = row.dot(&row).sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "template {k} has norm {norm}");
            let trough = (0..61).min_by(|&x, &y| row[x].total_cmp(&row[y])).unwrap();
            assert!(trough.abs_diff(NT0MIN) <= 2, "template {k} has its trough at {trough}");
            assert!(row[trough] < -0.3, "template {k}: trough {} is not a clear negative peak", row[trough]);
        }
    }

    #[test]
    fn builtin_first_pc_carries_most_of_the_templates_energy() {
        let b = TemporalBasis::builtin();
        // Energy of the (unit-norm) templates on each PC, summed over templates.
        let coefficients = b.templates.dot(&b.pcs.t());
        let energy: Vec<f32> = coefficients.columns().into_iter().map(|c| c.dot(&c)).collect();
        let total = b.n_templates() as f32;
        assert!(energy[0] / total > 0.7, "first PC carries {:?} of {total}", energy);
        assert!(energy[1..].iter().all(|&e| e < energy[0] / 4.0), "{energy:?}");
        // The templates lie in the PCs' span (what the features can represent).
        for (k, row) in coefficients.rows().into_iter().enumerate() {
            let captured = row.dot(&row);
            assert!(captured > 0.99, "template {k}: only {captured} of its energy is in the PC span");
        }
    }
}
