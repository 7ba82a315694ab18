//! The high-pass filter: Kilosort4's third-order Butterworth, applied zero-phase.
//!
//! Kilosort4 filters a padded batch by circular convolution with the filter's forward-backward
//! impulse response, through FFTs of the whole buffer. The same result comes from running the
//! IIR sections forward and then backward over the buffer extended periodically by
//! [`WRAP_SAMPLES`] on each side: the periodic extension makes the result circular, and the
//! response decays below float precision within the extension. That costs ~20 flops per sample
//! instead of two FFTs of an awkward length (60122 = 2·23·1307), and is vectorised over channels.

use ndarray::{Array1, ArrayViewMut2, Axis};

use super::BLOCK_ROWS;
use rayon::prelude::*;

/// Samples of periodic extension on each side: the filter's impulse response (slowest pole
/// ≈ 0.95 per sample at 300 Hz / 30 kHz) has decayed below 1e-12 by then.
pub const WRAP_SAMPLES: usize = 600;
/// Butterworth order Kilosort4 uses.
const ORDER_NOTE: &str = "third-order Butterworth high-pass";
/// Length of Kilosort4's tabulated impulse response (`hp_filter`).
pub const KILOSORT4_KERNEL_LEN: usize = 30122;
/// Channels per parallel task when filtering a channel-major array.
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
        data.axis_chunks_iter_mut(Axis(0), LANES).into_par_iter().for_each(|mut rows| {
            // Time-major copy of a few channels, filtered by the same code as whole batches.
            let (n, len) = rows.dim();
            let mut time_major = vec![0.0f32; len * n];
            for (k, row) in rows.rows().into_iter().enumerate() {
                row.iter().enumerate().for_each(|(t, &v)| time_major[t * n + k] = v);
            }
            self.zero_phase(&mut time_major, n, &mut FilterScratch::default(), &mut NoHooks);
            for (k, mut row) in rows.rows_mut().into_iter().enumerate() {
                row.iter_mut().enumerate().for_each(|(t, v)| *v = time_major[t * n + k]);
            }
        });
    }

    /// Filters time-major `data` (samples × `n_chan`) in place, zero-phase and circular over
    /// time, calling `hooks` so callers can work on each sample's row while it is in cache.
    #[inline(always)]
    pub(crate) fn zero_phase(
        &self,
        data: &mut [f32],
        n_chan: usize,
        scratch: &mut FilterScratch,
        hooks: &mut impl RowHooks,
    ) {
        if n_chan == 0 || data.is_empty() {
            return;
        }
        assert_eq!(data.len() % n_chan, 0, "time-major data holds whole rows");
        let len = data.len() / n_chan;
        let wrap = WRAP_SAMPLES;
        let cascade = Cascade::new(&self.sections);
        scratch.reset(n_chan, wrap, len);
        let FilterScratch { state, row, head, head_filtered } = scratch;
        let rows = |t: usize| t * n_chan..(t + 1) * n_chan;
        // Rows the warm-up reads are prepared first; the others when the forward pass reaches them.
        let prepared_early = len.saturating_sub(wrap);
        for t in prepared_early..len {
            hooks.prepare(&mut data[rows(t)]);
        }
        // Warm-up: the `wrap` samples before sample 0 of the periodic extension.
        let laps = wrap / len + 1;
        for i in 0..wrap {
            let t = (i + laps * len - wrap) % len;
            row.copy_from_slice(&data[rows(t)]);
            cascade.step(state, row);
        }
        for t in 0..len {
            let range = rows(t);
            if t < prepared_early {
                hooks.prepare(&mut data[range.clone()]);
            }
            if t < wrap {
                head[range.clone()].copy_from_slice(&data[range.clone()]);
            }
            cascade.step(state, &mut data[range]);
        }
        // The periodic extension after the last sample continues with the first ones.
        for i in 0..wrap {
            let source = (i % len) * n_chan;
            let target = &mut head_filtered[i * n_chan..(i + 1) * n_chan];
            target.copy_from_slice(&head[source..source + n_chan]);
            cascade.step(state, target);
        }
        // Backward pass from the far end of the extension.
        state.fill(0.0);
        for i in (0..wrap).rev() {
            cascade.step(state, &mut head_filtered[i * n_chan..(i + 1) * n_chan]);
        }
        let mut block_end = len;
        for t in (0..len).rev() {
            cascade.step(state, &mut data[rows(t)]);
            if t % BLOCK_ROWS == 0 {
                hooks.finished(t, &data[t * n_chan..block_end * n_chan]);
                block_end = t;
            }
        }
    }

    /// What the filter is, for logs.
    pub fn describe(&self) -> String {
        format!("{ORDER_NOTE}, {} Hz at {} Hz, zero-phase", self.cutoff_hz, self.fs)
    }
}

