//! The high-pass filter: Kilosort4's third-order Butterworth, applied zero-phase.
//!
//! Kilosort4 filters a padded batch by circular convolution with the filter's forward-backward
//! impulse response, through FFTs of the whole buffer. The same result comes from running the
//! IIR sections forward and then backward over the buffer extended periodically by
//! [`WRAP_SAMPLES`] on each side: the periodic extension makes the result circular, and the
//! response decays below float precision within the extension. That costs ~20 flops per sample
//! instead of two FFTs of an awkward length (60122 = 2·23·1307), and is vectorised over channels.

use ndarray::{Array1, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Samples of periodic extension on each side: the filter's impulse response (slowest pole
/// ≈ 0.95 per sample at 300 Hz / 30 kHz) has decayed below 1e-12 by then.
pub const WRAP_SAMPLES: usize = 600;
/// Butterworth order Kilosort4 uses.
const ORDER_NOTE: &str = "third-order Butterworth high-pass";
/// Length of Kilosort4's tabulated impulse response (`hp_filter`).
pub const KILOSORT4_KERNEL_LEN: usize = 30122;
/// Channels filtered in lockstep so the recursion fills the CPU's vector lanes.
const LANES: usize = 16;

/// One IIR section `b0 + b1 z⁻¹ + b2 z⁻² / 1 + a1 z⁻¹ + a2 z⁻²` (first-order: b2 = a2 = 0).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Section {
    b: [f64; 3],
    a: [f64; 2],
}

/// A zero-phase high-pass filter.
#[derive(Debug, Clone, PartialEq)]
pub struct HighPass {
    /// Corner frequency, Hz.
    pub cutoff_hz: f64,
    /// Sampling rate, Hz.
    pub fs: f64,
    sections: [Section; 2],
}

impl HighPass {
    /// Designs the filter: a third-order Butterworth high-pass by the bilinear transform with
    /// pre-warping (the design `scipy.signal.butter(3, cutoff, 'high', fs=fs)` gives).
    pub fn butterworth(cutoff_hz: f64, fs: f64) -> Self {
        let k = (std::f64::consts::PI * cutoff_hz / fs).tan();
        // The analog prototype's real pole gives a first-order section…
        let first = Section { b: [1.0 / (1.0 + k), -1.0 / (1.0 + k), 0.0], a: [(k - 1.0) / (k + 1.0), 0.0] };
        // …and its complex pair (Q = 1 for order 3) a second-order one.
        let norm = 1.0 + k + k * k;
        let second = Section {
            b: [1.0 / norm, -2.0 / norm, 1.0 / norm],
            a: [2.0 * (k * k - 1.0) / norm, (1.0 - k + k * k) / norm],
        };
        HighPass { cutoff_hz, fs, sections: [first, second] }
    }

    /// Transfer-function coefficients (b, a) of the cascade, as `scipy.signal.butter` returns them.
    pub fn coefficients(&self) -> ([f64; 4], [f64; 4]) {
        let [s1, s2] = self.sections;
        let mul =
            |p: [f64; 2], q: [f64; 3]| [p[0] * q[0], p[0] * q[1] + p[1] * q[0], p[0] * q[2] + p[1] * q[1], p[1] * q[2]];
        (mul([s1.b[0], s1.b[1]], s2.b), mul([1.0, s1.a[0]], [1.0, s2.a[0], s2.a[1]]))
    }

    /// Kilosort4's tabulated zero-phase impulse response (`hp_filter`, length 30122, peak at
    /// 15061), for comparison and for `ops`-style exports.
    pub fn impulse_response(&self) -> Array1<f32> {
        let n = KILOSORT4_KERNEL_LEN;
        let mut x = vec![0.0f64; n];
        x[n / 2] = 1.0;
        for section in self.sections {
            run_section_f64(section, &mut x, false);
        }
        for section in self.sections {
            run_section_f64(section, &mut x, true);
        }
        x.into_iter().map(|v| v as f32).collect()
    }

    /// Filters every row of `data` (channels × time) in place, zero-phase and circular over the
    /// row, like Kilosort4's FFT filtering of a padded batch.
    pub fn apply(&self, mut data: ArrayViewMut2<f32>) {
        data.axis_chunks_iter_mut(Axis(0), LANES)
            .into_par_iter()
            .for_each(|mut rows| self.apply_group(rows.view_mut()));
    }

    /// Filters up to `LANES` rows together.
    fn apply_group(&self, mut rows: ArrayViewMut2<f32>) {
        let len = rows.ncols();
        let wrap = WRAP_SAMPLES;
        let mut lanes = vec![[0.0f32; LANES]; len + 2 * wrap];
        for (k, row) in rows.rows().into_iter().enumerate() {
            let row = row.as_slice().expect("batches are row-major");
            if len >= wrap {
                // Periodic extension: the row's tail, the row, the row's head.
                let pieces = row[len - wrap..].iter().chain(row).chain(&row[..wrap]);
                lanes.iter_mut().zip(pieces).for_each(|(lane, &v)| lane[k] = v);
            } else {
                let extended = (0..).map(|i| (i + len * (wrap / len + 1) - wrap) % len);
                lanes.iter_mut().zip(extended).for_each(|(lane, i)| lane[k] = row[i]);
            }
        }
        self.filter_lanes(&mut lanes);
        for (k, mut row) in rows.rows_mut().into_iter().enumerate() {
            row.iter_mut().zip(&lanes[wrap..]).for_each(|(x, lane)| *x = lane[k]);
        }
    }

