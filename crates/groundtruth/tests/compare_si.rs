//! `groundtruth::compare` against SpikeInterface 0.105 itself: the fixtures in
//! tests/data/compare were made by `make_compare_fixtures.py`, which runs
//! `compare_sorter_to_ground_truth` exactly as /work/shared/bench/score.py does, Kilosort's
//! bench.py `match_neuron`, and scipy's `linear_sum_assignment`.

use std::path::{Path, PathBuf};

use groundtruth::compare::{CompareOptions, compare, linear_sum_assignment, load_gt_folder, load_phy_folder};
use serde_json::Value;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/compare")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// -1 is SpikeInterface's "no match".
fn opt_ids(v: &Value) -> Vec<Option<i64>> {
    ints(v).into_iter().map(|x| (x != -1).then_some(x)).collect()
}

fn close(case: &str, what: &str, ours: &[f64], theirs: &[f64]) {
    assert_eq!(ours.len(), theirs.len(), "{case}: {what} length");
    for (k, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!((a - b).abs() <= 1e-9, "{case}: {what}[{k}] ours {a} vs SpikeInterface {b}");
    }
}

fn check_case(name: &str) {
    let dir = data().join(name);
    let e = json(&dir.join("expected.json"));
    let (gt, gt_fs) = load_gt_folder(&data().join(e["gt_dir"].as_str().unwrap())).unwrap();
    assert_eq!(gt_fs, 30000.0);
    let (sorted, params_fs) = load_phy_folder(&dir).unwrap();
    let fs = e["fs"].as_f64().unwrap();
    if let Some(p) = params_fs {
        assert_eq!(p, fs, "{name}: params.py sample_rate");
    }
    let opts = CompareOptions { delta_ms: e["delta_ms"].as_f64().unwrap(), ..CompareOptions::default() };
    let c = compare(&gt, &sorted, fs, &opts);

    assert_eq!(c.delta_frames, e["delta_frames"].as_i64().unwrap(), "{name}: delta_frames");
    assert_eq!(c.ks_delta_frames, e["ks_delta_frames"].as_i64().unwrap(), "{name}: ks_delta_frames");
    assert_eq!(c.n_gt_spikes as i64, e["n_gt_spikes"].as_i64().unwrap());
    assert_eq!(c.n_sorted_spikes as i64, e["n_sorted_spikes"].as_i64().unwrap());
    assert_eq!(c.gt_unit_ids, ints(&e["gt_unit_ids"]), "{name}: gt ids");
    assert_eq!(c.sorted_unit_ids, ints(&e["sorted_unit_ids"]), "{name}: sorted ids");
    let n_gt: Vec<i64> = c.per_gt_unit.iter().map(|u| u.n_spikes as i64).collect();
    assert_eq!(n_gt, ints(&e["event_counts1"]), "{name}: GT spike counts");
    let n_sorted: Vec<i64> = c.sorted_spike_counts.iter().map(|&n| n as i64).collect();
    assert_eq!(n_sorted, ints(&e["event_counts2"]), "{name}: sorted spike counts");

    for (i, row) in e["match_counts"].as_array().unwrap().iter().enumerate() {
        let ours: Vec<i64> = c.match_counts.row(i).iter().map(|&x| x as i64).collect();
        assert_eq!(ours, ints(row), "{name}: match counts row {i} (gt unit {})", c.gt_unit_ids[i]);
    }
    for (i, row) in e["agreement"].as_array().unwrap().iter().enumerate() {
        close(name, &format!("agreement row {i}"), &c.agreement.row(i).to_vec(), &floats(row));
    }

    let h12: Vec<Option<i64>> = c.per_gt_unit.iter().map(|u| u.matched_unit).collect();
    assert_eq!(h12, opt_ids(&e["hungarian_match_12"]), "{name}: hungarian match");
    assert_eq!(c.best_match_12, opt_ids(&e["best_match_12"]), "{name}: best_match_12");
    assert_eq!(c.best_match_21, opt_ids(&e["best_match_21"]), "{name}: best_match_21");

    let col = |f: fn(&groundtruth::compare::UnitScore) -> f64| c.per_gt_unit.iter().map(f).collect::<Vec<_>>();
    let int_col =
        |f: fn(&groundtruth::compare::UnitScore) -> u64| c.per_gt_unit.iter().map(|u| f(u) as i64).collect::<Vec<_>>();
    assert_eq!(int_col(|u| u.tp), ints(&e["tp"]), "{name}: tp");
    assert_eq!(int_col(|u| u.fn_count), ints(&e["fn"]), "{name}: fn");
    assert_eq!(int_col(|u| u.fp_count), ints(&e["fp"]), "{name}: fp");
    close(name, "accuracy", &col(|u| u.accuracy), &floats(&e["accuracy"]));
    close(name, "recall", &col(|u| u.recall), &floats(&e["recall"]));
    close(name, "precision", &col(|u| u.precision), &floats(&e["precision"]));
    close(name, "false_discovery_rate", &col(|u| u.false_discovery_rate), &floats(&e["false_discovery_rate"]));
    close(name, "miss_rate", &col(|u| u.miss_rate), &floats(&e["miss_rate"]));

    assert_eq!(c.well_detected_units, ints(&e["well_detected_ids"]), "{name}: well detected units");
    assert_eq!(c.false_positive_unit_ids, ints(&e["false_positive_ids"]), "{name}: false positive units");
    assert_eq!(c.redundant_units, ints(&e["redundant_ids"]), "{name}: redundant units");
    assert_eq!(c.overmerged_units, ints(&e["overmerged_ids"]), "{name}: overmerged units");
    assert_eq!(c.bad_unit_ids, ints(&e["bad_ids"]), "{name}: bad units");
    assert_eq!(c.well_detected as i64, e["well_detected"].as_i64().unwrap());
    assert_eq!(c.false_positive_units.unwrap() as i64, e["false_positive_units"].as_i64().unwrap());
    assert_eq!(c.redundant.unwrap() as i64, e["redundant"].as_i64().unwrap());
    assert_eq!(c.overmerged.unwrap() as i64, e["overmerged"].as_i64().unwrap());
    assert_eq!(c.bad_units.unwrap() as i64, e["bad_units"].as_i64().unwrap());

    // score.py's summary and median lag
    let s = c.summary();
    let a = &e["all_gt"];
    assert_eq!(s.n_gt_units as i64, a["n_gt_units"].as_i64().unwrap());
    assert_eq!(s.n_acc_ge_0_8 as i64, a["n_acc_ge_0_8"].as_i64().unwrap());
    assert_eq!(s.n_acc_ge_0_5 as i64, a["n_acc_ge_0_5"].as_i64().unwrap());
    for (key, ours) in [
        ("accuracy_mean", s.accuracy_mean),
        ("accuracy_median", s.accuracy_median),
        ("recall_mean", s.recall_mean),
        ("recall_median", s.recall_median),
        ("precision_mean", s.precision_mean),
        ("precision_median", s.precision_median),
        ("precision_mean_matched", s.precision_mean_matched),
    ] {
        // bit for bit: numpy's pairwise summation is replicated (bits stored as integers)
        let theirs = e["all_gt_bits"][key].as_u64().map(f64::from_bits);
        assert_eq!(ours, theirs, "{name}: {key}");
        assert_eq!(theirs.is_some(), a[key].as_f64().is_some(), "{name}: {key} bits vs value");
    }
    close(name, "accuracy_mean (flat)", &[c.accuracy_mean], &[a["accuracy_mean"].as_f64().unwrap()]);
    close(name, "accuracy_median (flat)", &[c.accuracy_median], &[a["accuracy_median"].as_f64().unwrap()]);
    assert_eq!(c.median_lag_samples, e["median_lag_samples"].as_f64(), "{name}: median lag");

    // Kilosort bench.py
    close(name, "ks_score", &col(|u| u.ks_score), &floats(&e["ks_score"]));
    assert_eq!(c.ks_correct as i64, e["ks_correct"].as_i64().unwrap(), "{name}: ks_correct");

    // the JSON carries the same numbers under score.py's keys
    let j: Value = serde_json::from_str(&c.to_json()).unwrap();
    for key in ["n_gt_units", "n_sorted_units", "well_detected", "false_positive_units", "redundant", "overmerged"] {
        assert!(j[key].is_u64(), "{name}: json key {key}");
    }
    assert_eq!(j["per_gt_unit"].as_array().unwrap().len(), c.n_gt_units);
    // (serde_json's default float parser may be 1 ulp off, hence no exact equality)
    assert_eq!(j["all_gt"]["n_acc_ge_0_8"].as_u64(), Some(s.n_acc_ge_0_8 as u64));
    if let Some(m) = s.accuracy_mean {
        close(name, "json accuracy_mean", &[j["accuracy_mean"].as_f64().unwrap()], &[m]);
    }
    assert_eq!(j["ks_correct"].as_u64(), Some(c.ks_correct as u64));
}

