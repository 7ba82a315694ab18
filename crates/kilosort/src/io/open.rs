//! Opening a recording in whatever format it is: detected from the path, or named.

use std::path::{Path, PathBuf};

use super::{BinaryRecording, Dtype, Recording};
use crate::error::{Error, Result};
use crate::settings::Settings;

/// The fix offered when a flat binary is given without its channel count.
pub const N_CHAN_BIN_FIX: &str = "give the number of channels in the binary file (e.g. --n-chan-bin 385 for \
                                  Neuropixels 1.0 with a sync channel, or \"n_chan_bin\": 385 in the settings file)";

/// A recording file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Raw samples, channels interleaved, no header (`.bin`, `.dat`, `.raw`): needs `n_chan_bin`.
    Binary,
}

impl Format {
    /// Every format, in the order `--format` lists them.
    pub const ALL: [Format; 1] = [Format::Binary];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Binary => "binary",
        }
    }

    /// The name people know it by, for messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::Binary => "flat binary",
        }
    }

    /// The format named `name` (as [`Self::name`] gives it).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name)).ok_or_else(|| Error::InvalidSetting {
            origin: "command line".into(),
            name: "format".into(),
            value: name.into(),
            reason: format!("unknown format; choose one of {}", Self::ALL.map(Format::name).join(", ")),
        })
    }

    /// The format of `path`, from its name and the files beside it.
    pub fn detect(_path: &Path) -> Format {
        Format::Binary
    }
}

/// What opening needs beyond the paths; the file's own header wins where it has one.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Channels per sample of a flat binary (`n_chan_bin`); checked against a header.
    pub n_chan_bin: Option<usize>,
    /// Sample type of a flat binary.
    pub dtype: Dtype,
    /// The format, when not detected from the path.
    pub format: Option<Format>,
    /// Which stream of a multi-stream recording (Open Ephys, NWB); the action-potential one
    /// by default.
    pub stream: Option<String>,
}

impl OpenOptions {
    /// The options that `settings` give (`n_chan_bin`, `data_dtype`).
    pub fn from_settings(settings: &Settings) -> Self {
        OpenOptions { n_chan_bin: settings.n_chan_bin, dtype: settings.data_dtype, ..OpenOptions::default() }
    }
}

/// Opens `paths` (several files are one recording concatenated in time).
pub fn open_recording(paths: &[PathBuf], options: &OpenOptions) -> Result<Box<dyn Recording>> {
    let Some(first) = paths.first() else {
        return Err(Error::BadRecording {
            path: PathBuf::new(),
            detail: "no recording file given; pass a .bin/.dat file or a folder that holds one".into(),
        });
    };
    match options.format.unwrap_or_else(|| Format::detect(first)) {
        Format::Binary => {
            let n_chan_bin =
                options.n_chan_bin.ok_or(Error::MissingSetting { name: "n_chan_bin", fix: N_CHAN_BIN_FIX })?;
            Ok(Box::new(BinaryRecording::open(paths, n_chan_bin, options.dtype)?))
        }
    }
}

/// `settings` completed from what `recording` says of itself: `n_chan_bin`, the sample type,
/// and the sampling rate when `fs` is left at its default. A channel count that contradicts the
/// file is an error naming both.
pub fn settings_for_recording(settings: &Settings, recording: &dyn Recording) -> Result<Settings> {
    let mut out = settings.clone();
    let conflict = |name: &str, given: String, found: String| Error::InvalidSetting {
        origin: "settings".into(),
        name: name.into(),
        value: given,
        reason: format!(
            "{} ({}) says {found}; leave {name} unset for this format, or give the value the file has",
            recording.path().display(),
            recording.format().label()
        ),
    };
    match settings.n_chan_bin {
        Some(n) if n != recording.n_chan_bin() => {
            return Err(conflict("n_chan_bin", n.to_string(), recording.n_chan_bin().to_string()));
        }
        _ => out.n_chan_bin = Some(recording.n_chan_bin()),
    }
    out.data_dtype = recording.dtype();
    if let Some(rate) = recording.sample_rate()
        && settings.fs == Settings::default().fs
    {
        out.fs = rate;
    }
    Ok(out)
}
