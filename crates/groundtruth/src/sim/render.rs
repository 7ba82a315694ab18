//! Renders blocks of the recording straight into the file's interleaved int16 bytes.
//!
//! A block is made in two parallel passes. First the noise sources, in parallel over groups of
//! sources (each is a recursive filter, sequential in time). Then, in parallel over short runs
//! of time steps (everything left is independent between time steps): spatial mixing, per-channel
//! level and offset, every spike that overlaps the run, and conversion to int16. A run's traces
//! are time-major, like the file, and small enough to stay in the core's cache throughout. The
//! first pass of the next block runs beside the second pass of this one, so that the threads
//! never wait for the slowest task of a pass.

use std::cell::RefCell;
use std::ops::Range;

use kilosort::Probe;
use rayon::prelude::*;

use super::config::SimulationConfig;
use super::drift::DriftField;
use super::footprint::{Footprints, SpikeWaves};
use super::noise::{LANES, Lanes, NoiseBank, SpatialMix};
use super::trains::SpikeEvent;
use super::units::Unit;

/// Time steps per parallel task of the second pass (384 channels × 128 steps: 192 kB of traces).
const STEPS_PER_TASK: usize = 128;

/// Half-width, in samples, of the window used to measure ground-truth templates.
pub const TEMPLATE_HALF_WIDTH: usize = 45;

/// Where each probe channel goes in a row of the file.
struct FileLayout {
    /// Columns per row.
    n_chan_bin: usize,
    /// Runs of consecutive probe channels stored in consecutive columns: (first channel, first
    /// column, length). For the usual channel maps this is one or two runs.
    runs: Vec<(usize, usize, usize)>,
    /// 1 / µV per int16 step.
    inv_uv_per_bit: f32,
}

impl FileLayout {
    fn new(channel_map: &[u32], n_chan_bin: usize, uv_per_bit: f64) -> Self {
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        for (c, &col) in channel_map.iter().enumerate() {
            match runs.last_mut() {
                Some((first, column, len)) if *first + *len == c && *column + *len == col as usize => *len += 1,
                _ => runs.push((c, col as usize, 1)),
            }
        }
        FileLayout { n_chan_bin, runs, inv_uv_per_bit: (1.0 / uv_per_bit) as f32 }
    }

    /// Writes the rows of `traces` (time step × probe channel, µV) as little-endian int16 rows
    /// of `bytes`. Columns that no channel maps to are left as they are (zero).
    fn write(&self, traces: &[f32], n: usize, bytes: &mut [u8]) {
        for (row, out) in traces.chunks_exact(n).zip(bytes.chunks_exact_mut(2 * self.n_chan_bin)) {
            for &(c, col, len) in &self.runs {
                to_int16(&row[c..c + len], self.inv_uv_per_bit, &mut out[2 * col..2 * (col + len)]);
            }
        }
    }
}

kilosort::avx2_dispatch! {
    /// `values × scale`, saturated and rounded to the nearest integer, as little-endian int16.
    fn to_int16(values: &[f32], scale: f32, out: &mut [u8]) => to_int16_portable
}

#[inline(always)]
fn to_int16_portable(values: &[f32], scale: f32, out: &mut [u8]) {
    // Adding 1.5 × 2²³ leaves the rounded integer in the low mantissa bits (for |x| < 2²²):
    // unlike `as`, which saturates value by value, this vectorises.
    const MAGIC: f32 = 12_582_912.0;
    for (bytes, &v) in out.chunks_exact_mut(2).zip(values) {
        let x = (v * scale).clamp(i16::MIN as f32, i16::MAX as f32);
        let rounded = ((x + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32) as i16;
        bytes.copy_from_slice(&rounded.to_le_bytes());
    }
}

/// Adds rows `channels` of `spikes` (channel × `STEPS_PER_TASK` time steps) to the columns of
/// `traces` (time step × `n` channels), and clears them for the next task.
fn add_transposed(spikes: &mut [f32], channels: Range<usize>, traces: &mut [f32], n: usize) {
    if channels.is_empty() {
        return;
    }
    let (mut c0, mut t0) = (channels.start, 0);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        (c0, t0) = unsafe { add_transposed_avx2(spikes, channels.clone(), traces, n) };
    }
    // What the tiles left: channels after `c0` at every step, and steps after `t0` before it.
    for (t, row) in traces.chunks_exact_mut(n).enumerate() {
        let from = if t < t0 { c0 } else { channels.start };
        for (c, out) in row.iter_mut().enumerate().take(channels.end).skip(from) {
            *out += spikes[c * STEPS_PER_TASK + t];
        }
    }
    spikes[channels.start * STEPS_PER_TASK..channels.end * STEPS_PER_TASK].fill(0.0);
}

