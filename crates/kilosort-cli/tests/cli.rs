//! Runs the `kilosort-rs` binary on small generated files and checks its output and messages.

use std::path::{Path, PathBuf};

mod common;

use common::{fails, ok};

fn fixture(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(rel).display().to_string()
}

/// An int16 recording with `n_chan` channels and `n_samples` samples of a deterministic signal.
fn recording(dir: &Path, n_chan: usize, n_samples: usize) -> PathBuf {
    let path = dir.join("rec.bin");
    let bytes: Vec<u8> = (0..n_samples * n_chan)
        .flat_map(|i| {
            let (s, c) = (i / n_chan, i % n_chan);
            let v = ((s as f64 * 0.37 + c as f64).sin() * 20.0 * (c + 1) as f64) as i16;
            v.to_le_bytes()
        })
        .collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn info_describes_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recording(dir.path(), 4, 70_000);
    let out = ok(&["info", rec.to_str().unwrap(), "--n-chan-bin", "4", "--batch_size", "30000"]);
    assert!(out.contains("2.333 s (70000 samples at 30000 Hz)"), "{out}");
    assert!(out.contains("batches     3 of 30000 samples"), "{out}");
    assert!(out.contains("int16, 4 channels per sample"), "{out}");
    assert!(out.contains("raw RMS") && out.contains("max") && out.contains("(ch 3)"), "{out}");
    // The folder form finds the one recording inside.
    let out = ok(&["info", dir.path().to_str().unwrap(), "--n_chan_bin", "4", "--tmax", "1"]);
    assert!(out.contains("window      0.000 – 1.000 s"), "{out}");
}

#[test]
fn info_with_a_probe_and_a_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recording(dir.path(), 17, 40_000);
    let settings = dir.path().join("s.json");
    std::fs::write(&settings, r#"{"n_chan_bin": 17, "tmax": Infinity, "bad_channels": [0]}"#).unwrap();
    let out = ok(&["info", rec.to_str().unwrap(), "--settings", settings.to_str().unwrap(), "--probe", "linear16"]);
    assert!(out.contains("13 sorted channels of 15 sites"), "{out}");
}

#[test]
fn bad_inputs_give_messages_that_name_file_value_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recording(dir.path(), 4, 1000);
    let rec = rec.to_str().unwrap();
    let msg = fails(&["info", rec, "--n-chan-bin", "3"]);
    assert!(msg.contains("rec.bin") && msg.contains("8000 bytes") && msg.contains("3 channels × 2 bytes"), "{msg}");
    let msg = fails(&["info", rec]);
    assert!(msg.contains("n_chan_bin") && msg.contains("--n-chan-bin"), "{msg}");
    let msg = fails(&["info", rec, "--n-chan-bin", "4", "--nt", "60"]);
    assert!(msg.contains("`nt` = 60") && msg.contains("odd"), "{msg}");
    let msg = fails(&["info", rec, "--n-chan-bin", "4", "--tmin", "5"]);
    assert!(msg.contains("rec.bin") && msg.contains("tmin = 5") && msg.contains("0.033"), "{msg}");
    let msg = fails(&["info", rec, "--n-chan-bin", "4", "--probe", "np1"]);
    assert!(msg.contains("channel index 383") && msg.contains("n_chan_bin = 4"), "{msg}");
    let msg = fails(&["info", &format!("{rec}.missing"), "--n-chan-bin", "4"]);
    assert!(msg.contains("rec.bin.missing") && msg.contains("not found"), "{msg}");
    let settings = dir.path().join("typo.json");
    std::fs::write(&settings, r#"{"n_chan_bin": 4, "Th_univesal": 8}"#).unwrap();
    let msg = fails(&["info", rec, "--settings", settings.to_str().unwrap()]);
    assert!(msg.contains("typo.json") && msg.contains("did you mean `Th_universal`"), "{msg}");
    let msg = fails(&["info", rec, "--n-chan-bin", "4", "--dtype", "int8"]);
    assert!(msg.contains("data_dtype") && msg.contains("int8") && msg.contains("float32"), "{msg}");
}

