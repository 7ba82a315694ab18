//! Where and how each unit's spike lands on the probe: per channel, the waveform's amplitude,
//! sample range and table walk; and adding spikes to a run of time steps.
//!
//! Without drift a unit's footprint never changes, so it is computed once; with drift it is
//! recomputed for every spike from the unit's moved position.

use std::ops::Range;

use kilosort::Probe;
use rayon::prelude::*;

use super::config::SimulationConfig;
use super::drift::DriftField;
use super::trains::SpikeEvent;
use super::units::Unit;
use super::waveform::{FOOTPRINT_CUTOFF, FOOTPRINT_NOISE_FRACTION, Profile, WINDOW_MS, channel_view, reach};

/// One unit's waveform on one channel, for a spike of scale 1 whose trough is exactly on a sample.
#[derive(Debug, Clone, Copy)]
pub struct ChannelWave {
    /// Probe channel.
    pub channel: usize,
    /// Amplitude, µV.
    amp: f32,
    /// First and last sample, relative to the trough, where the waveform is not negligible.
    from: i64,
    to: i64,
    /// Table position at sample `from`.
    x_from: f64,
    /// Table step per sample.
    dx: f64,
}

impl ChannelWave {
    /// Amplitude and table position at sample `from` for spike `e` (its scale and sub-sample
    /// offset: the table position walks linearly with time, t = ((k − offset)·dt − delay) / stretch).
    fn for_spike(&self, e: &SpikeEvent) -> (f32, f64) {
        (self.amp * e.scale, self.x_from - e.offset as f64 * self.dx)
    }
}

/// The waveforms of a block's spikes on every channel they reach.
pub enum SpikeWaves<'f> {
    /// Without drift: per unit, computed once for the whole recording.
    PerUnit(&'f [Vec<ChannelWave>]),
    /// With drift: per spike of the block, from its unit's position at that time.
    PerSpike(Vec<Vec<ChannelWave>>),
}

impl SpikeWaves<'_> {
    /// The waveforms of spike `e`, the block's `i`-th.
    fn of(&self, i: usize, e: &SpikeEvent) -> &[ChannelWave] {
        match self {
            SpikeWaves::PerUnit(fixed) => &fixed[e.unit as usize],
            SpikeWaves::PerSpike(waves) => &waves[i],
        }
    }
}

/// Every unit's spike on every channel it reaches.
pub struct Footprints<'a> {
    config: &'a SimulationConfig,
    probe: &'a Probe,
    units: &'a [Unit],
    drift: Option<&'a DriftField>,
    profiles: Vec<Profile>,
    /// Per unit: channels it may reach (with room for drift).
    candidates: Vec<Vec<usize>>,
    /// Per unit: channels where its gain is below this get nothing.
    gain_floor: Vec<f64>,
    /// Without drift: each unit's footprint, computed once.
    fixed: Option<Vec<Vec<ChannelWave>>>,
    /// Longest reach of a spike before/after its trough, samples.
    pub reach_samples: (i64, i64),
}

impl<'a> Footprints<'a> {
    /// Profiles, candidate channels and (without drift) the footprints of every unit.
    pub fn new(
        config: &'a SimulationConfig,
        probe: &'a Probe,
        units: &'a [Unit],
        drift: Option<&'a DriftField>,
    ) -> Self {
        let max_drift = drift.map_or(0.0, DriftField::max_abs);
        let (mut candidates, mut gain_floor) = (Vec::with_capacity(units.len()), Vec::with_capacity(units.len()));
        for u in units {
            let b = u.best_channel;
            let (dx, dy) = (u.x_um - probe.x[b] as f64, u.y_um - probe.y[b] as f64);
            let gain = channel_view(&u.shape, dx, dy, u.z_um).gain;
            let r_best = (dx * dx + dy * dy + u.z_um * u.z_um).sqrt();
            let floor = FOOTPRINT_CUTOFF.max(FOOTPRINT_NOISE_FRACTION * config.noise_uv / (u.amplitude_uv * gain));
            let radius = reach(r_best, floor) + max_drift;
            let distance = |c: usize| (u.x_um - probe.x[c] as f64).hypot(u.y_um - probe.y[c] as f64);
            candidates.push((0..probe.len()).filter(|&c| distance(c) <= radius).collect());
            gain_floor.push(floor * gain);
        }
        let ms = config.fs / 1000.0;
        let mut footprints = Footprints {
            config,
            probe,
            units,
            drift,
            profiles: units.par_iter().map(|u| Profile::new(&u.shape, config.fs)).collect(),
            candidates,
            gain_floor,
            fixed: None,
            reach_samples: ((-3.0 * WINDOW_MS[0] * ms) as i64 + 1, (3.0 * WINDOW_MS[1] * ms) as i64 + 1),
        };
        if drift.is_none() {
            let fixed = (0..units.len())
                .into_par_iter()
                .map(|u| {
                    let mut waves = Vec::new();
                    footprints.compute(u, units[u].y_um, &mut waves);
                    waves
                })
                .collect();
            footprints.fixed = Some(fixed);
        }
        footprints
    }