/// [`add_transposed`] in 8 × 8 tiles, transposed in registers. Returns where the tiles stopped:
/// channels before the first value are done for time steps before the second.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_transposed_avx2(spikes: &[f32], channels: Range<usize>, traces: &mut [f32], n: usize) -> (usize, usize) {
    use std::arch::x86_64::*;
    let steps = traces.len() / n;
    let (tiles_c, tiles_t) = ((channels.end - channels.start) / 8, steps / 8);
    for tc in 0..tiles_c {
        let c0 = channels.start + 8 * tc;
        for tt in 0..tiles_t {
            let t0 = 8 * tt;
            // SAFETY (all loads and stores): each slice holds the 8 values read or written.
            let r: [__m256; 8] = std::array::from_fn(|c| {
                let at = (c0 + c) * STEPS_PER_TASK + t0;
                unsafe { _mm256_loadu_ps(spikes[at..at + 8].as_ptr()) }
            });
            for (t, column) in transpose8(r).into_iter().enumerate() {
                let at = (t0 + t) * n + c0;
                let out = &mut traces[at..at + 8];
                unsafe { _mm256_storeu_ps(out.as_mut_ptr(), _mm256_add_ps(_mm256_loadu_ps(out.as_ptr()), column)) };
            }
        }
    }
    (channels.start + 8 * tiles_c, 8 * tiles_t)
}

/// Transposes an 8 × 8 tile held as 8 row vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let a = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let b = [
        _mm256_shuffle_ps::<0x44>(a[0], a[2]),
        _mm256_shuffle_ps::<0xEE>(a[0], a[2]),
        _mm256_shuffle_ps::<0x44>(a[1], a[3]),
        _mm256_shuffle_ps::<0xEE>(a[1], a[3]),
        _mm256_shuffle_ps::<0x44>(a[4], a[6]),
        _mm256_shuffle_ps::<0xEE>(a[4], a[6]),
        _mm256_shuffle_ps::<0x44>(a[5], a[7]),
        _mm256_shuffle_ps::<0xEE>(a[5], a[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(b[0], b[4]),
        _mm256_permute2f128_ps::<0x20>(b[1], b[5]),
        _mm256_permute2f128_ps::<0x20>(b[2], b[6]),
        _mm256_permute2f128_ps::<0x20>(b[3], b[7]),
        _mm256_permute2f128_ps::<0x31>(b[0], b[4]),
        _mm256_permute2f128_ps::<0x31>(b[1], b[5]),
        _mm256_permute2f128_ps::<0x31>(b[2], b[6]),
        _mm256_permute2f128_ps::<0x31>(b[3], b[7]),
    ]
}

/// A thread's scratch for tasks of the second pass, reused from task to task (and block to
/// block) so that it stays in the core's cache: 192 kB each at 384 channels.
#[derive(Default)]
struct Scratch {
    /// A task's traces, time step × probe channel, µV.
    traces: Vec<f32>,
    /// A task's spikes, probe channel × `STEPS_PER_TASK` time steps, µV.
    spikes: Vec<f32>,
    /// Whether `spikes` is all zero (it is after each task, unless a task panicked).
    spikes_clean: bool,
}

