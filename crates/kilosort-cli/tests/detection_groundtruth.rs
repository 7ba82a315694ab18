//! Detection and first clustering on a simulated Neuropixels recording, scored against its
//! ground truth (issue 6): recall of spikes of units with SNR ≥ 5, and how many units with
//! SNR ≥ 8 are the majority of some first-stage cluster.

use std::collections::BTreeMap;

use groundtruth::compare::{load_gt_folder, load_gt_snr};
use groundtruth::sim::{SimulationConfig, simulate};
use kilosort::detect::TemplateGrid;
use kilosort::io::{BatchReader, BinaryRecording, Dtype};
use kilosort::pipeline::{detect_all, first_clustering, prepared_batch};
use kilosort::preprocess::Preprocessor;
use kilosort::progress::NoProgress;
use kilosort::{Plan, Probe, Settings};

/// Samples from a spike's trough to its detection index (`nt/2 − nt0min` at the defaults).
const DETECTION_LAG: i64 = 10;
/// 0.4 ms at 30 kHz, SpikeInterface's matching window.
const WINDOW: i64 = 12;

#[test]
fn universal_detection_finds_the_spikes_and_first_clusters_follow_the_units() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimulationConfig::preset("np1-64").unwrap();
    config.duration_s = 40.0;
    config.seed = 7;
    config.rate_median_hz = 10.0;
    let summary = simulate(&config, dir.path(), true, &mut |_| {}).unwrap();
    let probe = Probe::load(&dir.path().join("probe.json")).unwrap();
    let recording =
        BinaryRecording::open(&[dir.path().join("recording.bin")], summary.n_chan_bin, Dtype::Int16).unwrap();
    let settings = Settings { n_chan_bin: Some(summary.n_chan_bin), nblocks: 0, ..Settings::default() };
    let plan = Plan::new(&settings, &probe, &recording).unwrap();
    let reader = BatchReader::new(&recording, plan.layout, plan.probe.channel_map.clone(), None, None);
    let pre = Preprocessor::fit(&reader, &plan, &NoProgress);
    let grid = TemplateGrid::new(&plan.probe, &settings);
    let source = |b: usize| prepared_batch(&reader, &pre, None, b);
    let (_, spikes) = detect_all(&source, &grid, &plan, &NoProgress).unwrap();

    let (gt, _) = load_gt_folder(dir.path()).unwrap();
    let snr = load_gt_snr(dir.path()).unwrap().unwrap();
    let mut detected: Vec<i64> = spikes.sample.iter().map(|&t| t - DETECTION_LAG).collect();
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
    let recall = found as f64 / total as f64;
    assert!(total > 1000, "{total} spikes of SNR ≥ 5 units");
    eprintln!("recall of SNR ≥ 5 spikes: {recall:.3} ({found} of {total})");
    assert!(recall >= 0.95, "recall of SNR ≥ 5 spikes: {recall:.3} ({found} of {total})");

    // First clustering: each strong unit is the majority of some cluster.
    let clusters = first_clustering(&spikes, &grid, &plan, &NoProgress).unwrap();
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
