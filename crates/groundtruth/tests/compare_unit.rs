//! Behaviour of `groundtruth::compare` that needs no SpikeInterface fixture: identities, edge
//! cases, loaders and speed.

use std::time::Instant;

use groundtruth::compare::{
    CompareError, CompareOptions, SpikeTrains, compare, compare_with_gt_units, load_gt_folder, load_gt_snr,
    load_npy_pair, load_phy_folder,
};
use ndarray::{Array1, Array2};
use ndarray_npy::write_npy;

/// xorshift64*, deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n_units` Poisson-like trains with a 2 ms refractory period over `n_samples`.
fn synthetic_gt(rng: &mut Rng, n_units: i64, spikes_per_unit: u64, n_samples: i64) -> SpikeTrains {
    let mut st = SpikeTrains::default();
    for u in 0..n_units {
        let mean_isi = (n_samples as u64 / spikes_per_unit).max(61);
        let mut t = rng.below(mean_isi) as i64;
        while t < n_samples {
            st.times.push(t);
            st.units.push(u);
            t += 60 + rng.below(2 * (mean_isi - 60)) as i64;
        }
    }
    st
}

#[test]
fn gt_vs_itself_scores_one_everywhere() {
    let gt = synthetic_gt(&mut Rng(7), 20, 300, 900_000);
    let c = compare(&gt, &gt, 30_000.0, &CompareOptions::default());
    assert_eq!(c.n_gt_units, 20);
    for u in &c.per_gt_unit {
        assert_eq!(u.matched_unit, Some(u.gt_unit));
        assert_eq!((u.accuracy, u.precision, u.recall, u.ks_score), (1.0, 1.0, 1.0, 1.0));
    }
    assert_eq!((c.well_detected, c.false_positive_units, c.redundant, c.bad_units), (20, Some(0), Some(0), Some(0)));
    assert_eq!((c.accuracy_mean, c.accuracy_median, c.ks_correct), (1.0, 1.0, 20));
    assert_eq!(c.median_lag_samples, Some(0.0));
}

