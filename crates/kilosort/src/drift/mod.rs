//! Drift correction (spec §5): how far the tissue moved along the probe in each batch, and the
//! kriging interpolation that moves every batch's data back.
//!
//! Estimation works on the spikes found by a first detection pass ([`DriftSpikes`]): each
//! batch's spikes are histogrammed by depth and amplitude into a "fingerprint"
//! ([`bin_spikes`]), the fingerprints are aligned to their mean by whole depth bins (rigid
//! registration), then refined to a tenth of a bin in `2·nblocks − 1` half-overlapping depth
//! blocks ([`estimate_drift`] → [`DriftModel`]). Correction ([`DriftCorrector`]) resamples each
//! whitened batch at the contacts' drifted positions with a Gaussian-kernel interpolator.

mod estimate;
mod fingerprint;
mod interpolate;
pub mod plots;
mod smooth;
#[cfg(test)]
mod synthetic;
#[cfg(test)]
mod tests;

use ndarray::Array2;

pub use estimate::{
    BLOCK_MAX_LAG, RIGID_ITERATIONS, RIGID_MAX_LAG, UPSAMPLING, block_ranges, estimate_drift,
    estimate_from_fingerprints,
};
pub use fingerprint::{AMPLITUDE_BINS, Fingerprints, bin_spikes};
pub use interpolate::{DriftCorrector, SPARSE_CUT};

/// The spikes drift estimation works from: one entry per spike of the first (universal
/// template) detection pass, as parallel slices of equal length.
///
/// Kilosort4 passes its 6-column `st0` table; only these three columns are used.
#[doc(alias = "st0")]
#[derive(Debug, Clone, Copy)]
pub struct DriftSpikes<'a> {
    /// Batch index of each spike (0-based, among the batches sorted).
    pub batch: &'a [u32],
    /// Depth of each spike along the probe, µm (the amplitude-weighted depth of spec §6.6).
    pub depth_um: &'a [f32],
    /// Amplitude of each spike, in the units of `Th_universal` (whitened-noise SD).
    pub amplitude: &'a [f32],
}

impl DriftSpikes<'_> {
    /// Number of spikes.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// True when there are no spikes.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    fn assert_consistent(&self) {
        assert!(
            self.depth_um.len() == self.batch.len() && self.amplitude.len() == self.batch.len(),
            "DriftSpikes columns differ in length: {} batches, {} depths, {} amplitudes",
            self.batch.len(),
            self.depth_um.len(),
            self.amplitude.len()
        );
    }
}

/// The estimated drift: for every batch and depth block, the shift that undoes the motion.
///
/// Sign convention (spec §5.6): if the spikes of batch `t` appear `d` µm higher than in the
/// reference, `shifts_um[[t, j]] = −d`, and correction samples each contact's data at
/// `y − shift = y + d`, where its signal has moved to.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftModel {
    /// Depth of each block's centre, µm (increasing). One block for rigid correction.
    #[doc(alias = "yblk")]
    pub block_centres_um: Vec<f64>,
    /// Shift of each block in each batch, µm: `(n_batches, n_blocks)`.
    #[doc(alias = "dshift")]
    pub shifts_um: Array2<f64>,
}

impl DriftModel {
    /// Number of batches.
    pub fn n_batches(&self) -> usize {
        self.shifts_um.nrows()
    }

    /// Number of depth blocks (`2·nblocks − 1`).
    pub fn n_blocks(&self) -> usize {
        self.shifts_um.ncols()
    }

    /// Mean absolute shift of the first (deepest) block over batches, µm: the summary Kilosort4
    /// logs as `mean_drift` (it looks at block 0 only, spec §15.14).
    pub fn mean_drift(&self) -> f64 {
        let column = self.shifts_um.column(0);
        column.iter().map(|d| d.abs()).sum::<f64>() / column.len().max(1) as f64
    }

    /// The shift of every contact in `batch`, µm: the batch's block shifts interpolated
    /// linearly over the block centres at each depth in `depths_um` (extrapolated linearly
    /// beyond the first and last centres, as scipy's `interp1d(fill_value="extrapolate")`);
    /// the single value everywhere when there is one block.
    pub fn shifts_at(&self, batch: usize, depths_um: &[f32]) -> Vec<f64> {
        let shifts = self.shifts_um.row(batch);
        let centres = &self.block_centres_um;
        if centres.len() == 1 {
            return vec![shifts[0]; depths_um.len()];
        }
        depths_um
            .iter()
            .map(|&y| {
                let y = y as f64;
                // The interval [lo, hi] that holds y, or the end interval outside the range.
                let hi = centres.partition_point(|&c| c < y).clamp(1, centres.len() - 1);
                let lo = hi - 1;
                let slope = (shifts[hi] - shifts[lo]) / (centres[hi] - centres[lo]);
                slope * (y - centres[lo]) + shifts[lo]
            })
            .collect()
    }
}
