//! The Phy results folder: contents, and atomic writing (refusal, replacement, failures).
//!
//! `tests/phy/check_phy_folder.py` loads the folder with phylib and SpikeInterface; make one with
//!
//!     KILOSORT_RS_PHY_DIR=/tmp/phy-check cargo test -p kilosort --test phy_folder -- --ignored
//!     ~/ks-bench/.venv/bin/python tests/phy/check_phy_folder.py /tmp/phy-check/results

use std::fs;
use std::path::{Path, PathBuf};

use kilosort::Error;
use kilosort::io::Dtype;
use kilosort::phy::{DriftOutputs, PhyParams, PhyResults, Provenance, ResultsFolder, StageTiming, write_results};
use kilosort::postprocess::{
    SpikeChannels, TEMPLATE_FEATURE_COUNT, cluster_amplitudes, pc_features, refractoriness, remove_duplicates,
    spike_amplitudes, spike_positions, template_features,
};
use kilosort::settings::Settings;
use kilosort::settings::value::{Value, parse_json_object};
use ndarray::{Array1, Array2, Array3, Axis};
use ndarray_npy::read_npy;

const FS: f64 = 30000.0;
const N_CHAN_BIN: usize = 9;
const N_CHAN: usize = 8;
const TOTAL_SAMPLES: u64 = 60_000;
const NT: usize = 21;
const N_PCS: usize = 3;
const N_NEAR: usize = 4;
/// Peak channel of each learned template; templates 0 and 1 make cluster 0, 2 → 1, 3 → 2.
const TEMPLATE_PEAKS: [usize; 4] = [1, 2, 5, 6];
const TEMPLATE_CLUSTER: [u32; 4] = [0, 0, 1, 2];

/// A 64-bit LCG: deterministic data without a random-number crate.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize
    }
}

/// Two columns of four contacts, 20 µm apart.
fn probe_positions() -> (Vec<f32>, Vec<f32>) {
    ((0..N_CHAN).map(|c| (c % 2) as f32 * 20.0).collect(), (0..N_CHAN).map(|c| (c / 2) as f32 * 20.0).collect())
}

fn nearest_channels(x: &[f32], y: &[f32]) -> Array2<usize> {
    let mut out = Array2::zeros((N_CHAN, N_NEAR));
    for c in 0..N_CHAN {
        let mut order: Vec<usize> = (0..N_CHAN).collect();
        order.sort_by(|&a, &b| {
            let d = |j: usize| (x[j] - x[c]).powi(2) + (y[j] - y[c]).powi(2);
            d(a).total_cmp(&d(b))
        });
        for (slot, &j) in out.row_mut(c).iter_mut().zip(&order) {
            *slot = j;
        }
    }
    out
}

