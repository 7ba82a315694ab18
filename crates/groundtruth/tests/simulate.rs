//! The simulator checked on its own output files: determinism, spike statistics, drift and SNR.

use std::path::Path;

use groundtruth::sim::{DriftConfig, DriftKind, SimulationConfig, simulate};
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;

fn run(config: &SimulationConfig, dir: &Path) {
    simulate(config, dir, false, &mut |_| {}).unwrap();
}

fn small(preset: &str, seconds: f64) -> SimulationConfig {
    SimulationConfig { duration_s: seconds, ..SimulationConfig::preset(preset).unwrap() }
}

/// The recording as (samples × channels) µV.
fn recording(dir: &Path) -> Array2<f32> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("simulation.json")).unwrap()).unwrap();
    let n_chan = meta["n_chan_bin"].as_u64().unwrap() as usize;
    let scale = meta["uv_per_bit"].as_f64().unwrap() as f32;
    let bytes = std::fs::read(dir.join("recording.bin")).unwrap();
    let values: Vec<f32> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 * scale).collect();
    Array2::from_shape_vec((values.len() / n_chan, n_chan), values).unwrap()
}

fn units(dir: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str::<Vec<serde_json::Value>>(&std::fs::read_to_string(dir.join("gt_units.json")).unwrap())
        .unwrap()
}

fn spikes(dir: &Path) -> (Array1<i64>, Array1<i64>) {
    (read_npy(dir.join("gt_spike_times.npy")).unwrap(), read_npy(dir.join("gt_spike_clusters.npy")).unwrap())
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small("tetrode-like", 3.0);
    run(&config, &tmp.path().join("a"));
    run(&config, &tmp.path().join("b"));
    for file in [
        "recording.bin",
        "gt_spike_times.npy",
        "gt_spike_clusters.npy",
        "gt_units.json",
        "simulation.json",
        "probe.json",
    ] {
        let a = std::fs::read(tmp.path().join("a").join(file)).unwrap();
        assert_eq!(a, std::fs::read(tmp.path().join("b").join(file)).unwrap(), "{file} differs between runs");
    }
    run(&SimulationConfig { seed: 2, ..config.clone() }, &tmp.path().join("c"));
    assert_ne!(
        std::fs::read(tmp.path().join("a/recording.bin")).unwrap(),
        std::fs::read(tmp.path().join("c/recording.bin")).unwrap()
    );
    assert!(!tmp.path().join(".a.partial").exists(), "no partial folder left behind");
    let err = simulate(&config, &tmp.path().join("a"), false, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("already exists") && err.contains("--overwrite"), "{err}");
}

#[test]
fn spike_trains_have_the_right_rates_and_respect_refractoriness() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small("linear32", 60.0);
    run(&config, tmp.path());
    let (times, clusters) = spikes(tmp.path());
    assert!(times.windows(2).into_iter().all(|w| w[0] <= w[1]), "times sorted");
    let refractory = (config.refractory_ms / 1000.0 * config.fs) as i64;
    for unit in units(tmp.path()).iter().filter(|u| !u["is_distractor"].as_bool().unwrap()) {
        let id = unit["unit_id"].as_i64().unwrap();
        let own: Vec<i64> = times.iter().zip(&clusters).filter(|(_, c)| **c == id).map(|(t, _)| *t).collect();
        assert!(own.windows(2).all(|w| w[1] - w[0] >= refractory), "unit {id} violates its refractory period");
        let expected = unit["rate_hz"].as_f64().unwrap() * config.duration_s;
        let tolerance = 5.0 * expected.sqrt() + 0.15 * expected + 3.0;
        assert!(
            (own.len() as f64 - expected).abs() < tolerance,
            "unit {id}: {} spikes, expected ≈ {expected:.0}",
            own.len()
        );
    }
}