    fn filter_lanes(&self, lanes: &mut [[f32; LANES]]) {
        filter_lanes(&self.sections, lanes)
    }

    /// What the filter is, for logs.
    pub fn describe(&self) -> String {
        format!("{ORDER_NOTE}, {} Hz at {} Hz, zero-phase", self.cutoff_hz, self.fs)
    }
}

crate::avx2_dispatch! {
    /// Forward then backward through the sections, every lane at once.
    fn filter_lanes(sections: &[Section; 2], lanes: &mut [[f32; LANES]]) => filter_lanes_portable
}

#[inline(always)]
fn filter_lanes_portable(sections: &[Section; 2], lanes: &mut [[f32; LANES]]) {
    for &section in sections {
        run_section_lanes(section, lanes.iter_mut());
    }
    for &section in sections {
        run_section_lanes(section, lanes.iter_mut().rev());
    }
}

/// One section over lanes of samples in the iterator's order, zero initial state
/// (direct form II transposed).
#[inline(always)]
fn run_section_lanes<'a>(section: Section, samples: impl Iterator<Item = &'a mut [f32; LANES]>) {
    let b = section.b.map(|v| v as f32);
    let a = section.a.map(|v| v as f32);
    let (mut z0, mut z1) = ([0.0f32; LANES], [0.0f32; LANES]);
    for x in samples {
        for k in 0..LANES {
            let input = x[k];
            let y = b[0] * input + z0[k];
            z0[k] = b[1] * input - a[0] * y + z1[k];
            z1[k] = b[2] * input - a[1] * y;
            x[k] = y;
        }
    }
}

fn run_section_f64(section: Section, x: &mut [f64], reverse: bool) {
    let (mut z0, mut z1) = (0.0, 0.0);
    let mut step = |v: &mut f64| {
        let y = section.b[0] * *v + z0;
        z0 = section.b[1] * *v - section.a[0] * y + z1;
        z1 = section.b[2] * *v - section.a[1] * y;
        *v = y;
    };
    if reverse { x.iter_mut().rev().for_each(&mut step) } else { x.iter_mut().for_each(&mut step) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn coefficients_match_scipy_butter() {
        let (b, a) = HighPass::butterworth(300.0, 30000.0).coefficients();
        let (sb, sa) = ([0.93909165, -2.81727496, 2.81727496, -0.93909165], [1.0, -2.87435689, 2.7564832, -0.88189313]);
        for i in 0..4 {
            assert!((b[i] - sb[i]).abs() < 1e-8 && (a[i] - sa[i]).abs() < 1e-8, "{b:?} {a:?}");
        }
    }

    fn sine(freq: f64, len: usize) -> Array2<f32> {
        Array2::from_shape_fn((1, len), |(_, t)| (std::f64::consts::TAU * freq * t as f64 / 30000.0).sin() as f32)
    }

    #[test]
    fn removes_100_hz_and_passes_1_khz_with_butterworth_gain() {
        let filter = HighPass::butterworth(300.0, 30000.0);
        // Whole periods in the buffer, so the circular filter sees a pure tone.
        let mut low = sine(100.0, 60000);
        filter.apply(low.view_mut());
        assert!(low.iter().all(|v| v.abs() < 0.002), "100 Hz left: {}", low.iter().fold(0.0f32, |m, v| m.max(v.abs())));
        let mut high = sine(1000.0, 60000);
        // 30 samples per period miss the crest; compare with the sampled input's peak.
        let input_peak = high.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        filter.apply(high.view_mut());
        // Forward-backward doubles the attenuation: |H|² = 1 / (1 + (fc/f)^6) at 1 kHz.
        let expected = input_peak / (1.0 + (0.3f64).powi(6));
        let peak = high.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        assert!((peak - expected).abs() < 5e-4, "1 kHz gain {peak}, expected {expected}");
    }

    #[test]
    fn filtering_is_circular_and_zero_phase() {
        let filter = HighPass::butterworth(300.0, 30000.0);
        let len = 5000;
        let mut impulse = Array2::zeros((1, len));
        impulse[[0, 2]] = 1.0f32;
        filter.apply(impulse.view_mut());
        let kernel = filter.impulse_response();
        let centre = KILOSORT4_KERNEL_LEN / 2;
        for lag in -300i64..300 {
            let ours = impulse[[0, (2 + lag).rem_euclid(len as i64) as usize]];
            let theirs = kernel[(centre as i64 + lag) as usize];
            assert!((ours - theirs).abs() < 1e-6, "lag {lag}: {ours} vs {theirs}");
        }
    }
}
