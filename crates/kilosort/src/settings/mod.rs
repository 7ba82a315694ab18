//! Settings: one field per Kilosort4 4.1.7 parameter, same names and defaults.
//!
//! The struct and the parameter table [`PARAMETERS`] are generated from one list below, so the
//! doc comment of each field is also its help text in the CLI and GUI, and the two can never
//! disagree. A Kilosort4 settings dict saved with `json.dump` loads unchanged
//! ([`Settings::from_file`]); unknown keys are rejected with the nearest valid name.

mod table;
mod types;
pub mod value;

use std::path::{Path, PathBuf};

use crate::detect::{BUILTIN_N_PCS, BUILTIN_NT};

/// A batch shorter than this many waveform windows is mostly padding (each side adds `nt`), and
/// its per-batch statistics (drift fingerprints, peaks) are noise: `batch_size 10` ran 30 000
/// batches a minute and sorted garbage.
pub const MIN_BATCH_WINDOWS: usize = 5;
use crate::error::{Error, Result};
use crate::io::Dtype;
pub use table::{Parameter, Stage};
pub use types::{Kind, SettingType};
pub use value::Value;

/// Expands to a setting's external name: the explicit `as "Name"` if given, else the field name.
macro_rules! setting_key {
    ($field:ident) => {
        stringify!($field)
    };
    ($field:ident, $key:literal) => {
        $key
    };
}

/// Declares [`Settings`], its `Default`, the [`PARAMETERS`] table and name-based access, all from
/// one list, so that adding a setting is one edit.
macro_rules! declare_settings {
    ($(
        $(#[doc = $doc:literal])+
        [$stage:ident, $label:literal, min $min:expr, max $max:expr, exclude [$($ex:expr),*]]
        $field:ident $(as $key:literal)? : $ty:ty = $default:expr,
    )+) => {
        /// All settings of a sort. Defaults mirror Kilosort4 4.1.7; see each field.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Settings {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $( $field: $default, )+ }
            }
        }

        /// Every setting: name, stage, kind, range, label and help (the field's doc comment).
        pub const PARAMETERS: &[Parameter] = &[$(
            Parameter {
                name: setting_key!($field $(, $key)?),
                stage: Stage::$stage,
                kind: <$ty as SettingType>::KIND,
                nullable: <$ty as SettingType>::NULLABLE,
                min: $min as f64,
                max: $max as f64,
                exclude: &[$($ex as f64),*],
                label: $label,
                help: concat!($($doc),+),
            },
        )+];

        impl Settings {
            /// Sets one setting by its Kilosort4 name; `None` if the name is unknown.
            fn set_by_name(&mut self, name: &str, value: &Value) -> Option<Result<(), String>> {
                $( if name == setting_key!($field $(, $key)?) {
                    return Some(<$ty as SettingType>::from_value(value).map(|v| self.$field = v));
                } )+
                None
            }

            /// Every setting as (name, value), in table order.
            pub fn to_values(&self) -> Vec<(&'static str, Value)> {
                vec![$( (setting_key!($field $(, $key)?), self.$field.to_value()), )+]
            }
        }
    };
}

const INF: f64 = f64::INFINITY;
const NEG_INF: f64 = f64::NEG_INFINITY;