    /// The unit's depth at the spike's time (drift moves it along the probe).
    fn depth(&self, e: &SpikeEvent) -> f64 {
        let unit = &self.units[e.unit as usize];
        unit.y_um + self.drift.map_or(0.0, |d| d.at(e.sample as f64 / self.config.fs, unit.y_um))
    }

    /// The waveform of `unit` at depth `y` on channel `c`, if not negligible there.
    fn wave(&self, unit: usize, c: usize, y: f64) -> Option<ChannelWave> {
        let u = &self.units[unit];
        let view = channel_view(&u.shape, u.x_um - self.probe.x[c] as f64, y - self.probe.y[c] as f64, u.z_um);
        if view.gain < self.gain_floor[unit] {
            return None;
        }
        let ms = 1000.0 / self.config.fs;
        let profile = &self.profiles[unit];
        let from = ((profile.support_ms[0] * view.stretch + view.delay_ms) / ms).floor() as i64;
        let to = ((profile.support_ms[1] * view.stretch + view.delay_ms) / ms).ceil() as i64;
        let (x_from, dx) = profile.position((from as f64 * ms - view.delay_ms) / view.stretch, ms / view.stretch);
        Some(ChannelWave { channel: c, amp: (u.amplitude_uv * view.gain) as f32, from, to, x_from, dx })
    }

    /// The footprint of `unit` at depth `y` into `out`.
    fn compute(&self, unit: usize, y: f64, out: &mut Vec<ChannelWave>) {
        out.clear();
        out.extend(self.candidates[unit].iter().filter_map(|&c| self.wave(unit, c, y)));
    }

    /// The waveforms of `events` (a block's spikes) on every channel they reach.
    pub fn waves(&self, events: &[SpikeEvent]) -> SpikeWaves<'_> {
        match &self.fixed {
            Some(fixed) => SpikeWaves::PerUnit(fixed),
            None => SpikeWaves::PerSpike(
                events
                    .par_iter()
                    .map(|e| {
                        let mut waves = Vec::new();
                        self.compute(e.unit as usize, self.depth(e), &mut waves);
                        waves
                    })
                    .collect(),
            ),
        }
    }

    /// Adds every spike of `events` (with their `waves`) that overlaps time steps
    /// `[t0, t0 + steps)` to `spikes` (probe channel × `stride` time steps, channel-major, so
    /// that each channel's waveform is one contiguous walk); returns the channels it touched.
    pub fn add_spikes(
        &self,
        events: &[SpikeEvent],
        waves: &SpikeWaves,
        t0: i64,
        steps: usize,
        stride: usize,
        spikes: &mut [f32],
    ) -> Range<usize> {
        let steps = steps as i64;
        let lo = events.partition_point(|e| e.sample < t0 - self.reach_samples.1);
        let hi = events.partition_point(|e| e.sample < t0 + steps + self.reach_samples.0);
        let (mut first_channel, mut end_channel) = (usize::MAX, 0);
        for (i, e) in events.iter().enumerate().take(hi).skip(lo) {
            let profile = &self.profiles[e.unit as usize];
            for w in waves.of(i, e) {
                let first = w.from.max(t0 - e.sample);
                let last = w.to.min(t0 + steps - 1 - e.sample);
                if first <= last {
                    let (amp, x0) = w.for_spike(e);
                    let at = w.channel * stride + (e.sample + first - t0) as usize;
                    let out = &mut spikes[at..at + (last - first + 1) as usize];
                    profile.accumulate(out, amp, x0 + (first - w.from) as f64 * w.dx, w.dx);
                    (first_channel, end_channel) = (first_channel.min(w.channel), end_channel.max(w.channel + 1));
                }
            }
        }
        first_channel.min(end_channel)..end_channel
    }

    /// Adds the clean waveform of `e` on its unit's best channel, samples −`half`..=`half`
    /// around the trough, to `sum` (`2 · half + 1` values); false when the spike is negligible
    /// there.
    pub fn add_best_channel_waveform(&self, e: &SpikeEvent, half: i64, sum: &mut [f64]) -> bool {
        let unit = e.unit as usize;
        let best = self.units[unit].best_channel;
        let w = match &self.fixed {
            Some(fixed) => fixed[unit].iter().find(|w| w.channel == best).copied(),
            None => self.wave(unit, best, self.depth(e)),
        };
        let Some(w) = w else { return false };
        let (first, last) = (w.from.max(-half), w.to.min(half));
        if first <= last {
            let (amp, x0) = w.for_spike(e);
            let mut clean = vec![0.0f32; (last - first + 1) as usize];
            self.profiles[unit].accumulate(&mut clean, amp, x0 + (first - w.from) as f64 * w.dx, w.dx);
            for (s, &v) in sum[(first + half) as usize..].iter_mut().zip(&clean) {
                *s += v as f64;
            }
        }
        true
    }
}