macro_rules! si_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_case(stringify!($name));
            }
        )*

        #[test]
        fn every_fixture_case_has_a_test() {
            let index = json(&data().join("cases.json"));
            let mut listed: Vec<String> =
                index["cases"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
            listed.sort();
            let mut ours: Vec<String> = vec![$(stringify!($name).to_string()),*];
            ours.sort();
            assert_eq!(listed, ours);
        }
    };
}

si_cases!(
    exact,
    jitter,
    split,
    merge,
    miss_fp,
    noise_units,
    empty,
    zero_match,
    shuffled,
    ties,
    mixture,
    fs25k_delta06,
    fs20k_delta03,
    conflict,
    conflict2,
);

#[test]
fn hungarian_matches_scipy_on_tie_heavy_matrices() {
    let cases = json(&data().join("hungarian.json"));
    for (k, case) in cases.as_array().unwrap().iter().enumerate() {
        let (nr, nc) = (case["rows"].as_u64().unwrap() as usize, case["cols"].as_u64().unwrap() as usize);
        let cost: Vec<f64> = case["scores"].as_array().unwrap().iter().flat_map(floats).map(|x| -x).collect();
        let ours = linear_sum_assignment(&cost, nr, nc).unwrap();
        let scipy: Vec<(usize, usize)> = case["assignment"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_u64().unwrap() as usize))
            .collect();
        assert_eq!(ours, scipy, "matrix {k} ({nr}x{nc})");
    }
}