impl Scratch {
    /// Traces for `steps` time steps of `n` channels, and all-zero spikes; marks the spikes as
    /// in use until the task says otherwise.
    fn get(&mut self, n: usize, steps: usize) -> (&mut [f32], &mut [f32]) {
        if self.spikes.len() != n * STEPS_PER_TASK || !self.spikes_clean {
            self.spikes.clear();
            self.spikes.resize(n * STEPS_PER_TASK, 0.0);
        }
        self.spikes_clean = false;
        self.traces.resize(n * steps, 0.0);
        (&mut self.traces, &mut self.spikes)
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// What the second pass over a block reads.
struct SecondPass<'p> {
    /// Spikes that overlap the block.
    events: &'p [SpikeEvent],
    waves: SpikeWaves<'p>,
    footprints: &'p Footprints<'p>,
    /// The block's noise sources, group-major.
    sources: &'p [Lanes],
    mix: &'p SpatialMix,
    dc_offset: &'p [f32],
    common_uv: f32,
    layout: &'p FileLayout,
}

impl SecondPass<'_> {
    /// Mixes, adds spikes and writes int16 rows, in parallel over runs of `STEPS_PER_TASK` time
    /// steps; `sum_sq` receives each run's per-channel sum of squared noise.
    fn run(&self, start: i64, len: usize, bytes: &mut [u8], sum_sq: &mut [f64]) {
        let n = self.dc_offset.len();
        let row_bytes = 2 * self.layout.n_chan_bin;
        bytes.par_chunks_mut(row_bytes * STEPS_PER_TASK).zip(sum_sq.par_chunks_mut(n)).enumerate().for_each(
            |(task, (bytes, sum_sq))| {
                let (t0, steps) = (task * STEPS_PER_TASK, bytes.len() / row_bytes);
                SCRATCH.with_borrow_mut(|scratch| {
                    let (traces, spikes) = scratch.get(n, steps);
                    self.mix.mix(self.sources, len, t0, self.common_uv, self.dc_offset, traces, sum_sq);
                    let t0 = start + t0 as i64;
                    let touched =
                        self.footprints.add_spikes(self.events, &self.waves, t0, steps, STEPS_PER_TASK, spikes);
                    add_transposed(spikes, touched, traces, n);
                    scratch.spikes_clean = true;
                    self.layout.write(&scratch.traces, n, bytes);
                });
            },
        );
    }

    /// Adds the clean best-channel waveform of each spike of the block to its unit's sum.
    fn track_templates(&self, start: i64, len: usize, sum: &mut [Vec<f64>], count: &mut [u64]) {
        let half = TEMPLATE_HALF_WIDTH as i64;
        for e in self.events.iter().filter(|e| (start..start + len as i64).contains(&e.sample)) {
            let unit = e.unit as usize;
            if self.footprints.add_best_channel_waveform(e, half, &mut sum[unit]) {
                count[unit] += 1;
            }
        }
    }
}

/// Everything needed to render any block, plus the running measurements.
pub struct Renderer<'a> {
    events: &'a [SpikeEvent],
    footprints: Footprints<'a>,
    bank: NoiseBank,
    mix: SpatialMix,
    common_uv: f32,
    dc_offset: Vec<f32>,
    layout: FileLayout,
    /// Probe channels.
    n: usize,
    /// The block's noise sources, group-major.
    sources: Vec<Lanes>,
    /// The next block's noise sources, made while this block is rendered.
    next_sources: Vec<Lanes>,
    /// Where the next block starts.
    next_start: i64,
    /// Scratch: per task of the second pass, per channel, the sum of squared noise.
    task_sum_sq: Vec<f64>,
    /// Sum of squared noise per channel (for the measured noise SD).
    noise_sum_sq: Vec<f64>,
    /// Samples of noise accumulated.
    noise_count: u64,
    /// Per unit: summed clean waveform on its best channel, around the trough.
    pub template_sum: Vec<Vec<f64>>,
    /// Per unit: spikes added to `template_sum`.
    pub template_count: Vec<u64>,
}

impl<'a> Renderer<'a> {
    /// Prepares noise sources (one per channel and a common-mode one), mixing and footprints.
    pub fn new(
        config: &'a SimulationConfig,
        probe: &'a Probe,
        units: &'a [Unit],
        events: &'a [SpikeEvent],
        drift: Option<&'a DriftField>,
        noise_sd: &[f64],
        dc_offset: &[f64],
    ) -> Self {
        let n = probe.len();
        let n_chan_bin = probe.channel_map.iter().max().map_or(0, |&m| m as usize + 1);
        Renderer {
            events,
            footprints: Footprints::new(config, probe, units, drift),
            // Source `n` is the common-mode signal.
            bank: NoiseBank::new(config.seed, n + 1, config.noise_band_hz, config.fs),
            mix: SpatialMix::new(&probe.x, &probe.y, config.noise_correlation_um, noise_sd),
            common_uv: config.common_mode_uv as f32,
            dc_offset: dc_offset.iter().map(|&d| d as f32).collect(),
            layout: FileLayout::new(&probe.channel_map, n_chan_bin, config.uv_per_bit),
            n,
            sources: Vec::new(),
            next_sources: Vec::new(),
            next_start: 0,
            task_sum_sq: Vec::new(),
            noise_sum_sq: vec![0.0; n],
            noise_count: 0,
            template_sum: vec![vec![0.0; 2 * TEMPLATE_HALF_WIDTH + 1]; units.len()],
            template_count: vec![0; units.len()],
        }
    }

