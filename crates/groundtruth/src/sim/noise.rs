//! Background noise: band-limited, spatially correlated, a level per channel, a common-mode
//! component and a DC offset, generated block by block so it streams in bounded memory.
//!
//! Independent sources are made in groups of [`LANES`]: a group draws its white noise from
//! lockstep random generators and runs its band-pass filters in lockstep (the IIR recursion is
//! sequential in time, so running several sources side by side is what lets the CPU use its
//! vector lanes).
//! Each channel is then a weighted sum of nearby sources ([`SpatialMix`]).

use rayon::prelude::*;

use super::random::{LaneRng, Stream, stream};

/// Sources filtered in lockstep (two AVX2 vectors).
pub const LANES: usize = 16;

/// One time step of a group: a sample per source.
pub type Lanes = [f32; LANES];

/// A second-order Butterworth section (Q = 1/√2) by the bilinear transform. Its numerator is
/// `b0 · (1, ∓2, 1)` (high-pass: −, low-pass: +), which the filter loop uses to save multiplies.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f64,
    /// `[a1, a2]` of `y[t] = … − a1·y[t−1] − a2·y[t−2]`.
    a: [f64; 2],
    high_pass: bool,
}

impl Biquad {
    fn butterworth(cutoff_hz: f64, fs: f64, high_pass: bool) -> Self {
        let w = std::f64::consts::TAU * cutoff_hz / fs;
        let alpha = w.sin() / std::f64::consts::SQRT_2;
        let cos = w.cos();
        let a0 = 1.0 + alpha;
        let b0 = if high_pass { (1.0 + cos) / 2.0 } else { (1.0 - cos) / 2.0 };
        Biquad { b0: b0 / a0, a: [-2.0 * cos / a0, (1.0 - alpha) / a0], high_pass }
    }

    /// One step in f64: the output for input `x`, given the two previous inputs and outputs.
    fn step(&self, x: f64, x_prev: [f64; 2], y_prev: [f64; 2]) -> f64 {
        let middle = if self.high_pass { -2.0 } else { 2.0 };
        self.b0 * (x + middle * x_prev[0] + x_prev[1]) - self.a[0] * y_prev[0] - self.a[1] * y_prev[1]
    }
}

/// The band-pass (high-pass then low-pass) shared by every source, in the form the filter loop
/// uses: each section's `b0` scaled so that integer nibble sums go in and unit-variance noise
/// comes out.
#[derive(Debug, Clone, Copy)]
struct BandPass {
    /// High-pass `b0` / SD of a nibble sum.
    high_gain: f32,
    high_a: [f32; 2],
    /// Low-pass `b0` × the gain that makes the output unit-variance.
    low_gain: f32,
    low_a: [f32; 2],
}

impl BandPass {
    fn new(band_hz: [f64; 2], fs: f64) -> Self {
        let high_pass = Biquad::butterworth(band_hz[0], fs, true);
        let low_pass = Biquad::butterworth(band_hz[1].min(0.45 * fs), fs, false);
        let gain = unit_variance_gain(high_pass, low_pass);
        BandPass {
            high_gain: (high_pass.b0 / NIBBLE_SUM_VARIANCE.sqrt()) as f32,
            high_a: high_pass.a.map(|a| a as f32),
            low_gain: (low_pass.b0 * gain) as f32,
            low_a: low_pass.a.map(|a| a as f32),
        }
    }
}

/// Per lane, the last two nibble sums (the white input), high-pass outputs and low-pass outputs
/// (`[s1, s2, h1, h2, l1, l2]`, 1 = previous step).
type FilterState = [Lanes; 6];

/// One group of sources: its random generators and the filter state of each lane.
#[derive(Debug, Clone)]
struct Group {
    rng: LaneRng<LANES>,
    state: FilterState,
}

/// `count` independent sources of band-limited, unit-variance noise.
#[derive(Debug, Clone)]
pub struct NoiseBank {
    groups: Vec<Group>,
    filter: BandPass,
}

impl NoiseBank {
    /// Sources for `count` channels, seeded from `seed`, band-limited to `band_hz` at `fs`.
    pub fn new(seed: u64, count: usize, band_hz: [f64; 2], fs: f64) -> Self {
        let filter = BandPass::new(band_hz, fs);
        let groups = (0..count.div_ceil(LANES) as u64)
            .map(|g| Group { rng: LaneRng::from_stream(&mut stream(seed, Stream::Noise(g))), state: FILTER_START })
            .collect();
        NoiseBank { groups, filter }
    }

