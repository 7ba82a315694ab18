//! Spike positions and amplitudes (Kilosort4's `compute_spike_positions` and the norms taken in
//! `save_to_phy`, spec §9.4–9.5).

use ndarray::{Array2, ArrayView2, ArrayView3, Axis};
use rayon::prelude::*;

/// Which probe channels each spike's features `(nC, nPC)` lie on: the channel neighbourhood of
/// the peak channel of the learned template that detected the spike (matching stage).
#[derive(Debug, Clone, Copy)]
pub struct SpikeChannels<'a> {
    /// Nearest channels of each channel, nearest first: `(Nchan, nC)` (Kilosort4's `iCC`ᵀ).
    #[doc(alias = "iCC")]
    pub nearest: ArrayView2<'a, usize>,
    /// Whether each of those channels lies within `position_limit` µm: `(Nchan, nC)`
    /// (`iCC_mask`ᵀ); only these weigh in a spike's position.
    #[doc(alias = "iCC_mask")]
    pub within_limit: ArrayView2<'a, bool>,
    /// Peak channel of each learned template (`iU`).
    #[doc(alias = "iU")]
    pub template_peak: &'a [usize],
    /// Learned template that detected each spike (`st[:, 1]`, `spike_detection_templates`).
    pub spike_template: &'a [u32],
}

impl SpikeChannels<'_> {
    /// The peak channel of the template that detected spike `i`; its neighbourhood row holds the
    /// spike's feature channels.
    pub fn centre(&self, spike: usize) -> usize {
        self.template_peak[self.spike_template[spike] as usize]
    }

    /// Probe channels of spike `i`'s features, in feature order.
    pub fn channels(&self, spike: usize) -> ndarray::ArrayView1<'_, usize> {
        self.nearest.row(self.centre(spike))
    }
}

/// Position (x, y) of each spike, µm: the contact positions of its feature channels weighted by
/// each channel's feature norm, channels beyond `position_limit` given weight 0.
///
/// `features` is `(n_spikes, nC, nPC)`; `x`, `y` are the contact positions. A spike whose weights
/// are all zero (Kilosort4 would give NaN, which Phy replaces by 0 with a warning) is placed on
/// its centre channel instead.
#[doc(alias = "compute_spike_positions")]
pub fn spike_positions(features: ArrayView3<f32>, channels: &SpikeChannels, x: &[f32], y: &[f32]) -> Array2<f32> {
    assert_eq!(features.len_of(Axis(0)), channels.spike_template.len(), "one template id per spike");
    let mut out = Array2::zeros((features.len_of(Axis(0)), 2));
    out.axis_iter_mut(Axis(0)).into_par_iter().zip(features.axis_iter(Axis(0))).enumerate().for_each(
        |(i, (mut xy, f))| {
            let centre = channels.centre(i);
            let near = channels.nearest.row(centre);
            let mask = channels.within_limit.row(centre);
            let (mut wx, mut wy, mut total) = (0.0f64, 0.0f64, 0.0f64);
            for (c, row) in f.outer_iter().enumerate() {
                if !mask[c] {
                    continue;
                }
                let w = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                wx += w * x[near[c]] as f64;
                wy += w * y[near[c]] as f64;
                total += w;
            }
            if total > 0.0 {
                xy[0] = (wx / total) as f32;
                xy[1] = (wy / total) as f32;
            } else {
                xy[0] = x[centre];
                xy[1] = y[centre];
            }
        },
    );
    out
}

/// Amplitude of each spike: the Frobenius norm of its features `(nC, nPC)`.
pub fn spike_amplitudes(features: ArrayView3<f32>) -> Vec<f32> {
    features.axis_iter(Axis(0)).into_par_iter().map(|f| frobenius(f.iter())).collect()
}

/// Amplitude of each cluster template `(K, Nchan, nPC)`: its Frobenius norm (Phy's Amplitude column).
pub fn cluster_amplitudes(templates: ArrayView3<f32>) -> Vec<f32> {
    templates.outer_iter().map(|w| frobenius(w.iter())).collect()
}

fn frobenius<'a>(values: impl Iterator<Item = &'a f32>) -> f32 {
    values.map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, array};

    #[test]
    fn position_is_the_norm_weighted_mean_of_unmasked_channels() {
        // 3 channels on a line; each channel's neighbourhood is (itself, next, next-but-one).
        let nearest = array![[0usize, 1, 2], [1, 0, 2], [2, 1, 0]];
        let within = array![[true, true, false], [true, true, true], [true, true, false]];
        let (x, y) = ([0.0f32, 10.0, 20.0], [100.0f32, 200.0, 300.0]);
        let peaks = [1usize, 0];
        let spike_template = [0u32, 1, 1];
        let channels = SpikeChannels {
            nearest: nearest.view(),
            within_limit: within.view(),
            template_peak: &peaks,
            spike_template: &spike_template,
        };
        let mut f = Array3::<f32>::zeros((3, 3, 2));
        // Spike 0 on channel 1's neighbourhood (1, 0, 2): norms 5, 0, 1 (3-4-5 and unit).
        f.slice_mut(ndarray::s![0, .., ..]).assign(&array![[3.0, 4.0], [0.0, 0.0], [0.0, 1.0]]);
        // Spike 1 on channel 0's (0, 1, 2) with the third masked: norms 1, 3 (and 100 ignored).
        f.slice_mut(ndarray::s![1, .., ..]).assign(&array![[1.0, 0.0], [0.0, 3.0], [100.0, 0.0]]);
        // Spike 2: only the masked channel has signal: placed on its centre channel 0.
        f[[2, 2, 0]] = 7.0;
        let xy = spike_positions(f.view(), &channels, &x, &y);
        assert_eq!(xy.row(0).to_vec(), vec![(5.0 * 10.0 + 20.0) / 6.0, (5.0 * 200.0 + 300.0) / 6.0]);
        assert_eq!(xy.row(1).to_vec(), vec![30.0 / 4.0, (100.0 + 3.0 * 200.0) / 4.0]);
        assert_eq!(xy.row(2).to_vec(), vec![0.0, 100.0]);
        let amplitudes = spike_amplitudes(f.view());
        assert_eq!(amplitudes[0], 26f32.sqrt());
        assert_eq!(cluster_amplitudes(f.view().slice(ndarray::s![1..2, .., ..]))[0], 10010f32.sqrt());
    }
}
