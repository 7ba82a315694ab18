//! Spike trains: Poisson with a refractory period, with occasional bursts.

use rand::Rng;

use super::config::SimulationConfig;
use super::random::{Stream, stream, uniform};
use super::units::Unit;

/// One spike to add to the recording.
#[derive(Debug, Clone, Copy)]
pub struct SpikeEvent {
    /// Sample of the trough (the ground-truth time).
    pub sample: i64,
    /// Sub-sample offset of the true trough, in samples, in [−0.5, 0.5).
    pub offset: f32,
    /// Index of the unit.
    pub unit: u32,
    /// Amplitude factor (1, less inside bursts).
    pub scale: f32,
}

/// All spikes of all units, sorted by sample (ties by unit).
pub fn draw_spikes(config: &SimulationConfig, units: &[Unit]) -> Vec<SpikeEvent> {
    let n_samples = (config.duration_s * config.fs) as i64;
    let mut events: Vec<SpikeEvent> = units.iter().flat_map(|u| unit_train(config, u, n_samples)).collect();
    events.sort_by_key(|e| (e.sample, e.unit));
    events
}

fn unit_train(config: &SimulationConfig, unit: &Unit, n_samples: i64) -> Vec<SpikeEvent> {
    let mut rng = stream(config.seed, Stream::Train(unit.id as u64));
    let refractory = config.refractory_ms / 1000.0;
    // A burst of 2–4 spikes adds 2 spikes on average, so bursts start (1 + 2p)× less often
    // than single spikes would; exponential gaps after a dead time keep the mean rate at `rate_hz`.
    let spikes_per_event = 1.0 + 2.0 * config.burst_probability;
    let mean_gap = (spikes_per_event / unit.rate_hz - refractory).max(refractory);
    let margin = 0.004; // keep whole waveforms inside the file
    let mut t = margin + uniform(&mut rng, 0.0, mean_gap);
    let end = n_samples as f64 / config.fs - margin;
    let mut events = Vec::new();
    while t < end {
        let in_burst = if rng.random::<f64>() < config.burst_probability { rng.random_range(2..=4) } else { 1 };
        let mut scale = 1.0f32;
        for k in 0..in_burst {
            if t >= end {
                break;
            }
            let exact = t * config.fs;
            let sample = exact.round();
            events.push(SpikeEvent {
                sample: sample as i64,
                offset: (exact - sample) as f32,
                unit: unit.id as u32,
                scale,
            });
            if k + 1 < in_burst {
                t += uniform(&mut rng, 3.0e-3, 8.0e-3).max(refractory);
                scale *= config.burst_decrement as f32;
            }
        }
        t += refractory + mean_gap * -(1.0 - rng.random::<f64>()).ln();
    }
    events
}
