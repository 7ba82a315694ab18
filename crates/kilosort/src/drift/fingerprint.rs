//! Batch fingerprints: each batch's spikes histogrammed by depth and log-amplitude (Kilosort4's
//! `bin_spikes`, spec §5.2).

use ndarray::Array3;

use super::DriftSpikes;
use crate::probe::Probe;

/// Amplitude bins of a fingerprint (fixed in Kilosort4).
pub const AMPLITUDE_BINS: usize = 20;
/// Amplitudes are clipped to this before the log, so the top bin collects all large spikes.
const AMPLITUDE_CLIP: f64 = 99.0;
/// Top of the log-amplitude axis: the axis runs from `Th_universal` to this.
const AMPLITUDE_TOP: f64 = 100.0;
/// Added before truncating to a column, so an amplitude that lands on a bin edge (up to
/// rounding) counts in the upper bin, as in Kilosort4.
const EDGE_NUDGE: f64 = 1e-5;
/// The depth axis starts this far below the lowest contact, µm.
const DEPTH_MARGIN_UM: f64 = 1.0;

/// Per-batch spike histograms over (depth bin, amplitude bin), and the depth of each bin.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprints {
    /// `log2(1 + count)`: `(n_batches, n_depth_bins, AMPLITUDE_BINS)` (Kilosort4's `F`; kept in
    /// f32, the precision Kilosort4 aligns them in).
    #[doc(alias = "F")]
    pub values: Array3<f32>,
    /// Depth of each bin, µm: the lower edge minus half a bin, i.e. half a bin below the bin's
    /// true centre. Kilosort4 uses these as centres (`ysamp`); kept, so block centres agree.
    #[doc(alias = "ysamp")]
    pub depths_um: Vec<f64>,
}

impl Fingerprints {
    /// Number of batches.
    pub fn n_batches(&self) -> usize {
        self.values.dim().0
    }

    /// Number of depth bins.
    pub fn n_depth_bins(&self) -> usize {
        self.values.dim().1
    }
}

/// Histograms each batch's spikes into `(depth bin, amplitude bin)` cells and takes `log2(1 + count)`.
///
/// Depth bins are `binning_depth` µm wide from 1 µm below the lowest contact; amplitude bins
/// are 20 equal steps of `log10(amplitude)` from `Th_universal` to 100 (amplitudes above 99
/// count as 99). Spikes whose cell falls outside the histogram (a batch ≥ `n_batches`, a depth
/// off the probe, an amplitude below `Th_universal` by a bin or more, a NaN) are left out;
/// Kilosort4 would raise an error for most of these.
pub fn bin_spikes(
    spikes: &DriftSpikes,
    n_batches: usize,
    probe: &Probe,
    binning_depth: f64,
    th_universal: f64,
) -> Fingerprints {
    spikes.assert_consistent();
    let (ymin, ymax) = probe.y.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    let d0 = ymin as f64 - DEPTH_MARGIN_UM;
    let n_depth = depth_bin_count(ymin, ymax, binning_depth);
    let log_th = th_universal.log10();
    let log_range = AMPLITUDE_TOP.log10() - log_th;
    let mut counts = Array3::<u32>::zeros((n_batches, n_depth, AMPLITUDE_BINS));
    for i in 0..spikes.len() {
        let batch = spikes.batch[i] as usize;
        let row = truncate((spikes.depth_um[i] as f64 - d0) / binning_depth);
        let u = ((spikes.amplitude[i] as f64).min(AMPLITUDE_CLIP).log10() - log_th) / log_range;
        let col = truncate(EDGE_NUDGE + u * AMPLITUDE_BINS as f64);
        if let (Some(row), Some(col)) = (row, col)
            && batch < n_batches
            && row < n_depth
            && col < AMPLITUDE_BINS
        {
            counts[[batch, row, col]] += 1;
        }
    }
    let values = counts.mapv(|c| (1.0 + c as f64).log2() as f32);
    let depths_um = (0..n_depth).map(|k| d0 + binning_depth * k as f64 - binning_depth / 2.0).collect();
    Fingerprints { values, depths_um }
}

