//! Detection checked against a dense, literal implementation of Kilosort4's rule and against
//! spikes injected at known samples.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::universal::dense_best_projection;
use super::*;
use crate::probe::Probe;
use crate::settings::Settings;

const NT: usize = 61;
const TROUGH: usize = 20;

fn two_column_probe(rows: usize) -> Probe {
    let n = 2 * rows;
    Probe::new(
        "test",
        (0..n as u32).collect(),
        (0..n).map(|i| if i % 2 == 0 { 0.0 } else { 32.0 }).collect(),
        (0..n).map(|i| 20.0 * (i / 2) as f32).collect(),
        vec![0.0; n],
        n,
    )
    .unwrap()
}

fn shape(width: f64, at: f64) -> Vec<f32> {
    (0..NT)
        .map(|t| {
            let d = t as f64 - at;
            0.35 * (-((d - 2.5 * width) / (1.8 * width)).powi(2)).exp() - (-(d / width).powi(2)).exp()
        })
        .map(|v| v as f32)
        .collect()
}

/// A basis learned from clean copies of three shapes.
fn basis() -> TemporalBasis {
    let shapes = [shape(2.0, 20.0), shape(4.0, 20.0), shape(3.0, 21.0)];
    let snippets: Vec<Vec<f32>> =
        (0..600).map(|i| shapes[i % 3].iter().map(|v| v * (1.0 + (i % 7) as f32 * 0.1)).collect()).collect();
    learn_basis(&snippets, NT, 3, 3).unwrap()
}

/// Unit-variance noise plus spikes `(trough sample, centre channel, amplitude)` spread over
/// three neighbouring rows.
fn batch(n_chan: usize, len: usize, spikes: &[(usize, usize, f32)], seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut data = Array2::from_shape_fn((n_chan, len), |_| {
        let u: f32 = (0..12).map(|_| rng.random::<f32>()).sum();
        u - 6.0
    });
    let wave = shape(3.0, TROUGH as f64);
    for &(t, c, amp) in spikes {
        for (dc, gain) in [(-2i64, 0.4f32), (0, 1.0), (2, 0.4)] {
            let ch = c as i64 + dc;
            if ch < 0 || ch >= n_chan as i64 {
                continue;
            }
            for (s, v) in wave.iter().enumerate() {
                data[[ch as usize, t - TROUGH + s]] += amp * gain * v;
            }
        }
    }
    data
}

/// Kilosort4's rule on all projections: spatial max over neighbours, edges zeroed, temporal
/// max-pool, keep where the projection equals the pooled value and exceeds the threshold.
fn dense_detections(
    basis: &TemporalBasis,
    grid: &TemplateGrid,
    data: ArrayView2<f32>,
    threshold: f32,
) -> Vec<(usize, usize, f32)> {
    let best = dense_best_projection(basis, grid, data);
    let (n_pos, len) = best.dim();
    let spatial = Array2::from_shape_fn((n_pos, len), |(k, t)| {
        if t < NT || t >= len - NT {
            0.0
        } else {
            grid.neighbours.row(k).iter().map(|&n| best[[n, t]]).fold(0.0, f32::max)
        }
    });
    let mut out = Vec::new();
    for t in NT..len - NT {
        for k in 0..n_pos {
            let pooled = (t - TROUGH..=t + TROUGH).map(|u| spatial[[k, u]]).fold(0.0, f32::max);
            if best[[k, t]] > threshold && best[[k, t]] == pooled {
                out.push((t, k, best[[k, t]]));
            }
        }
    }
    out
}

#[test]
fn detections_equal_the_dense_kilosort4_rule() {
    let probe = two_column_probe(12);
    let grid = TemplateGrid::new(&probe, &Settings::default());
    let basis = basis();
    // Long enough for three time chunks; spikes close to the first chunk boundary (column
    // 61 + 2048, detections ≈ 10 samples after the trough) and to the end.
    let spikes = [
        (300, 4, 25.0),
        (330, 18, 14.0),
        (900, 10, -20.0),
        (905, 12, 12.0),
        (1500, 22, 11.0),
        (2085, 6, 18.0),
        (2099, 8, 16.0),
        (2104, 14, 13.0),
        (4400, 20, 15.0),
    ];
    let data = batch(probe.len(), 4500, &spikes, 5);
    let other = batch(probe.len(), 4500, &spikes[..4], 6);
    let depth = probe.y.clone();
    for threshold in [9.0f32, 6.0] {
        let matcher = UniversalMatcher::new(&basis, &grid, &depth, TROUGH, threshold as f64);
        // Scratch used on another batch first: what it keeps between calls must not leak.
        let mut scratch = DetectionScratch::default();
        matcher.detect_with(other.view(), &mut scratch);
        let ours = matcher.detect_with(data.view(), &mut scratch);
        let again = matcher.detect(data.view());
        assert_eq!((&ours.column, &ours.template, &ours.kind), (&again.column, &again.template, &again.kind));
        assert_eq!(
            ours.depth.iter().map(|d| d.to_bits()).collect::<Vec<_>>(),
            again.depth.iter().map(|d| d.to_bits()).collect::<Vec<_>>()
        );
        let reference = dense_detections(&basis, &grid, data.view(), threshold);
        let ours: Vec<(usize, usize, f32)> = ours
            .column
            .iter()
            .zip(&ours.template)
            .zip(&ours.amplitude)
            .map(|((&t, &k), &a)| (t, k as usize, a))
            .collect();
        assert_eq!(ours.len(), reference.len(), "threshold {threshold}");
        assert!(ours.iter().any(|d| (2090..2130).contains(&d.0)), "detections near the chunk boundary");
        for (a, b) in ours.iter().zip(&reference) {
            assert_eq!((a.0, a.1), (b.0, b.1));
            assert!((a.2 - b.2).abs() <= 1e-4 * b.2, "{} vs {}", a.2, b.2);
        }
    }
}

