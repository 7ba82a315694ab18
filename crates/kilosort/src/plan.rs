//! Settings, probe and recording checked together once, with every derived size.
//!
//! Stages take a [`Plan`] instead of re-deriving sizes from raw settings, so each check
//! (odd `nt`, channels inside the file, a window inside the recording) is made in one place.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::{BatchLayout, BatchOptions, Recording, find_binary};
use crate::probe::Probe;
use crate::settings::Settings;

/// A validated run: what every stage needs to know before reading data.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The settings, validated against the parameter table.
    pub settings: Settings,
    /// The probe after removing `bad_channels` and selecting `shank_idx`.
    pub probe: Probe,
    /// The analysed window and its batches.
    pub layout: BatchLayout,
    /// Trough sample inside a waveform window (Kilosort4's `nt0min`).
    #[doc(alias = "nt0min")]
    pub trough_index: usize,
    /// Channels per template neighbourhood, clamped to the number of channels.
    pub nearest_chans: usize,
    /// Same-unit spikes closer than this many samples are duplicates.
    pub duplicate_spike_bins: usize,
}

impl Plan {
    /// Checks `settings` against `probe` and `recording` and derives the run's sizes.
    pub fn new(settings: &Settings, probe: &Probe, recording: &dyn Recording) -> Result<Self> {
        let origin = "settings";
        settings.validate(origin)?;
        let n_chan_bin = settings.n_chan_bin.expect("validate checks n_chan_bin");
        if n_chan_bin != recording.n_chan_bin() {
            return Err(Error::InvalidSetting {
                origin: origin.into(),
                name: "n_chan_bin".into(),
                value: n_chan_bin.to_string(),
                reason: format!("the recording was opened with {} channels", recording.n_chan_bin()),
            });
        }
        let mut probe = probe.without_channels(&settings.bad_channels)?;
        if let Some(shank) = settings.shank_idx {
            probe = probe.shank_only(shank as f32)?;
        }
        check_channels_remain(&probe, settings)?;
        probe.check_fits("probe", n_chan_bin)?;
        check_not_swapped(recording, settings.nt)?;
        let layout = BatchLayout::new(recording.total_samples(), batch_options(settings), recording.path())?;
        check_batch_memory(&layout, probe.len(), recording)?;
        check_template_grid(&probe, settings)?;
        Ok(Plan {
            trough_index: settings.trough_index(),
            nearest_chans: settings.nearest_chans.min(probe.len()),
            duplicate_spike_bins: (settings.duplicate_spike_ms * settings.fs / 1000.0) as usize,
            settings: settings.clone(),
            probe,
            layout,
        })
    }

    /// Number of sorted channels (Kilosort4's `Nchan`).
    #[doc(alias = "Nchan")]
    pub fn n_channels(&self) -> usize {
        self.probe.len()
    }
}

/// Templates positions allowed per sorted channel: Neuropixels 1.0 has 4 at the default spacing,
/// so this only stops a `dmin`/`dminx` typo (0.001 µm ran away past 5 GB).
const MAX_TEMPLATE_POSITIONS_PER_CHANNEL: f64 = 100.0;
/// Batch buffers alive at once during a pass, per worker thread, plus a few shared ones; with
/// their size this bounds a pass's memory from below.
const BATCH_BUFFERS_PER_THREAD: usize = 4;

fn check_channels_remain(probe: &Probe, settings: &Settings) -> Result<()> {
    if !probe.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidSetting {
        origin: "settings".into(),
        name: "bad_channels".into(),
        value: format!("{:?}", settings.bad_channels),
        reason: format!(
            "no channel is left to sort after removing bad_channels{}; keep at least one channel",
            settings.shank_idx.map_or(String::new(), |s| format!(" and keeping only shank_idx = {s}"))
        ),
    })
}

/// A file with fewer samples than a waveform window, or fewer samples than channels, is almost
/// always read with the wrong `n_chan_bin` (samples and channels swapped, or the byte count).
fn check_not_swapped(recording: &dyn Recording, nt: usize) -> Result<()> {
    let (samples, channels) = (recording.total_samples(), recording.n_chan_bin() as u64);
    if samples >= nt as u64 && samples >= channels {
        return Ok(());
    }
    Err(Error::BadRecording {
        path: recording.path().to_path_buf(),
        detail: format!(
            "read with n_chan_bin = {channels} it holds only {samples} samples, fewer than {}; check n_chan_bin: it \
             is the number of channels per sample in the file (e.g. 385 for Neuropixels 1.0), not a sample count",
            if samples < channels { "channels".to_string() } else { format!("one waveform window (nt = {nt})") }
        ),
    })
}

/// Refuses a batch layout whose buffers alone would not fit in the memory available now.
fn check_batch_memory(layout: &BatchLayout, n_channels: usize, recording: &dyn Recording) -> Result<()> {
    let Some(available) = crate::timing::available_memory_bytes() else { return Ok(()) };
    let batch_bytes = (layout.padded_len() * n_channels * std::mem::size_of::<f32>()) as u64;
    let buffers = (BATCH_BUFFERS_PER_THREAD * rayon::current_num_threads() + 2) as u64;
    let needed = batch_bytes.saturating_mul(buffers);
    if needed <= available {
        return Ok(());
    }
    Err(Error::BadRecording {
        path: recording.path().to_path_buf(),
        detail: format!(
            "batches of {n_channels} channels × {} samples need about {:.1} GB, but only {:.1} GB of memory is \
             available; check n_chan_bin ({}) and lower batch_size or the thread count",
            layout.padded_len(),
            needed as f64 / 1e9,
            available as f64 / 1e9,
            recording.n_chan_bin()
        ),
    })
}

