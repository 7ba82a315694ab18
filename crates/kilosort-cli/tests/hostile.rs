//! Hostile inputs through the binary (issue 22): every case gives a clear error or a correct
//! result, and no user file is ever deleted or overwritten. Each test is named after its case.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::kilosort_rs;

/// A small int16 recording of 4 channels × 40 000 samples, and a note beside it.
fn user_folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.bin");
    let bytes: Vec<u8> = (0..4 * 40_000).flat_map(|i: i32| ((i % 97) as i16 - 48).to_le_bytes()).collect();
    std::fs::write(&rec, bytes).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "irreplaceable").unwrap();
    (dir, rec)
}

/// A folder's file names and contents, to prove that nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(snapshot(&path));
        } else {
            files.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    files.sort();
    files
}

/// Runs the binary in `cwd`, asserts a clean failure (an error, not a panic), returns stderr.
fn refused_in(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kilosort-rs")).args(args).current_dir(cwd).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail with an error:\n{stderr}");
    stderr
}

fn refused(args: &[&str]) -> String {
    refused_in(Path::new("."), args)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn issue_22_overwrite_refuses_the_recording_itself_as_results_dir() {
    let (dir, rec) = user_folder();
    let before = snapshot(dir.path());
    let msg = refused(&["sort", s(&rec), "--n-chan-bin", "4", "--results-dir", s(&rec), "--overwrite"]);
    assert!(msg.contains("is the input") && msg.contains("rec.bin"), "{msg}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn issue_22_overwrite_refuses_a_folder_holding_the_recording_or_the_current_directory() {
    let (dir, rec) = user_folder();
    let before = snapshot(dir.path());
    let msg = refused(&["sort", s(&rec), "--n-chan-bin", "4", "--results-dir", s(dir.path()), "--overwrite"]);
    assert!(msg.contains("holds the input"), "{msg}");
    let msg = refused_in(dir.path(), &["sort", "rec.bin", "--n-chan-bin", "4", "--results-dir", ".", "--overwrite"]);
    assert!(msg.contains("holds the input"), "{msg}");
    // An ancestor of the recording's folder holds it too.
    let parent = dir.path().parent().unwrap();
    assert!(
        refused(&["sort", s(&rec), "--n-chan-bin", "4", "--results-dir", s(parent), "--overwrite"]).contains("input")
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn issue_22_overwrite_refuses_a_folder_of_probe_settings_and_notes() {
    let (dir, rec) = user_folder();
    let notes = tempfile::tempdir().unwrap();
    let probe = notes.path().join("probe.json");
    std::fs::write(&probe, r#"{"chanMap":[0,1,2,3],"xc":[0,0,0,0],"yc":[0,20,40,60],"kcoords":[0,0,0,0],"n_chan":4}"#)
        .unwrap();
    std::fs::write(notes.path().join("lab-notes.txt"), "day 1").unwrap();
    let before = snapshot(notes.path());
    let args = ["sort", s(&rec), "--n-chan-bin", "4", "--probe", s(&probe), "--results-dir", s(notes.path())];
    let msg = refused(&[&args[..], &["--overwrite"]].concat());
    assert!(msg.contains("holds the input") && msg.contains("probe.json"), "{msg}");
    // Without the probe in it, a folder of other files is still never replaced.
    std::fs::remove_file(&probe).unwrap();
    let other = dir.path().join("notes.txt");
    let msg = refused(&["sort", s(&rec), "--n-chan-bin", "4", "--results-dir", s(notes.path()), "--overwrite"]);
    assert!(msg.contains("never replaced") && !msg.contains("pass --overwrite"), "{msg}");
    let msg = refused(&["sort", s(&rec), "--n-chan-bin", "4", "--results-dir", s(&other), "--overwrite"]);
    assert!(msg.contains("is a file"), "{msg}");
    assert_eq!(snapshot(notes.path()), before.into_iter().filter(|(p, _)| p != &probe).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&other).unwrap(), b"irreplaceable");
}

#[test]
fn issue_22_compare_out_never_overwrites_an_input_or_another_file() {
    let (dir, _rec) = user_folder();
    let times = dir.path().join("spike_times.npy");
    let clusters = dir.path().join("spike_clusters.npy");
    ndarray_npy::write_npy(&times, &ndarray::arr1(&[10i64, 20, 30])).unwrap();
    ndarray_npy::write_npy(&clusters, &ndarray::arr1(&[0i64, 0, 1])).unwrap();
    let other_json = dir.path().join("settings.json");
    std::fs::write(&other_json, "{\"nblocks\": 0}").unwrap();
    let before = snapshot(dir.path());
    let pair = ["compare", "--gt-times", s(&times), "--gt-clusters", s(&clusters), "--fs", "30000"];
    let sorted = ["--sorted-times", s(&times), "--sorted-clusters", s(&clusters)];
    let base = [&pair[..], &sorted[..]].concat();
    let msg = refused(&[&base[..], &["--out", s(&times)]].concat());
    assert!(msg.contains(".json"), "{msg}");
    let msg = refused(&[&base[..], &["--out", s(&other_json)]].concat());
    assert!(msg.contains("not a report"), "{msg}");
    assert_eq!(snapshot(dir.path()), before);
    // A new .json path is written, and may be written again.
    let report = dir.path().join("report.json");
    for _ in 0..2 {
        assert!(kilosort_rs(&[&base[..], &["--out", s(&report)]].concat()).status.success());
    }
}

#[test]
fn issue_22_compare_delta_must_be_finite_and_positive() {
    let (dir, _rec) = user_folder();
    let times = dir.path().join("t.npy");
    ndarray_npy::write_npy(&times, &ndarray::arr1(&[10i64])).unwrap();
    for bad in ["-1", "nan", "0", "inf"] {
        let args = ["compare", "--gt-times", s(&times), "--gt-clusters", s(&times), "--fs", "30000"];
        let msg = refused(
            &[&args[..], &["--sorted-times", s(&times), "--sorted-clusters", s(&times)], &["--delta-ms", bad]].concat(),
        );
        assert!(msg.contains("--delta-ms"), "{bad}: {msg}");
    }
}

#[test]
fn issue_22_demo_never_replaces_files_that_an_earlier_demo_did_not_write() {
    for sub in ["recording", "kilosort4"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        std::fs::write(dir.path().join(sub).join("mine.txt"), "keep").unwrap();
        let before = snapshot(dir.path());
        let msg = refused(&["demo", "--dir", s(dir.path()), "--duration", "1"]);
        assert!(msg.contains("never replaced"), "{sub}: {msg}");
        assert_eq!(snapshot(dir.path()), before, "{sub}");
    }
}

#[test]
fn issue_22_simulate_checks_the_disk_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let msg = refused(&["simulate", s(&out), "--duration", "1e12"]);
    assert!(msg.contains("GB is free"), "{msg}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no .partial folder left");
}

#[test]
fn issue_22_a_probe_or_recording_given_twice_differently_is_an_error() {
    let (dir, rec) = user_folder();
    let args = ["info", s(&rec), "--n-chan-bin", "4"];
    let msg = refused(&[&args[..], &["--probe", "linear16", "--probe_path", s(&dir.path().join("p.json"))]].concat());
    assert!(msg.contains("probe is given twice"), "{msg}");
    let other = dir.path().join("other.bin");
    std::fs::copy(&rec, &other).unwrap();
    let msg = refused(&[&args[..], &["--filename", s(&other)]].concat());
    assert!(msg.contains("recording is given twice"), "{msg}");
    // The same file, spelled differently, is one recording.
    let spelled = dir.path().join(".").join("rec.bin");
    assert!(kilosort_rs(&[&args[..], &["--filename", s(&spelled)]].concat()).status.success());
}

#[test]
fn issue_22_channels_and_samples_swapped_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.bin");
    // 600 000 int16 values: 2 samples of 300 000 channels divide the size exactly.
    std::fs::write(&rec, vec![0u8; 1_200_000]).unwrap();
    for cmd in ["info", "sort"] {
        let msg = refused(&[cmd, s(&rec), "--n-chan-bin", "300000", "--results-dir", s(&dir.path().join("out"))]);
        assert!(msg.contains("holds only 2 samples") && msg.contains("n_chan_bin"), "{cmd}: {msg}");
    }
}

#[test]
fn issue_22_every_channel_bad_is_an_error() {
    let (_dir, rec) = user_folder();
    for cmd in ["info", "sort"] {
        let msg = refused(&[cmd, s(&rec), "--n-chan-bin", "4", "--bad_channels", "[0,1,2,3]"]);
        assert!(msg.contains("no channel is left") && msg.contains("bad_channels"), "{cmd}: {msg}");
    }
}

#[test]
fn issue_22_view_windows_are_clamped_and_checked() {
    let (dir, rec) = user_folder();
    let png = dir.path().join("v.png");
    let args = ["view", s(&rec), "--n-chan-bin", "4", "--png", s(&png)];
    for bad in ["nan", "-1", "0"] {
        let msg = refused(&[&args[..], &["--duration", bad]].concat());
        assert!(msg.contains("--duration"), "{bad}: {msg}");
    }
    assert!(refused(&[&args[..], &["--start", "99"]].concat()).contains("past the end"));
    // A huge or endless window shows the whole (1.33 s) recording.
    for huge in ["1e9", "inf"] {
        let out = kilosort_rs(&[&args[..], &["--duration", huge]].concat());
        assert!(out.status.success(), "{huge}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(png.exists());
}

#[test]
fn issue_22_absurd_grid_spacing_and_batch_size_are_errors() {
    let (dir, rec) = user_folder();
    let probe = dir.path().join("probe.json");
    std::fs::write(
        &probe,
        r#"{"chanMap":[0,1,2,3],"xc":[0,16,32,48],"yc":[0,20,40,60],"kcoords":[0,0,0,0],"n_chan":4}"#,
    )
    .unwrap();
    let args = ["info", s(&rec), "--n-chan-bin", "4", "--probe", s(&probe)];
    for (flag, value) in [("--dmin", "0.001"), ("--dminx", "0.001")] {
        let msg = refused(&[&args[..], &[flag, value]].concat());
        assert!(msg.contains(&flag[2..]) && msg.contains("positions"), "{flag}: {msg}");
    }
    let msg = refused(&[&args[..], &["--batch_size", "10"]].concat());
    assert!(msg.contains("batch_size") && msg.contains("waveform windows"), "{msg}");
}