    /// Renders samples `[start, start + len)` into `bytes`: `len` rows of int16 (columns that no
    /// channel maps to are left as they are). Blocks come in order; `next_len` is the length of
    /// the next block (0 after the last), whose noise sources are made meanwhile: the two passes
    /// of consecutive blocks then share the threads without waiting on each other.
    pub fn render(&mut self, start: i64, len: usize, next_len: usize, bytes: &mut [u8]) {
        assert_eq!(start, self.next_start, "blocks are rendered in order");
        assert_eq!(bytes.len(), 2 * self.layout.n_chan_bin * len, "one int16 row per sample");
        let n_groups = self.bank.n_groups();
        if start == 0 {
            // The first block: no earlier block made its sources.
            self.sources.resize(n_groups * len, [0.0; LANES]);
            self.bank.fill(len, &mut self.sources);
        }
        self.next_sources.resize(n_groups * next_len, [0.0; LANES]);
        let (bank, next_sources) = (&mut self.bank, &mut self.next_sources);
        let lo = self.events.partition_point(|e| e.sample < start - self.footprints.reach_samples.1);
        let hi = self.events.partition_point(|e| e.sample < start + len as i64 + self.footprints.reach_samples.0);
        let events = &self.events[lo..hi];
        let n = self.n;
        self.task_sum_sq.resize(n * len.div_ceil(STEPS_PER_TASK), 0.0);
        let pass = SecondPass {
            events,
            waves: self.footprints.waves(events),
            footprints: &self.footprints,
            sources: &self.sources,
            mix: &self.mix,
            dc_offset: &self.dc_offset,
            common_uv: self.common_uv,
            layout: &self.layout,
        };
        let (task_sum_sq, template_sum, template_count) =
            (&mut self.task_sum_sq, &mut self.template_sum, &mut self.template_count);
        rayon::join(
            || bank.fill(next_len, next_sources),
            || {
                rayon::join(
                    || pass.run(start, len, bytes, task_sum_sq),
                    || pass.track_templates(start, len, template_sum, template_count),
                )
            },
        );
        // Summed in task order, so the total does not depend on the thread count.
        for sums in self.task_sum_sq.chunks_exact(n) {
            self.noise_sum_sq.iter_mut().zip(sums).for_each(|(s, x)| *s += x);
        }
        self.noise_count += len as u64;
        std::mem::swap(&mut self.sources, &mut self.next_sources);
        self.next_start = start + len as i64;
    }

    /// Measured noise SD per channel, µV.
    pub fn measured_noise_sd(&self) -> Vec<f64> {
        self.noise_sum_sq.iter().map(|s| (s / self.noise_count.max(1) as f64).sqrt()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_add_matches_the_plain_loop_and_clears() {
        let (n, steps) = (45, 101);
        let value = |c: usize, t: usize| (c * 1000 + t) as f32;
        let mut spikes = vec![0.0; n * STEPS_PER_TASK];
        for c in 3..42 {
            for t in 0..steps {
                spikes[c * STEPS_PER_TASK + t] = value(c, t);
            }
        }
        let mut traces = vec![0.5; n * steps];
        add_transposed(&mut spikes, 3..42, &mut traces, n);
        for t in 0..steps {
            for c in 0..n {
                let expected = 0.5 + if (3..42).contains(&c) { value(c, t) } else { 0.0 };
                assert_eq!(traces[t * n + c], expected, "channel {c}, step {t}");
            }
        }
        assert!(spikes.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn int16_conversion_rounds_and_saturates() {
        let mut out = [0u8; 12];
        to_int16(&[1.2, -1.2, 2.6, -2.6, 1e9, -1e9], 2.0, &mut out);
        let values: Vec<i16> = out.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        assert_eq!(values, [2, -2, 5, -5, i16::MAX, i16::MIN]);
    }
}
