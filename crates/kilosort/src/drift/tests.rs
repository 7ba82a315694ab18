//! Drift estimation and correction on synthetic data with known drift.

use ndarray::Array2;

use super::synthetic::{Scenario, random_walk_with_jump, simulate};
use super::*;
use crate::probe::{Probe, builtin};
use crate::settings::Settings;

fn np1() -> Probe {
    builtin::by_name("np1").unwrap()
}

fn scenario(n_batches: usize, seed: u64) -> Scenario {
    Scenario { n_units: 40, n_batches, depth_range: (100.0, 3760.0), rate_range: (5.0, 20.0), jitter_um: 3.0, seed }
}

fn estimate(spikes: &synthetic::SyntheticSpikes, n_batches: usize, nblocks: usize) -> DriftModel {
    let table = DriftSpikes { batch: &spikes.batch, depth_um: &spikes.depth_um, amplitude: &spikes.amplitude };
    let settings = Settings { nblocks, ..Settings::default() };
    estimate_drift(&table, n_batches, &np1(), &settings).unwrap().unwrap()
}

/// RMS of `estimate + truth` (dshift = −displacement) after removing its mean, µm.
fn rms_error(estimate: impl Iterator<Item = f64>, truth: &[f64]) -> f64 {
    let residual: Vec<f64> = estimate.zip(truth).map(|(e, t)| e + t).collect();
    let mean = residual.iter().sum::<f64>() / residual.len() as f64;
    (residual.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / residual.len() as f64).sqrt()
}

#[test]
fn rigid_drift_is_recovered() {
    let n = 50;
    let truth = random_walk_with_jump(n, 1.5, 15.0, 30, 7);
    let spikes = simulate(&scenario(n, 11), |_, t| truth[t]);
    let model = estimate(&spikes, n, 1);
    assert_eq!(model.shifts_um.dim(), (n, 1));
    let err = rms_error(model.shifts_um.column(0).iter().copied(), &truth);
    eprintln!("rigid drift: RMS error {err:.2} µm");
    assert!(err <= 3.0, "rigid RMS error {err:.2} µm");
    // The jump is seen at the right batch, with the right sign.
    let step = model.shifts_um[[30, 0]] - model.shifts_um[[29, 0]];
    assert!((step + truth[30] - truth[29]).abs() < 4.0, "jump {step:.1} µm");
}

#[test]
fn no_drift_gives_constant_shifts() {
    let n = 40;
    let spikes = simulate(&scenario(n, 3), |_, _| 0.0);
    let model = estimate(&spikes, n, 1);
    let column = model.shifts_um.column(0);
    let mean = column.mean().unwrap();
    let worst = column.iter().map(|d| (d - mean).abs()).fold(0.0, f64::max);
    eprintln!("no drift: largest deviation from the mean {worst:.2} µm");
    assert!(worst <= 2.0, "largest deviation {worst:.2} µm");
}

#[test]
fn non_rigid_drift_is_recovered_per_block() {
    let n = 40;
    let rigid = random_walk_with_jump(n, 1.0, 10.0, 20, 5);
    // The gradient swings ±20 µm between the probe's ends over the recording.
    let gradient = |t: usize| 20.0 * (2.0 * std::f64::consts::PI * t as f64 / n as f64).sin();
    let drift = |y: f64, t: usize| rigid[t] + gradient(t) * (y - 1930.0) / 3820.0;
    let spikes = simulate(&Scenario { n_units: 80, ..scenario(n, 21) }, drift);
    let model = estimate(&spikes, n, 5);
    assert_eq!(model.shifts_um.dim(), (n, 9));
    for (j, &centre) in model.block_centres_um.iter().enumerate() {
        let truth: Vec<f64> = (0..n).map(|t| drift(centre, t)).collect();
        let err = rms_error(model.shifts_um.column(j).iter().copied(), &truth);
        eprintln!("non-rigid drift: block {j} at {centre:.0} µm: RMS error {err:.2} µm");
        assert!(err <= 5.0, "block {j} at {centre:.0} µm: RMS error {err:.2} µm");
    }
}

