//! Renders blocks of the recording: noise, then every spike that overlaps the block.

use std::ops::Range;

use kilosort::Probe;
use rayon::prelude::*;

use super::config::SimulationConfig;
use super::drift::DriftField;
use super::noise::{LANES, NoiseSource, SpatialMix, fill_group};
use super::trains::SpikeEvent;
use super::units::Unit;
use super::waveform::{FOOTPRINT_CUTOFF, FOOTPRINT_NOISE_FRACTION, Profile, WINDOW_MS, channel_view, reach};

/// Channels per parallel task when adding spikes.
const CHANNELS_PER_TASK: usize = 16;

/// One spike's waveform on one channel: amplitude, sample range around the trough, table walk.
struct ChannelSpike {
    amp: f32,
    from: i64,
    to: i64,
    x0: f64,
    dx: f64,
}

/// Half-width, in samples, of the window used to measure ground-truth templates.
pub const TEMPLATE_HALF_WIDTH: usize = 45;

/// Everything needed to render any block, plus the running measurements.
pub struct Renderer<'a> {
    config: &'a SimulationConfig,
    probe: &'a Probe,
    units: &'a [Unit],
    events: &'a [SpikeEvent],
    drift: Option<&'a DriftField>,
    sources: Vec<NoiseSource>,
    common_source: NoiseSource,
    mix: SpatialMix,
    noise_sd: Vec<f64>,
    dc_offset: Vec<f64>,
    profiles: Vec<Profile>,
    candidates: Vec<Vec<usize>>,
    /// Per unit: channels where its gain is below this get nothing.
    gain_floor: Vec<f64>,
    /// Scratch: unmixed noise of every source for one block.
    raw: Vec<f32>,
    /// Scratch: the common-mode signal for one block.
    common: Vec<f32>,
    /// Longest reach of a spike before/after its trough, samples.
    reach_samples: (i64, i64),
    /// Sum of squared noise per channel (for the measured noise SD).
    pub noise_sum_sq: Vec<f64>,
    /// Samples of noise accumulated.
    pub noise_count: u64,
    /// Per unit: summed clean waveform on its best channel, around the trough.
    pub template_sum: Vec<Vec<f64>>,
    /// Per unit: spikes added to `template_sum`.
    pub template_count: Vec<u64>,
}

impl<'a> Renderer<'a> {
    /// Prepares noise sources, per-unit profiles and candidate channels.
    pub fn new(
        config: &'a SimulationConfig,
        probe: &'a Probe,
        units: &'a [Unit],
        events: &'a [SpikeEvent],
        drift: Option<&'a DriftField>,
        noise_sd: Vec<f64>,
        dc_offset: Vec<f64>,
    ) -> Self {
        let n = probe.len();
        let mut sources = NoiseSource::bank(config.seed, n + 1, config.noise_band_hz, config.fs);
        let common = sources.pop().expect("the bank has n + 1 sources");
        let max_drift = drift.map_or(0.0, DriftField::max_abs);
        let mut candidates = Vec::with_capacity(units.len());
        let mut gain_floor = Vec::with_capacity(units.len());
        for u in units {
            let b = u.best_channel;
            let gain = channel_view(&u.shape, u.x_um - probe.x[b] as f64, u.y_um - probe.y[b] as f64, u.z_um).gain;
            let r_best =
                ((u.x_um - probe.x[b] as f64).powi(2) + (u.y_um - probe.y[b] as f64).powi(2) + u.z_um.powi(2)).sqrt();
            let floor = FOOTPRINT_CUTOFF.max(FOOTPRINT_NOISE_FRACTION * config.noise_uv / (u.amplitude_uv * gain));
            let radius = reach(r_best, floor) + max_drift;
            candidates.push(
                (0..n)
                    .filter(|&c| {
                        ((u.x_um - probe.x[c] as f64).powi(2) + (u.y_um - probe.y[c] as f64).powi(2)).sqrt() <= radius
                    })
                    .collect(),
            );
            gain_floor.push(floor * gain);
        }
        let ms = config.fs / 1000.0;
        Renderer {
            config,
            probe,
            units,
            events,
            drift,
            sources,
            common_source: common,
            mix: SpatialMix::new(&probe.x, &probe.y, config.noise_correlation_um),
            noise_sd,
            dc_offset,
            profiles: units.iter().map(|u| Profile::new(&u.shape, config.fs)).collect(),
            candidates,
            gain_floor,
            raw: Vec::new(),
            common: Vec::new(),
            reach_samples: ((-3.0 * WINDOW_MS[0] * ms) as i64 + 1, (3.0 * WINDOW_MS[1] * ms) as i64 + 1),
            noise_sum_sq: vec![0.0; n],
            noise_count: 0,
            template_sum: vec![vec![0.0; 2 * TEMPLATE_HALF_WIDTH + 1]; units.len()],
            template_count: vec![0; units.len()],
        }
    }