/// Mean waveform of `times` on file column `column` (µV), baseline removed.
fn mean_snippet(rec: &Array2<f32>, times: &[i64], column: usize, half: usize) -> Vec<f64> {
    let mut sum = vec![0.0; 2 * half + 1];
    let inside: Vec<i64> =
        times.iter().copied().filter(|&t| t >= half as i64 && (t as usize) + half < rec.nrows()).collect();
    for &t in &inside {
        for (k, s) in sum.iter_mut().enumerate() {
            *s += rec[[t as usize + k - half, column]] as f64;
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / inside.len() as f64).collect();
    let baseline = (mean[..10].iter().sum::<f64>() + mean[mean.len() - 10..].iter().sum::<f64>()) / 20.0;
    mean.iter().map(|m| m - baseline).collect()
}

fn robust_sd(column: ndarray::ArrayView1<f32>) -> f64 {
    let mut v: Vec<f64> = column.iter().map(|&x| x as f64).collect();
    let median = stats_median(&mut v);
    let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
    stats_median(&mut dev) / 0.6745
}

fn stats_median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn written_snr_is_the_snr_measured_on_the_file_and_spikes_look_extracellular() {
    let tmp = tempfile::tempdir().unwrap();
    run(&small("np1-64", 30.0), tmp.path());
    let rec = recording(tmp.path());
    let (times, clusters) = spikes(tmp.path());
    let mut checked = 0;
    for unit in units(tmp.path()).iter().filter(|u| !u["is_distractor"].as_bool().unwrap()) {
        let id = unit["unit_id"].as_i64().unwrap();
        let own: Vec<i64> = times.iter().zip(&clusters).filter(|(_, c)| **c == id).map(|(t, _)| *t).collect();
        if own.len() < 60 {
            continue;
        }
        let column = unit["best_channel_row"].as_u64().unwrap() as usize;
        let snippet = mean_snippet(&rec, &own, column, 45);
        let trough = snippet.iter().cloned().fold(f64::MAX, f64::min);
        let trough_at = snippet.iter().position(|&v| v == trough).unwrap();
        assert!((44..=46).contains(&trough_at), "unit {id}: trough at the ground-truth sample, got {trough_at}");
        let peak_after = snippet[trough_at..].iter().cloned().fold(f64::MIN, f64::max);
        assert!(peak_after > 0.1 * -trough, "unit {id}: a positive repolarisation follows the trough");
        let measured = -trough / robust_sd(rec.column(column));
        let written = unit["snr"].as_f64().unwrap();
        assert!((measured / written - 1.0).abs() < 0.2, "unit {id}: written SNR {written:.2}, measured {measured:.2}");
        // The footprint decays with distance: 200 µm away (10 rows on this layout) it is much smaller.
        let far_column = if column >= 20 { column - 20 } else { column + 20 };
        let far = mean_snippet(&rec, &own, far_column, 45).iter().cloned().fold(f64::MAX, f64::min);
        assert!(-far < 0.35 * -trough, "unit {id}: 200 µm away {far:.1} µV vs {trough:.1} µV at the best channel");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} units had enough spikes");
}

#[test]
fn drift_file_matches_the_motion_seen_in_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let config = SimulationConfig {
        n_units: 12,
        n_distractors: 0,
        snr_range: [15.0, 40.0],
        rate_range_hz: [10.0, 30.0],
        drift: DriftConfig {
            kind: DriftKind::Rigid,
            amplitude_um: 40.0,
            jumps_per_minute: 0.0,
            step_um: 0.0,
            step_time_s: 0.0,
        },
        ..small("np1-64", 60.0)
    };
    run(&config, tmp.path());
    let drift: Array2<f32> = read_npy(tmp.path().join("drift_um.npy")).unwrap();
    assert_eq!(drift.dim(), (601, 1), "rigid drift at 10 Hz");
    let rec = recording(tmp.path());
    let (times, clusters) = spikes(tmp.path());
    let probe = kilosort::Probe::load(&tmp.path().join("probe.json")).unwrap();
    // Per unit and 5 s window: depth of the unit's mean trough, weighted by trough² over
    // channels; each unit's track minus its own mean, averaged over units away from the ends.
    const WINDOWS: usize = 12;
    let inner: Vec<i64> = units(tmp.path())
        .iter()
        .filter(|u| (150.0..500.0).contains(&u["y_um"].as_f64().unwrap()))
        .map(|u| u["unit_id"].as_i64().unwrap())
        .collect();
    assert!(inner.len() >= 4, "enough units away from the probe ends");
    let mut measured = [0.0; WINDOWS];
    for &id in &inner {
        let track: Vec<f64> = (0..WINDOWS)
            .map(|w| {
                let (t0, t1) = (w as i64 * 150_000, (w as i64 + 1) * 150_000);
                let own: Vec<i64> = times
                    .iter()
                    .zip(&clusters)
                    .filter(|(t, c)| **c == id && **t >= t0 && **t < t1)
                    .map(|(t, _)| *t)
                    .collect();
                let (mut wy, mut wsum) = (0.0, 0.0);
                for c in 0..probe.len() {
                    let trough = mean_snippet(&rec, &own, c, 45)[45].min(0.0);
                    wy += trough * trough * probe.y[c] as f64;
                    wsum += trough * trough;
                }
                wy / wsum
            })
            .collect();
        let mean = track.iter().sum::<f64>() / WINDOWS as f64;
        measured.iter_mut().zip(&track).for_each(|(m, t)| *m += (t - mean) / inner.len() as f64);
    }
    let truth: Vec<f64> =
        (0..WINDOWS).map(|w| (w * 50..(w + 1) * 50).map(|r| drift[[r, 0]] as f64).sum::<f64>() / 50.0).collect();
    let (mm, mt) = (measured.iter().sum::<f64>() / WINDOWS as f64, truth.iter().sum::<f64>() / WINDOWS as f64);
    let cov: f64 = measured.iter().zip(&truth).map(|(m, t)| (m - mm) * (t - mt)).sum();
    let (vm, vt): (f64, f64) =
        (measured.iter().map(|m| (m - mm).powi(2)).sum(), truth.iter().map(|t| (t - mt).powi(2)).sum());
    let correlation = cov / (vm * vt).sqrt();
    assert!(correlation > 0.95, "measured depth follows drift_um.npy: r = {correlation:.2}");
    let slope = cov / vt;
    eprintln!("drift check: r = {correlation:.3}, slope = {slope:.3}");
    assert!(slope > 0.85 && slope < 1.15, "and moves by about the same amount: slope {slope:.2}");
}