#[test]
fn zero_blocks_turns_estimation_off_and_too_many_blocks_is_an_error() {
    let spikes = DriftSpikes { batch: &[0], depth_um: &[100.0], amplitude: &[20.0] };
    let off = Settings { nblocks: 0, ..Settings::default() };
    assert!(estimate_drift(&spikes, 1, &np1(), &off).unwrap().is_none());
    let many = Settings { nblocks: 800, ..Settings::default() };
    let msg = estimate_drift(&spikes, 1, &np1(), &many).unwrap_err().to_string();
    assert!(msg.contains("nblocks") && msg.contains("766"), "{msg}");
}

#[test]
fn a_batch_without_spikes_keeps_a_zero_rigid_lag() {
    let n = 12;
    let mut spikes = simulate(&scenario(n, 9), |_, _| 0.0);
    // Drop batch 5 entirely.
    let keep: Vec<usize> = (0..spikes.batch.len()).filter(|&i| spikes.batch[i] != 5).collect();
    spikes.batch = keep.iter().map(|&i| spikes.batch[i]).collect();
    spikes.depth_um = keep.iter().map(|&i| spikes.depth_um[i]).collect();
    spikes.amplitude = keep.iter().map(|&i| spikes.amplitude[i]).collect();
    let model = estimate(&spikes, n, 1);
    // Kilosort4 would move it by −15 bins in each of 9 rounds (−675 µm).
    assert!(model.shifts_um[[5, 0]].abs() < 30.0, "{}", model.shifts_um[[5, 0]]);
}

#[test]
fn shifts_are_interpolated_over_blocks_and_extrapolated_beyond() {
    let model = DriftModel {
        block_centres_um: vec![100.0, 200.0, 400.0],
        shifts_um: Array2::from_shape_vec((1, 3), vec![2.0, 4.0, 0.0]).unwrap(),
    };
    let at = model.shifts_at(0, &[0.0, 100.0, 150.0, 200.0, 300.0, 500.0]);
    assert_eq!(at, [0.0, 2.0, 3.0, 4.0, 2.0, -2.0]);
    let rigid = DriftModel { block_centres_um: vec![50.0], shifts_um: Array2::from_elem((2, 1), -3.0) };
    assert_eq!(rigid.shifts_at(1, &[0.0, 900.0]), [-3.0, -3.0]);
    assert_eq!(rigid.mean_drift(), 3.0);
}

/// A 64-contact section of the Neuropixels 1.0 layout (640 µm).
fn np1_section() -> Probe {
    let p = np1();
    let keep = 0..64;
    Probe::new(
        "np1 section",
        p.channel_map[keep.clone()].to_vec(),
        p.x[keep.clone()].to_vec(),
        p.y[keep.clone()].to_vec(),
        p.shank[keep].to_vec(),
        64,
    )
    .unwrap()
}

fn rigid_model(shifts: &[f64]) -> DriftModel {
    DriftModel {
        block_centres_um: vec![300.0],
        shifts_um: Array2::from_shape_vec((shifts.len(), 1), shifts.to_vec()).unwrap(),
    }
}

#[test]
fn a_smooth_field_is_resampled_at_the_shifted_positions() {
    let probe = np1_section();
    let shift = -7.5;
    let corrector = DriftCorrector::new(&rigid_model(&[shift]), &probe, 20.0);
    // A smooth field f(x, y) sampled at the contacts, over 3 "time samples" of varying phase.
    let field = |x: f64, y: f64, k: usize| (y / 45.0 + k as f64).sin() * (1.0 + 0.004 * x) + 0.3 * (y / 90.0).cos();
    let data = Array2::from_shape_fn((probe.len(), 3), |(c, k)| field(probe.x[c] as f64, probe.y[c] as f64, k) as f32);
    let mut out = Array2::zeros(data.dim());
    corrector.apply(0, data.view(), out.view_mut());
    // Channel c now holds the field at y − shift.
    let mut worst = 0f64;
    for c in (0..probe.len()).filter(|&c| probe.y[c] >= 80.0 && probe.y[c] <= 580.0) {
        for k in 0..3 {
            let expected = field(probe.x[c] as f64, probe.y[c] as f64 - shift, k);
            worst = worst.max((out[[c, k]] as f64 - expected).abs());
        }
    }
    eprintln!("smooth field: largest interpolation error {worst:.4}");
    assert!(worst < 0.05, "largest interpolation error {worst:.4} (field amplitude ~1.3)");
}