    /// Renders samples `[start, start + len)` into `block` (probe channel × time, µV).
    pub fn render(&mut self, start: i64, len: usize, block: &mut [f32]) {
        self.add_noise(len, block);
        let lo = self.events.partition_point(|e| e.sample < start - self.reach_samples.1);
        let hi = self.events.partition_point(|e| e.sample < start + len as i64 + self.reach_samples.0);
        let events = &self.events[lo..hi];
        let this = &*self;
        block.par_chunks_mut(len * CHANNELS_PER_TASK).enumerate().for_each(|(task, rows)| {
            let channels = task * CHANNELS_PER_TASK..task * CHANNELS_PER_TASK + rows.len() / len;
            for e in events {
                this.add_spike(e, start, len, channels.clone(), rows);
            }
        });
        for e in events.iter().filter(|e| (start..start + len as i64).contains(&e.sample)) {
            self.track_template(e);
        }
    }

    fn add_noise(&mut self, len: usize, block: &mut [f32]) {
        let n = self.probe.len();
        self.raw.resize(n * len, 0.0);
        self.raw.par_chunks_mut(len * LANES).zip(self.sources.par_chunks_mut(LANES)).for_each(|(rows, sources)| {
            let mut rows: Vec<&mut [f32]> = rows.chunks_mut(len).collect();
            fill_group(sources, &mut rows);
        });
        self.common.resize(len, 0.0);
        self.common_source.fill(&mut self.common);
        let common_uv = self.config.common_mode_uv as f32;
        let (mix, sd, dc, raw, common) = (&self.mix, &self.noise_sd, &self.dc_offset, &self.raw, &self.common);
        let sums: Vec<f64> = block
            .par_chunks_mut(len)
            .enumerate()
            .map(|(c, out)| {
                let sources = mix.rows[c].iter().map(|&(k, w)| (&raw[k * len..(k + 1) * len], w * sd[c] as f32));
                mix_channel(out, common, common_uv, sources, dc[c] as f32)
            })
            .collect();
        self.noise_sum_sq.iter_mut().zip(sums).for_each(|(s, x)| *s += x);
        self.noise_count += len as u64;
    }

    /// The unit's position at the spike's time (drift moves it along the probe).
    fn unit_depth(&self, e: &SpikeEvent) -> f64 {
        let unit = &self.units[e.unit as usize];
        unit.y_um + self.drift.map_or(0.0, |d| d.at(e.sample as f64 / self.config.fs, unit.y_um))
    }

