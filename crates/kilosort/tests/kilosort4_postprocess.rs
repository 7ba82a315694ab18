//! Post-processing checked against Kilosort4 4.1.7 on fixed inputs
//! (`tests/data/postprocess/make_postprocess_fixtures.py`): correlograms and refractory metrics,
//! duplicate removal, spike positions, amplitudes and Phy's PC features.

use std::path::{Path, PathBuf};

use kilosort::postprocess::{
    CCG_BIN_S, CCG_HALF_BINS, SpikeChannels, ccg_metrics, check_ccg, correlogram, cross_refractory, pc_features,
    refractoriness, remove_duplicates, spike_amplitudes, spike_positions,
};
use ndarray::{Array1, Array2, Array3, Axis};
use ndarray_npy::{ReadableElement, read_npy};

fn load<A: ReadableElement, D: ndarray::Dimension>(name: &str) -> ndarray::Array<A, D> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/postprocess").join(name);
    read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs + rel * b.abs()
}

struct Trains {
    times: Vec<f64>,
    labels: Vec<u32>,
}

impl Trains {
    fn load() -> Self {
        let times: Array1<f64> = load("trains_times.npy");
        let labels: Array1<i32> = load("trains_labels.npy");
        Trains { times: times.to_vec(), labels: labels.iter().map(|&l| l as u32).collect() }
    }

    fn of(&self, label: i32) -> Vec<f64> {
        self.times.iter().zip(&self.labels).filter(|(_, l)| **l as i32 == label).map(|(t, _)| *t).collect()
    }
}

#[test]
fn correlograms_and_metrics_match_kilosort4() {
    let trains = Trains::load();
    let pairs: Array2<i32> = load("ccg_pairs.npy");
    let counts: Array2<f64> = load("ccg_counts.npy");
    let spans: Array1<f64> = load("ccg_span.npy");
    let metrics: Array2<f64> = load("ccg_metrics.npy");
    let checks: Array2<f64> = load("ccg_check.npy");
    for (p, pair) in pairs.outer_iter().enumerate() {
        let st1 = trains.of(pair[0]);
        let st2 = if pair[1] < 0 { st1.clone() } else { trains.of(pair[1]) };
        let ccg = correlogram(&st1, &st2, CCG_BIN_S, CCG_HALF_BINS);
        let expected: Vec<u64> = counts.row(p).iter().map(|&c| c as u64).collect();
        assert_eq!(ccg.counts, expected, "pair {pair}: every bin, including the round-half-even ones");
        assert_eq!(ccg.span_s, spans[p]);
        let m = ccg_metrics(&ccg, CCG_BIN_S);
        let (r12, q12, q00) = (metrics[[p, 0]], metrics[[p, 1]], metrics[[p, 2]]);
        assert!(close(m.r12, r12, 1e-12, 0.0), "pair {pair}: R12 {} vs {r12}", m.r12);
        // Q12 = ½(1 + erf(x)) loses relative precision near 0 in both implementations.
        assert!(close(m.q12, q12, 1e-9, 1e-15), "pair {pair}: Q12 {} vs {q12}", m.q12);
        assert_eq!(m.q00, q00, "pair {pair}: Q00");
        let check = check_ccg(&st1, (pair[1] >= 0).then_some(&st2[..]), 0.2, 0.25);
        assert_eq!(check.is_refractory, checks[[p, 0]] == 1.0, "pair {pair}");
        assert_eq!(check.cross_refractory, checks[[p, 1]] == 1.0, "pair {pair}");
        assert!(close(check.r12, checks[[p, 2]], 1e-12, 0.0));
    }
    // The halves of one neuron are cross-refractory; independent neurons are not.
    assert!(cross_refractory(&trains.of(2), &trains.of(3), 0.25));
    assert!(!cross_refractory(&trains.of(0), &trains.of(4), 0.25));
}

