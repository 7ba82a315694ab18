//! Learned templates, template cross-correlations, matching pursuit and merging checked against
//! Kilosort4 4.1.7 itself (`tests/data/matching/make_matching_fixtures.py`).

use std::path::{Path, PathBuf};

use kilosort::Probe;
use kilosort::detect::TemporalBasis;
use kilosort::matching::{
    LabelledSpikes, MatchedBatch, MatchingOptions, MergeOptions, TemplateMatcher, align_template, learned_templates,
    merge_templates, similar_norms, similar_templates, template_cross_correlations,
};
use ndarray::{Array1, Array2, Array3, Axis, Dimension};
use ndarray_npy::{ReadableElement, read_npy};

fn load<T: ReadableElement, D: Dimension>(name: &str) -> ndarray::Array<T, D> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/matching").join(name);
    read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn basis() -> TemporalBasis {
    TemporalBasis { pcs: load("wPCA.npy"), templates: load("wTEMP.npy") }
}

fn probe() -> Probe {
    let (x, y): (Array1<f32>, Array1<f32>) = (load("probe_x.npy"), load("probe_y.npy"));
    let n = x.len();
    Probe::new("fixture", (0..n as u32).collect(), x.to_vec(), y.to_vec(), vec![0.0; n], n).unwrap()
}

/// Kilosort4's `U` `(K, n_pcs, n_chan)` in our layout `(K, n_chan, n_pcs)`.
fn templates() -> Array3<f32> {
    let u: Array3<f32> = load("U.npy");
    u.permuted_axes([0, 2, 1]).as_standard_layout().into_owned()
}

/// max |a − b| relative to max |b|.
fn relative_error<D: Dimension>(a: &ndarray::Array<f32, D>, b: &ndarray::Array<f32, D>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    diff / b.iter().map(|v| v.abs()).fold(0.0, f32::max)
}

#[test]
fn cross_correlations_equal_kilosort4s_ctc_and_the_time_domain_definition() {
    let (t, basis) = (templates(), basis());
    let ctc = template_cross_correlations(t.view(), basis.pcs.view());
    let theirs: Array3<f32> = load("ctc.npy");
    assert!(relative_error(&ctc, &theirs) < 1e-5, "{}", relative_error(&ctc, &theirs));
    // ctc[a, b, τ] = Σ_c Σ_s T_a(c, s)·T_b(c, s + τ − nt), from the waveforms directly.
    let waves: Vec<Array2<f32>> = t.outer_iter().map(|w| w.dot(&basis.pcs)).collect();
    let nt = 61i64;
    for (a, b, tau) in [(0, 1, 61), (1, 2, 40), (2, 0, 75), (1, 1, 70)] {
        let lag = tau as i64 - nt;
        let mut direct = 0.0f64;
        for c in 0..8 {
            for s in (0..nt).filter(|s| (0..nt).contains(&(s + lag))) {
                direct += (waves[a][[c, s as usize]] * waves[b][[c, (s + lag) as usize]]) as f64;
            }
        }
        assert!((ctc[[a, b, tau]] as f64 - direct).abs() < 1e-3, "{a} {b} {tau}");
    }
}

fn options() -> MatchingOptions {
    MatchingOptions {
        batch_size: 1000,
        nt0min: 20,
        batch_downsampling: 1,
        th_learned: 8.0,
        max_peels: 100,
        position_limit: 100.0,
        nearest_chans: 8,
    }
}