#[test]
fn shuffled_labels_score_near_zero() {
    let mut rng = Rng(11);
    let gt = synthetic_gt(&mut rng, 15, 200, 900_000);
    let mut labels = gt.units.clone();
    for i in (1..labels.len()).rev() {
        labels.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let shuffled = SpikeTrains { times: gt.times.clone(), units: labels };
    let c = compare(&gt, &shuffled, 30_000.0, &CompareOptions::default());
    assert!(c.accuracy_mean < 0.1, "mean accuracy {}", c.accuracy_mean);
    assert_eq!(c.well_detected, 0);
    assert!(c.per_gt_unit.iter().all(|u| u.ks_score < 0.3));
}

#[test]
fn empty_inputs_give_zeros_not_nan() {
    let gt = synthetic_gt(&mut Rng(3), 4, 50, 300_000);
    let empty = SpikeTrains::default();
    let c = compare(&gt, &empty, 30_000.0, &CompareOptions::default());
    assert_eq!((c.n_sorted_units, c.well_detected, c.bad_units, c.ks_correct), (0, 0, Some(0), 0));
    assert!(c.per_gt_unit.iter().all(|u| u.accuracy == 0.0 && u.matched_unit.is_none() && u.ks_score == 0.0));
    assert_eq!(c.median_lag_samples, None);

    let c = compare(&empty, &gt, 30_000.0, &CompareOptions::default());
    assert_eq!((c.n_gt_units, c.accuracy_mean, c.false_positive_units), (0, 0.0, Some(4)));
    let j: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
    assert!(j["accuracy_mean"].is_null(), "score.py writes null for an empty GT set");

    let c = compare(&empty, &empty, 30_000.0, &CompareOptions::default());
    assert_eq!((c.n_gt_units, c.n_sorted_units), (0, 0));
    assert!(!c.table().is_empty());
}

#[test]
fn gt_units_without_spikes_count_as_zero() {
    let gt = SpikeTrains { times: vec![100, 200, 300], units: vec![1, 1, 1] };
    let c = compare_with_gt_units(&gt, &gt, &[1, 5], 30_000.0, &CompareOptions::default());
    assert_eq!(c.gt_unit_ids, vec![1, 5]);
    assert_eq!(c.per_gt_unit[1].n_spikes, 0);
    assert_eq!((c.per_gt_unit[1].accuracy, c.per_gt_unit[1].ks_score), (0.0, 0.0));
    assert_eq!(c.accuracy_mean, 0.5);
    let s = c.restrict_to(&[1, 1, 99]);
    assert_eq!((s.n_gt_units, s.accuracy_mean, s.ks_correct), (1, Some(1.0), 1));
    assert_eq!(c.restrict_to(&[]).accuracy_mean, None);
}

#[test]
fn out_of_range_spikes_are_dropped_like_score_py() {
    let mut st = SpikeTrains { times: vec![-1, 0, 5, 10, 11], units: vec![1, 2, 3, 4, 5] };
    assert_eq!(st.retain_in_range(10), 3);
    assert_eq!(st, SpikeTrains { times: vec![0, 5], units: vec![2, 3] });
}

#[test]
fn non_exhaustive_gt_leaves_unit_categories_undefined() {
    let gt = SpikeTrains { times: vec![100, 200], units: vec![0, 0] };
    let opts = CompareOptions { exhaustive_gt: false, ..CompareOptions::default() };
    let c = compare(&gt, &gt, 30_000.0, &opts);
    assert_eq!(
        (c.well_detected, c.false_positive_units, c.redundant, c.overmerged, c.bad_units),
        (1, None, None, None, None)
    );
    assert!(c.table().contains("false positive n/a"));
}

#[test]
fn table_and_json_name_every_gt_unit() {
    let gt = synthetic_gt(&mut Rng(5), 3, 40, 300_000);
    let c = compare(&gt, &gt, 30_000.0, &CompareOptions::default());
    assert_eq!(c.table().lines().count(), 4 + 3);
    let j: serde_json::Value = serde_json::from_str(&c.to_json_with_subset(&c.restrict_to(&[0]))).unwrap();
    for key in ["gt_unit", "matched_unit", "accuracy", "precision", "recall", "ks_score"] {
        assert!(!j["per_gt_unit"][0][key].is_null(), "{key}");
    }
    assert_eq!(j["gt_subset"]["n_gt_units"], 1);
}

#[test]
fn loaders_read_phy_and_gt_folders() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // Kilosort style: uint64 (n,1) times, int32 clusters, params.py
    write_npy(p.join("spike_times.npy"), &Array2::from_shape_vec((3, 1), vec![5u64, 9, 2]).unwrap()).unwrap();
    write_npy(p.join("spike_templates.npy"), &Array1::from(vec![0u32, 0, 0])).unwrap();
    write_npy(p.join("spike_clusters.npy"), &Array1::from(vec![4i32, 4, 7])).unwrap();
    std::fs::write(p.join("params.py"), "dat_path = 'x.bin'\nsample_rate = 30_000.0  # Hz\n").unwrap();
    let (st, fs) = load_phy_folder(p).unwrap();
    assert_eq!((st.times, st.units, fs), (vec![5, 9, 2], vec![4, 4, 7], Some(30000.0)));
    // spike_templates.npy fallback, no params.py
    std::fs::remove_file(p.join("spike_clusters.npy")).unwrap();
    std::fs::remove_file(p.join("params.py")).unwrap();
    let (st, fs) = load_phy_folder(p).unwrap();
    assert_eq!((st.units, fs), (vec![0, 0, 0], None));
    // length mismatch names both files
    write_npy(p.join("c.npy"), &Array1::from(vec![1i64, 2])).unwrap();
    let e = load_npy_pair(&p.join("spike_times.npy"), &p.join("c.npy")).unwrap_err();
    assert!(matches!(e, CompareError::LengthMismatch { n_times: 3, n_clusters: 2, .. }), "{e}");
    // wrong shape / missing file
    write_npy(p.join("m.npy"), &Array2::<i64>::zeros((2, 2))).unwrap();
    let e = load_npy_pair(&p.join("m.npy"), &p.join("c.npy")).unwrap_err().to_string();
    assert!(e.contains("m.npy") && e.contains("[2, 2]"), "{e}");
    let e = load_phy_folder(&p.join("nowhere")).unwrap_err().to_string();
    assert!(e.contains("spike_clusters.npy"), "{e}");
    std::fs::write(p.join("params.py"), "sample_rate = params['fs']\n").unwrap();
    let e = load_phy_folder(p).unwrap_err().to_string();
    assert!(e.contains("params.py") && e.contains("sample_rate"), "{e}");

    // ground truth: meta.json "fs", else simulation.json config.fs, else a clear error
    let g = tempfile::tempdir().unwrap();
    let g = g.path();
    write_npy(g.join("gt_spike_times.npy"), &Array1::from(vec![10i64, 20])).unwrap();
    write_npy(g.join("gt_spike_clusters.npy"), &Array1::from(vec![0i64, 1])).unwrap();
    let e = load_gt_folder(g).unwrap_err().to_string();
    assert!(e.contains("meta.json") && e.contains("fs"), "{e}");
    std::fs::write(g.join("simulation.json"), r#"{"config": {"fs": 25000}}"#).unwrap();
    assert_eq!(load_gt_folder(g).unwrap().1, 25000.0);
    std::fs::write(g.join("meta.json"), r#"{"fs": 30000.0, "n_samples": 100}"#).unwrap();
    let (gt, fs) = load_gt_folder(g).unwrap();
    assert_eq!((gt.times, gt.units, fs), (vec![10, 20], vec![0, 1], 30000.0));
    assert_eq!(load_gt_snr(g).unwrap(), None);
    std::fs::write(g.join("gt_units.json"), r#"[{"unit_id": 0, "snr": 7.5}, {"unit_id": 1, "snr": 2.0}]"#).unwrap();
    assert_eq!(load_gt_snr(g).unwrap().unwrap().get(&0), Some(&7.5));
    std::fs::remove_file(g.join("gt_spike_clusters.npy")).unwrap();
    let e = load_gt_folder(g).unwrap_err().to_string();
    assert!(e.contains("gt_spike_clusters.npy") && e.contains("ground-truth folder"), "{e}");
}

/// 1e6 GT spikes in 300 units against a jittered, relabelled, partly dropped copy plus noise.
#[test]
fn scores_a_million_spikes_quickly() {
    let mut rng = Rng(2024);
    let n_samples = 30_000 * 1_000;
    let gt = synthetic_gt(&mut rng, 300, 3_333, n_samples);
    assert!(gt.times.len() > 900_000, "{}", gt.times.len());
    let mut sorted = SpikeTrains::default();
    for (&t, &u) in gt.times.iter().zip(&gt.units) {
        if rng.below(10) > 0 {
            sorted.times.push(t + rng.below(13) as i64 - 6);
            sorted.units.push((u * 7919) % 1000 + 1000);
        }
    }
    for _ in 0..100_000 {
        sorted.times.push(rng.below(n_samples as u64) as i64);
        sorted.units.push(5000 + rng.below(20) as i64);
    }
    let t0 = Instant::now();
    let c = compare(&gt, &sorted, 30_000.0, &CompareOptions::default());
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "compare: {} GT spikes x {} sorted spikes, {} x {} units in {secs:.3} s",
        c.n_gt_spikes, c.n_sorted_spikes, c.n_gt_units, c.n_sorted_units
    );
    assert_eq!(c.well_detected, 300);
    assert!(secs < 20.0, "took {secs} s");
}
