//! Detection and first clustering on a simulated Neuropixels recording, scored against its
//! ground truth (issue 6): recall of spikes of units with SNR ≥ 5, and how many units with
//! SNR ≥ 8 are the majority of some first-stage cluster; and the same recall with the built-in
//! universal templates (`templates_from_data = false`).

use std::collections::BTreeMap;

use groundtruth::compare::{load_gt_folder, load_gt_snr};
use groundtruth::sim::{SimulationConfig, simulate};
use kilosort::detect::{Features, TemplateGrid, UniversalSpikes};
use kilosort::io::{BatchReader, BinaryRecording, Dtype};
use kilosort::pipeline::{detect_all, first_clustering, prepared_batch};
use kilosort::preprocess::Preprocessor;
use kilosort::progress::NoProgress;
use kilosort::{Plan, Probe, Settings};

/// Samples from a spike's trough to its detection index (`nt/2 − nt0min` at the defaults).
const DETECTION_LAG: i64 = 10;
/// 0.4 ms at 30 kHz, SpikeInterface's matching window.
const WINDOW: i64 = 12;

/// A simulated `np1-64` recording (seed 7, 10 Hz median rate) of `seconds`, preprocessed, with
/// its universal-template detections under `settings` (nblocks = 0: no drift correction).
struct Detected {
    dir: tempfile::TempDir,
    plan: Plan,
    grid: TemplateGrid,
    spikes: UniversalSpikes,
}

fn simulate_and_detect(seconds: f64, settings: Settings) -> Detected {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimulationConfig::preset("np1-64").unwrap();
    config.duration_s = seconds;
    config.seed = 7;
    config.rate_median_hz = 10.0;
    let summary = simulate(&config, dir.path(), true, &mut |_| {}).unwrap();
    let probe = Probe::load(&dir.path().join("probe.json")).unwrap();
    let recording =
        BinaryRecording::open(&[dir.path().join("recording.bin")], summary.n_chan_bin, Dtype::Int16).unwrap();
    let settings = Settings { n_chan_bin: Some(summary.n_chan_bin), nblocks: 0, ..settings };
    let plan = Plan::new(&settings, &probe, &recording).unwrap();
    let reader = BatchReader::new(&recording, plan.layout, plan.probe.channel_map.clone(), None, None);
    let pre = Preprocessor::fit(&reader, &plan, &NoProgress);
    let grid = TemplateGrid::new(&plan.probe, &settings);
    let source = |b: usize| prepared_batch(&reader, &pre, None, b);
    let (_, spikes) = detect_all(&source, &grid, &plan, Features::Keep, &NoProgress).unwrap();
    Detected { dir, plan, grid, spikes }
}

/// Fraction of the ground-truth spikes of units with SNR ≥ 5 that have a detection within
/// `WINDOW` samples of their trough, with the counts.
fn recall_of_snr5_spikes(d: &Detected) -> (f64, usize, usize) {
    let (gt, _) = load_gt_folder(d.dir.path()).unwrap();
    let snr = load_gt_snr(d.dir.path()).unwrap().unwrap();
    let mut detected: Vec<i64> = d.spikes.sample.iter().map(|&t| t - DETECTION_LAG).collect();
    detected.sort_unstable();
    let near = |t: i64| {
        let i = detected.partition_point(|&d| d < t - WINDOW);
        i < detected.len() && detected[i] <= t + WINDOW
    };
    let (mut found, mut total) = (0usize, 0usize);
    for (&t, u) in gt.times.iter().zip(&gt.units) {
        if snr[u] >= 5.0 {
            total += 1;
            found += near(t) as usize;
        }
    }
    (found as f64 / total as f64, found, total)
}

#[test]
fn universal_detection_finds_the_spikes_and_first_clusters_follow_the_units() {
    let detected = simulate_and_detect(40.0, Settings::default());
    let (recall, found, total) = recall_of_snr5_spikes(&detected);
    assert!(total > 1000, "{total} spikes of SNR ≥ 5 units");
    eprintln!("recall of SNR ≥ 5 spikes: {recall:.3} ({found} of {total})");
    assert!(recall >= 0.95, "recall of SNR ≥ 5 spikes: {recall:.3} ({found} of {total})");

    let Detected { dir, plan, grid, spikes } = &detected;
    let (gt, _) = load_gt_folder(dir.path()).unwrap();
    let snr = load_gt_snr(dir.path()).unwrap().unwrap();
    // First clustering: each strong unit is the majority of some cluster.
    let clusters = first_clustering(spikes, grid, plan, &NoProgress).unwrap();
    let index_of: BTreeMap<i64, usize> = detected_index(&spikes.sample);
    let mut counts: BTreeMap<(u32, i64), usize> = BTreeMap::new();
    for (&t, &u) in gt.times.iter().zip(&gt.units) {
        if let Some(&i) = (t + DETECTION_LAG - WINDOW..=t + DETECTION_LAG + WINDOW).find_map(|s| index_of.get(&s)) {
            *counts.entry((clusters.labels[i], u)).or_default() += 1;
        }
    }
    let mut cluster_size: BTreeMap<u32, usize> = BTreeMap::new();
    clusters.labels.iter().for_each(|&l| *cluster_size.entry(l).or_default() += 1);
    let strong: Vec<i64> = snr.iter().filter(|(_, s)| **s >= 8.0).map(|(&u, _)| u).collect();
    let majority =
        strong.iter().filter(|&&u| counts.iter().any(|(&(c, v), &n)| v == u && 2 * n > cluster_size[&c])).count();
    let fraction = majority as f64 / strong.len() as f64;
    eprintln!("{majority} of {} units with SNR ≥ 8 are the majority of a first cluster", strong.len());
    // Groups under 1000 spikes stay one cluster (Kilosort4's rule), so neighbours can share one here.
    assert!(strong.len() >= 5 && fraction >= 0.5, "{majority} of {} units with SNR ≥ 8 lead a cluster", strong.len());
}

fn detected_index(samples: &[i64]) -> BTreeMap<i64, usize> {
    samples.iter().enumerate().map(|(i, &t)| (t, i)).collect()
}

/// The built-in universal templates (`templates_from_data = false`) find the spikes too
/// (issue 6 again; the set is learned from another simulation, seed 20240601, not this one).
#[test]
fn builtin_templates_find_the_spikes() {
    let detected = simulate_and_detect(15.0, Settings { templates_from_data: false, ..Settings::default() });
    let (recall, found, total) = recall_of_snr5_spikes(&detected);
    assert!(total > 1000, "{total} spikes of SNR ≥ 5 units");
    eprintln!("built-in templates: recall of SNR ≥ 5 spikes: {recall:.3} ({found} of {total})");
    assert!(recall >= 0.9, "built-in templates: recall of SNR ≥ 5 spikes: {recall:.3} ({found} of {total})");
}