/// A small sorting: 3 clusters, ~330 spikes over 2 s, run through the post-processing functions.
fn synthetic_results(dat_path: PathBuf) -> PhyResults {
    let mut rng = Lcg(42);
    let (x, y) = probe_positions();
    let nearest = nearest_channels(&x, &y);
    let within = Array2::from_elem((N_CHAN, N_NEAR), true);
    // Cluster 0: a regular 12 ms train (refractory, "good"); clusters 1 and 2 placed at random.
    let mut spikes: Vec<(i64, u32)> = (0..160).map(|i| (200 + 360 * i, rng.below(2) as u32)).collect();
    spikes.extend((0..170).map(|_| (100 + rng.below(TOTAL_SAMPLES as usize - 200) as i64, 2 + rng.below(2) as u32)));
    spikes.push((30_083, 1)); // 3 samples after the regular spike 200 + 360·83: a duplicate
    spikes.sort();
    let times: Vec<i64> = spikes.iter().map(|s| s.0).collect();
    let spike_template: Vec<u32> = spikes.iter().map(|s| s.1).collect();
    let labels: Vec<u32> = spike_template.iter().map(|&t| TEMPLATE_CLUSTER[t as usize]).collect();
    let mut features = Array3::<f32>::zeros((times.len(), N_NEAR, N_PCS));
    for ((i, c, p), v) in features.indexed_iter_mut() {
        let shape = [8.0, -3.0, 1.0][p] / (1.0 + c as f32) * (1.0 + spike_template[i] as f32 * 0.2);
        *v = shape * (0.8 + 0.4 * rng.uniform() as f32) + 0.3 * (rng.uniform() as f32 - 0.5);
    }

    let kept = remove_duplicates(&times, &labels, 7);
    let keep = |v: &[u32]| -> Vec<u32> { v.iter().zip(&kept).filter(|(_, k)| **k).map(|(&l, _)| l).collect() };
    let kept_rows: Vec<usize> = (0..times.len()).filter(|&i| kept[i]).collect();
    let (labels, spike_template) = (keep(&labels), keep(&spike_template));
    let times: Vec<i64> = kept_rows.iter().map(|&i| times[i]).collect();
    let features = features.select(Axis(0), &kept_rows);
    let channels = SpikeChannels {
        nearest: nearest.view(),
        within_limit: within.view(),
        template_peak: &TEMPLATE_PEAKS,
        spike_template: &spike_template,
    };

    let wall = cluster_means(&features, &labels, &channels);
    let similar = cosine_similarity(&wall);
    let times_s: Vec<f64> = times.iter().map(|&t| t as f64 / FS).collect();
    let refract = refractoriness(&labels, &times_s, 0.2, 0.25);
    let pcs = pc_features(features.clone(), &labels, &channels, 3);
    let tf =
        template_features(features.view(), &labels, &channels, wall.view(), similar.view(), TEMPLATE_FEATURE_COUNT);
    PhyResults {
        spike_times: times,
        spike_clusters: labels.iter().map(|&l| l as i32).collect(),
        spike_detection_templates: spike_template.iter().map(|&t| t as i32).collect(),
        amplitudes: spike_amplitudes(features.view()),
        spike_positions: spike_positions(features.view(), &channels, &x, &y),
        kept_spikes: kept,
        pc_features: pcs.features,
        pc_feature_ind: pcs.channel_index,
        template_features: Some(tf),
        templates: waveforms(&wall),
        similar_templates: similar,
        is_refractory: refract.is_refractory,
        contamination: refract.contamination,
        cluster_amplitudes: cluster_amplitudes(wall.view()),
        channel_map: (0..N_CHAN as i32).collect(),
        channel_positions: Array2::from_shape_fn((N_CHAN, 2), |(c, d)| if d == 0 { x[c] } else { y[c] }),
        channel_shanks: vec![0.0; N_CHAN],
        whitening_mat: Array2::eye(N_CHAN) * 2.0,
        whitening_mat_inv: Array2::eye(N_CHAN) * (1.0 / (2.0 + 1e-5)),
        params: PhyParams {
            dat_path: vec![dat_path],
            n_channels_dat: N_CHAN_BIN,
            dtype: Dtype::Int16,
            offset: 0,
            sample_rate: FS,
            hp_filtered: false,
            total_samples: TOTAL_SAMPLES,
        },
        drift: Some(DriftOutputs { dshift: Array2::from_elem((2, 1), 1.5), yblk: vec![30.0] }),
        provenance: Provenance {
            settings: Settings { n_chan_bin: Some(N_CHAN_BIN), ..Settings::default() },
            probe_name: "synthetic 2×4".into(),
            stages: vec![StageTiming { stage: "postprocessing".into(), seconds: 0.25, peak_memory_bytes: None }],
        },
    }
}

/// Mean features of each cluster on all channels `(K, Nchan, nPC)` (a stand-in for `Wall`).
fn cluster_means(features: &Array3<f32>, labels: &[u32], channels: &SpikeChannels) -> Array3<f32> {
    let mut wall = Array3::<f32>::zeros((3, N_CHAN, N_PCS));
    let mut counts = [0f32; 3];
    for (i, f) in features.outer_iter().enumerate() {
        let k = labels[i] as usize;
        counts[k] += 1.0;
        for (c, &ch) in channels.channels(i).iter().enumerate() {
            for p in 0..N_PCS {
                wall[[k, ch, p]] += f[[c, p]];
            }
        }
    }
    for (k, mut w) in wall.outer_iter_mut().enumerate() {
        w /= counts[k];
    }
    wall
}

fn cosine_similarity(wall: &Array3<f32>) -> Array2<f32> {
    let flat = wall.to_shape((3, N_CHAN * N_PCS)).unwrap().to_owned();
    let norms: Vec<f32> = flat.outer_iter().map(|r| r.dot(&r).sqrt()).collect();
    Array2::from_shape_fn((3, 3), |(a, b)| flat.row(a).dot(&flat.row(b)) / (norms[a] * norms[b]))
}

/// Templates `(K, nt, Nchan)` from PC weights and a smooth three-function basis.
fn waveforms(wall: &Array3<f32>) -> Array3<f32> {
    let basis = |p: usize, s: usize| {
        let t = s as f32 / (NT - 1) as f32;
        [(-((t - 0.35) / 0.08).powi(2)).exp(), (std::f32::consts::TAU * t).sin(), (std::f32::consts::PI * t).cos()][p]
    };
    Array3::from_shape_fn((3, NT, N_CHAN), |(k, s, c)| (0..N_PCS).map(|p| wall[[k, c, p]] * basis(p, s)).sum())
}

