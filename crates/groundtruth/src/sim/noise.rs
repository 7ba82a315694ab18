//! Background noise: band-limited, spatially correlated, a level per channel, a common-mode
//! component and a DC offset, generated channel by channel so it streams in bounded memory.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;

use super::random::{Stream, stream};

/// A second-order IIR section (direct form II transposed).
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    z: [f32; 2],
}

impl Biquad {
    /// Butterworth (Q = 1/√2) low- or high-pass by the bilinear transform.
    fn butterworth(cutoff_hz: f64, fs: f64, high_pass: bool) -> Self {
        let w = std::f64::consts::TAU * cutoff_hz / fs;
        let alpha = w.sin() / std::f64::consts::SQRT_2;
        let cos = w.cos();
        let a0 = 1.0 + alpha;
        let (b0, b1) = if high_pass { ((1.0 + cos) / 2.0, -(1.0 + cos)) } else { ((1.0 - cos) / 2.0, 1.0 - cos) };
        Biquad {
            b: [(b0 / a0) as f32, (b1 / a0) as f32, (b0 / a0) as f32],
            a: [(-2.0 * cos / a0) as f32, ((1.0 - alpha) / a0) as f32],
            z: [0.0; 2],
        }
    }
}

/// One channel's noise source: its own random stream and filter state.
#[derive(Debug, Clone)]
pub struct NoiseSource {
    rng: ChaCha8Rng,
    high_pass: Biquad,
    low_pass: Biquad,
    /// Makes the filtered output unit-variance.
    gain: f32,
}

impl NoiseSource {
    /// Sources for `count` channels (each seeded independently), sharing one filter design.
    pub fn bank(seed: u64, count: usize, band_hz: [f64; 2], fs: f64) -> Vec<Self> {
        let high_pass = Biquad::butterworth(band_hz[0], fs, true);
        let low_pass = Biquad::butterworth(band_hz[1].min(0.45 * fs), fs, false);
        let gain = unit_variance_gain(high_pass, low_pass);
        (0..count as u64)
            .map(|index| NoiseSource { rng: stream(seed, Stream::Noise(index)), high_pass, low_pass, gain })
            .collect()
    }

    /// Fills `out` with the next samples of band-limited noise (unit variance).
    pub fn fill(&mut self, out: &mut [f32]) {
        fill_group(std::slice::from_mut(self), &mut [out]);
    }

    /// White noise (unit variance), before filtering.
    fn fill_white(&mut self, out: &mut [f32]) {
        for chunk in out.chunks_mut(4) {
            // The sum of four uniforms is close to Gaussian, and after band-pass filtering (a
            // weighted sum of many samples) indistinguishable from it; it is 4× cheaper.
            let bits = self.rng.next_u64();
            for (k, x) in chunk.iter_mut().enumerate() {
                *x = irwin_hall((bits >> (16 * k)) as u16);
            }
        }
    }
}

/// Channels filtered in lockstep: the IIR recursion is sequential in time, so running several
/// independent channels side by side is what lets the CPU use its vector lanes.
pub const LANES: usize = 16;

/// Fills each row with the next samples of its source (same filter design for all sources).
pub fn fill_group(sources: &mut [NoiseSource], rows: &mut [&mut [f32]]) {
    for (source, row) in sources.iter_mut().zip(rows.iter_mut()) {
        source.fill_white(row);
    }
    for (group, rows) in sources.chunks_mut(LANES).zip(rows.chunks_mut(LANES)) {
        filter_lanes(group, rows);
    }
}

kilosort::avx2_dispatch! {
    /// Filters up to `LANES` sources in lockstep.
    fn filter_lanes(sources: &mut [NoiseSource], rows: &mut [&mut [f32]]) => filter_lanes_portable
}