#[test]
fn same_bytes_whatever_the_thread_count_and_the_calling_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let config = small("np1-64", 2.0);
    run(&config, &tmp.path().join("plain"));
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        // Called from inside a pool (the renderer then runs on the calling thread).
        pool.install(|| run(&config, &tmp.path().join(format!("pool{threads}"))));
        for file in ["recording.bin", "gt_units.json"] {
            let a = std::fs::read(tmp.path().join("plain").join(file)).unwrap();
            let b = std::fs::read(tmp.path().join(format!("pool{threads}")).join(file)).unwrap();
            assert!(a == b, "{file} differs with {threads} thread(s)");
        }
    }
}

/// Power of `x` at `freq_hz`, averaged over windows of 3000 samples (10 Hz resolution).
fn power_at(x: &[f64], freq_hz: f64, fs: f64) -> f64 {
    let windows: Vec<f64> = x
        .chunks_exact(3000)
        .map(|w| {
            let (mut re, mut im) = (0.0, 0.0);
            for (t, &v) in w.iter().enumerate() {
                let phase = std::f64::consts::TAU * freq_hz * t as f64 / fs;
                re += v * phase.cos();
                im += v * phase.sin();
            }
            (re * re + im * im) / w.len() as f64
        })
        .collect();
    windows.iter().sum::<f64>() / windows.len() as f64
}

#[test]
fn background_noise_is_band_limited_spatially_correlated_and_uneven_across_channels() {
    let tmp = tempfile::tempdir().unwrap();
    let config = SimulationConfig { n_units: 0, n_distractors: 0, ..small("np1-64", 4.0) };
    run(&config, tmp.path());
    let rec = recording(tmp.path()).mapv(|v| v as f64);
    let centred: Vec<Vec<f64>> = rec
        .columns()
        .into_iter()
        .map(|c| {
            let mean = c.mean().unwrap();
            c.iter().map(|v| v - mean).collect()
        })
        .collect();
    let sd: Vec<f64> = centred.iter().map(|c| (c.iter().map(|v| v * v).sum::<f64>() / c.len() as f64).sqrt()).collect();
    // Each channel's own level is 10 µV ± 20 %, plus a 4 µV common-mode signal.
    let (lo, hi) = (sd.iter().cloned().fold(f64::MAX, f64::min), sd.iter().cloned().fold(0.0, f64::max));
    let (floor, ceiling) = ((0.8f64 * 10.0).hypot(4.0), (1.2f64 * 10.0).hypot(4.0));
    assert!(lo > 0.97 * floor && hi < 1.03 * ceiling, "channel SDs {lo:.2}–{hi:.2} µV");
    assert!(hi / lo > 1.15, "levels differ between channels: {lo:.2}–{hi:.2} µV");

    let correlation = |a: usize, b: usize| {
        let dot: f64 = centred[a].iter().zip(&centred[b]).map(|(x, y)| x * y).sum();
        dot / centred[a].len() as f64 / (sd[a] * sd[b])
    };
    // On this layout channel c + 2 is the next row (20 µm up, 16 µm across); c + 20 is 200 µm up.
    let near = (0..40).map(|c| correlation(c, c + 2)).sum::<f64>() / 40.0;
    let far = (0..40).map(|c| correlation(c, c + 20)).sum::<f64>() / 40.0;
    assert!(near > far + 0.1, "neighbours correlate more than far channels: {near:.3} vs {far:.3}");
    // Far channels share only the common mode: 4² / (10² + 4²) of the variance.
    assert!((far - 16.0 / 116.0).abs() < 0.05, "far correlation {far:.3}");

    let x = &centred[10];
    let band = [1000.0, 3000.0].map(|f| power_at(x, f, config.fs));
    let inside = band[0].min(band[1]);
    let (below, above) = (power_at(x, 30.0, config.fs), power_at(x, 13_000.0, config.fs));
    assert!(below < inside / 30.0 && above < inside / 5.0, "in band {band:?}, 30 Hz {below:.3}, 13 kHz {above:.3}");
}
