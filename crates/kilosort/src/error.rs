//! The library's error type.
//!
//! Every variant that comes from user data carries the file (or the setting), the offending
//! value and what to do about it, so the message printed by the CLI is enough to fix the input.

use std::path::{Path, PathBuf};

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in kilosort-rs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error while touching a file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("cannot open", "cannot read", …).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// The file does not exist.
    #[error("{path}: file not found{}", hint_suffix(.hint))]
    FileNotFound {
        /// The path that was asked for.
        path: PathBuf,
        /// What to check (may be empty).
        hint: String,
    },

    /// The binary file's length is not a whole number of samples.
    #[error(
        "{path}: file size {size} bytes is not a multiple of {n_chan_bin} channels × {bytes_per_value} bytes \
         ({dtype}); check n_chan_bin (the number of channels in the file, including non-ephys channels such as \
         the sync channel, e.g. 385 for Neuropixels 1.0) and the data dtype"
    )]
    FileSizeMismatch {
        /// The recording file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The `n_chan_bin` that was given.
        n_chan_bin: usize,
        /// Bytes per value of the dtype.
        bytes_per_value: usize,
        /// The dtype name.
        dtype: &'static str,
    },

    /// The recording file holds no samples.
    #[error("{path}: the file is empty (0 bytes); point to the raw recording, not to a placeholder")]
    EmptyFile {
        /// The recording file.
        path: PathBuf,
    },

    /// The files of a multi-file recording disagree, or a data folder is ambiguous.
    #[error("{path}: {detail}")]
    BadRecording {
        /// The file or folder involved.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// The requested time window does not fit the recording.
    #[error("{path}: {detail}")]
    TimeWindow {
        /// The recording file.
        path: PathBuf,
        /// What is wrong, with the numbers, and how to fix it.
        detail: String,
    },

    /// The recording is shorter than what the pipeline needs.
    #[error(
        "{path}: the recording (after tmin/tmax) has {n_samples} samples, shorter than one waveform of nt = {nt} \
         samples; use a longer recording or a wider tmin/tmax window"
    )]
    RecordingTooShort {
        /// The recording file.
        path: PathBuf,
        /// Samples available in the window.
        n_samples: u64,
        /// Waveform length.
        nt: usize,
    },

    /// A probe file could not be parsed.
    #[error("{path}: {detail}")]
    ProbeFormat {
        /// The probe file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// A probe is inconsistent (duplicate channels, mismatched lengths, channels beyond the file).
    #[error("probe {source_name}: {detail}")]
    ProbeInvalid {
        /// The probe file or built-in name.
        source_name: String,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// Settings contain keys that kilosort-rs does not know.
    #[error("{origin}: unknown setting{} {}", if .keys.len() > 1 { "s" } else { "" }, describe_unknown(.keys))]
    UnknownSettings {
        /// Where the settings came from (a file path or "command line").
        origin: String,
        /// Each unknown key with the nearest valid name, if one is close.
        keys: Vec<(String, Option<String>)>,
    },

    /// A setting has a value outside its allowed range or of the wrong type.
    #[error("{origin}: setting `{name}` = {value} is invalid: {reason}")]
    InvalidSetting {
        /// Where the settings came from.
        origin: String,
        /// The setting's name.
        name: String,
        /// The value as given.
        value: String,
        /// Why it is invalid and what is allowed.
        reason: String,
    },

    /// The results folder exists and overwriting was not asked for.
    #[error(
        "{path}: the results folder already exists; pass --overwrite to replace it (the old folder is deleted \
         only once the new one is complete) or choose another results folder"
    )]
    ResultsExist {
        /// The existing folder.
        path: PathBuf,
    },

    /// The results folder cannot be written or replaced as asked.
    #[error("{path}: {detail}")]
    ResultsFolder {
        /// The results folder (or the file inside it).
        path: PathBuf,
        /// What is wrong and how to fix it.
        detail: String,
    },

    /// Results handed to the writer are inconsistent (a bug in kilosort-rs, not in the data).
    #[error("cannot write results: {detail} (this is a bug in kilosort-rs; please report it)")]
    InvalidResults {
        /// Which array is wrong, with the sizes.
        detail: String,
    },

    /// A required setting is missing.
    #[error("setting `{name}` is required: {fix}")]
    MissingSetting {
        /// The setting's name.
        name: &'static str,
        /// How to provide it.
        fix: &'static str,
    },

    /// A stage found nothing to work on (no spikes, no clusters).
    #[error("{stage}: {detail}; {fix}")]
    NoSpikes {
        /// The pipeline stage.
        stage: &'static str,
        /// What was found, with the numbers.
        detail: String,
        /// What to check or change.
        fix: String,
    },

    /// A feature of Kilosort4 that kilosort-rs does not provide.
    #[error("{what} is not supported: {fix}")]
    Unsupported {
        /// The setting or feature.
        what: String,
        /// What to do instead.
        fix: String,
    },

    /// Clustering had nothing to work on.
    #[error("clustering: {detail}")]
    Clustering {
        /// What was missing and where to look.
        detail: String,
    },
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() { String::new() } else { format!("; {hint}") }
}

fn describe_unknown(keys: &[(String, Option<String>)]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|(key, nearest)| match nearest {
            Some(n) => format!("`{key}` (did you mean `{n}`?)"),
            None => format!("`{key}`"),
        })
        .collect();
    format!("{}; `kilosort-rs settings` lists every valid name", parts.join(", "))
}

impl Error {
    /// Wraps an I/O error with the file and the action that failed.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            return Error::FileNotFound { path: path.to_path_buf(), hint: String::new() };
        }
        Error::Io { action, path: path.to_path_buf(), source }
    }

    /// A probe-format error for `path`.
    pub fn probe_format(path: &Path, detail: impl Into<String>) -> Self {
        Error::ProbeFormat { path: path.to_path_buf(), detail: detail.into() }
    }
}
