//! Simulation parameters and the named presets users type.

use serde::Serialize;

/// How the probe moves relative to the tissue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// The units stay put.
    None,
    /// Every unit moves by the same amount.
    Rigid,
    /// The displacement varies with depth along the probe.
    NonRigid,
}

/// The drift to simulate.
#[derive(Debug, Clone, Serialize)]
pub struct DriftConfig {
    /// None, rigid or non-rigid.
    pub kind: DriftKind,
    /// Peak-to-peak size of the slow random walk, µm.
    pub amplitude_um: f64,
    /// Fast jumps per minute (each a few µm, lasting a few seconds).
    pub jumps_per_minute: f64,
    /// A lasting step of this many µm at `step_time_s` (0 for none).
    pub step_um: f64,
    /// When the step happens, seconds.
    pub step_time_s: f64,
}

impl DriftConfig {
    /// No drift.
    pub fn none() -> Self {
        DriftConfig { kind: DriftKind::None, amplitude_um: 0.0, jumps_per_minute: 0.0, step_um: 0.0, step_time_s: 0.0 }
    }
}

/// Everything that defines a simulated recording; saved as `simulation.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationConfig {
    /// Preset it came from (informational).
    pub preset: String,
    /// Probe: a built-in name or a probe file.
    pub probe: String,
    /// Seconds of data.
    pub duration_s: f64,
    /// Sampling rate, Hz.
    pub fs: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// Ground-truth units (scored).
    pub n_units: usize,
    /// Small far units that make background multi-unit activity (not scored).
    pub n_distractors: usize,
    /// Median SNR (best-channel peak / noise SD) of ground-truth units; log-normal around it.
    pub snr_median: f64,
    /// Log-normal spread (σ of ln SNR) of ground-truth unit SNRs.
    pub snr_log_sigma: f64,
    /// Smallest and largest ground-truth SNR.
    pub snr_range: [f64; 2],
    /// SNR range of the distractor units.
    pub distractor_snr_range: [f64; 2],
    /// Median noise SD, µV (each channel ±20 % around it).
    pub noise_uv: f64,
    /// Noise passband, Hz.
    pub noise_band_hz: [f64; 2],
    /// Spatial correlation length of the noise, µm.
    pub noise_correlation_um: f64,
    /// SD of a slow signal shared by all channels (what common average referencing removes), µV.
    pub common_mode_uv: f64,
    /// Largest per-channel DC offset, µV.
    pub dc_offset_uv: f64,
    /// µV per int16 step of `recording.bin`.
    pub uv_per_bit: f64,
    /// Median firing rate, Hz (log-normal, clipped to `rate_range_hz`).
    pub rate_median_hz: f64,
    /// Firing-rate range, Hz.
    pub rate_range_hz: [f64; 2],
    /// No two spikes of a unit closer than this, ms.
    pub refractory_ms: f64,
    /// Probability that a spike starts a burst of 2–4 spikes.
    pub burst_probability: f64,
    /// Amplitude factor from one burst spike to the next.
    pub burst_decrement: f64,
    /// Fraction of ground-truth units that are narrow (fast-spiking).
    pub narrow_fraction: f64,
    /// Probe motion.
    pub drift: DriftConfig,
}

/// The presets `kilosort-rs simulate --preset` accepts.
pub const PRESETS: &[&str] = &["tetrode-like", "linear32", "np1-64", "np1-384", "np1-384-drift", "np2-4shank"];

impl SimulationConfig {
    /// A preset by name, with its probe, unit counts and drift.
    pub fn preset(name: &str) -> Option<Self> {
        let base = SimulationConfig {
            preset: name.to_string(),
            probe: String::new(),
            duration_s: 60.0,
            fs: 30000.0,
            seed: 1,
            n_units: 0,
            n_distractors: 0,
            snr_median: 9.0,
            snr_log_sigma: 0.55,
            snr_range: [4.0, 40.0],
            distractor_snr_range: [1.0, 3.5],
            noise_uv: 10.0,
            noise_band_hz: [300.0, 6000.0],
            noise_correlation_um: 15.0,
            common_mode_uv: 4.0,
            dc_offset_uv: 60.0,
            uv_per_bit: 0.195,
            rate_median_hz: 5.0,
            rate_range_hz: [0.5, 30.0],
            refractory_ms: 2.0,
            burst_probability: 0.05,
            burst_decrement: 0.85,
            narrow_fraction: 0.25,
            drift: DriftConfig::none(),
        };
        let (probe, n_units, n_distractors) = match name {
            "tetrode-like" => ("tetrode", 6, 8),
            "linear32" => ("linear32", 20, 30),
            "np1-64" => ("np1-64", 30, 50),
            "np1-384" | "np1-384-drift" => ("NeuroPix1_default", 150, 250),
            "np2-4shank" => ("NP2_4shank", 120, 200),
            _ => return None,
        };
        let drift = if name == "np1-384-drift" {
            DriftConfig {
                kind: DriftKind::NonRigid,
                amplitude_um: 20.0,
                jumps_per_minute: 1.0,
                step_um: 10.0,
                step_time_s: 40.0,
            }
        } else {
            DriftConfig::none()
        };
        Some(SimulationConfig { probe: probe.into(), n_units, n_distractors, drift, ..base })
    }
}