/// Refuses a universal-template grid far denser than any probe needs (a `dmin`/`dminx` typo).
fn check_template_grid(probe: &Probe, settings: &Settings) -> Result<()> {
    let dmin = crate::detect::vertical_spacing(probe, settings.dmin);
    let positions = crate::detect::grid_position_count(probe, dmin, settings.dminx);
    let limit = MAX_TEMPLATE_POSITIONS_PER_CHANNEL * probe.len() as f64;
    if positions <= limit {
        return Ok(());
    }
    let name = if settings.dmin.is_some_and(|d| d < settings.dminx) { "dmin" } else { "dminx" };
    let value = if name == "dmin" { dmin } else { settings.dminx };
    Err(Error::InvalidSetting {
        origin: "settings".into(),
        name: name.into(),
        value: value.to_string(),
        reason: format!(
            "the universal-template grid would have {positions:.0} positions for {} channels (more than {limit:.0}); \
             dmin and dminx are spacings in µm: leave dmin unset (the probe's row spacing) and dminx at 32",
            probe.len()
        ),
    })
}

/// The batching inputs taken from settings.
pub fn batch_options(settings: &Settings) -> BatchOptions {
    BatchOptions {
        fs: settings.fs,
        tmin: settings.tmin,
        tmax: settings.tmax,
        batch_size: settings.batch_size,
        nt: settings.nt,
        downsampling: settings.batch_downsampling,
    }
}

/// The recording files named by the settings: `filename`, else `data_file_path`, else the one
/// binary in `data_dir`.
pub fn recording_paths(settings: &Settings) -> Result<Vec<PathBuf>> {
    if !settings.filename.is_empty() {
        return Ok(settings.filename.clone());
    }
    if !settings.data_file_path.is_empty() {
        return Ok(settings.data_file_path.clone());
    }
    match &settings.data_dir {
        Some(dir) => Ok(vec![find_binary(dir)?]),
        None => Err(Error::MissingSetting {
            name: "filename",
            fix: "give the recording file (or a data_dir folder holding exactly one .bin/.dat file)",
        }),
    }
}

/// The probe named by the settings, in Kilosort4's order: an embedded `probe` dict, then
/// `probe_name` (a built-in), then `probe_path`. `None` when no probe is named.
pub fn resolve_probe(settings: &Settings) -> Result<Option<Probe>> {
    if !matches!(settings.probe, crate::settings::Value::Null) {
        return crate::probe::from_settings_value(&settings.probe).map(Some);
    }
    if let Some(name) = &settings.probe_name {
        return Probe::from_name_or_path(name).map(Some);
    }
    settings.probe_path.as_deref().map(Probe::load).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{BinaryRecording, Dtype};

    fn recording(dir: &std::path::Path, n_chan: usize, samples: usize) -> BinaryRecording {
        let path = dir.join("rec.bin");
        std::fs::write(&path, vec![0u8; n_chan * samples * 2]).unwrap();
        BinaryRecording::open(&[path], n_chan, Dtype::Int16).unwrap()
    }

    fn probe(channels: Vec<u32>) -> Probe {
        let n = channels.len();
        Probe::new("test", channels, vec![0.0; n], (0..n).map(|i| i as f32 * 20.0).collect(), vec![0.0; n], n).unwrap()
    }

    #[test]
    fn derived_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recording(dir.path(), 5, 130_000);
        let settings = Settings { n_chan_bin: Some(5), bad_channels: vec![1], ..Settings::default() };
        let plan = Plan::new(&settings, &probe(vec![0, 1, 2, 3]), &rec).unwrap();
        assert_eq!(plan.probe.channel_map, [0, 2, 3]);
        assert_eq!((plan.n_channels(), plan.nearest_chans, plan.trough_index), (3, 3, 20));
        assert_eq!((plan.duplicate_spike_bins, plan.layout.n_batches, plan.layout.padded_len()), (7, 3, 60122));
    }

    #[test]
    fn probe_channel_beyond_the_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recording(dir.path(), 4, 1000);
        let settings = Settings { n_chan_bin: Some(4), ..Settings::default() };
        let msg = Plan::new(&settings, &probe(vec![0, 4]), &rec).unwrap_err().to_string();
        assert!(
            msg.contains("channel index 4") && msg.contains("n_chan_bin = 4") && msg.contains("0-indexed"),
            "{msg}"
        );
    }

    #[test]
    fn recording_shorter_than_a_waveform_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recording(dir.path(), 2, 40);
        let settings = Settings { n_chan_bin: Some(2), ..Settings::default() };
        let msg = Plan::new(&settings, &probe(vec![0, 1]), &rec).unwrap_err().to_string();
        assert!(msg.contains("rec.bin") && msg.contains("40 samples") && msg.contains("nt = 61"), "{msg}");
    }
}
