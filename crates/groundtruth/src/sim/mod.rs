//! A simulator of extracellular recordings with known spikes.
//!
//! [`simulate`] writes a folder: `recording.bin` (int16), `probe.json`, `gt_spike_times.npy`,
//! `gt_spike_clusters.npy`, `gt_units.json`, `simulation.json` and, with drift, `drift_um.npy`.
//! The recording is produced one block of time at a time, so memory stays bounded whatever the
//! duration; every random choice comes from the seed, so the same configuration gives the same
//! bytes on any machine and thread count.

mod config;
mod drift;
mod footprint;
mod noise;
mod output;
mod probes;
mod random;
mod render;
mod trains;
mod units;
mod waveform;
mod write;

pub use config::{DriftConfig, DriftKind, PRESETS, SimulationConfig};
pub use drift::{DRIFT_FS, DriftField};
pub use probes::resolve as resolve_probe;
pub use units::Unit;
pub use write::{SimulationSummary, simulate};
