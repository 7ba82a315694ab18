//! The simulated units: where they are, what their spikes look like, how big and how often.

use kilosort::Probe;
use rand::Rng;
use serde::Serialize;

use super::config::SimulationConfig;
use super::random::{Stream, normal, stream, uniform};
use super::waveform::{Shape, channel_view};

/// One simulated neuron.
#[derive(Debug, Clone, Serialize)]
pub struct Unit {
    /// Unit id (ground-truth units first, then distractors).
    pub id: usize,
    /// Lateral position, µm (probe coordinates).
    pub x_um: f64,
    /// Depth along the probe at time 0, µm.
    pub y_um: f64,
    /// Distance off the probe plane, µm.
    pub z_um: f64,
    /// Spike shape.
    pub shape: Shape,
    /// Narrow (fast-spiking) or broad (regular-spiking).
    pub narrow: bool,
    /// Scale of the spike at distance 0, µV (the best channel sees less).
    pub amplitude_uv: f64,
    /// Mean firing rate, Hz.
    pub rate_hz: f64,
    /// A background unit, not part of the scored ground truth.
    pub is_distractor: bool,
    /// Probe index of the channel where the spike is largest (at time 0).
    pub best_channel: usize,
    /// The SNR the amplitude was set for (the measured one is in `gt_units.json`).
    pub target_snr: f64,
}

/// Draws `n_units` ground-truth units and `n_distractors` distractors near the probe's contacts.
pub fn draw_units(config: &SimulationConfig, probe: &Probe, noise_sd: &[f64]) -> Vec<Unit> {
    let mut rng = stream(config.seed, Stream::Units);
    let total = config.n_units + config.n_distractors;
    (0..total)
        .map(|id| {
            let is_distractor = id >= config.n_units;
            let (x, y) = near_a_contact(&mut rng, probe);
            let z = if is_distractor { uniform(&mut rng, 25.0, 80.0) } else { uniform(&mut rng, 8.0, 45.0) };
            let narrow = rng.random::<f64>() < config.narrow_fraction;
            let shape = draw_shape(&mut rng, narrow);
            let snr = if is_distractor {
                uniform(&mut rng, config.distractor_snr_range[0], config.distractor_snr_range[1])
            } else {
                (config.snr_median.ln() + config.snr_log_sigma * normal(&mut rng))
                    .exp()
                    .clamp(config.snr_range[0], config.snr_range[1])
            };
            let rate = (config.rate_median_hz.ln() + 0.8 * normal(&mut rng))
                .exp()
                .clamp(config.rate_range_hz[0], config.rate_range_hz[1]);
            let (best_channel, best_gain) = best_channel(probe, &shape, x, y, z);
            let amplitude = snr * noise_sd[best_channel] / (best_gain * TROUGH_DEPTH);
            Unit {
                id,
                x_um: x,
                y_um: y,
                z_um: z,
                shape,
                narrow,
                amplitude_uv: amplitude,
                rate_hz: rate,
                is_distractor,
                best_channel,
                target_snr: snr,
            }
        })
        .collect()
}

/// Depth of the profile's trough (|min|), used to turn a target peak into a unit amplitude.
const TROUGH_DEPTH: f64 = 0.92;

fn near_a_contact(rng: &mut impl Rng, probe: &Probe) -> (f64, f64) {
    let c = rng.random_range(0..probe.len());
    (probe.x[c] as f64 + uniform(rng, -18.0, 18.0), probe.y[c] as f64 + uniform(rng, -10.0, 10.0))
}

fn draw_shape(rng: &mut impl Rng, narrow: bool) -> Shape {
    let jitter = |rng: &mut dyn rand::RngCore, v: f64| v * (1.0 + 0.15 * (2.0 * rng.random::<f64>() - 1.0));
    let (trough, delay, width, ratio) = if narrow { (0.07, 0.22, 0.14, 0.5) } else { (0.13, 0.45, 0.33, 0.3) };
    let direction = if rng.random::<bool>() { 1.0 } else { -1.0 };
    Shape {
        trough_ms: jitter(rng, trough),
        repolarisation_delay_ms: jitter(rng, delay),
        repolarisation_ms: jitter(rng, width),
        repolarisation_ratio: jitter(rng, ratio),
        propagation_um_per_ms: direction * uniform(rng, 500.0, 1200.0),
    }
}

/// The channel with the largest gain for a unit at (x, y, z), and that gain.
pub fn best_channel(probe: &Probe, shape: &Shape, x: f64, y: f64, z: f64) -> (usize, f64) {
    (0..probe.len())
        .map(|c| (c, channel_view(shape, x - probe.x[c] as f64, y - probe.y[c] as f64, z).gain))
        .fold((0, f64::MIN), |best, cur| if cur.1 > best.1 { cur } else { best })
}
