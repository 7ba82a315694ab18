//! The results folder in Phy's template-gui format (spec §10, `spec/phy-format.md`), written
//! atomically, with a provenance file.
//!
//! [`PhyResults`] holds every array; [`write_results`] writes them into a temporary folder and
//! renames it into place. To add files of one's own (plots, a log) before the rename, use
//! [`ResultsFolder`]:
//!
//! ```no_run
//! # fn demo(results: &kilosort::phy::PhyResults, png: &[u8]) -> kilosort::Result<()> {
//! use kilosort::phy::ResultsFolder;
//! let inputs = [std::path::PathBuf::from("data/rec.bin")]; // never replaced, nor a folder holding it
//! let mut folder = ResultsFolder::create(std::path::Path::new("data/kilosort4"), false, &inputs)?;
//! folder.write_phy(results)?;
//! folder.add_file("drift_amount.png", png)?;
//! folder.commit()?;
//! # Ok(()) }
//! ```
//!
//! Differences from Kilosort4's folder: `template_features.npy` and `template_feature_ind.npy`
//! are added, so Phy's TemplateFeatureView works; `kilosort-rs.json` replaces the pickled
//! `ops.npy`. Templates stay dense, as Kilosort4's are in effect (phylib ignores its
//! `templates_ind.npy`, which is written too): with a `template_ind.npy` phylib would switch to
//! its sparse path, which shows every channel with any signal instead of choosing channels by
//! amplitude, proximity and shank, and un-whitens with a sub-matrix of the inverse whitening;
//! SpikeInterface also reads `templates.npy` as dense.

mod assemble;
mod files;
mod folder;
mod plots;

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::Dtype;
use crate::postprocess::TemplateFeatures;
use crate::settings::Settings;

pub use assemble::{waveforms, write_drift_plots, write_extra_vars};
pub use files::PROVENANCE_FILE;
pub use folder::ResultsFolder;
pub use plots::write_diagnostic_plots;

/// Everything a Phy results folder holds. `n` = kept spikes, `K` = clusters, `Nchan` = sorted
/// channels, `nt` = waveform samples, `nC` = feature channels, `nPC` = PCs.
#[derive(Debug, Clone)]
pub struct PhyResults {
    /// Trough time of each kept spike, samples from the start of the file (non-decreasing).
    pub spike_times: Vec<i64>,
    /// Cluster of each kept spike, `0..K` (also written as `spike_templates.npy`).
    pub spike_clusters: Vec<i32>,
    /// Learned template (matching stage) that detected each kept spike.
    pub spike_detection_templates: Vec<i32>,
    /// Amplitude of each kept spike: norm of its features.
    pub amplitudes: Vec<f32>,
    /// (x, y) of each kept spike, µm: `(n, 2)`.
    pub spike_positions: Array2<f32>,
    /// Kept (not duplicate) flag of every spike before duplicate removal.
    pub kept_spikes: Vec<bool>,
    /// Phy PC features `(n, nPC, nC)`.
    pub pc_features: Array3<f32>,
    /// Channels of each cluster's PC features `(K, nC)`.
    pub pc_feature_ind: Array2<u32>,
    /// Template features for Phy's TemplateFeatureView; not written if `None`.
    pub template_features: Option<TemplateFeatures>,
    /// Mean whitened waveform of each cluster `(K, nt, Nchan)`.
    pub templates: Array3<f32>,
    /// Similarity of cluster templates `(K, K)`.
    pub similar_templates: Array2<f32>,
    /// Whether each cluster passed the refractory test: KSLabel good (else mua).
    pub is_refractory: Vec<bool>,
    /// Contamination estimate of each cluster (R12); ×100 is ContamPct.
    pub contamination: Vec<f64>,
    /// Norm of each cluster's template: the Amplitude column.
    pub cluster_amplitudes: Vec<f32>,
    /// Row of the binary file of each sorted channel (`chanMap`).
    pub channel_map: Vec<i32>,
    /// Contact positions `(Nchan, 2)`, µm.
    pub channel_positions: Array2<f32>,
    /// Shank of each contact (`kcoords`).
    pub channel_shanks: Vec<f32>,
    /// Whitening matrix `(Nchan, Nchan)` (`Wrot`; also written as `whitening_mat_dat.npy`).
    pub whitening_mat: Array2<f32>,
    /// `inverse(whitening_mat + 1e-5·I)`, which Phy uses to un-whiten templates.
    pub whitening_mat_inv: Array2<f32>,
    /// What `params.py` says about the recording.
    pub params: PhyParams,
    /// Drift estimate, written as `dshift.npy` and `yblk.npy` if present.
    pub drift: Option<DriftOutputs>,
    /// How the results were made, written as `kilosort-rs.json`.
    pub provenance: Provenance,
}

/// The recording as Phy reads it (`params.py`).
#[derive(Debug, Clone, PartialEq)]
pub struct PhyParams {
    /// The binary file(s), in order; written as absolute paths.
    pub dat_path: Vec<PathBuf>,
    /// Channels (columns) in the binary file (`n_chan_bin`).
    pub n_channels_dat: usize,
    /// Sample type of the binary file.
    pub dtype: Dtype,
    /// Bytes before the first sample.
    pub offset: u64,
    /// Sampling rate, Hz.
    pub sample_rate: f64,
    /// Whether the binary file is already filtered (true for a saved preprocessed copy).
    pub hp_filtered: bool,
    /// Samples per channel in the binary file(s): every spike time must be smaller, or Phy warns
    /// of spikes after the end of the recording.
    pub total_samples: u64,
}