    /// Groups of [`LANES`] sources (source `i` is lane `i % LANES` of group `i / LANES`).
    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }

    /// Fills `out` with the next `len` samples of every source, group-major: `out[g * len + t]`
    /// holds time step `t` of group `g`. Groups run in parallel; each depends only on its own
    /// stream, so the values do not depend on the thread count.
    pub fn fill(&mut self, len: usize, out: &mut [Lanes]) {
        assert_eq!(out.len(), len * self.groups.len(), "one slab of `len` steps per group");
        let filter = self.filter;
        out.par_chunks_mut(len.max(1))
            .zip(self.groups.par_iter_mut())
            .for_each(|(slab, group)| filter_steps(&filter, group, slab));
    }
}

kilosort::avx2_dispatch! {
    /// Draws white noise and band-pass filters it, one time step at a time.
    fn filter_steps(filter: &BandPass, group: &mut Group, out: &mut [Lanes]) => filter_steps_portable
}

#[inline(always)]
fn filter_steps_portable(filter: &BandPass, group: &mut Group, out: &mut [Lanes]) {
    let BandPass { high_gain, high_a, low_gain, low_a } = *filter;
    let [mut s1, mut s2, mut h1, mut h2, mut l1, mut l2] = group.state;
    for x in out.iter_mut() {
        let bits = group.rng.next();
        for k in 0..LANES {
            let s = nibble_sum(bits[k]);
            // High-pass numerator (1, −2, 1): exact on the integer sums, and blind to their mean.
            let h = (high_gain * ((s + s2[k]) - (s1[k] + s1[k])) - high_a[1] * h2[k]) - high_a[0] * h1[k];
            let l = (low_gain * ((h + h2[k]) + (h1[k] + h1[k])) - low_a[1] * l2[k]) - low_a[0] * l1[k];
            (s2[k], s1[k], h2[k], h1[k], l2[k], l1[k]) = (s1[k], s, h1[k], h, l1[k], l);
            x[k] = l;
        }
    }
    group.state = [s1, s2, h1, h2, l1, l2];
}

/// Filter state before the first sample: the inputs at their mean (no step at the start).
const FILTER_START: FilterState = {
    let mean = NIBBLE_SUM_MEAN as f32;
    [[mean; LANES], [mean; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]]
};

/// Mean of a sum of eight 4-bit uniforms: 8 × 7.5.
const NIBBLE_SUM_MEAN: f64 = 60.0;
/// Variance of a sum of eight 4-bit uniforms: 8 × (16² − 1) / 12.
const NIBBLE_SUM_VARIANCE: f64 = 170.0;

/// 32 random bits split into eight 4-bit uniforms and summed (0 to 120, as a float). The sum is
/// close to Gaussian, and after band-pass filtering (a weighted sum of many samples)
/// indistinguishable from it; no transcendental function is needed.
#[inline(always)]
fn nibble_sum(bits: u32) -> f32 {
    // Four bytes of two nibbles each, then the bytes summed by shifting and adding.
    let pairs = (bits & 0x0F0F_0F0F) + ((bits >> 4) & 0x0F0F_0F0F);
    let halves = pairs + (pairs >> 8);
    ((halves + (halves >> 16)) & 0xFF) as f32
}

/// 1 / SD of the filters' output for unit-variance white input: 1 / √(Σ h²) over the impulse
/// response (computed, not sampled, so it is exact and needs no random numbers). In f64, where
/// the decaying response never reaches the very slow subnormal numbers.
fn unit_variance_gain(high_pass: Biquad, low_pass: Biquad) -> f64 {
    let (mut w, mut h, mut l) = ([0.0f64; 2], [0.0f64; 2], [0.0f64; 2]);
    let energy: f64 = (0..200_000)
        .map(|i| {
            let x = if i == 0 { 1.0 } else { 0.0 };
            let hx = high_pass.step(x, w, h);
            let lx = low_pass.step(hx, h, l);
            (w, h, l) = ([x, w[0]], [hx, h[0]], [lx, l[0]]);
            lx * lx
        })
        .sum();
    1.0 / energy.sqrt()
}

