//! Checks against reference files made by running Kilosort4 4.1.7, scipy and probeinterface
//! (scripts in `tests/data/`): probes, settings files and raw padded batches.

use std::path::{Path, PathBuf};

use kilosort::Probe;
use kilosort::io::{BatchLayout, BatchOptions, BatchReader, BinaryRecording, Dtype, Recording};
use kilosort::probe::builtin;
use kilosort::settings::Settings;
use ndarray::{Array3, s};
use ndarray_npy::read_npy;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(rel)
}

fn load(rel: &str) -> Probe {
    Probe::load(&data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn kilosort4_json_and_scipy_mat_load_identically_to_the_builtins() {
    for (stem, builtin_name) in
        [("np1", "NeuroPix1_default"), ("np2", "NeuroPix2_default"), ("linear16", "Linear16x1_test")]
    {
        let builtin = builtin::by_name(builtin_name).unwrap();
        assert_eq!(load(&format!("probes/{stem}_ks4.json")), builtin, "{stem} json written by kilosort.io.save_probe");
        assert_eq!(load(&format!("probes/{stem}_chanmap.mat")), builtin, "{stem} .mat written by scipy");
    }
    assert_eq!(load("probes/linear16_chanmap_oned.mat"), builtin::by_name("linear16").unwrap(), "row-vector .mat");
}

#[test]
fn prb_files_load_as_kilosort4_reads_them() {
    for stem in ["pi_two_shanks", "pi_two_shanks_by_shank"] {
        assert_eq!(load(&format!("probes/{stem}.prb")), load(&format!("probes/{stem}_prb_ks4.json")), "{stem}");
    }
    // numpy ≥ 2 prints scalars as np.int64(7): still literal data, read like Kilosort4 does.
    assert_eq!(load("probes/pi_two_shanks_np2repr.prb"), load("probes/pi_two_shanks_prb_ks4.json"));
}

#[test]
fn probeinterface_json_follows_the_documented_conversion() {
    for stem in ["pi_two_shanks", "pi_two_probes"] {
        assert_eq!(load(&format!("probes/{stem}.json")), load(&format!("probes/{stem}_expected.json")), "{stem}");
    }
}

#[test]
fn kilosort4_settings_json_loads_unchanged() {
    let defaults = Settings::from_file(&data("settings/ks4_default_settings.json")).unwrap();
    assert_eq!(defaults, Settings { n_chan_bin: Some(385), ..Settings::default() });
    let custom = Settings::from_file(&data("settings/ks4_custom_settings.json")).unwrap();
    let expected = Settings {
        n_chan_bin: Some(385),
        nblocks: 5,
        th_universal: 10.0,
        tmax: 30.5,
        drift_smoothing: [1.0, 0.5, 0.5],
        dmin: Some(20.0),
        x_centers: Some(2),
        max_cluster_subset: None,
        shift: Some(-5.0),
        scale: Some(0.195),
        ..Settings::default()
    };
    assert_eq!(custom, expected);
    custom.validate("ks4_custom_settings.json").unwrap();
}

struct ReaderCase {
    recording: BinaryRecording,
    layout: BatchLayout,
    expected: serde_json::Value,
    n_chan: usize,
}

fn reader_case(name: &str) -> ReaderCase {
    let text = std::fs::read_to_string(data(&format!("reader/case_{name}.json"))).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
    let num = |k: &str| expected[k].as_f64().unwrap_or(f64::INFINITY);
    let n_chan = expected["n_chan_bin"].as_u64().unwrap() as usize;
    let path = data(&format!("reader/{}", expected["file"].as_str().unwrap()));
    let recording = BinaryRecording::open(std::slice::from_ref(&path), n_chan, Dtype::Int16).unwrap();
    let opts = BatchOptions {
        fs: num("fs"),
        tmin: num("tmin"),
        tmax: num("tmax"),
        batch_size: num("batch_size") as usize,
        nt: num("nt") as usize,
        downsampling: num("batch_downsampling") as usize,
    };
    let layout = BatchLayout::new(recording.total_samples(), opts, &path).unwrap();
    ReaderCase { recording, layout, expected, n_chan }
}

impl ReaderCase {
    fn check_layout(&self) {
        let e = |k: &str| self.expected[k].as_u64().unwrap();
        let l = &self.layout;
        assert_eq!((l.imin, l.imax, l.n_samples()), (e("imin"), e("imax"), e("n_samples")));
        assert_eq!((l.n_batches_raw as u64, l.n_batches as u64), (e("n_batches_raw"), e("n_batches")));
    }

    fn reader(&self) -> BatchReader<'_> {
        BatchReader::new(&self.recording, self.layout, (0..self.n_chan as u32).collect(), None, None)
    }
}

#[test]
fn padded_batches_equal_kilosort4s() {
    for name in ["A", "B", "C"] {
        let case = reader_case(name);
        case.check_layout();
        let batches: Array3<f32> = read_npy(data(&format!("reader/case_{name}_batches.npy"))).unwrap();
        let reader = case.reader();
        for b in 0..reader.n_batches() {
            assert_eq!(reader.read(b).data, batches.slice(s![b, .., ..]), "case {name} batch {b}");
        }
    }
    let case = reader_case("D");
    case.check_layout();
    let batch5: ndarray::Array2<f32> = read_npy(data("reader/case_D_batch5.npy")).unwrap();
    assert_eq!(case.reader().read(5).data, batch5, "downsampled batch 5");
}

/// Where Kilosort4 reads past tmax (case E) or leaves zeros after a recording shorter than one
/// batch (case F), we repeat the window's last sample instead (docs/differences.md).
#[test]
fn first_batch_edges_repeat_the_last_sample_where_kilosort4_reads_past_the_window() {
    for name in ["E", "F"] {
        let case = reader_case(name);
        case.check_layout();
        let theirs: Array3<f32> = read_npy(data(&format!("reader/case_{name}_batches.npy"))).unwrap();
        let ours = case.reader().read(0).data;
        let pad = case.layout.pad;
        let inside = pad + case.layout.n_samples() as usize;
        assert_eq!(ours.slice(s![.., ..inside]), theirs.slice(s![0, .., ..inside]), "case {name}: the window itself");
        for c in 0..case.n_chan {
            let last = ours[[c, inside - 1]];
            assert!(ours.slice(s![c, inside..]).iter().all(|&x| x == last), "case {name}: edge repeated");
        }
    }
}
