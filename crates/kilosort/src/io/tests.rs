use std::path::{Path, PathBuf};

use super::*;

/// A ramp recording: value at (sample s, channel c) = s·n_chan + c, as int16 wrapping is avoided
/// by keeping it small.
fn write_ramp(dir: &Path, name: &str, samples: std::ops::Range<u64>, n_chan: usize) -> PathBuf {
    let mut bytes = Vec::new();
    for s in samples {
        for c in 0..n_chan {
            bytes.extend_from_slice(&(((s * n_chan as u64 + c as u64) % 30000) as i16).to_le_bytes());
        }
    }
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn ramp_value(s: u64, c: u32, n_chan: usize) -> f32 {
    ((s * n_chan as u64 + c as u64) % 30000) as f32
}

fn opts(batch_size: usize, nt: usize) -> BatchOptions {
    BatchOptions { fs: 10.0, tmin: 0.0, tmax: f64::INFINITY, batch_size, nt, downsampling: 1 }
}

#[test]
fn padded_batches_hold_the_right_samples_and_replicate_edges() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_ramp(dir.path(), "r.bin", 0..1000, 4);
    let rec = BinaryRecording::open(std::slice::from_ref(&path), 4, Dtype::Int16).unwrap();
    let layout = BatchLayout::new(rec.total_samples(), opts(300, 61), &path).unwrap();
    let reader = BatchReader::new(&rec, layout, vec![2, 0], None, None);
    assert_eq!(reader.n_batches(), 4);
    for batch in reader.iter() {
        assert_eq!(batch.data.dim(), (2, 422));
        for col in 0..422 {
            let sample = (batch.first_sample + col as i64).clamp(0, 999) as u64;
            assert_eq!(batch.data[[0, col]], ramp_value(sample, 2, 4), "batch {} col {col}", batch.index);
            assert_eq!(batch.data[[1, col]], ramp_value(sample, 0, 4));
        }
    }
}

#[test]
fn window_is_respected_and_spike_times_map_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_ramp(dir.path(), "r.bin", 0..1000, 3);
    let rec = BinaryRecording::open(std::slice::from_ref(&path), 3, Dtype::Int16).unwrap();
    let layout =
        BatchLayout::new(rec.total_samples(), BatchOptions { tmin: 17.0, tmax: 80.0, ..opts(300, 61) }, &path).unwrap();
    // 630 samples: the third batch would add only 30 new samples, so it is dropped.
    assert_eq!((layout.imin, layout.imax), (170, 770));
    let reader = BatchReader::new(&rec, layout, vec![1], None, None);
    let b0 = reader.read(0);
    assert_eq!(b0.data[[0, 0]], ramp_value(170, 1, 3), "first batch repeats the window's first sample");
    assert_eq!(b0.data[[0, 61]], ramp_value(170, 1, 3));
    assert_eq!(b0.data[[0, 62]], ramp_value(171, 1, 3));
    let last = reader.read(reader.n_batches() - 1);
    assert_eq!(*last.data.last().unwrap(), ramp_value(769, 1, 3), "last batch repeats the window's last sample");
}

#[test]
fn several_files_read_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let whole = write_ramp(dir.path(), "whole.bin", 0..1000, 2);
    let parts = vec![
        write_ramp(dir.path(), "a.bin", 0..67, 2),
        write_ramp(dir.path(), "b.bin", 67..500, 2),
        write_ramp(dir.path(), "c.bin", 500..1000, 2),
    ];
    let one = BinaryRecording::open(std::slice::from_ref(&whole), 2, Dtype::Int16).unwrap();
    let three = BinaryRecording::open(&parts, 2, Dtype::Int16).unwrap();
    assert_eq!(three.total_samples(), 1000);
    let layout = BatchLayout::new(1000, opts(300, 61), &whole).unwrap();
    let a = BatchReader::new(&one, layout, vec![0, 1], None, None);
    let b = BatchReader::new(&three, layout, vec![0, 1], None, None);
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!(x.data, y.data);
    }
}

#[test]
fn parallel_iteration_equals_sequential() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_ramp(dir.path(), "r.bin", 0..3000, 5);
    let rec = BinaryRecording::open(std::slice::from_ref(&path), 5, Dtype::Int16).unwrap();
    let layout = BatchLayout::new(3000, opts(250, 31), &path).unwrap();
    let reader = BatchReader::new(&rec, layout, vec![4, 1, 3], None, None);
    let sequential: Vec<_> = reader.iter().map(|b| b.data).collect();
    let parallel: Vec<_> = reader.par_iter().map(|b| b.data).collect();
    assert_eq!(sequential, parallel);
}