#[test]
fn refractoriness_matches_kilosort4() {
    let trains = Trains::load();
    let is_ref: Array1<f64> = load("refract_is_ref.npy");
    let r12: Array1<f64> = load("refract_r12.npy");
    let r = refractoriness(&trains.labels, &trains.times, 0.2, 0.25);
    assert_eq!(r.is_refractory, is_ref.iter().map(|&v| v == 1.0).collect::<Vec<_>>());
    for (k, (&ours, &theirs)) in r.contamination.iter().zip(&r12).enumerate() {
        assert!(close(ours, theirs, 1e-12, 0.0), "cluster {k}: {ours} vs {theirs}");
    }
    // Contaminated Poisson train: good, small but non-zero R12. Two merged neurons: R12 ≈ 0.5 or more.
    assert!(r.is_refractory[0] && r.contamination[0] > 0.0 && r.contamination[0] < 0.2);
    assert!(!r.is_refractory[1] && r.contamination[1] > 0.25);
}

#[test]
fn duplicate_removal_matches_kilosort4() {
    let times: Array1<i64> = load("dup_times.npy");
    let labels: Array1<i32> = load("dup_labels.npy");
    let kept: Array1<bool> = load("dup_kept.npy");
    let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    assert_eq!(remove_duplicates(times.as_slice().unwrap(), &labels, 7), kept.to_vec());
}

struct Geometry {
    x: Vec<f32>,
    y: Vec<f32>,
    nearest: Array2<usize>,
    within: Array2<bool>,
    peaks: Vec<usize>,
    templates: Vec<u32>,
    features: Array3<f32>,
}

impl Geometry {
    fn load() -> Self {
        let x: Array1<f32> = load("pos_xc.npy");
        let y: Array1<f32> = load("pos_yc.npy");
        let icc: Array2<i64> = load("pos_icc.npy");
        let mask: Array2<bool> = load("pos_icc_mask.npy");
        let iu: Array1<i64> = load("pos_iu.npy");
        let templates: Array1<i64> = load("pos_templates.npy");
        Geometry {
            x: x.to_vec(),
            y: y.to_vec(),
            nearest: icc.t().mapv(|c| c as usize),
            within: mask.t().to_owned(),
            peaks: iu.iter().map(|&c| c as usize).collect(),
            templates: templates.iter().map(|&t| t as u32).collect(),
            features: load("pos_tf.npy"),
        }
    }

    fn channels(&self) -> SpikeChannels<'_> {
        SpikeChannels {
            nearest: self.nearest.view(),
            within_limit: self.within.view(),
            template_peak: &self.peaks,
            spike_template: &self.templates,
        }
    }
}

#[test]
fn positions_and_amplitudes_match_kilosort4() {
    let g = Geometry::load();
    let expected_xy: Array2<f32> = load("pos_xy.npy");
    let expected_amp: Array1<f32> = load("pos_amplitudes.npy");
    let xy = spike_positions(g.features.view(), &g.channels(), &g.x, &g.y);
    for (ours, theirs) in xy.iter().zip(&expected_xy) {
        assert!(close(*ours as f64, *theirs as f64, 1e-5, 1e-4), "{ours} vs {theirs}");
    }
    for (ours, theirs) in spike_amplitudes(g.features.view()).iter().zip(&expected_amp) {
        assert!(close(*ours as f64, *theirs as f64, 1e-6, 0.0), "{ours} vs {theirs}");
    }
}

#[test]
fn pc_features_match_kilosort4_when_no_template_is_shared() {
    check_pc_features("a");
}

#[test]
fn pc_features_put_each_spike_on_its_own_clusters_channels() {
    // Reference: Kilosort4's make_pc_features called on each cluster's spikes alone.
    check_pc_features("b");
}

fn check_pc_features(case: &str) {
    let g = Geometry::load();
    let clusters: Array1<i32> = load(&format!("pcf_clusters_{case}.npy"));
    let expected_features: Array3<f32> = load(&format!("pcf_features_{case}.npy"));
    let expected_ind: Array2<u32> = load(&format!("pcf_ind_{case}.npy"));
    let labels: Vec<u32> = clusters.iter().map(|&c| c as u32).collect();
    let out = pc_features(g.features.clone(), &labels, &g.channels(), expected_ind.nrows());
    assert_eq!(out.channel_index, expected_ind, "case {case}");
    assert_eq!(out.features.dim(), expected_features.dim());
    for (i, (ours, theirs)) in out.features.axis_iter(Axis(0)).zip(expected_features.axis_iter(Axis(0))).enumerate() {
        assert_eq!(ours, theirs, "case {case}, spike {i}: features are copied, not computed");
    }
}