/// `1 + ceil((ymax − d0) / dd)` depth bins. Kilosort4 divides in f32 here (float32 contact
/// positions under NumPy 2's promotion rules), which only matters when the quotient is within
/// f32 rounding of a whole number; we do the same.
fn depth_bin_count(ymin: f32, ymax: f32, binning_depth: f64) -> usize {
    let d0 = ymin - DEPTH_MARGIN_UM as f32;
    1 + ((ymax - d0) / binning_depth as f32).ceil().max(0.0) as usize
}

/// Truncation toward zero, as NumPy's `astype(int32)`; `None` where that gives a negative
/// index or the value is not finite.
fn truncate(v: f64) -> Option<usize> {
    (v.is_finite() && v > -1.0).then(|| v.trunc() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_row_probe() -> Probe {
        Probe::new("test", vec![0, 1, 2], vec![0.0, 0.0, 0.0], vec![10.0, 30.0, 50.0], vec![0.0; 3], 3).unwrap()
    }

    #[test]
    fn spikes_land_in_the_hand_computed_cells() {
        let probe = two_row_probe();
        // d0 = 9, 1 + ceil(41/5) = 10 depth bins; Th = 10 so u = log10(amp) − 1.
        let batch = [0, 0, 0, 1, 1, 5];
        let depth = [9.0, 13.99, 14.0, 50.0, 50.0, 20.0];
        let amplitude = [10.0, 1000.0, 31.622_776, 20.0, 20.0, 20.0];
        let spikes = DriftSpikes { batch: &batch, depth_um: &depth, amplitude: &amplitude };
        let f = bin_spikes(&spikes, 2, &probe, 5.0, 10.0);
        assert_eq!(f.values.dim(), (2, 10, 20));
        // amp 10 → column 0; 1000 → clipped to 99 → column int(19.91) = 19; √1000 → u = ½ → 10.
        assert_eq!(f.values[[0, 0, 0]], 1.0);
        assert_eq!(f.values[[0, 0, 19]], 1.0);
        assert_eq!(f.values[[0, 1, 10]], 1.0);
        // Two spikes in one cell: log2(3). 20 → u = 0.30103 → column 6. Row int(41/5) = 8.
        assert_eq!(f.values[[1, 8, 6]], 3f32.log2());
        // Batch 5 does not exist and is left out; nothing else is set.
        assert_eq!(f.values.iter().filter(|&&v| v != 0.0).count(), 4);
        let expected: Vec<f64> = (0..10).map(|k| 9.0 + 5.0 * k as f64 - 2.5).collect();
        assert_eq!(f.depths_um, expected);
    }

    #[test]
    fn cells_outside_the_histogram_are_skipped() {
        let probe = two_row_probe();
        let batch = [0, 0, 0, 0];
        // Below the probe by a whole bin, above it, amplitude far below threshold, NaN.
        let depth = [3.0, 200.0, 20.0, f32::NAN];
        let amplitude = [20.0, 20.0, 1.0, 20.0];
        let spikes = DriftSpikes { batch: &batch, depth_um: &depth, amplitude: &amplitude };
        let f = bin_spikes(&spikes, 1, &probe, 5.0, 10.0);
        assert!(f.values.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn neuropixels_1_has_766_depth_bins_from_19_um() {
        let probe = crate::probe::builtin::by_name("np1").unwrap();
        let spikes = DriftSpikes { batch: &[], depth_um: &[], amplitude: &[] };
        let f = bin_spikes(&spikes, 3, &probe, 5.0, 9.0);
        assert_eq!(f.n_depth_bins(), 766);
        assert_eq!(f.n_batches(), 3);
        assert_eq!(f.depths_um[0], 19.0 - 2.5);
    }
}