/// Channels mixed together in one vector.
const MIX_WIDTH: usize = 8;

/// Spatial mixing: each channel is a weighted sum of nearby sources. Weights are stored by
/// diagonal (the difference between source and channel index), 8 channels at a time, so that
/// mixing 8 channels is a few vector multiply-adds of contiguous values.
#[derive(Debug, Clone)]
pub struct SpatialMix {
    /// Index differences `source − channel` that carry a weight, ascending.
    pub offsets: Vec<isize>,
    /// Per group of 8 channels, per offset: the 8 weights (0 where that source is not a
    /// neighbour, and past the last channel).
    weights: Vec<[f32; MIX_WIDTH]>,
    /// Channels.
    n: usize,
}

impl SpatialMix {
    /// Gaussian weights over distance with correlation length `length_um`; each channel's
    /// weights have unit sum of squares, then are scaled by its noise level `sd`.
    pub fn new(x: &[f32], y: &[f32], length_um: f64, sd: &[f64]) -> Self {
        let n = x.len();
        let rows: Vec<Vec<(usize, f32)>> = (0..n)
            .map(|c| {
                let mut row: Vec<(usize, f32)> = (0..n)
                    .filter_map(|k| {
                        let d2 = ((x[c] - x[k]) as f64).powi(2) + ((y[c] - y[k]) as f64).powi(2);
                        let w = (-d2 / (2.0 * length_um * length_um)).exp();
                        (w > 0.1).then_some((k, w as f32))
                    })
                    .collect();
                let norm = row.iter().map(|&(_, w)| w * w).sum::<f32>().sqrt();
                row.iter_mut().for_each(|(_, w)| *w *= sd[c] as f32 / norm);
                row
            })
            .collect();
        let mut offsets: Vec<isize> = rows
            .iter()
            .enumerate()
            .flat_map(|(c, row)| row.iter().map(move |&(k, _)| k as isize - c as isize))
            .collect();
        offsets.sort_unstable();
        offsets.dedup();
        let weight = |c: usize, d: isize| {
            rows.get(c)
                .and_then(|row| row.iter().find(|&&(k, _)| k as isize - c as isize == d))
                .map_or(0.0, |&(_, w)| w)
        };
        let weights = (0..n.div_ceil(MIX_WIDTH))
            .flat_map(|g| offsets.iter().map(move |&d| std::array::from_fn(|j| weight(g * MIX_WIDTH + j, d))))
            .collect();
        SpatialMix { offsets, weights, n }
    }

    /// The weight of source `channel + offsets[i]` in `channel`.
    #[cfg(test)]
    pub fn weight(&self, i: usize, channel: usize) -> f32 {
        self.weights[channel / MIX_WIDTH * self.offsets.len() + i][channel % MIX_WIDTH]
    }

    /// Largest |offset|: how far past either end a padded row of sources must reach.
    fn reach(&self) -> usize {
        self.offsets.iter().map(|d| d.unsigned_abs()).max().unwrap_or(0)
    }

    /// Mixes time steps `t0..` of a block's sources (group-major, `len` steps per group, as
    /// [`NoiseBank::fill`] writes them) into `traces` (time step × channel, as many steps as it
    /// holds): `common_uv` × the common source (the one after the last channel), plus the
    /// weighted neighbour sources, plus `offset`. `sum_sq` receives each channel's sum of squares
    /// before the offset is added.
    #[allow(clippy::too_many_arguments)]
    pub fn mix(
        &self,
        sources: &[Lanes],
        len: usize,
        t0: usize,
        common_uv: f32,
        offset: &[f32],
        traces: &mut [f32],
        sum_sq: &mut [f64],
    ) {
        let (n, pad) = (self.n, self.reach());
        let n_groups = sources.len() / len;
        // Room for a whole vector of 8 past the last channel, and for the reach on both sides.
        let mut row = vec![0.0f32; pad + (n_groups * LANES).max(n.next_multiple_of(MIX_WIDTH)) + pad];
        let starts: Vec<usize> = self.offsets.iter().map(|&d| (pad as isize + d) as usize).collect();
        let mut squares = vec![0.0f32; n];
        for (s, out) in traces.chunks_exact_mut(n).enumerate() {
            for (g, lanes) in row[pad..].chunks_exact_mut(LANES).take(n_groups).enumerate() {
                lanes.copy_from_slice(&sources[g * len + t0 + s]);
            }
            mix_step(&starts, &self.weights, common_uv * row[pad + n], &row, out, &mut squares, offset);
        }
        sum_sq.iter_mut().zip(squares).for_each(|(s, q)| *s = q as f64);
    }
}

