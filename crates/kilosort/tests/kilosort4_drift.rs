//! Drift estimation and kriging checked against Kilosort4 4.1.7 itself, on a seeded spike table
//! with known drift (`tests/data/drift/make_drift_fixtures.py`).

use std::path::{Path, PathBuf};

use kilosort::drift::{DriftCorrector, DriftModel, DriftSpikes, bin_spikes, estimate_drift};
use kilosort::{Probe, Settings};
use ndarray::{Array1, Array2, s};
use ndarray_npy::read_npy;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/drift").join(name)
}

fn load1<T: ndarray_npy::ReadableElement>(name: &str) -> Array1<T> {
    read_npy(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn load2<T: ndarray_npy::ReadableElement>(name: &str) -> Array2<T> {
    read_npy(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn probe(n: usize) -> Probe {
    let x: Array1<f32> = load1("xc.npy");
    let y: Array1<f32> = load1("yc.npy");
    Probe::new("fixture", (0..n as u32).collect(), x.to_vec()[..n].to_vec(), y.to_vec()[..n].to_vec(), vec![0.0; n], n)
        .unwrap()
}

struct Table {
    batch: Vec<u32>,
    depth: Vec<f32>,
    amplitude: Vec<f32>,
}

fn table() -> Table {
    let batch: Array1<u16> = load1("spike_batch.npy");
    Table {
        batch: batch.iter().map(|&b| b as u32).collect(),
        depth: load1("spike_depth.npy").to_vec(),
        amplitude: load1("spike_amplitude.npy").to_vec(),
    }
}

const N_BATCHES: usize = 40;

#[test]
fn fingerprints_equal_kilosort4s() {
    let t = table();
    let spikes = DriftSpikes { batch: &t.batch, depth_um: &t.depth, amplitude: &t.amplitude };
    let f = bin_spikes(&spikes, N_BATCHES, &probe(383), 5.0, 9.0);
    let theirs: Array2<f32> = load2("F_batch7.npy");
    assert_eq!(f.values.slice(s![7, .., ..]), theirs);
    let ysamp: Array1<f64> = load1("ysamp.npy");
    assert_eq!(f.depths_um, ysamp.to_vec());
}

fn compare_estimate(nblocks: usize) -> (f64, f64) {
    let t = table();
    let spikes = DriftSpikes { batch: &t.batch, depth_um: &t.depth, amplitude: &t.amplitude };
    let settings = Settings { nblocks, ..Settings::default() };
    let ours = estimate_drift(&spikes, N_BATCHES, &probe(383), &settings).unwrap().unwrap();
    let dshift: Array2<f64> = load2(&format!("dshift_nblocks{nblocks}.npy"));
    let yblk: Array1<f64> = load1(&format!("yblk_nblocks{nblocks}.npy"));
    assert_eq!(ours.shifts_um.dim(), dshift.dim());
    for (a, b) in ours.block_centres_um.iter().zip(&yblk) {
        assert!((a - b).abs() < 1e-9, "block centres {:?} vs {yblk}", ours.block_centres_um);
    }
    let diff = &ours.shifts_um - &dshift;
    let rms = (diff.mapv(|d| d * d).mean().unwrap()).sqrt();
    let worst = diff.iter().fold(0f64, |m, d| m.max(d.abs()));
    eprintln!("nblocks {nblocks}: dshift vs Kilosort4: RMS {rms:.3} µm, largest {worst:.3} µm");
    (rms, worst)
}

#[test]
fn rigid_drift_equals_kilosort4s() {
    // Same float32 fingerprints, same arithmetic order where it matters: equal, not just close.
    let (rms, worst) = compare_estimate(1);
    assert!(rms <= 2.0 && worst < 1e-9, "RMS difference {rms:.3} µm, largest {worst:.3} µm");
}

#[test]
fn non_rigid_drift_equals_kilosort4s() {
    let (rms, worst) = compare_estimate(5);
    assert!(rms <= 2.0 && worst < 1e-9, "RMS difference {rms:.3} µm, largest {worst:.3} µm");
}

fn compare_matrix(model: &DriftModel, name: &str) -> f64 {
    let corrector = DriftCorrector::new(model, &probe(64), 20.0);
    let ours = corrector.matrix(0);
    let reference: Array2<f64> = load2(&format!("{name}_f64.npy"));
    let kilosort4: Array2<f32> = load2(&format!("{name}_f32.npy"));
    let worst = ours.iter().zip(&reference).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    let worst32 = ours.iter().zip(&kilosort4).fold(0f64, |m, (a, &b)| m.max((a - b as f64).abs()));
    eprintln!("{name}: largest difference {worst:.2e} (float64 reference), {worst32:.2e} (Kilosort4, float32)");
    assert!(worst32 < 1e-4, "{name}: largest difference from Kilosort4's float32 M {worst32:.2e}");
    worst
}

#[test]
fn kriging_matrices_equal_kilosort4s() {
    let case: Array1<f64> = load1("kriging_case.npy");
    let rigid = DriftModel { block_centres_um: vec![300.0], shifts_um: Array2::from_elem((1, 1), case[0]) };
    assert!(compare_matrix(&rigid, "M_rigid") < 1e-9);
    let non_rigid = DriftModel {
        block_centres_um: case.slice(s![2..5]).to_vec(),
        shifts_um: Array2::from_shape_vec((1, 3), case.slice(s![5..8]).to_vec()).unwrap(),
    };
    assert!(compare_matrix(&non_rigid, "M_nonrigid") < 1e-9);
}