#[inline(always)]
fn filter_lanes_portable(sources: &mut [NoiseSource], rows: &mut [&mut [f32]]) {
    let (hp, lp) = (sources[0].high_pass, sources[0].low_pass);
    let mut state = [[0.0f32; LANES]; 4];
    let mut gain = [0.0f32; LANES];
    for (k, s) in sources.iter().enumerate() {
        state[0][k] = s.high_pass.z[0];
        state[1][k] = s.high_pass.z[1];
        state[2][k] = s.low_pass.z[0];
        state[3][k] = s.low_pass.z[1];
        gain[k] = s.gain;
    }
    let len = rows.iter().map(|r| r.len()).min().unwrap_or(0);
    // Time-major scratch so each step reads one contiguous vector of lanes.
    let mut lanes = vec![[0.0f32; LANES]; len];
    for (k, row) in rows.iter().enumerate() {
        lanes.iter_mut().zip(row.iter()).for_each(|(l, &x)| l[k] = x);
    }
    for x in lanes.iter_mut() {
        for k in 0..LANES {
            let h = hp.b[0] * x[k] + state[0][k];
            state[0][k] = hp.b[1] * x[k] - hp.a[0] * h + state[1][k];
            state[1][k] = hp.b[2] * x[k] - hp.a[1] * h;
            let l = lp.b[0] * h + state[2][k];
            state[2][k] = lp.b[1] * h - lp.a[0] * l + state[3][k];
            state[3][k] = lp.b[2] * h - lp.a[1] * l;
            x[k] = gain[k] * l;
        }
    }
    for (k, row) in rows.iter_mut().enumerate() {
        row.iter_mut().zip(lanes.iter()).for_each(|(x, l)| *x = l[k]);
    }
    for (k, s) in sources.iter_mut().enumerate() {
        s.high_pass.z = [state[0][k], state[1][k]];
        s.low_pass.z = [state[2][k], state[3][k]];
    }
}

/// 1 / SD of the filters' output for unit-variance white input: 1 / √(Σ h²) over the impulse
/// response (computed, not sampled, so it is exact and needs no random numbers).
fn unit_variance_gain(mut high_pass: Biquad, mut low_pass: Biquad) -> f32 {
    let mut energy = 0.0f64;
    for i in 0..200_000 {
        let x = if i == 0 { 1.0 } else { 0.0 };
        let h = high_pass.b[0] * x + high_pass.z[0];
        high_pass.z =
            [high_pass.b[1] * x - high_pass.a[0] * h + high_pass.z[1], high_pass.b[2] * x - high_pass.a[1] * h];
        let y = low_pass.b[0] * h + low_pass.z[0];
        low_pass.z = [low_pass.b[1] * h - low_pass.a[0] * y + low_pass.z[1], low_pass.b[2] * h - low_pass.a[1] * y];
        energy += (y as f64).powi(2);
    }
    (1.0 / energy.sqrt()) as f32
}

/// A 16-bit word split into four 4-bit uniforms, summed and centred: mean 0, variance 1.
#[inline]
fn irwin_hall(word: u16) -> f32 {
    let sum = (word & 15) + ((word >> 4) & 15) + ((word >> 8) & 15) + (word >> 12);
    // Each 4-bit uniform has variance (16² − 1)/12 = 21.25; four of them 85.
    (sum as f32 - 30.0) * (1.0 / 85.0f32.sqrt())
}

/// Spatial mixing: each channel is a weighted sum of its neighbours' sources.
#[derive(Debug, Clone)]
pub struct SpatialMix {
    /// For each output channel: (source index, weight), weights with unit sum of squares.
    pub rows: Vec<Vec<(usize, f32)>>,
}

impl SpatialMix {
    /// Gaussian weights over distance with correlation length `length_um`.
    pub fn new(x: &[f32], y: &[f32], length_um: f64) -> Self {
        let rows = (0..x.len())
            .map(|c| {
                let mut row: Vec<(usize, f32)> = (0..x.len())
                    .filter_map(|k| {
                        let d2 = ((x[c] - x[k]) as f64).powi(2) + ((y[c] - y[k]) as f64).powi(2);
                        let w = (-d2 / (2.0 * length_um * length_um)).exp();
                        (w > 0.1).then_some((k, w as f32))
                    })
                    .collect();
                let norm = row.iter().map(|&(_, w)| w * w).sum::<f32>().sqrt();
                row.iter_mut().for_each(|(_, w)| *w /= norm);
                row
            })
            .collect();
        SpatialMix { rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_unit_variance_and_band_limited() {
        let fs = 30000.0;
        let mut source = NoiseSource::bank(7, 1, [300.0, 6000.0], fs).remove(0);
        let mut x = vec![0.0f32; 300_000];
        source.fill(&mut x);
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
    fn neighbours_are_correlated() {
        let x = [0.0f32, 0.0, 0.0];
        let y = [0.0f32, 20.0, 200.0];
        let mix = SpatialMix::new(&x, &y, 20.0);
        assert_eq!(mix.rows[2].len(), 1, "a far channel mixes only itself");
        assert!(mix.rows[0].iter().any(|&(k, w)| k == 1 && w > 0.3));
    }
}
