//! Turning a finished sort into the arrays of a Phy folder (spec §9.4–9.7, §10).

use ndarray::{Array2, Array3};

use super::{DriftOutputs, PhyParams, PhyResults, Provenance, StageTiming};
use crate::io::Recording;
use crate::pipeline::SortOutput;
use crate::plan::Plan;
use crate::postprocess::{self, TEMPLATE_FEATURE_COUNT};

impl PhyResults {
    /// The Phy arrays of `sort`, a run of `plan` on `recording` with the probe called `probe_name`.
    ///
    /// Takes the sort so the PC features can be made in the memory of the matching features:
    /// the export then holds one table of features per spike, not two.
    pub fn from_sort(mut sort: SortOutput, plan: &Plan, recording: &dyn Recording, probe_name: &str) -> Self {
        let features = std::mem::take(&mut sort.spikes.features);
        let spikes = &sort.spikes;
        let channels = sort.spike_channels();
        let probe = &plan.probe;
        let k = sort.cluster_templates.dim().0;
        let template_features = postprocess::template_features(
            features.view(),
            &spikes.cluster,
            &channels,
            sort.cluster_templates.view(),
            sort.similar_templates.view(),
            TEMPLATE_FEATURE_COUNT,
        );
        let amplitudes = postprocess::spike_amplitudes(features.view());
        let spike_positions = postprocess::spike_positions(features.view(), &channels, &probe.x, &probe.y);
        let pcs = postprocess::pc_features(features, &spikes.cluster, &channels, k);
        let imin = plan.layout.imin as i64;
        PhyResults {
            spike_times: spikes.sample.iter().map(|&t| t + imin).collect(),
            spike_clusters: spikes.cluster.iter().map(|&c| c as i32).collect(),
            spike_detection_templates: spikes.detection_template.iter().map(|&c| c as i32).collect(),
            amplitudes,
            spike_positions,
            kept_spikes: spikes.kept.clone(),
            pc_features: pcs.features,
            pc_feature_ind: pcs.channel_index,
            template_features: Some(template_features),
            templates: waveforms(&sort.cluster_templates, &sort.basis.pcs),
            similar_templates: sort.similar_templates.clone(),
            is_refractory: sort.is_refractory.clone(),
            contamination: sort.contamination.clone(),
            cluster_amplitudes: postprocess::cluster_amplitudes(sort.cluster_templates.view()),
            channel_map: probe.channel_map.iter().map(|&c| c as i32).collect(),
            channel_positions: Array2::from_shape_fn(
                (probe.len(), 2),
                |(c, j)| if j == 0 { probe.x[c] } else { probe.y[c] },
            ),
            channel_shanks: probe.shank.clone(),
            whitening_mat: sort.preprocessor.whitening.matrix.clone(),
            whitening_mat_inv: sort.preprocessor.whitening.inverse_for_phy(),
            params: PhyParams {
                dat_path: recording.paths(),
                n_channels_dat: recording.n_chan_bin(),
                dtype: recording.dtype(),
                offset: 0,
                sample_rate: plan.settings.fs,
                hp_filtered: false,
                total_samples: recording.total_samples(),
            },
            drift: sort.drift.as_ref().map(|m| DriftOutputs {
                dshift: m.shifts_um.mapv(|v| v as f32),
                yblk: m.block_centres_um.iter().map(|&v| v as f32).collect(),
            }),
            provenance: Provenance {
                settings: plan.settings.clone(),
                probe_name: probe_name.to_string(),
                stages: sort
                    .timings
                    .stages
                    .iter()
                    .map(|s| StageTiming {
                        stage: s.name.to_string(),
                        seconds: s.seconds,
                        peak_memory_bytes: s.peak_rss_bytes,
                    })
                    .collect(),
            },
        }
    }
}

/// Waveforms `(K, nt, Nchan)` of templates in PC space `(K, Nchan, nPC)`: `Σ_p W[k,c,p]·pcs[p,s]`.
pub fn waveforms(templates: &Array3<f32>, pcs: &Array2<f32>) -> Array3<f32> {
    let (k, n_chan, n_pcs) = templates.dim();
    let nt = pcs.ncols();
    let mut out = Array3::zeros((k, nt, n_chan));
    for t in 0..k {
        for c in 0..n_chan {
            for p in 0..n_pcs {
                let w = templates[[t, c, p]];
                if w != 0.0 {
                    for s in 0..nt {
                        out[[t, s, c]] += w * pcs[[p, s]];
                    }
                }
            }
        }
    }
    out
}

/// Writes the intermediate results Kilosort4 users compare stages with (`save_extra_vars`):
/// `st0.npy` (universal detections: sample relative to the window, grid position, amplitude),
/// `clu0.npy` and `Wall0.npy` (first clustering), `Wall3.npy` (learned templates, `(K, nPC,
/// Nchan)` as Kilosort4 holds them), `wPCA.npy` (the temporal basis).
pub fn write_extra_vars(sort: &SortOutput, dir: &std::path::Path) -> crate::Result<()> {
    let first = &sort.first_stage;
    let st0 = ndarray::Array2::from_shape_fn((first.sample.len(), 3), |(i, c)| match c {
        0 => first.sample[i] as f64,
        1 => first.template[i] as f64,
        _ => first.amplitude[i] as f64,
    });
    super::files::npy(dir, "st0.npy", &st0)?;
    super::files::npy(
        dir,
        "clu0.npy",
        &ndarray::Array1::from(first.labels.iter().map(|&l| l as i64).collect::<Vec<_>>()),
    )?;
    super::files::npy(dir, "Wall0.npy", &first.templates)?;
    super::files::npy(dir, "wPCA.npy", &sort.basis.pcs)?;
    let learned = sort.learned_templates.view().permuted_axes([0, 2, 1]);
    super::files::npy(dir, "Wall3.npy", &learned.as_standard_layout())
}

/// Writes Kilosort4's drift figures (`drift_amount.png`, `drift_scatter.png`) into `dir` when
/// the sort estimated drift; nothing otherwise.
pub fn write_drift_plots(sort: &SortOutput, plan: &Plan, dir: &std::path::Path) -> crate::Result<()> {
    let (Some(model), Some(spikes)) = (&sort.drift, &sort.drift_spikes) else { return Ok(()) };
    let fs = plan.settings.fs;
    let tmin = plan.layout.imin as f64 / fs;
    crate::drift::plots::drift_amount(model, plan.layout.batch_size as f64 / fs, tmin, &dir.join("drift_amount.png"))?;
    let times: Vec<f64> = spikes.sample.iter().map(|&t| t as f64 / fs).collect();
    let table =
        crate::drift::DriftSpikes { batch: &spikes.batch, depth_um: &spikes.depth, amplitude: &spikes.amplitude };
    crate::drift::plots::drift_scatter(&table, &times, tmin, &dir.join("drift_scatter.png"))
}