    /// Samples `k` (relative to the trough) where the spike is non-zero on a channel, and the
    /// table walk for them.
    fn spike_on_channel(&self, e: &SpikeEvent, c: usize, y: f64) -> Option<ChannelSpike> {
        let unit = &self.units[e.unit as usize];
        let view = channel_view(&unit.shape, unit.x_um - self.probe.x[c] as f64, y - self.probe.y[c] as f64, unit.z_um);
        if view.gain < self.gain_floor[e.unit as usize] {
            return None;
        }
        let ms = 1000.0 / self.config.fs;
        let support = self.profiles[e.unit as usize].support_ms;
        let from = ((support[0] * view.stretch + view.delay_ms) / ms).floor() as i64;
        let to = ((support[1] * view.stretch + view.delay_ms) / ms).ceil() as i64;
        // Table position walks linearly with the sample: t = ((k − offset)·dt − delay) / stretch.
        let (x0, dx) = self.profiles[e.unit as usize]
            .position(((from as f64 - e.offset as f64) * ms - view.delay_ms) / view.stretch, ms / view.stretch);
        Some(ChannelSpike { amp: (unit.amplitude_uv * e.scale as f64 * view.gain) as f32, from, to, x0, dx })
    }

    /// Adds spike `e` to the rows of `channels` (a slice of the block starting at `channels.start`).
    fn add_spike(&self, e: &SpikeEvent, start: i64, len: usize, channels: Range<usize>, rows: &mut [f32]) {
        let candidates = &self.candidates[e.unit as usize];
        let first = candidates.partition_point(|&c| c < channels.start);
        let last = candidates.partition_point(|&c| c < channels.end);
        if first == last {
            return;
        }
        let y = self.unit_depth(e);
        let profile = &self.profiles[e.unit as usize];
        for &c in &candidates[first..last] {
            let Some(w) = self.spike_on_channel(e, c, y) else { continue };
            let row = &mut rows[(c - channels.start) * len..(c - channels.start + 1) * len];
            let (first, last) = (w.from.max(start - e.sample), w.to.min(start + len as i64 - 1 - e.sample));
            if first <= last {
                let out = &mut row[(e.sample + first - start) as usize..=(e.sample + last - start) as usize];
                profile.accumulate(out, w.amp, w.x0 + (first - w.from) as f64 * w.dx, w.dx);
            }
        }
    }

    /// Adds the clean waveform of `e` on its unit's best channel to the unit's template sum.
    fn track_template(&mut self, e: &SpikeEvent) {
        let unit = &self.units[e.unit as usize];
        let Some(w) = self.spike_on_channel(e, unit.best_channel, self.unit_depth(e)) else { return };
        let profile = &self.profiles[e.unit as usize];
        let half = TEMPLATE_HALF_WIDTH as i64;
        let sum = &mut self.template_sum[e.unit as usize];
        for k in w.from.max(-half)..=w.to.min(half) {
            sum[(k + half) as usize] += (w.amp * profile.at_index(w.x0 + (k - w.from) as f64 * w.dx)) as f64;
        }
        self.template_count[e.unit as usize] += 1;
    }

    /// Measured noise SD per channel, µV.
    pub fn measured_noise_sd(&self) -> Vec<f64> {
        self.noise_sum_sq.iter().map(|s| (s / self.noise_count.max(1) as f64).sqrt()).collect()
    }
}

kilosort::avx2_dispatch! {
    /// Writes one channel's noise: common mode + weighted neighbour sources, returns the sum of
    /// squares (before the DC offset, which is then added).
    fn mix_channel<'r>(
        out: &mut [f32],
        common: &[f32],
        common_uv: f32,
        sources: impl Iterator<Item = (&'r [f32], f32)>,
        offset: f32,
    ) -> f64 => mix_channel_portable
}

#[inline(always)]
fn mix_channel_portable<'r>(
    out: &mut [f32],
    common: &[f32],
    common_uv: f32,
    sources: impl Iterator<Item = (&'r [f32], f32)>,
    offset: f32,
) -> f64 {
    out.iter_mut().zip(common).for_each(|(o, &m)| *o = common_uv * m);
    for (raw, weight) in sources {
        out.iter_mut().zip(raw).for_each(|(o, &r)| *o += weight * r);
    }
    // Partial sums in f32 over short chunks vectorise; the total is kept in f64.
    let sum_sq = out.chunks(256).map(|chunk| chunk.iter().map(|&v| v * v).sum::<f32>() as f64).sum();
    out.iter_mut().for_each(|o| *o += offset);
    sum_sq
}