/// A zero-filled int16 recording of the right size, so Phy finds its traces.
fn write_recording(path: &Path) {
    fs::write(path, vec![0u8; TOTAL_SAMPLES as usize * N_CHAN_BIN * 2]).unwrap();
}

/// A scratch folder holding the recording; results go to `<scratch>/results`.
fn scratch() -> (tempfile::TempDir, PhyResults, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let dat = dir.path().join("recording.bin");
    write_recording(&dat);
    let results = synthetic_results(dat);
    let target = dir.path().join("results");
    (dir, results, target)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

#[test]
fn writes_every_file_phy_reads() {
    let (dir, results, target) = scratch();
    let written = write_results(&results, &target, false).unwrap();
    assert_eq!(written, target);
    assert_eq!(entries(dir.path()), vec!["recording.bin", "results"], "no temporary folder left beside it");
    let expected = [
        "amplitudes.npy",
        "channel_map.npy",
        "channel_positions.npy",
        "channel_shanks.npy",
        "cluster_Amplitude.tsv",
        "cluster_ContamPct.tsv",
        "cluster_KSLabel.tsv",
        "cluster_group.tsv",
        "dshift.npy",
        "kept_spikes.npy",
        "kilosort-rs.json",
        "params.py",
        "pc_feature_ind.npy",
        "pc_features.npy",
        "similar_templates.npy",
        "spike_clusters.npy",
        "spike_detection_templates.npy",
        "spike_positions.npy",
        "spike_templates.npy",
        "spike_times.npy",
        "template_feature_ind.npy",
        "template_features.npy",
        "templates.npy",
        "templates_ind.npy",
        "whitening_mat.npy",
        "whitening_mat_dat.npy",
        "whitening_mat_inv.npy",
        "yblk.npy",
    ];
    assert_eq!(entries(&target), expected);

    let n = results.n_spikes();
    assert!(n > 300 && n < results.kept_spikes.len(), "one duplicate removed: {n}");
    let times: Array1<i64> = read_npy(target.join("spike_times.npy")).unwrap();
    assert_eq!(times.to_vec(), results.spike_times);
    let clusters: Array1<i32> = read_npy(target.join("spike_clusters.npy")).unwrap();
    let templates: Array1<i32> = read_npy(target.join("spike_templates.npy")).unwrap();
    assert_eq!(clusters, templates);
    let kept: Array1<bool> = read_npy(target.join("kept_spikes.npy")).unwrap();
    assert_eq!(kept.len(), results.kept_spikes.len());
    let pcf: Array3<f32> = read_npy(target.join("pc_features.npy")).unwrap();
    assert_eq!(pcf.dim(), (n, N_PCS, N_NEAR));
    let tf: Array2<f32> = read_npy(target.join("template_features.npy")).unwrap();
    assert_eq!(tf.dim(), (n, 3), "10 requested, 3 clusters");
    let tfi: Array2<u32> = read_npy(target.join("template_feature_ind.npy")).unwrap();
    assert_eq!(tfi.column(0).to_vec(), vec![0, 1, 2], "each cluster itself first");
    let ind: Array2<i64> = read_npy(target.join("templates_ind.npy")).unwrap();
    assert_eq!(ind.dim(), (3, N_CHAN));
    let waveforms: Array3<f32> = read_npy(target.join("templates.npy")).unwrap();
    assert_eq!(waveforms.dim(), (3, NT, N_CHAN));

    let params = fs::read_to_string(target.join("params.py")).unwrap();
    let dat = dir.path().join("recording.bin");
    let expected_params = format!(
        "n_channels_dat = 9\noffset = 0\nsample_rate = 30000.0\ndtype = 'int16'\nhp_filtered = False\n\
         dat_path = ['{}']\n",
        dat.display()
    );
    assert_eq!(params, expected_params);
    let labels = fs::read_to_string(target.join("cluster_KSLabel.tsv")).unwrap();
    assert!(labels.starts_with("cluster_id\tKSLabel\n0\tgood\n"), "{labels}");
    assert_eq!(labels.lines().count(), 4);
    assert_eq!(labels, fs::read_to_string(target.join("cluster_group.tsv")).unwrap());
    let contam = fs::read_to_string(target.join("cluster_ContamPct.tsv")).unwrap();
    assert!(contam.starts_with("cluster_id\tContamPct\n0\t0.0\n"), "{contam}");

    // Python's json reads it (Infinity for an unbounded tmax); so does the crate's own reader.
    let provenance = fs::read_to_string(target.join("kilosort-rs.json")).unwrap();
    let entries = parse_json_object(&provenance).unwrap();
    let field = |name: &str| entries.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(field("probe"), Value::Text("synthetic 2×4".into()));
    assert_eq!(field("n_spikes"), Value::Int(n as i64));
    let Value::List(stages) = field("stages") else { panic!("stages is a list") };
    assert_eq!(stages.len(), 1);
    let Value::Map(settings) = field("settings") else { panic!("settings is an object") };
    let mut read_back = Settings::default();
    read_back.apply(&settings, "kilosort-rs.json").unwrap();
    assert_eq!(read_back, results.provenance.settings);
}

#[test]
fn an_existing_folder_is_refused_without_overwrite() {
    let (dir, results, target) = scratch();
    fs::create_dir(&target).unwrap();
    fs::write(target.join("kilosort-rs.json"), "{}").unwrap();
    fs::write(target.join("mine.txt"), "keep me").unwrap();
    let err = ResultsFolder::create(&target, false, &[]).unwrap_err();
    assert!(matches!(err, Error::ResultsExist { .. }));
    let message = err.to_string();
    assert!(message.contains(&target.display().to_string()) && message.contains("--overwrite"), "{message}");
    assert!(matches!(write_results(&results, &target, false), Err(Error::ResultsExist { .. })));
    assert_eq!(entries(&target), vec!["kilosort-rs.json", "mine.txt"]);
    assert_eq!(entries(dir.path()), vec!["recording.bin", "results"]);
}

#[test]
fn issue_22_overwrite_never_replaces_a_folder_that_is_not_ours() {
    let (dir, results, target) = scratch();
    fs::create_dir(&target).unwrap();
    fs::write(target.join("mine.txt"), "keep me").unwrap();
    let err = write_results(&results, &target, true).unwrap_err().to_string();
    assert!(err.contains("never replaced"), "{err}");
    assert_eq!(entries(&target), vec!["mine.txt"]);
    assert_eq!(entries(dir.path()), vec!["recording.bin", "results"]);
}

#[test]
fn an_empty_folder_receives_the_results() {
    let (_dir, results, target) = scratch();
    fs::create_dir(&target).unwrap();
    write_results(&results, &target, false).unwrap();
    assert!(target.join("params.py").exists());
}

#[test]
fn a_folder_appearing_during_the_run_is_not_replaced() {
    let (dir, results, target) = scratch();
    let mut folder = ResultsFolder::create(&target, false, &[]).unwrap();
    folder.write_phy(&results).unwrap();
    fs::create_dir(&target).unwrap();
    fs::write(target.join("kilosort-rs.json"), "{}").unwrap();
    assert!(matches!(folder.commit(), Err(Error::ResultsExist { .. })));
    assert_eq!(entries(&target), vec!["kilosort-rs.json"]);
    assert_eq!(entries(dir.path()), vec!["recording.bin", "results"], "temporary folder removed");
}

#[test]
fn overwrite_replaces_the_whole_folder() {
    let (dir, results, target) = scratch();
    fs::create_dir_all(target.join(".phy")).unwrap();
    fs::write(target.join("kilosort-rs.json"), "{}").unwrap();
    fs::write(target.join(".phy/cache"), "stale").unwrap();
    fs::write(target.join("old_plot.png"), "old").unwrap();
    let mut folder = ResultsFolder::create(&target, true, &[]).unwrap();
    folder.write_phy(&results).unwrap();
    folder.add_file("kilosort-rs.log", b"log").unwrap();
    folder.commit().unwrap();
    let names = entries(&target);
    assert!(!names.contains(&".phy".to_string()) && !names.contains(&"old_plot.png".to_string()));
    assert!(names.contains(&"params.py".to_string()) && names.contains(&"kilosort-rs.log".to_string()));
    assert_eq!(entries(dir.path()), vec!["recording.bin", "results"], "old folder deleted");
}

#[test]
fn a_failure_mid_write_leaves_no_folder() {
    let (dir, results, target) = scratch();
    {
        let mut folder = ResultsFolder::create(&target, false, &[]).unwrap();
        // Injected failure: a directory where a spike file must go, after the channel and
        // cluster files were written.
        fs::create_dir(folder.path().join("spike_clusters.npy")).unwrap();
        assert!(folder.write_phy(&results).is_err());
        assert!(folder.path().join("templates.npy").exists(), "the write did get part-way");
        assert!(!folder.path().join("params.py").exists(), "params.py comes last");
    }
    assert!(!target.exists());
    assert_eq!(entries(dir.path()), vec!["recording.bin"], "temporary folder removed on drop");

    // A crash (no drop runs) leaves only the hidden temporary folder, which Phy cannot open.
    let mut folder = ResultsFolder::create(&target, false, &[]).unwrap();
    fs::create_dir(folder.path().join("amplitudes.npy")).unwrap();
    assert!(folder.write_phy(&results).is_err());
    let temp = folder.path().to_path_buf();
    std::mem::forget(folder);
    assert!(!target.exists() && !temp.join("params.py").exists());
    assert!(temp.file_name().unwrap().to_str().unwrap().starts_with(".results.tmp-"));
    // The next run of the same process id clears it.
    drop(ResultsFolder::create(&target, false, &[]).unwrap());
    assert_eq!(entries(dir.path()), vec!["recording.bin"]);
}

#[test]
fn a_failed_overwrite_keeps_the_old_results() {
    let (_dir, results, target) = scratch();
    write_results(&results, &target, false).unwrap();
    let before = fs::read(target.join("spike_times.npy")).unwrap();
    let mut changed = results.clone();
    changed.spike_times[0] += 1;
    let mut folder = ResultsFolder::create(&target, true, &[]).unwrap();
    fs::create_dir(folder.path().join("pc_features.npy")).unwrap();
    assert!(folder.write_phy(&changed).is_err());
    drop(folder);
    assert_eq!(fs::read(target.join("spike_times.npy")).unwrap(), before);
}

#[test]
fn overwrite_never_deletes_the_recording() {
    let (_dir, mut results, target) = scratch();
    fs::create_dir(&target).unwrap();
    let dat = target.join("recording.bin");
    write_recording(&dat);
    results.params.dat_path = vec![dat.clone()];
    let err = write_results(&results, &target, true).unwrap_err();
    assert!(err.to_string().contains("would delete"), "{err}");
    assert!(dat.exists());
    // A preprocessed copy written into the new folder itself may replace the old one.
    fs::write(target.join("kilosort-rs.json"), "{}").unwrap();
    let mut folder = ResultsFolder::create(&target, true, &[]).unwrap();
    folder.write_phy(&results).unwrap();
    folder.add_file("recording.bin", b"new copy").unwrap();
    folder.commit().unwrap();
    assert_eq!(fs::read(&dat).unwrap(), b"new copy");
}

#[test]
fn inconsistent_results_are_refused_before_writing() {
    let (dir, results, target) = scratch();
    let mut unsorted = results.clone();
    unsorted.spike_times.swap(10, 11);
    unsorted.spike_times[10] += 1000;
    let err = write_results(&unsorted, &target, false).unwrap_err();
    assert!(matches!(err, Error::InvalidResults { .. }) && err.to_string().contains("decrease at spike"), "{err}");
    let mut late = results.clone();
    *late.spike_times.last_mut().unwrap() = TOTAL_SAMPLES as i64;
    let err = write_results(&late, &target, false).unwrap_err();
    assert!(err.to_string().contains("past the end of the recording"), "{err}");
    let mut short = results.clone();
    short.amplitudes.pop();
    assert!(write_results(&short, &target, false).unwrap_err().to_string().contains("amplitudes"));
    assert_eq!(entries(dir.path()), vec!["recording.bin"]);
}

#[test]
fn extra_files_need_plain_names() {
    let (_dir, _results, target) = scratch();
    let folder = ResultsFolder::create(&target, false, &[]).unwrap();
    for bad in ["../escape.txt", "sub/file.txt", ".hidden", ""] {
        assert!(matches!(folder.add_file(bad, b"x"), Err(Error::ResultsFolder { .. })), "{bad:?}");
    }
    assert!(folder.add_file("plot.png", b"png").is_ok());
}

/// Writes `$KILOSORT_RS_PHY_DIR/results` (and its recording) for `tests/phy/check_phy_folder.py`.
#[test]
#[ignore = "writes a folder for the Python check; set KILOSORT_RS_PHY_DIR"]
fn write_phy_folder_for_python_check() {
    let root = PathBuf::from(std::env::var("KILOSORT_RS_PHY_DIR").expect("set KILOSORT_RS_PHY_DIR"));
    fs::create_dir_all(&root).unwrap();
    let dat = root.join("recording.bin");
    write_recording(&dat);
    write_results(&synthetic_results(dat), &root.join("results"), true).unwrap();
}