/// A unit's footprint (a Gaussian in space) at depth `centre` on each contact.
fn footprint(probe: &Probe, centre: f64) -> Array2<f32> {
    Array2::from_shape_fn((probe.len(), 1), |(c, _)| {
        let d2 = (probe.x[c] as f64 - 30.0).powi(2) + (probe.y[c] as f64 - centre).powi(2);
        (10.0 * (-d2 / (2.0 * 30f64.powi(2))).exp()) as f32
    })
}

fn relative_change(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    (diff / b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>()).sqrt()
}

#[test]
fn correction_keeps_a_drifting_units_footprint_in_place() {
    let probe = np1_section();
    let displacements = [0.0, 6.0, 12.5, -9.0, 20.0];
    let shifts: Vec<f64> = displacements.iter().map(|d| -d).collect();
    let corrector = DriftCorrector::new(&rigid_model(&shifts), &probe, 20.0);
    let reference = footprint(&probe, 320.0);
    let mut corrected_reference = Array2::zeros(reference.dim());
    corrector.apply(0, reference.view(), corrected_reference.view_mut());
    let (mut before, mut after) = (0f64, 0f64);
    for (t, d) in displacements.iter().enumerate().skip(1) {
        let moved = footprint(&probe, 320.0 + d);
        let mut corrected = Array2::zeros(moved.dim());
        corrector.apply(t, moved.view(), corrected.view_mut());
        before = before.max(relative_change(&moved, &reference));
        after = after.max(relative_change(&corrected, &corrected_reference));
    }
    eprintln!("footprint change: {before:.3} before correction, {after:.4} after");
    assert!(before > 0.2, "the unit really moved: {before:.3}");
    assert!(after < before / 20.0, "footprint change: {before:.3} before correction, {after:.4} after");
}

#[test]
fn sparse_application_is_close_to_the_dense_matrix() {
    let probe = np1();
    let model = DriftModel {
        block_centres_um: vec![500.0, 1900.0, 3300.0],
        shifts_um: Array2::from_shape_vec((1, 3), vec![-12.0, 3.5, 17.0]).unwrap(),
    };
    let corrector = DriftCorrector::new(&model, &probe, 20.0);
    let mut rng = synthetic::Rng::new(4);
    let data = Array2::from_shape_fn((probe.len(), 256), |_| rng.normal() as f32);
    let mut sparse = Array2::zeros(data.dim());
    corrector.apply(0, data.view(), sparse.view_mut());
    let dense = corrector.matrix(0).mapv(|v| v as f32).dot(&data);
    let err = relative_change(&sparse, &dense);
    let kept: usize = corrector.sparse_rows(0).nnz();
    let per_row = kept as f64 / probe.len() as f64;
    eprintln!("sparse product: relative error {err:.2e}, {per_row:.1} entries per row");
    assert!(err < 2e-4, "relative error of the sparse product {err:.2e} ({per_row:.1} entries per row)");
    assert!(per_row < 80.0, "{per_row:.1} entries per row");
    // No shift: M ≈ I, up to the ridge.
    let still = DriftCorrector::new(&rigid_model(&[0.0]), &probe, 20.0).matrix(0);
    let off_identity = still.indexed_iter().map(|((i, j), &v)| (v - if i == j { 1.0 } else { 0.0 }).abs());
    assert!(off_identity.fold(0.0, f64::max) < 0.05);
}