/// Drift estimate of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftOutputs {
    /// Estimated shift of each batch and block, µm: `(n_batches, n_blocks)`.
    pub dshift: Array2<f32>,
    /// Centre depth of each block, µm.
    pub yblk: Vec<f32>,
}

/// Provenance of a results folder.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The settings of the run.
    pub settings: Settings,
    /// The probe's name or file.
    pub probe_name: String,
    /// Time (and memory, if measured) of each stage, in order.
    pub stages: Vec<StageTiming>,
}

/// Time spent in one pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTiming {
    /// Stage name, e.g. "preprocessing".
    pub stage: String,
    /// Wall-clock time, s.
    pub seconds: f64,
    /// Peak resident memory during the stage, bytes, if measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
}

/// Writes `results` as a Phy folder at `dir`, atomically (see [`ResultsFolder`]).
///
/// An existing `dir` is an error unless it is empty, or an earlier results folder of ours and
/// `overwrite` is set, in which case it is replaced as a whole. It may not hold the recording.
pub fn write_results(results: &PhyResults, dir: &Path, overwrite: bool) -> Result<PathBuf> {
    let mut folder = ResultsFolder::create(dir, overwrite, &results.params.dat_path)?;
    folder.write_phy(results)?;
    folder.commit()
}

impl PhyResults {
    /// Number of kept spikes.
    pub fn n_spikes(&self) -> usize {
        self.spike_times.len()
    }

    /// Number of clusters.
    pub fn n_clusters(&self) -> usize {
        self.templates.dim().0
    }

    /// Checks that every array agrees with the others and with what phylib asserts. A failure
    /// is a bug upstream, reported as [`Error::InvalidResults`].
    pub fn validate(&self) -> Result<()> {
        let (n, k) = (self.n_spikes(), self.n_clusters());
        let (_, nt, n_chan) = self.templates.dim();
        let (_, n_pcs, n_near) = self.pc_features.dim();
        let mut checks = vec![
            len("spike_clusters", self.spike_clusters.len(), n),
            len("spike_detection_templates", self.spike_detection_templates.len(), n),
            len("amplitudes", self.amplitudes.len(), n),
            shape("spike_positions", self.spike_positions.shape(), &[n, 2]),
            shape("pc_features", self.pc_features.shape(), &[n, n_pcs, n_near]),
            shape("pc_feature_ind", self.pc_feature_ind.shape(), &[k, n_near]),
            shape("similar_templates", self.similar_templates.shape(), &[k, k]),
            len("is_refractory", self.is_refractory.len(), k),
            len("contamination", self.contamination.len(), k),
            len("cluster_amplitudes", self.cluster_amplitudes.len(), k),
            len("channel_map", self.channel_map.len(), n_chan),
            shape("channel_positions", self.channel_positions.shape(), &[n_chan, 2]),
            len("channel_shanks", self.channel_shanks.len(), n_chan),
            shape("whitening_mat", self.whitening_mat.shape(), &[n_chan, n_chan]),
            shape("whitening_mat_inv", self.whitening_mat_inv.shape(), &[n_chan, n_chan]),
            len("kept spikes (true entries of kept_spikes)", self.kept_spikes.iter().filter(|&&k| k).count(), n),
        ];
        if let Some(tf) = &self.template_features {
            let n_tf = tf.template_index.ncols();
            checks.push(shape("template_features", tf.features.shape(), &[n, n_tf]));
            checks.push(shape("template_feature_ind", tf.template_index.shape(), &[k, n_tf]));
            checks.push(below("template_feature_ind", tf.template_index.iter().map(|&v| v as i64), k));
        }
        checks.push(below("spike_clusters", self.spike_clusters.iter().map(|&v| v as i64), k));
        checks.push(below("pc_feature_ind", self.pc_feature_ind.iter().map(|&v| v as i64), n_chan));
        checks.push(below("channel_map", self.channel_map.iter().map(|&v| v as i64), self.params.n_channels_dat));
        checks.push(self.check_times());
        if nt == 0 || self.params.sample_rate.is_nan() || self.params.sample_rate <= 0.0 {
            checks.push(Err(format!("nt = {nt} and sample_rate = {} must be positive", self.params.sample_rate)));
        }
        checks
            .into_iter()
            .collect::<std::result::Result<Vec<()>, String>>()
            .map(|_| ())
            .map_err(|detail| Error::InvalidResults { detail })
    }

    fn check_times(&self) -> std::result::Result<(), String> {
        if let Some(i) = self.spike_times.windows(2).position(|w| w[1] < w[0]) {
            return Err(format!(
                "spike_times decrease at spike {}: {} then {}",
                i + 1,
                self.spike_times[i],
                self.spike_times[i + 1]
            ));
        }
        let total = self.params.total_samples;
        match (self.spike_times.first(), self.spike_times.last()) {
            (Some(&first), _) if first < 0 => Err(format!("spike time {first} is negative")),
            (_, Some(&last)) if last as u64 >= total => {
                Err(format!("spike time {last} is past the end of the recording ({total} samples)"))
            }
            _ => Ok(()),
        }
    }
}

fn len(name: &str, got: usize, want: usize) -> std::result::Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{name} has {got} entries, expected {want}")) }
}

fn shape(name: &str, got: &[usize], want: &[usize]) -> std::result::Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{name} has shape {got:?}, expected {want:?}")) }
}

fn below(name: &str, mut values: impl Iterator<Item = i64>, limit: usize) -> std::result::Result<(), String> {
    match values.find(|&v| v < 0 || v as u64 >= limit as u64) {
        Some(v) => Err(format!("{name} holds {v}, outside 0..{limit}")),
        None => Ok(()),
    }
}