/// What [`HighPass::zero_phase`] calls while it filters. (A trait rather than closures so the
/// implementations' `#[inline(always)]` holds inside the vectorised callers.)
pub(crate) trait RowHooks {
    /// Runs once on every row before the filter first reads it. The forward pass reaches the
    /// last rows first, to warm up over the periodic extension.
    fn prepare(&mut self, row: &mut [f32]);
    /// Receives the filtered rows in blocks of [`BLOCK_ROWS`] samples starting at sample
    /// `first`, last block first.
    fn finished(&mut self, first: usize, rows: &[f32]);
}

/// Hooks that do nothing.
pub(crate) struct NoHooks;

impl RowHooks for NoHooks {
    fn prepare(&mut self, _: &mut [f32]) {}
    fn finished(&mut self, _: usize, _: &[f32]) {}
}

/// Buffers reused between calls of [`HighPass::zero_phase`].
#[derive(Debug, Clone, Default)]
pub(crate) struct FilterScratch {
    state: Vec<f32>,
    row: Vec<f32>,
    head: Vec<f32>,
    head_filtered: Vec<f32>,
}

impl FilterScratch {
    fn reset(&mut self, n_chan: usize, wrap: usize, len: usize) {
        self.state.clear();
        self.state.resize(STATE_PER_CHANNEL * n_chan, 0.0);
        self.row.resize(n_chan, 0.0);
        self.head.resize(wrap.min(len) * n_chan, 0.0);
        self.head_filtered.resize(wrap * n_chan, 0.0);
    }
}

/// Filter state per channel: two delays for each of the two sections.
const STATE_PER_CHANNEL: usize = 4;

/// The two sections' coefficients in single precision, as applied to data.
#[derive(Debug, Clone, Copy)]
struct Cascade {
    b: [[f32; 3]; 2],
    a: [[f32; 2]; 2],
}

impl Cascade {
    fn new(sections: &[Section; 2]) -> Self {
        Cascade { b: sections.map(|s| s.b.map(|v| v as f32)), a: sections.map(|s| s.a.map(|v| v as f32)) }
    }

    /// Advances every channel's cascade by one sample: `row` in, filtered `row` out.
    fn step(&self, state: &mut [f32], row: &mut [f32]) {
        cascade_step(self, state, row)
    }
}

crate::fma_dispatch! {
    /// One sample of both sections for every channel (direct form II transposed), vectorised
    /// across channels.
    fn cascade_step(cascade: &Cascade, state: &mut [f32], row: &mut [f32]) => cascade_step_portable
}

