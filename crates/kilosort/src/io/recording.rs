//! The one thing every pass reads through: a source of samples, whatever the file format.
//!
//! Modelled on SpikeInterface's `get_traces(start, end, channel_ids)`: one narrow, lazy read call
//! into a time-major buffer, plus what the file says about itself (rate, gain, geometry).
//! [`super::BinaryRecording`] (a memory map) is one implementation; each format reader in this
//! folder is another. Nothing downstream of [`super::BatchReader`] knows which it is.

use std::path::{Path, PathBuf};

use super::{Dtype, Format};
use crate::probe::Probe;

/// A recording: `total_samples` samples of `n_chan_bin` stored channels.
pub trait Recording: std::fmt::Debug + Send + Sync {
    /// Samples per channel.
    fn total_samples(&self) -> u64;

    /// Channels stored per sample, non-neural ones (a sync word) included: the rows of the
    /// channel map (Kilosort4's `n_chan_bin`).
    fn n_chan_bin(&self) -> usize;

    /// The stored sample type.
    fn dtype(&self) -> Dtype;

    /// The files read, in time order; the first names the recording in messages.
    fn paths(&self) -> Vec<PathBuf>;

    /// The file that names the recording in messages.
    fn path(&self) -> &Path;

    /// The format, for messages and provenance.
    fn format(&self) -> Format {
        Format::Binary
    }

    /// Sampling rate, Hz, when the file records it.
    fn sample_rate(&self) -> Option<f64> {
        None
    }

    /// Microvolts per stored unit, when the file records it.
    fn uv_per_unit(&self) -> Option<f64> {
        None
    }

    /// The probe the file describes (channel map into the stored rows, positions, shanks).
    fn probe(&self) -> Option<Probe> {
        None
    }

    /// Where the geometry of [`Self::probe`] came from, for `info`.
    fn probe_source(&self) -> Option<String> {
        None
    }

    /// Whether Phy can read the stored samples as a flat file of `n_chan_bin` columns of
    /// `dtype` at [`Self::paths`] (its `params.py` points there).
    fn is_flat_file(&self) -> bool {
        true
    }

    /// Reads samples `[start, end)` of stored rows `channels` into `out`, time-major:
    /// `out[(s - start) * channels.len() + k]` receives row `channels[k]` at sample `s`, as f32.
    ///
    /// # Panics
    /// If the range exceeds the recording or `out` is too small: callers compute both from a
    /// validated [`super::BatchLayout`] and probe.
    fn read_samples(&self, start: u64, end: u64, channels: &[u32], out: &mut [f32]);

    /// Reads samples `[start, end)` channel-major: `out[k * stride + (s - start)]` receives row
    /// `channels[k]` at sample `s`. The default reads time-major and transposes.
    ///
    /// # Panics
    /// As [`Self::read_samples`].
    fn read_channels(&self, start: u64, end: u64, channels: &[u32], out: &mut [f32], stride: usize) {
        let n = channels.len();
        let len = (end - start) as usize;
        let mut time_major = vec![0.0f32; len * n];
        self.read_samples(start, end, channels, &mut time_major);
        for (s, row) in time_major.chunks_exact(n.max(1)).enumerate().take(len) {
            for (k, &v) in row.iter().enumerate() {
                out[k * stride + s] = v;
            }
        }
    }
}
