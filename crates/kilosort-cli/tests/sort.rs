//! `kilosort-rs sort` and `demo` end to end: a simulated recording with known spikes is sorted,
//! the Phy folder is complete and consistent, the units are found, and an interrupted run never
//! leaves a folder that looks complete.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{kilosort_rs, ok};

/// The number after `label` in the scorer's table.
fn number_after(text: &str, label: &str) -> f64 {
    let at = text.find(label).unwrap_or_else(|| panic!("`{label}` not in:\n{text}")) + label.len();
    text[at..].split_whitespace().next().unwrap().parse().unwrap()
}

fn read_i64(path: &Path) -> Vec<i64> {
    ndarray_npy::read_npy::<_, ndarray::Array1<i64>>(path).unwrap().to_vec()
}

#[test]
fn demo_sorts_a_simulated_recording_into_a_complete_phy_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&["demo", "--dir", dir.path().to_str().unwrap(), "--preset", "np1-64", "--duration", "60"]);
    // Most ground-truth units are found; a broken stage would find few or none.
    let well = number_after(&out, "well detected");
    let accuracy = number_after(&out, "accuracy mean");
    assert!(well >= 20.0 && accuracy >= 0.7, "{out}");

    let results = dir.path().join("kilosort4");
    for file in [
        "spike_times.npy",
        "spike_clusters.npy",
        "spike_templates.npy",
        "templates.npy",
        "amplitudes.npy",
        "channel_map.npy",
        "channel_positions.npy",
        "whitening_mat_inv.npy",
        "similar_templates.npy",
        "pc_features.npy",
        "pc_feature_ind.npy",
        "template_features.npy",
        "template_feature_ind.npy",
        "cluster_KSLabel.tsv",
        "params.py",
        "kilosort-rs.json",
        "kilosort-rs.log",
        "dshift.npy",
        "drift_amount.png",
        "drift_scatter.png",
        "spike_positions.png",
        "diagnostics.png",
    ] {
        assert!(results.join(file).exists(), "{file} missing");
    }
    let times = read_i64(&results.join("spike_times.npy"));
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "spike times are sorted");
    let total = std::fs::metadata(dir.path().join("recording/recording.bin")).unwrap().len() as i64 / (64 * 2);
    assert!(times.iter().all(|&t| (0..total).contains(&t)), "spike times inside the recording");
    let log = std::fs::read_to_string(results.join("kilosort-rs.log")).unwrap();
    assert!(log.contains("template matching") && log.contains("peak RSS"), "{log}");

    // An existing folder is never overwritten without --overwrite.
    let rec = dir.path().join("recording");
    let args = [
        "sort".to_string(),
        rec.join("recording.bin").to_str().unwrap().to_string(),
        "--n-chan-bin".into(),
        "64".into(),
        "--probe".into(),
        rec.join("probe.json").to_str().unwrap().to_string(),
        "--results-dir".into(),
        results.to_str().unwrap().to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = kilosort_rs(&args);
    assert!(!refused.status.success());
    let msg = String::from_utf8_lossy(&refused.stderr);
    assert!(msg.contains("--overwrite"), "{msg}");
    assert_eq!(read_i64(&results.join("spike_times.npy")), times, "the old results are untouched");

    // Our own folder is replaced with --overwrite; --save-extra-vars adds the stage outputs.
    ok(&[&args[..], &["--overwrite", "--save-extra-vars", "-q"]].concat());
    assert_eq!(read_i64(&results.join("spike_times.npy")), times, "the same sort again");
    let st0: ndarray::Array2<f64> = ndarray_npy::read_npy(results.join("st0.npy")).unwrap();
    let clu0 = read_i64(&results.join("clu0.npy"));
    let wall0: ndarray::Array3<f32> = ndarray_npy::read_npy(results.join("Wall0.npy")).unwrap();
    let wall3: ndarray::Array3<f32> = ndarray_npy::read_npy(results.join("Wall3.npy")).unwrap();
    let wpca: ndarray::Array2<f32> = ndarray_npy::read_npy(results.join("wPCA.npy")).unwrap();
    assert_eq!((st0.ncols(), clu0.len()), (3, st0.nrows()));
    assert_eq!(clu0.iter().max().map(|&m| m as usize + 1), Some(wall0.dim().0));
    assert_eq!((wall0.dim().1, wall0.dim().2, wall3.dim().1, wall3.dim().2), (64, 6, 6, 64));
    assert_eq!(wpca.dim(), (6, 61));
}

#[cfg(unix)]
#[test]
fn interrupting_a_sort_leaves_no_results_folder() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec");
    ok(&["simulate", rec.to_str().unwrap(), "--preset", "np1-64", "--duration", "30", "--seed", "2"]);
    let results = dir.path().join("sorted");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kilosort-rs"))
        .args(["sort", rec.join("recording.bin").to_str().unwrap(), "--n-chan-bin", "64", "--probe"])
        .arg(rec.join("probe.json"))
        .arg("--results-dir")
        .arg(&results)
        .arg("-q")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the run has started writing (its hidden temporary folder exists), then Ctrl-C.
    let start = Instant::now();
    let started = || {
        std::fs::read_dir(dir.path()).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(".sorted"))
    };
    while !started() && start.elapsed() < Duration::from_secs(60) {
        assert!(child.try_wait().unwrap().is_none(), "the sort ended before it was interrupted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started(), "the sort never started writing");
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(!exit.success(), "the sort was interrupted before it finished");
    assert!(!results.exists(), "no results folder after an interrupted run");
    for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
        assert!(!entry.path().join("params.py").exists(), "{} looks complete", entry.path().display());
    }
}