kilosort::avx2_dispatch! {
    /// One time step: `out[c] = common + Σ_i weights[i][c] · row[starts[i] + c]`, its square
    /// added to `squares[c]`, then `offset[c]` added.
    fn mix_step(
        starts: &[usize],
        weights: &[[f32; MIX_WIDTH]],
        common: f32,
        row: &[f32],
        out: &mut [f32],
        squares: &mut [f32],
        offset: &[f32],
    ) => mix_step_portable
}

#[inline(always)]
fn mix_step_portable(
    starts: &[usize],
    weights: &[[f32; MIX_WIDTH]],
    common: f32,
    row: &[f32],
    out: &mut [f32],
    squares: &mut [f32],
    offset: &[f32],
) {
    const W: usize = MIX_WIDTH;
    let n = out.len();
    // All diagonals of 8 channels summed in registers before one store.
    for (g, weights) in weights.chunks_exact(starts.len()).enumerate() {
        let c0 = g * W;
        let mut acc = [common; W];
        for (&start, w) in starts.iter().zip(weights) {
            let s: &[f32; W] = row[start + c0..start + c0 + W].try_into().expect("8 sources");
            for j in 0..W {
                acc[j] += w[j] * s[j];
            }
        }
        if c0 + W <= n {
            let out: &mut [f32; W] = (&mut out[c0..c0 + W]).try_into().expect("8 outputs");
            let squares: &mut [f32; W] = (&mut squares[c0..c0 + W]).try_into().expect("8 squares");
            let offset: &[f32; W] = offset[c0..c0 + W].try_into().expect("8 offsets");
            for j in 0..W {
                squares[j] += acc[j] * acc[j];
                out[j] = acc[j] + offset[j];
            }
        } else {
            for j in 0..n - c0 {
                squares[c0 + j] += acc[j] * acc[j];
                out[c0 + j] = acc[j] + offset[c0 + j];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS: f64 = 30000.0;

    /// `len` samples of source `index` of a fresh bank of `count`.
    fn samples(seed: u64, count: usize, index: usize, len: usize) -> Vec<f32> {
        let mut bank = NoiseBank::new(seed, count, [300.0, 6000.0], FS);
        let mut out = vec![[0.0; LANES]; len * bank.n_groups()];
        // Two calls, to check that the state carries over from one block to the next.
        let half = len / 2;
        let mut first = vec![[0.0; LANES]; half * bank.n_groups()];
        bank.fill(half, &mut first);
        bank.fill(len - half, &mut out[..(len - half) * bank.n_groups()]);
        let (g, lane) = (index / LANES, index % LANES);
        let mut x: Vec<f32> = first[g * half..(g + 1) * half].iter().map(|s| s[lane]).collect();
        x.extend(out[g * (len - half)..(g + 1) * (len - half)].iter().map(|s| s[lane]));
        x
    }

    /// Mean periodogram power at `freq_hz` over windows of 3000 samples (10 Hz resolution).
    fn power_at(x: &[f32], freq_hz: f64) -> f64 {
        let window = 3000;
        let windows: Vec<f64> = x
            .chunks_exact(window)
            .map(|w| {
                let (mut re, mut im) = (0.0, 0.0);
                for (t, &v) in w.iter().enumerate() {
                    let phase = std::f64::consts::TAU * freq_hz * t as f64 / FS;
                    re += v as f64 * phase.cos();
                    im += v as f64 * phase.sin();
                }
                (re * re + im * im) / window as f64
            })
            .collect();
        windows.iter().sum::<f64>() / windows.len() as f64
    }

    #[test]
    fn nibble_sums_add_the_eight_nibbles() {
        for bits in [0u32, u32::MAX, 0x1234_5678, 0xF0F0_0F0F, 0x8000_0001] {
            let naive: u32 = (0..8).map(|i| (bits >> (4 * i)) & 15).sum();
            assert_eq!(nibble_sum(bits), naive as f32, "{bits:#x}");
        }
        assert_eq!(nibble_sum(u32::MAX) as f64, 2.0 * NIBBLE_SUM_MEAN);
    }

    #[test]
    fn noise_is_unit_variance_and_band_limited() {
        let x = samples(7, 20, 17, 300_000);
        let var = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64;
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
        // Power below 100 Hz is tiny: a 10 ms moving average (a crude low-pass) nearly cancels.
        let width = 300;
        let smooth_var =
            x.windows(width).step_by(97).map(|w| (w.iter().sum::<f32>() as f64 / width as f64).powi(2)).sum::<f64>()
                / (x.len() / 97) as f64;
        assert!(smooth_var < 0.001, "low-frequency power {smooth_var}");
    }

    #[test]
    fn spectrum_is_flat_in_the_band_and_falls_outside() {
        let x = samples(3, 1, 0, 150_000);
        let inside = [1000.0, 2000.0, 4000.0].map(|f| power_at(&x, f));
        let (lo, hi) = (inside.iter().cloned().fold(f64::MAX, f64::min), inside.iter().cloned().fold(0.0, f64::max));
        assert!(hi / lo < 2.0, "flat inside 300–6000 Hz: {inside:?}");
        // Second-order slopes: ≥ 20 dB down a decade below 300 Hz, ≥ 10 dB down at 13 kHz.
        assert!(power_at(&x, 30.0) < lo / 100.0, "30 Hz: {} vs {lo}", power_at(&x, 30.0));
        assert!(power_at(&x, 13000.0) < lo / 10.0, "13 kHz: {} vs {lo}", power_at(&x, 13000.0));
    }

    #[test]
    fn sources_are_independent_and_reproducible() {
        let a = samples(5, 40, 3, 30_000);
        let b = samples(5, 40, 20, 30_000);
        let r = a.iter().zip(&b).map(|(&u, &v)| (u * v) as f64).sum::<f64>() / a.len() as f64;
        assert!(r.abs() < 0.05, "correlation between two sources {r}");
        assert_eq!(a, samples(5, 40, 3, 30_000), "same seed, same samples");
        assert_ne!(a, samples(6, 40, 3, 30_000), "another seed, other samples");
    }

    #[test]
    fn neighbours_are_mixed_by_diagonal() {
        let x = [0.0f32, 0.0, 0.0];
        let y = [0.0f32, 20.0, 200.0];
        let mix = SpatialMix::new(&x, &y, 20.0, &[1.0, 1.0, 2.0]);
        assert_eq!(mix.offsets, vec![-1, 0, 1]);
        // A far channel mixes only itself, scaled by its level.
        assert_eq!((0..3).map(|i| mix.weight(i, 2)).collect::<Vec<_>>(), vec![0.0, 2.0, 0.0]);
        let w01 = mix.weight(2, 0);
        assert!(w01 > 0.3, "channel 0 takes from its neighbour 20 µm away: {w01}");
        let sum_sq: f32 = (0..3).map(|i| mix.weight(i, 0).powi(2)).sum();
        assert!((sum_sq - 1.0).abs() < 1e-6);
        // Sources 5, 7, 11 and the common one, 3 (× 0.5), over two time steps (the second
        // doubled); offsets 100, 200, 300.
        let mut sources = vec![[0.0; LANES]; 2];
        sources[0][..4].copy_from_slice(&[5.0, 7.0, 11.0, 3.0]);
        sources[1][..4].copy_from_slice(&[10.0, 14.0, 22.0, 6.0]);
        let (mut out, mut sum_sq) = ([0.0; 6], [0.0; 3]);
        mix.mix(&sources, 2, 0, 0.5, &[100.0, 200.0, 300.0], &mut out, &mut sum_sq);
        assert_eq!(out[2], 300.0 + 1.5 + 2.0 * 11.0);
        assert_eq!(out[5], 300.0 + 3.0 + 2.0 * 22.0);
        let expected = 1.5 + mix.weight(1, 0) * 5.0 + w01 * 7.0;
        assert!((out[0] - 100.0 - expected).abs() < 1e-4);
        assert!((sum_sq[0] - 5.0 * (expected as f64).powi(2)).abs() < 1e-3, "{sum_sq:?}");
    }
}