#[test]
fn injected_spikes_are_found_near_their_trough_and_depth() {
    let probe = two_column_probe(16);
    let grid = TemplateGrid::new(&probe, &Settings::default());
    let basis = basis();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Spikes at least 150 samples apart so each is isolated in time.
    let spikes: Vec<(usize, usize, f32)> = (0..40)
        .map(|i| (200 + 150 * i, 2 + rng.random_range(0..probe.len() - 4), 15.0 + 10.0 * rng.random::<f32>()))
        .collect();
    let data = batch(probe.len(), 200 + 150 * 40 + 200, &spikes, 12);
    let matcher = UniversalMatcher::new(&basis, &grid, &probe.y, TROUGH, 9.0);
    let found = matcher.detect(data.view());
    let mut hits = 0;
    for &(t, c, _) in &spikes {
        // The detection index is the window centre, nt/2 − nt0min samples after the trough.
        let expected = t + NT / 2 - TROUGH;
        let hit = (0..found.column.len())
            .find(|&i| found.column[i].abs_diff(expected) <= 3 && (found.depth[i] - probe.y[c]).abs() <= 20.0);
        hits += hit.is_some() as usize;
    }
    assert!(hits >= 39, "found {hits} of 40 injected spikes");
    assert!(found.column.len() <= 44, "{} detections for 40 spikes", found.column.len());
    assert_eq!(found.features.len(), found.column.len() * grid.channels.ncols() * basis.n_pcs());
}

#[test]
fn pure_noise_gives_almost_no_detections() {
    let probe = two_column_probe(16);
    let grid = TemplateGrid::new(&probe, &Settings::default());
    let basis = basis();
    let data = batch(probe.len(), 30_000, &[], 4);
    let found = UniversalMatcher::new(&basis, &grid, &probe.y, TROUGH, 9.0).detect(data.view());
    assert!(found.column.len() <= 2, "{} false detections in 1 s of noise", found.column.len());
}

/// A plan over a small all-zero recording.
fn zero_plan(settings: Settings) -> (tempfile::TempDir, crate::plan::Plan) {
    use crate::io::{BinaryRecording, Dtype};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.bin");
    let probe = two_column_probe(4);
    std::fs::write(&path, vec![0u8; probe.len() * 70_000 * 2]).unwrap();
    let recording = BinaryRecording::open(&[path], probe.len(), Dtype::Int16).unwrap();
    let settings = Settings { n_chan_bin: Some(probe.len()), ..settings };
    let plan = crate::plan::Plan::new(&settings, &probe, &recording).unwrap();
    (dir, plan)
}

#[test]
fn without_templates_from_data_the_builtin_set_is_used_without_reading_data() {
    let (_dir, plan) = zero_plan(Settings { templates_from_data: false, n_templates: 3, ..Settings::default() });
    let unread = |_: usize| -> Array2<f32> { panic!("the built-in set needs no data") };
    let basis = learn_temporal_basis(&unread, &plan, &crate::progress::NoProgress).unwrap();
    // n_templates is ignored, as in Kilosort4: the stored set has 6.
    assert_eq!(basis, TemporalBasis::builtin());
    assert_eq!(basis.n_templates(), 6);
}

#[test]
fn a_plan_that_does_not_fit_the_builtin_set_is_an_error() {
    let (_dir, mut plan) = zero_plan(Settings { templates_from_data: false, ..Settings::default() });
    // Settings changed after validation.
    plan.settings.n_pcs = 4;
    let unread = |_: usize| -> Array2<f32> { panic!("the built-in set needs no data") };
    let msg = learn_temporal_basis(&unread, &plan, &crate::progress::NoProgress).unwrap_err().to_string();
    assert!(msg.contains("`n_pcs` = 4") && msg.contains("n_pcs = 6") && msg.contains("templates_from_data"), "{msg}");
}