#[inline(always)]
fn cascade_step_portable(cascade: &Cascade, state: &mut [f32], row: &mut [f32]) {
    let n = row.len();
    let (first, second) = state.split_at_mut(2 * n);
    let (z0, z1) = first.split_at_mut(n);
    let (w0, w1) = second.split_at_mut(n);
    let ([b0, b1, b2], [a0, a1]) = (cascade.b[0], cascade.a[0]);
    let ([c0, c1, c2], [d0, d1]) = (cascade.b[1], cascade.a[1]);
    for ((((x, z0), z1), w0), w1) in row.iter_mut().zip(z0).zip(&mut z1[..n]).zip(w0).zip(&mut w1[..n]) {
        let input = *x;
        let y = b0.mul_add(input, *z0);
        *z0 = b1.mul_add(input, (-a0).mul_add(y, *z1));
        *z1 = b2.mul_add(input, -a1 * y);
        let out = c0.mul_add(y, *w0);
        *w0 = c1.mul_add(y, (-d0).mul_add(out, *w1));
        *w1 = c2.mul_add(y, -d1 * out);
        *x = out;
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

#[cfg(test)]
mod time_major_tests {
    use super::*;

    /// Records which rows were prepared and which blocks were handed on.
    #[derive(Default)]
    struct Recorder {
        prepared: Vec<f32>,
        blocks: Vec<(usize, usize)>,
    }

    impl RowHooks for Recorder {
        fn prepare(&mut self, row: &mut [f32]) {
            // Rows are tagged by their first value; preparing doubles every value.
            self.prepared.push(row[0]);
            row.iter_mut().for_each(|v| *v *= 2.0);
        }
        fn finished(&mut self, first: usize, rows: &[f32]) {
            self.blocks.push((first, rows.len()));
        }
    }

    /// The zero-phase filter of the periodic signal, in double precision over many periods.
    fn reference(filter: &HighPass, signal: &[f64]) -> Vec<f64> {
        let len = signal.len();
        let laps = 2 * WRAP_SAMPLES / len + 2;
        let mut x: Vec<f64> = (0..(2 * laps + 1) * len).map(|i| signal[i % len]).collect();
        for section in filter.sections {
            run_section_f64(section, &mut x, false);
        }
        for section in filter.sections {
            run_section_f64(section, &mut x, true);
        }
        x[laps * len..(laps + 1) * len].to_vec()
    }

    #[test]
    fn time_major_filtering_is_circular_per_channel_and_calls_each_hook_once() {
        let filter = HighPass::butterworth(300.0, 30000.0);
        let n_chan = 3;
        for len in [7usize, 130, 2000] {
            let signal = |t: usize, c: usize| ((t * (c + 3)) % 17) as f64 - 8.0 + (t as f64 * 0.01).sin() * 40.0;
            // Row tags: channel 0 holds 1000 + t, unique per row, and is checked separately.
            let mut data: Vec<f32> = (0..len)
                .flat_map(|t| (0..n_chan).map(move |c| if c == 0 { 1000.0 + t as f32 } else { signal(t, c) as f32 }))
                .collect();
            let mut hooks = Recorder::default();
            filter.zero_phase(&mut data, n_chan, &mut FilterScratch::default(), &mut hooks);
            let mut tags = hooks.prepared.clone();
            tags.sort_by(f32::total_cmp);
            assert_eq!(tags, (0..len).map(|t| 1000.0 + t as f32).collect::<Vec<_>>(), "len {len}: each row once");
            let mut covered: Vec<usize> = hooks.blocks.iter().map(|&(first, n)| first + n / n_chan).collect();
            covered.dedup();
            assert_eq!(hooks.blocks.iter().map(|&(_, n)| n / n_chan).sum::<usize>(), len, "len {len}: blocks");
            assert!(hooks.blocks.windows(2).all(|w| w[1].0 + w[1].1 / n_chan == w[0].0), "last block first");
            for c in 1..n_chan {
                let expected = reference(&filter, &(0..len).map(|t| 2.0 * signal(t, c)).collect::<Vec<_>>());
                let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for t in 0..len {
                    let ours = data[t * n_chan + c] as f64;
                    assert!(
                        (ours - expected[t]).abs() < 1e-5 * scale,
                        "len {len} ch {c} t {t}: {ours} vs {}",
                        expected[t]
                    );
                }
            }
        }
    }
}