#[test]
fn downsampling_batch_equals_the_raw_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_ramp(dir.path(), "r.bin", 0..10_000, 1);
    let rec = BinaryRecording::open(std::slice::from_ref(&path), 1, Dtype::Int16).unwrap();
    let full = BatchReader::new(&rec, BatchLayout::new(10_000, opts(300, 61), &path).unwrap(), vec![0], None, None);
    let every3 = BatchLayout::new(10_000, BatchOptions { downsampling: 3, ..opts(300, 61) }, &path).unwrap();
    let sub = BatchReader::new(&rec, every3, vec![0], None, None);
    assert_eq!(sub.read(5).data, full.read(15).data);
}

#[test]
fn dtypes_scale_and_shift() {
    let dir = tempfile::tempdir().unwrap();
    let values: [u16; 4] = [0, 32768, 65535, 40000];
    let path = dir.path().join("u.bin");
    std::fs::write(&path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()).unwrap();
    let rec = BinaryRecording::open(std::slice::from_ref(&path), 1, Dtype::Uint16).unwrap();
    let layout = BatchLayout::new(4, BatchOptions { batch_size: 4, nt: 3, ..opts(4, 3) }, &path).unwrap();
    let batch = BatchReader::new(&rec, layout, vec![0], Some(2.0), Some(1.0)).read(0);
    let centred: Vec<f32> = values.iter().map(|&v| (v as f32 - 32768.0) * 2.0 + 1.0).collect();
    assert_eq!(batch.data.row(0).to_vec()[3..7], centred[..]);

    let path = dir.path().join("f.bin");
    std::fs::write(&path, [0.25f32, -8.5].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()).unwrap();
    let rec = BinaryRecording::open(std::slice::from_ref(&path), 2, Dtype::Float32).unwrap();
    let mut out = vec![0.0; 2];
    rec.read_channels(0, 1, &[1, 0], &mut out, 1);
    assert_eq!(out, [-8.5, 0.25]);
}

#[test]
fn size_mismatch_names_file_and_both_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.bin");
    std::fs::write(&path, vec![0u8; 1_000_002]).unwrap();
    let msg = BinaryRecording::open(std::slice::from_ref(&path), 385, Dtype::Int16).unwrap_err().to_string();
    assert!(
        msg.contains("odd.bin") && msg.contains("1000002 bytes") && msg.contains("385 channels × 2 bytes"),
        "{msg}"
    );
    assert!(msg.contains("n_chan_bin"), "{msg}");
}

#[test]
fn empty_and_missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let msg = BinaryRecording::open(&[empty], 4, Dtype::Int16).unwrap_err().to_string();
    assert!(msg.contains("empty.bin") && msg.contains("empty"), "{msg}");
    let msg = BinaryRecording::open(&[dir.path().join("nope.bin")], 4, Dtype::Int16).unwrap_err().to_string();
    assert!(msg.contains("nope.bin") && msg.contains("not found"), "{msg}");
}

#[test]
fn find_binary_picks_the_one_recording() {
    let dir = tempfile::tempdir().unwrap();
    assert!(find_binary(dir.path()).unwrap_err().to_string().contains("no .bin"));
    std::fs::write(dir.path().join("x.dat"), b"..").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"..").unwrap();
    assert_eq!(find_binary(dir.path()).unwrap(), dir.path().join("x.dat"));
    std::fs::write(dir.path().join("run_g0_t0.imec0.ap.bin"), b"..").unwrap();
    assert_eq!(find_binary(dir.path()).unwrap(), dir.path().join("run_g0_t0.imec0.ap.bin"));
    std::fs::write(dir.path().join("other.ap.bin"), b"..").unwrap();
    let msg = find_binary(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("several recordings") && msg.contains("other.ap.bin"), "{msg}");
}

#[test]
fn time_major_batches_equal_transposed_channel_major_ones() {
    let dir = tempfile::tempdir().unwrap();
    // Two files, so batches cross a file boundary; channels in runs and out of order.
    let paths = [write_ramp(dir.path(), "a.bin", 0..450, 6), write_ramp(dir.path(), "b.bin", 450..1000, 6)];
    let rec = BinaryRecording::open(&paths, 6, Dtype::Int16).unwrap();
    let layout = BatchLayout::new(rec.total_samples(), opts(300, 61), &paths[0]).unwrap();
    for (scale, shift) in [(None, None), (Some(0.5), Some(-3.0))] {
        let reader = BatchReader::new(&rec, layout, vec![2, 3, 0, 5, 1], scale, shift);
        let mut time_major = Vec::new();
        for batch in reader.iter() {
            reader.read_time_major_into(batch.index, &mut time_major);
            let (n, len) = batch.data.dim();
            assert_eq!(time_major.len(), n * len);
            for ((c, t), &v) in batch.data.indexed_iter() {
                assert_eq!(time_major[t * n + c], v, "batch {} channel {c} column {t}", batch.index);
            }
        }
    }
}