declare_settings! {
    /// Number of channels stored in the binary file, including non-ephys channels (385 for a
    /// Neuropixels 1.0 file with its sync channel). Required.
    [Data, "number of channels", min 0, max INF, exclude [0]]
    n_chan_bin: Option<usize> = None,
    /// Sampling rate of the recording, Hz.
    [Data, "sampling frequency", min 0, max INF, exclude [0]]
    fs: f64 = 30000.0,
    /// Samples per batch: the recording is processed in batches of this many samples (2 s at 30 kHz).
    [Data, "batch size", min 1, max INF, exclude []]
    batch_size: usize = 60000,
    /// Drift correction sections: 0 turns drift correction off, 1 corrects rigid motion, n > 1
    /// corrects non-rigid motion with 2n − 1 half-overlapping blocks along the probe.
    [Preprocessing, "nblocks", min 0, max INF, exclude []]
    nblocks: usize = 1,
    /// Detection threshold for the first pass with universal templates, in units of the
    /// whitened noise's standard deviation along a unit-norm template.
    [SpikeDetection, "Th (universal)", min 0, max INF, exclude [0]]
    th_universal as "Th_universal": f64 = 9.0,
    /// Detection threshold for matching pursuit with the learned templates (same units).
    [SpikeDetection, "Th (learned)", min 0, max INF, exclude [0]]
    th_learned as "Th_learned": f64 = 8.0,
    /// Start of the analysed interval, seconds from the start of the file.
    [Data, "tmin", min 0, max INF, exclude []]
    tmin: f64 = 0.0,
    /// End of the analysed interval, seconds (inf: to the end of the file).
    [Data, "tmax", min 0, max INF, exclude [0]]
    tmax: f64 = INF,
    /// Waveform length in samples; also the padding added on each side of a batch. Must be odd.
    [Data, "nt", min 1, max INF, exclude []]
    nt: usize = 61,
    /// Added to every raw sample after `scale` (x ← x·scale + shift); None leaves data as is.
    [Data, "shift", min NEG_INF, max INF, exclude []]
    shift: Option<f64> = None,
    /// Multiplies every raw sample before `shift`; useful to bring float data into roughly ±100.
    [Data, "scale", min NEG_INF, max INF, exclude []]
    scale: Option<f64> = None,
    /// Sort only every k-th batch, everywhere in the pipeline (a quick look at a subset).
    [Data, "batch downsampling", min 1, max INF, exclude []]
    batch_downsampling: usize = 1,
    /// A batch whose filtered data reaches this absolute value anywhere is zeroed (artifact removal).
    [Preprocessing, "artifact threshold", min 0, max INF, exclude []]
    artifact_threshold: f64 = INF,
    /// Stride, in batches, between the batches used to estimate the whitening covariance.
    [Preprocessing, "nskip", min 1, max INF, exclude []]
    nskip: usize = 25,
    /// Number of nearest channels (the channel itself included) used to whiten each channel.
    [Preprocessing, "whitening range", min 1, max INF, exclude []]
    whitening_range: usize = 32,
    /// Corner frequency of the Butterworth high-pass filter, Hz.
    [Preprocessing, "high-pass cutoff", min 0, max INF, exclude []]
    highpass_cutoff: f64 = 300.0,
    /// Depth bin, µm, of the spike-density fingerprints used to estimate drift.
    [Preprocessing, "binning depth", min 0, max INF, exclude [0]]
    binning_depth: f64 = 5.0,
    /// Length scale, µm, of the Gaussian kernel that interpolates data to undo drift.
    [Preprocessing, "sig interp", min 0, max INF, exclude [0]]
    sig_interp: f64 = 20.0,
    /// Gaussian smoothing widths of the drift correlation array along its (lag, batch, block) axes.
    [Preprocessing, "drift smoothing", min 0, max INF, exclude []]
    drift_smoothing: [f64; 3] = [0.5, 0.5, 0.5],
    /// Sample of the waveform trough inside an `nt` window; None gives int(20·nt/61).
    [SpikeDetection, "nt0min", min 0, max INF, exclude []]
    nt0min: Option<usize> = None,
    /// Vertical spacing, µm, of the universal-template grid (the grid step is dmin/2) and of the
    /// clustering centres; None takes the median vertical distance between contacts.
    [SpikeDetection, "dmin", min 0, max INF, exclude [0]]
    dmin: Option<f64> = None,
    /// Lateral spacing, µm, of the universal-template grid (the grid step is dminx/2).
    [SpikeDetection, "dminx", min 0, max INF, exclude [0]]
    dminx: f64 = 32.0,
    /// Smallest spatial footprint of the universal templates, µm. It enters as s in exp(−d²/s²),
    /// so the Gaussian's standard deviation is s/√2.
    [SpikeDetection, "min template size", min 0, max INF, exclude [0]]
    min_template_size: f64 = 10.0,
    /// Number of footprint widths tried: s = min_template_size × {1, …, template_sizes}.
    [SpikeDetection, "template sizes", min 1, max INF, exclude []]
    template_sizes: usize = 5,
    /// Channels in each template's neighbourhood (clamped to the number of channels).
    [SpikeDetection, "nearest channels", min 1, max INF, exclude []]
    nearest_chans: usize = 10,
    /// Neighbouring template positions compared when keeping the best detection in space.
    [SpikeDetection, "nearest templates", min 1, max INF, exclude []]
    nearest_templates: usize = 100,
    /// Template positions farther than this, µm, from every contact are dropped; None means 32.
    [SpikeDetection, "max channel distance", min 1, max INF, exclude []]
    max_channel_distance: Option<f64> = Some(32.0),
    /// Upper bound on matching-pursuit iterations per batch.
    [SpikeDetection, "max peels", min 1, max 10000, exclude []]
    max_peels: usize = 100,
    /// Learn the temporal templates and PCs from the data; false uses the built-in universal set
    /// (which requires nt = 61 and n_pcs = 6; n_templates is then ignored: the set has 6).
    [SpikeDetection, "templates from data", min 0, max 1, exclude []]
    templates_from_data: bool = true,
    /// Number of single-channel temporal templates found by k-means.
    [SpikeDetection, "number of templates", min 1, max INF, exclude []]
    n_templates: usize = 6,
    /// Number of temporal principal components kept per channel.
    [SpikeDetection, "number of PCs", min 1, max INF, exclude []]
    n_pcs: usize = 6,
    /// Single-channel threshold, in whitened standard deviations, for collecting the snippets
    /// from which temporal templates and PCs are learned.
    [SpikeDetection, "Th (single channel)", min 0, max INF, exclude [0]]
    th_single_ch as "Th_single_ch": f64 = 6.0,
    /// Largest refractory-violation ratio of a unit's autocorrelogram for it to be labelled good.
    [Clustering, "ACG threshold", min 0, max INF, exclude [0]]
    acg_threshold: f64 = 0.2,
    /// Largest refractory-violation ratio of a cross-correlogram for two units to be merged.
    [Clustering, "CCG threshold", min 0, max INF, exclude [0]]
    ccg_threshold: f64 = 0.25,
    /// Neighbours per spike in the clustering kNN graph.
    [Clustering, "cluster neighbors", min 2, max INF, exclude []]
    cluster_neighbors: usize = 10,
    /// Every k-th spike becomes a landmark node of the clustering graph.
    [Clustering, "cluster downsampling", min 1, max INF, exclude []]
    cluster_downsampling: usize = 20,
    /// Most landmarks per clustering centre; None puts no bound.
    [Clustering, "max cluster subset", min 1, max INF, exclude [INF]]
    max_cluster_subset: Option<usize> = Some(25000),
    /// Number of lateral clustering centres found by k-means; None finds them from the contact
    /// positions automatically.
    [Clustering, "x centers", min 1, max INF, exclude []]
    x_centers: Option<usize> = None,
    /// Seed of the k-means++ initialisation of clustering.
    [Clustering, "cluster init seed", min 1, max INF, exclude []]
    cluster_init_seed: u64 = 5,
    /// Before splitting a cluster in two, check the halves' cross-correlogram and keep them
    /// together if it is refractory (one unit). Not a Kilosort4 setting: Kilosort4 4.1.4 and
    /// earlier did this; from 4.1.5 a bug skips it, which `false` reproduces.
    [Clustering, "split CCG check", min 0, max 1, exclude []]
    split_ccg_check: bool = true,
    /// Spikes of one unit closer than this, ms, are duplicates: all but the first are removed at
    /// export. 0 keeps them all.
    [Postprocessing, "duplicate spike ms", min 0, max INF, exclude []]
    duplicate_spike_ms: f64 = 0.25,
    /// Only channels within this distance, µm, of a template's peak channel contribute to the
    /// exported spike positions.
    [Postprocessing, "position limit", min 0, max INF, exclude []]
    position_limit: f64 = 100.0,
    /// Sample type of the binary file: int16, uint16, int32 or float32.
    [Run, "data dtype", min 0, max 0, exclude []]
    data_dtype: Dtype = Dtype::Int16,
    /// Subtract the median across channels at every sample (common average reference).
    [Run, "do CAR", min 0, max 1, exclude []]
    do_car as "do_CAR": bool = true,
    /// Multiply the data by −1 before sorting (for recordings whose spikes are positive).
    [Run, "invert sign", min 0, max 1, exclude []]
    invert_sign: bool = false,
    /// Binary-file rows (values of chanMap) to leave out of the sort.
    [Run, "bad channels", min 0, max INF, exclude []]
    bad_channels: Vec<u32> = Vec::new(),
    /// Sort only the contacts of this shank (a kcoords value); None sorts every shank together.
    [Run, "shank index", min NEG_INF, max INF, exclude []]
    shank_idx: Option<f64> = None,
    /// Also write the filtered, whitened, drift-corrected data as temp_wh.dat in the results.
    [Run, "save preprocessed copy", min 0, max 1, exclude []]
    save_preprocessed_copy: bool = false,
    /// The recording: one binary file, or several concatenated in time.
    [Run, "filename", min 0, max 0, exclude []]
    filename: Vec<PathBuf> = Vec::new(),
    /// A folder holding exactly one .bin/.dat/.raw/.bat file, used when `filename` is not given.
    [Run, "data directory", min 0, max 0, exclude []]
    data_dir: Option<PathBuf> = None,
    /// Where results go; default `<data_dir>/kilosort4`.
    [Run, "results directory", min 0, max 0, exclude []]
    results_dir: Option<PathBuf> = None,
    /// A built-in probe's name.
    [Run, "probe name", min 0, max 0, exclude []]
    probe_name: Option<String> = None,
    /// A probe file (.json, .mat or .prb).
    [Run, "probe path", min 0, max 0, exclude []]
    probe_path: Option<PathBuf> = None,
    /// Data path as stored by the Kilosort4 GUI (same meaning as `filename`).
    [Run, "data file path", min 0, max 0, exclude []]
    data_file_path: Vec<PathBuf> = Vec::new(),
    /// A probe dictionary embedded by the Kilosort4 GUI (chanMap, xc, yc, kcoords, n_chan).
    [Run, "probe", min 0, max 0, exclude []]
    probe: Value = Value::Null,
    /// Accepted for Kilosort4 compatibility; kilosort-rs keeps no GPU cache to clear.
    [Run, "clear cache", min 0, max 1, exclude []]
    clear_cache: bool = false,
    /// Log extra detail from inside per-batch loops.
    [Run, "verbose log", min 0, max 1, exclude []]
    verbose_log: bool = false,
}

