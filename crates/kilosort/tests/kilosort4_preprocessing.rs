//! Preprocessing checked against Kilosort4 4.1.7 itself: the filter response, the whitening
//! matrix and whole filtered/whitened batches of a synthetic recording that both sides generate
//! bit-identically (`tests/data/preprocess/make_preprocessing_fixtures.py`).

mod common;

use std::path::{Path, PathBuf};

use common::synthetic::{SyntheticFixture, synthetic_fixture, synthetic_recording};
use kilosort::io::{BatchReader, BinaryRecording, Dtype};
use kilosort::preprocess::{BatchScratch, HighPass, Preprocessor};
use kilosort::progress::NoProgress;
use kilosort::{Plan, Probe, Settings};
use ndarray::{Array1, Array2, ArrayView2, s};
use ndarray_npy::read_npy;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/preprocess").join(rel)
}

/// ‖a − b‖ / ‖b‖ (Frobenius).
fn relative_error(a: ArrayView2<f32>, b: ArrayView2<f32>) -> f64 {
    let diff: f64 = a.iter().zip(b.iter()).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm).sqrt()
}

fn fixture() -> SyntheticFixture {
    synthetic_fixture(&data("probe.json"), 6000)
}

#[test]
fn filter_response_equals_kilosort4s_hp_filter() {
    let theirs: Array1<f32> = read_npy(data("hp_filter.npy")).unwrap();
    let ours = HighPass::butterworth(300.0, 30000.0).impulse_response();
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-6, "largest difference {worst}");
}

#[test]
fn whitening_matrix_and_batches_equal_kilosort4s() {
    let f = fixture();
    let reader = BatchReader::new(&f.recording, f.plan.layout, f.plan.probe.channel_map.clone(), None, None);
    assert_eq!(reader.n_batches(), 20);
    let pre = Preprocessor::fit(&reader, &f.plan, &NoProgress);
    assert_eq!(pre.covariance_batches, 19, "the last batch is left out, as in Kilosort4");
    let theirs: Array2<f32> = read_npy(data("whitening_mat.npy")).unwrap();
    let err = relative_error(pre.whitening.matrix.view(), theirs.view());
    eprintln!("whitening matrix relative difference {err:.2e}");
    assert!(err < 1e-4, "whitening matrix differs by {err:.2e}");

    let mut batch = reader.read(3).data;
    pre.filter(&mut batch);
    let filtered: Array2<f32> = read_npy(data("batch3_filtered.npy")).unwrap();
    let rows = filtered.nrows();
    let err = relative_error(batch.slice(s![..rows, ..]), filtered.view());
    eprintln!("filtered batch 3 relative difference {err:.2e}");
    assert!(err < 1e-4, "filtered batch 3 differs by {err:.2e}");

    for (b, file) in [(3, "batch3_whitened.npy"), (0, "batch0_whitened.npy"), (19, "batchlast_whitened.npy")] {
        let raw = reader.read(b).data;
        let mut out = Array2::zeros(raw.dim());
        pre.apply(raw.view(), &mut out);
        // Reading time-major from the file gives the same bits as transposing a read batch.
        let mut prepared = Array2::zeros(raw.dim());
        assert!(pre.prepare(&reader, b, None, &mut BatchScratch::default(), &mut prepared));
        assert_eq!(prepared, out, "batch {b}: prepare and apply differ");
        let theirs: Array2<f32> = read_npy(data(file)).unwrap();
        let rows = theirs.nrows();
        let err = relative_error(out.slice(s![..rows, ..]), theirs.view());
        eprintln!("whitened batch {b} relative difference {err:.2e}");
        assert!(err < 1e-4, "whitened batch {b} differs by {err:.2e}");
    }
}

#[test]
fn single_batch_recording_whitens_without_nan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.bin");
    let values = synthetic_recording(32, 5000, 7);
    std::fs::write(&path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let recording = BinaryRecording::open(std::slice::from_ref(&path), 32, Dtype::Int16).unwrap();
    let probe = Probe::load(&data("probe.json")).unwrap();
    let settings = Settings { n_chan_bin: Some(32), ..Settings::default() };
    let plan = Plan::new(&settings, &probe, &recording).unwrap();
    let reader = BatchReader::new(&recording, plan.layout, plan.probe.channel_map.clone(), None, None);
    assert_eq!(reader.n_batches(), 1);
    let pre = Preprocessor::fit(&reader, &plan, &NoProgress);
    assert_eq!(pre.covariance_batches, 1);
    assert!(pre.whitening.matrix.iter().all(|v| v.is_finite()));
    let raw = reader.read(0).data;
    let mut out = Array2::zeros(raw.dim());
    pre.apply(raw.view(), &mut out);
    let variance = out.slice(s![.., 61..5061]).iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / (32.0 * 5000.0);
    assert!((variance - 1.0).abs() < 0.2, "whitened variance {variance}");
}

#[test]
fn preprocessed_copy_holds_each_whitened_batch() {
    let f = fixture();
    let reader = BatchReader::new(&f.recording, f.plan.layout, f.plan.probe.channel_map.clone(), None, None);
    let pre = Preprocessor::fit(&reader, &f.plan, &NoProgress);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("temp_wh.dat");
    kilosort::preprocess::save_preprocessed_copy(&reader, &pre, &f.plan, &path, &NoProgress).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 20 * 6000 * 32 * 2);
    let value = |sample: usize, channel: usize| {
        let at = 2 * (sample * 32 + channel);
        i16::from_le_bytes([bytes[at], bytes[at + 1]]) as f32 / kilosort::preprocess::INT16_SCALE
    };
    // Away from batch boundaries the file holds batch 3's whitened samples.
    let raw = reader.read(3).data;
    let mut out = Array2::zeros(raw.dim());
    pre.apply(raw.view(), &mut out);
    for sample in [3 * 6000 + 100, 3 * 6000 + 3000, 4 * 6000 - 100] {
        for channel in [0, 17, 31] {
            let expected = out[[channel, sample - 3 * 6000 + 61]];
            assert!((value(sample, channel) - expected).abs() <= 0.5 / 200.0 + 1e-6, "sample {sample} ch {channel}");
        }
    }
}
