//! Probe motion: displacement of the tissue relative to the probe, per depth and time.
//!
//! A slow random walk (scaled to the requested peak-to-peak amplitude), plus brief jumps that
//! return, plus an optional lasting step. Non-rigid drift gives each of a few anchor depths its
//! own multiple of the shared motion; depths between anchors are interpolated linearly.

use super::config::{DriftConfig, DriftKind};
use super::random::{Stream, normal, stream, uniform};

/// Samples per second of the drift trajectory.
pub const DRIFT_FS: f64 = 10.0;
/// Anchor depths of non-rigid drift.
const NON_RIGID_ANCHORS: usize = 5;

/// Displacement (µm, positive = units move towards larger y) at anchor depths over time.
#[derive(Debug, Clone)]
pub struct DriftField {
    /// Anchor depths, µm (one anchor for rigid drift).
    pub depths_um: Vec<f64>,
    /// `displacement[step][anchor]`, µm, at `DRIFT_FS`.
    pub displacement: Vec<Vec<f64>>,
}

impl DriftField {
    /// Draws the drift for a recording of `duration_s` over depths `[y_min, y_max]`.
    pub fn draw(config: &DriftConfig, seed: u64, duration_s: f64, y_range: (f64, f64)) -> Option<Self> {
        if config.kind == DriftKind::None {
            return None;
        }
        let mut rng = stream(seed, Stream::Drift);
        let n = (duration_s * DRIFT_FS).ceil() as usize + 1;
        let shared = shared_motion(config, &mut rng, n);
        let (depths_um, gains): (Vec<f64>, Vec<f64>) = match config.kind {
            DriftKind::Rigid => (vec![(y_range.0 + y_range.1) / 2.0], vec![1.0]),
            _ => (0..NON_RIGID_ANCHORS)
                .map(|k| {
                    let y = y_range.0 + (y_range.1 - y_range.0) * k as f64 / (NON_RIGID_ANCHORS - 1) as f64;
                    // Motion grows with depth from 0.5× to 1.5×, with some randomness.
                    (y, 0.5 + k as f64 / (NON_RIGID_ANCHORS - 1) as f64 + 0.1 * normal(&mut rng))
                })
                .unzip(),
        };
        let displacement = shared.iter().map(|&d| gains.iter().map(|g| g * d).collect()).collect();
        Some(DriftField { depths_um, displacement })
    }

    /// Displacement at `t` seconds for a unit at depth `y` µm.
    pub fn at(&self, t_s: f64, y_um: f64) -> f64 {
        let pos = (t_s * DRIFT_FS).clamp(0.0, (self.displacement.len() - 1) as f64);
        let i = (pos as usize).min(self.displacement.len() - 2);
        let f = pos - i as f64;
        let row = |r: &[f64]| interpolate_depth(&self.depths_um, r, y_um);
        row(&self.displacement[i]) * (1.0 - f) + row(&self.displacement[i + 1]) * f
    }

    /// Largest absolute displacement anywhere.
    pub fn max_abs(&self) -> f64 {
        self.displacement.iter().flatten().fold(0.0f64, |m, &d| m.max(d.abs()))
    }
}

fn interpolate_depth(depths: &[f64], values: &[f64], y: f64) -> f64 {
    if depths.len() == 1 || y <= depths[0] {
        return values[0];
    }
    let k = depths.partition_point(|&d| d <= y);
    if k >= depths.len() {
        return values[depths.len() - 1];
    }
    let f = (y - depths[k - 1]) / (depths[k] - depths[k - 1]);
    values[k - 1] * (1.0 - f) + values[k] * f
}

/// The rigid part: smoothed random walk + jumps + step, sampled at `DRIFT_FS`.
fn shared_motion(config: &DriftConfig, rng: &mut rand_chacha::ChaCha8Rng, n: usize) -> Vec<f64> {
    let mut walk = Vec::with_capacity(n);
    let (mut x, mut v) = (0.0f64, 0.0f64);
    for _ in 0..n {
        // A random walk of the velocity, damped: slow wandering without sample-to-sample jitter.
        v = 0.98 * v + 0.02 * normal(rng);
        x += v;
        walk.push(x);
    }
    let (lo, hi) = walk.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &w| (lo.min(w), hi.max(w)));
    let span = (hi - lo).max(1e-9);
    let mut motion: Vec<f64> = walk.iter().map(|w| (w - lo) / span * config.amplitude_um).collect();
    let duration_s = n as f64 / DRIFT_FS;
    let n_jumps = (config.jumps_per_minute * duration_s / 60.0).round() as usize;
    for _ in 0..n_jumps {
        let start = uniform(rng, 0.0, duration_s);
        let length = uniform(rng, 1.0, 5.0);
        let size = uniform(rng, 3.0, 8.0) * if rng.random::<bool>() { 1.0 } else { -1.0 };
        for (i, m) in motion.iter_mut().enumerate() {
            let t = i as f64 / DRIFT_FS;
            if t >= start && t < start + length {
                *m += size;
            }
        }
    }
    if config.step_um != 0.0 {
        for (i, m) in motion.iter_mut().enumerate() {
            if i as f64 / DRIFT_FS >= config.step_time_s {
                *m += config.step_um;
            }
        }
    }
    motion
}

use rand::Rng as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rigid_drift_has_the_requested_size_and_step() {
        let config = DriftConfig {
            kind: DriftKind::Rigid,
            amplitude_um: 20.0,
            jumps_per_minute: 0.0,
            step_um: 10.0,
            step_time_s: 30.0,
        };
        let field = DriftField::draw(&config, 3, 60.0, (0.0, 1000.0)).unwrap();
        let before: Vec<f64> = (0..299).map(|i| field.at(i as f64 / 10.0, 500.0)).collect();
        let (lo, hi) = before.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
        assert!(hi - lo <= 20.0 + 1e-9 && field.max_abs() <= 30.0 + 1e-9);
        assert_eq!(field.at(10.0, 0.0), field.at(10.0, 900.0), "rigid: same at every depth");
    }

    #[test]
    fn non_rigid_drift_varies_with_depth() {
        let config = DriftConfig {
            kind: DriftKind::NonRigid,
            amplitude_um: 20.0,
            jumps_per_minute: 0.0,
            step_um: 0.0,
            step_time_s: 0.0,
        };
        let field = DriftField::draw(&config, 3, 60.0, (0.0, 1000.0)).unwrap();
        let t = (0..600)
            .map(|i| i as f64 / 10.0)
            .max_by(|a, b| field.at(*a, 1000.0).total_cmp(&field.at(*b, 1000.0)))
            .unwrap();
        assert!(field.at(t, 1000.0) > 1.5 * field.at(t, 0.0), "deep anchors move more");
    }
}