/// Keys Kilosort4 accepts but ignores; loading them is not an error.
const IGNORED_KEYS: &[&str] = &["duplicate_spike_bins"];

impl Settings {
    /// Reads settings from a `.json` (as Kilosort4 saves them) or `.toml` file, over the defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut settings = Settings::default();
        settings.apply_file(path)?;
        Ok(settings)
    }

    /// Applies the settings of a `.json` or `.toml` file on top of these.
    pub fn apply_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read settings file", path, e))?;
        let is_toml = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let entries = if is_toml { value::parse_toml_table(&text) } else { value::parse_json_object(&text) };
        let entries = entries.map_err(|detail| Error::InvalidSetting {
            origin: path.display().to_string(),
            name: "(file)".into(),
            value: String::new(),
            reason: format!("{detail}; settings files are a JSON object or a TOML table of name = value"),
        })?;
        self.apply(&entries, &path.display().to_string())
    }

    /// Applies (name, value) pairs; unknown names are reported together with their nearest match.
    pub fn apply(&mut self, entries: &[(String, Value)], origin: &str) -> Result<()> {
        let mut unknown = Vec::new();
        for (name, value) in entries {
            if IGNORED_KEYS.contains(&name.as_str()) {
                continue;
            }
            match self.set_by_name(name, value) {
                Some(Ok(())) => {}
                Some(Err(reason)) => {
                    return Err(Error::InvalidSetting {
                        origin: origin.into(),
                        name: name.clone(),
                        value: value.to_string(),
                        reason,
                    });
                }
                None => unknown.push((name.clone(), nearest_name(name))),
            }
        }
        if unknown.is_empty() { Ok(()) } else { Err(Error::UnknownSettings { origin: origin.into(), keys: unknown }) }
    }

    /// Checks every value against its row of [`PARAMETERS`] and the cross-field rules.
    pub fn validate(&self, origin: &str) -> Result<()> {
        for (name, value) in self.to_values() {
            let row = table::row(name);
            row.check(&value).map_err(|reason| Error::InvalidSetting {
                origin: origin.into(),
                name: name.into(),
                value: value.to_string(),
                reason,
            })?;
        }
        self.check_rules(origin)
    }

    fn check_rules(&self, origin: &str) -> Result<()> {
        let invalid = |name: &str, value: String, reason: &str| Error::InvalidSetting {
            origin: origin.into(),
            name: name.into(),
            value,
            reason: reason.into(),
        };
        if self.n_chan_bin.is_none() {
            return Err(Error::MissingSetting { name: "n_chan_bin", fix: crate::io::N_CHAN_BIN_FIX });
        }
        if self.nt.is_multiple_of(2) {
            return Err(invalid(
                "nt",
                self.nt.to_string(),
                "nt must be odd (e.g. 61): waveforms are centred on one sample",
            ));
        }
        if !self.templates_from_data && self.nt != BUILTIN_NT {
            return Err(invalid(
                "nt",
                self.nt.to_string(),
                &format!(
                    "with templates_from_data = false the built-in universal templates are used, which are \
                     {BUILTIN_NT} samples long: use nt = {BUILTIN_NT} or set templates_from_data = true"
                ),
            ));
        }
        if !self.templates_from_data && self.n_pcs != BUILTIN_N_PCS {
            return Err(invalid(
                "n_pcs",
                self.n_pcs.to_string(),
                &format!(
                    "with templates_from_data = false the built-in universal templates are used, which have \
                     {BUILTIN_N_PCS} PCs: use n_pcs = {BUILTIN_N_PCS} or set templates_from_data = true"
                ),
            ));
        }
        if self.tmax <= self.tmin {
            return Err(invalid(
                "tmax",
                self.tmax.to_string(),
                &format!("tmax must be greater than tmin = {} s", self.tmin),
            ));
        }
        if self.batch_size < MIN_BATCH_WINDOWS * self.nt {
            return Err(invalid(
                "batch_size",
                self.batch_size.to_string(),
                &format!(
                    "a batch must hold at least {MIN_BATCH_WINDOWS} waveform windows (nt = {}), i.e. {} samples; \
                     Kilosort4's default is 60000 (2 s at 30 kHz)",
                    self.nt,
                    MIN_BATCH_WINDOWS * self.nt
                ),
            ));
        }
        if let Some(nt0min) = self.nt0min
            && nt0min >= self.nt
        {
            return Err(invalid(
                "nt0min",
                nt0min.to_string(),
                &format!("the trough index must lie inside the nt = {} sample window", self.nt),
            ));
        }
        Ok(())
    }

    /// Trough index inside a waveform window (`nt0min`, default int(20·nt/61)).
    pub fn trough_index(&self) -> usize {
        self.nt0min.unwrap_or(20 * self.nt / 61)
    }

    /// Writes the settings as a JSON object that both kilosort-rs and Python's `json` read.
    pub fn to_json(&self) -> String {
        let entries = self.to_values().into_iter().map(|(k, v)| format!("  \"{k}\": {v}")).collect::<Vec<_>>();
        format!("{{\n{}\n}}\n", entries.join(",\n"))
    }

    /// Names and values that differ from the defaults, as Kilosort4's `compare_settings`.
    pub fn changed_from_default(&self) -> Vec<(&'static str, Value)> {
        let defaults = Settings::default().to_values();
        self.to_values().into_iter().zip(defaults).filter(|((_, v), (_, d))| v != d).map(|(kv, _)| kv).collect()
    }
}

/// The valid setting name closest to `name`, if it is close enough to be a likely typo.
fn nearest_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase().replace('-', "_");
    PARAMETERS
        .iter()
        .map(|p| (edit_distance(&lower, &p.name.to_ascii_lowercase()), p.name))
        .min()
        .filter(|&(d, _)| d <= 3.max(name.len() / 3))
        .map(|(_, n)| n.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests;