#[test]
fn probe_list_show_and_convert() {
    let out = ok(&["probe", "list"]);
    for name in ["NeuroPix1_default", "NeuroPix2_default", "NP2_4shank", "Linear16x1_test", "neuropixPhase3A"] {
        assert!(out.contains(name), "{out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("np2.png");
    let out = ok(&["probe", "show", "np2-4shank", "--png", png.to_str().unwrap()]);
    assert!(out.contains("384 sorted channels of 384 sites, 4 shanks"), "{out}");
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 2000, "a real PNG");

    let converted = dir.path().join("lin.json");
    ok(&["probe", "convert", &fixture("probes/linear16_chanmap.mat"), converted.to_str().unwrap()]);
    let out = ok(&["probe", "show", converted.to_str().unwrap(), "--all"]);
    assert!(out.contains("14 sorted channels of 16 sites"), "{out}");
    assert!(!out.lines().any(|l| l.split_whitespace().nth(1) == Some("4")), "site 4 is disconnected: {out}");
}

#[test]
fn malformed_probes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let prb = dir.path().join("gen.prb");
    std::fs::write(&prb, "import numpy as np\nchannel_groups = {0: {'channels': np.arange(4)}}\n").unwrap();
    let msg = fails(&["probe", "show", prb.to_str().unwrap()]);
    assert!(msg.contains("gen.prb") && msg.contains("line 2") && msg.contains("np.arange("), "{msg}");
    let mat = dir.path().join("v73.mat");
    let mut bytes = b"MATLAB 7.3 MAT-file".to_vec();
    bytes.resize(512, b' ');
    bytes.extend_from_slice(b"\x89HDF\r\n\x1a\n");
    std::fs::write(&mat, bytes).unwrap();
    let msg = fails(&["probe", "show", mat.to_str().unwrap()]);
    assert!(msg.contains("v73.mat") && msg.contains("-v7"), "{msg}");
    let json = dir.path().join("bad.json");
    std::fs::write(&json, "{\"chanMap\": [0, 1], \"xc\": [0], \"yc\": [0, 1]}").unwrap();
    let msg = fails(&["probe", "show", json.to_str().unwrap()]);
    assert!(msg.contains("bad.json") && msg.contains("`xc` has 1 entries"), "{msg}");
    let msg = fails(&["probe", "show", "np7"]);
    assert!(msg.contains("np7") && msg.contains("built-in"), "{msg}");
}

#[test]
fn help_comes_from_the_parameter_table() {
    let out = ok(&["info", "--help"]);
    assert!(out.contains("--Th_universal") && out.contains("whitened noise"), "{out}");
    assert!(out.contains("Settings: clustering"), "{out}");
    let out = ok(&["settings"]);
    assert!(out.contains("cluster_init_seed") && out.contains("default 5"), "{out}");
}

#[test]
fn info_preprocessed_and_view() {
    let dir = tempfile::tempdir().unwrap();
    let rec = recording(dir.path(), 16, 90_000);
    let rec = rec.to_str().unwrap();
    let out = ok(&["info", rec, "--n-chan-bin", "16", "--probe", "linear16", "--preprocessed"]);
    assert!(out.contains("whitened    covariance from 1 batches"), "{out}");
    assert!(out.contains("noise SD per channel after filtering + whitening"), "{out}");
    for extra in [&[][..], &["--preprocessed"][..]] {
        let png = dir.path().join("view.png");
        let png_arg = png.to_str().unwrap();
        let mut args = vec!["view", rec, "--n-chan-bin", "16", "--start", "0.5", "--duration", "0.2", "--png", png_arg];
        args.extend_from_slice(extra);
        ok(&args);
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 5000, "a real PNG");
    }
    let msg = fails(&["view", rec, "--n-chan-bin", "16", "--start", "10"]);
    assert!(msg.contains("rec.bin") && msg.contains("past the end") && msg.contains("tmin"), "{msg}");
}

#[test]
fn simulate_then_compare_ground_truth_with_itself() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let sim_arg = sim.to_str().unwrap();
    let out = ok(&["simulate", sim_arg, "--preset", "tetrode-like", "--duration", "5", "--seed", "3"]);
    assert!(out.contains("4 channels, 5.0 s"), "{out}");
    for file in [
        "recording.bin",
        "probe.json",
        "gt_spike_times.npy",
        "gt_spike_clusters.npy",
        "gt_units.json",
        "simulation.json",
    ] {
        assert!(sim.join(file).exists(), "{file} missing");
    }
    let msg = fails(&["simulate", sim_arg, "--preset", "tetrode-like", "--duration", "5"]);
    assert!(msg.contains("already exists") && msg.contains("--overwrite"), "{msg}");
    let msg = fails(&["simulate", dir.path().join("x").to_str().unwrap(), "--preset", "np9"]);
    assert!(msg.contains("unknown preset `np9`") && msg.contains("np1-384-drift"), "{msg}");

    // A "sorting" that is the ground truth itself scores 1 everywhere.
    let sorted = dir.path().join("sorted");
    std::fs::create_dir(&sorted).unwrap();
    std::fs::copy(sim.join("gt_spike_times.npy"), sorted.join("spike_times.npy")).unwrap();
    std::fs::copy(sim.join("gt_spike_clusters.npy"), sorted.join("spike_clusters.npy")).unwrap();
    let out = ok(&["compare", "--gt", sim_arg, "--sorted", sorted.to_str().unwrap()]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sorted.join("comparison.json")).unwrap()).unwrap();
    let n_gt = report["n_gt_units"].as_u64().unwrap();
    assert!(n_gt >= 4, "{out}");
    assert_eq!(report["well_detected"].as_u64(), Some(n_gt), "{out}");
    assert_eq!(report["accuracy_mean"].as_f64(), Some(1.0));
    let msg = fails(&["compare", "--gt", sim_arg, "--sorted", dir.path().join("nothing").to_str().unwrap()]);
    assert!(msg.contains("nothing"), "{msg}");
}