#[test]
fn matching_pursuit_equals_kilosort4s_extract() {
    let matcher = TemplateMatcher::new(templates().view(), &basis(), &probe(), options());
    let batches: Vec<MatchedBatch> = ["batch0.npy", "batch1.npy"]
        .iter()
        .enumerate()
        .map(|(i, name)| matcher.match_batch(load::<f32, _>(name).view(), i))
        .collect();
    let st: Array2<f64> = load("extract_st.npy");
    let tf: Array3<f32> = load("extract_tF.npy");
    let samples: Vec<i64> = batches.iter().flat_map(|b| b.sample.clone()).collect();
    let template: Vec<u32> = batches.iter().flat_map(|b| b.template.clone()).collect();
    let th: Vec<f32> = batches.iter().flat_map(|b| b.threshold_amp.clone()).collect();
    assert_eq!(samples, st.column(0).iter().map(|&t| t as i64).collect::<Vec<_>>());
    assert_eq!(template, st.column(1).iter().map(|&k| k as u32).collect::<Vec<_>>());
    for (ours, theirs) in th.iter().zip(st.column(2)) {
        assert!((*ours as f64 / theirs - 1.0).abs() < 1e-5, "{ours} vs {theirs}");
    }
    let views: Vec<_> = batches.iter().map(|b| b.features.view()).collect();
    let features = ndarray::concatenate(Axis(0), &views).unwrap();
    assert!(relative_error(&features, &tf) < 1e-5, "{}", relative_error(&features, &tf));
    // amplitude = B/‖T‖² and th = B/‖T‖: their ratio is the template norm, 20 here.
    for b in &batches {
        for (a, t) in b.amplitude.iter().zip(&b.threshold_amp) {
            assert!((t / a - 20.0).abs() < 1e-3);
        }
    }
}

#[test]
fn merging_equals_kilosort4s_merging_function_with_time_shifts() {
    let w: Array3<f32> = load("merge_W.npy");
    let clu: Array1<i64> = load("merge_clu.npy");
    let st: Array2<f64> = load("merge_st.npy");
    let spikes = LabelledSpikes {
        sample: st.column(0).iter().map(|&t| t as i64).collect(),
        label: clu.iter().map(|&l| l as u32).collect(),
        features: load("merge_tF.npy"),
    };
    let options = MergeOptions { r_thresh: 0.5, check_dt: true };
    let out = merge_templates(w.view(), spikes, basis().pcs.view(), options, |_| true, similar_norms);
    assert_eq!(out.kept, [0, 2, 3]);
    assert_eq!(out.merges.len(), 1);
    assert_eq!((out.merges[0].into, out.merges[0].from, out.merges[0].shift), (0, 1, 3));
    let merged_st: Array2<f64> = load("merged_st.npy");
    let merged_clu: Array1<i64> = load("merged_clu.npy");
    assert_eq!(out.spikes.sample, merged_st.column(0).iter().map(|&t| t as i64).collect::<Vec<_>>());
    assert_eq!(out.spikes.label, merged_clu.iter().map(|&l| l as u32).collect::<Vec<_>>());
    let merged_w: Array3<f32> = load("merged_W.npy");
    assert!(relative_error(&out.templates, &merged_w) < 1e-5, "{}", relative_error(&out.templates, &merged_w));
    let merged_tf: Array3<f32> = load("merged_tF.npy");
    let err = relative_error(&out.spikes.features, &merged_tf);
    assert!(err < 1e-5, "{err}");
}

#[test]
fn similarity_equals_kilosort4s() {
    let w: Array3<f32> = load("merge_W.npy");
    let ours = similar_templates(w.view(), basis().pcs.view());
    let theirs: Array2<f32> = load("similarity.npy");
    assert!(relative_error(&ours, &theirs) < 1e-5, "{}", relative_error(&ours, &theirs));
}

#[test]
fn alignment_and_learned_templates_equal_kilosort4s_per_cluster() {
    let w: Array3<f32> = load("learn_W.npy");
    let counts: Array1<i64> = load("learn_counts.npy");
    let imax: Array1<i64> = load("learn_imax.npy");
    let aligned: Array3<f32> = load("learn_aligned.npy");
    let basis = basis();
    for (k, wk) in w.outer_iter().enumerate() {
        let (ours, lag) = align_template(wk, &basis);
        assert_eq!(lag as i64, imax[k], "cluster {k}");
        let theirs = aligned.index_axis(Axis(0), k).to_owned();
        assert!(relative_error(&ours, &theirs) < 1e-5, "cluster {k}: {}", relative_error(&ours, &theirs));
    }
    let counts: Vec<usize> = counts.iter().map(|&c| c as usize).collect();
    let learned = learned_templates(w.view(), &counts, &basis);
    let theirs: Array3<f32> = load("learned.npy");
    assert!(relative_error(&learned, &theirs) < 1e-5, "{}", relative_error(&learned, &theirs));
}
