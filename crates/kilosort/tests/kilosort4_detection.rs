//! Spike detection with universal templates (spec §6) checked against Kilosort4 4.1.7 itself, on
//! the synthetic recording both sides generate bit-identically
//! (`tests/data/detect/make_detect_fixtures.py`, 60000-sample batches: see its docstring for why).

mod common;

use std::path::{Path, PathBuf};

use common::synthetic::{SyntheticFixture, synthetic_fixture};
use kilosort::detect::{Features, TemplateGrid, TemporalBasis, UniversalMatcher, detect_spikes, learn_temporal_basis};
use kilosort::io::BatchReader;
use kilosort::pipeline::prepared_batch;
use kilosort::preprocess::Preprocessor;
use kilosort::progress::NoProgress;
use ndarray::{Array0, Array1, Array2};
use ndarray_npy::read_npy;

/// Kilosort4's sampling rate in the fixture.
const FS: f64 = 30000.0;
/// Largest allowed time offset, in samples, between Kilosort4's detections and ours when each
/// side uses its own learned basis: below half the ±`nt0min` = 20 sample max-pool window.
const MAX_OFFSET: i64 = 5;
/// Largest relative amplitude difference at shared detections with each side's own basis
/// (measured 0.12; the templates come from k-means with different initialisations).
const MAX_AMP_DIFFERENCE: f32 = 0.25;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(rel)
}

fn fixture() -> SyntheticFixture {
    synthetic_fixture(&data("preprocess/probe.json"), 60_000)
}

fn reader(f: &SyntheticFixture) -> BatchReader<'_> {
    BatchReader::new(&f.recording, f.plan.layout, f.plan.probe.channel_map.clone(), None, None)
}

#[test]
fn grid_equals_kilosort4s_xcup_ycup() {
    let f = fixture();
    let grid = TemplateGrid::new(&f.plan.probe, &f.plan.settings);
    let xcup: Array1<f64> = read_npy(data("detect/xcup.npy")).unwrap();
    let ycup: Array1<f64> = read_npy(data("detect/ycup.npy")).unwrap();
    assert_eq!(grid.len(), xcup.len());
    // Same positions in the same order, exactly.
    assert_eq!(grid.x, xcup.to_vec());
    assert_eq!(grid.y, ycup.to_vec());
}

/// Learned `wPCA` against Kilosort4's, and the total number of detections.
#[test]
fn learned_basis_and_spike_count_match_kilosort4() {
    let f = fixture();
    let reader = reader(&f);
    assert_eq!(reader.n_batches(), 2);
    let pre = Preprocessor::fit(&reader, &f.plan, &NoProgress);
    let batch = |b: usize| prepared_batch(&reader, &pre, None, b);
    let basis = learn_temporal_basis(&batch, &f.plan, &NoProgress).unwrap();

    let theirs: Array2<f32> = read_npy(data("detect/wPCA.npy")).unwrap();
    assert_eq!(basis.pcs.dim(), theirs.dim());
    // Per PC, up to sign: max |ours − ±theirs|.
    let per_pc: Vec<f32> = basis
        .pcs
        .rows()
        .into_iter()
        .zip(theirs.rows())
        .map(|(a, b)| {
            let plus = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            let minus = a.iter().zip(b).map(|(x, y)| (x + y).abs()).fold(0.0f32, f32::max);
            plus.min(minus)
        })
        .collect();
    // Subspace: the squared norm of each of our PCs projected on Kilosort4's span (1 = inside it).
    let in_span: Vec<f32> = basis
        .pcs
        .rows()
        .into_iter()
        .map(|a| theirs.rows().into_iter().map(|b| a.dot(&b).powi(2)).sum::<f32>())
        .collect();
    eprintln!("wPCA per-PC max |difference| up to sign: {per_pc:?}");
    eprintln!("our PCs' squared norm inside Kilosort4's span: {in_span:?}");
    for (p, d) in per_pc.iter().enumerate() {
        assert!(*d < 1e-2, "PC {p} differs by {d}");
    }
    for (p, s) in in_span.iter().enumerate() {
        assert!(*s > 0.99, "PC {p} only {s} inside Kilosort4's span");
    }

    let grid = TemplateGrid::new(&f.plan.probe, &f.plan.settings);
    let spikes = detect_spikes(&batch, &basis, &grid, &f.plan, Features::Keep, &NoProgress).unwrap();
    let n_theirs: Array0<i64> = read_npy(data("detect/n_spikes.npy")).unwrap();
    let n_theirs = n_theirs.into_scalar() as usize;
    let times: Array1<f64> = read_npy(data("detect/st_time.npy")).unwrap();
    eprintln!("spikes: ours {} Kilosort4 {}", spikes.len(), n_theirs);
    let rel = (spikes.len() as f64 - n_theirs as f64).abs() / n_theirs as f64;
    assert!(rel <= 0.05, "spike count {} vs Kilosort4 {}", spikes.len(), n_theirs);
    // Time offset (samples) from each Kilosort4 spike to our nearest one. Our wTEMP (k-means,
    // differently initialised) is not Kilosort4's, so the best-matching lag can move a little.
    let ours: Vec<f64> = spikes.sample.iter().map(|&s| s as f64).collect();
    let offsets: Vec<i64> = times
        .iter()
        .map(|t| {
            let t = t * FS;
            let nearest = ours.iter().copied().min_by(|a, b| (a - t).abs().total_cmp(&(b - t).abs())).unwrap();
            (nearest - t).round() as i64
        })
        .collect();
    let exact = offsets.iter().filter(|&&d| d == 0).count();
    let worst = offsets.iter().map(|d| d.abs()).max().unwrap();
    eprintln!(
        "same sample: {exact} of {}; offsets {:?}",
        offsets.len(),
        offsets.iter().filter(|&&d| d != 0).collect::<Vec<_>>()
    );
    assert!(worst <= MAX_OFFSET, "a Kilosort4 spike is {worst} samples from ours");

    // Where both found the spike at the same sample: grid position and amplitude.
    let their_amp: Array1<f32> = read_npy(data("detect/st_amp.npy")).unwrap();
    let their_template: Array1<i32> = read_npy(data("detect/st_template.npy")).unwrap();
    let (mut same_template, mut worst_amp) = (0, 0.0f32);
    for (i, t) in times.iter().enumerate() {
        let sample = (t * FS).round() as i64;
        if let Some(j) = spikes.sample.iter().position(|&s| s == sample) {
            same_template += usize::from(spikes.template[j] as i32 == their_template[i]);
            worst_amp = worst_amp.max((spikes.amplitude[j] - their_amp[i]).abs() / their_amp[i]);
        }
    }
    eprintln!("at the same sample: same grid position {same_template} of {exact}, amplitude within {worst_amp:.2e}");
    assert_eq!(same_template, exact, "grid positions differ where the samples agree");
    // Amplitudes depend on wTEMP, which k-means on 32 snippets does not pin down.
    assert!(worst_amp < MAX_AMP_DIFFERENCE, "amplitudes differ by {worst_amp:.2e}");
    let their_templates: Array2<f32> = read_npy(data("detect/wTEMP.npy")).unwrap();
    let best_cos: Vec<f32> = their_templates
        .rows()
        .into_iter()
        .map(|t| basis.templates.rows().into_iter().map(|o| o.dot(&t)).fold(f32::MIN, f32::max))
        .collect();
    eprintln!("wTEMP: each Kilosort4 template's best cosine with ours {best_cos:?}");
}

/// Given Kilosort4's own `wPCA`/`wTEMP`, batch 0's detections equal its `template_match` output.
#[test]
fn detections_with_kilosort4s_basis_equal_template_match() {
    let f = fixture();
    let reader = reader(&f);
    let pre = Preprocessor::fit(&reader, &f.plan, &NoProgress);
    let basis = TemporalBasis {
        pcs: read_npy(data("detect/wPCA.npy")).unwrap(),
        templates: read_npy(data("detect/wTEMP.npy")).unwrap(),
    };
    let grid = TemplateGrid::new(&f.plan.probe, &f.plan.settings);
    let matcher =
        UniversalMatcher::new(&basis, &grid, &f.plan.probe.y, f.plan.trough_index, f.plan.settings.th_universal);
    let found = matcher.detect(prepared_batch(&reader, &pre, None, 0).view());

    let xy: Array2<i64> = read_npy(data("detect/match_xy.npy")).unwrap();
    let amp: Array1<f32> = read_npy(data("detect/match_amp.npy")).unwrap();
    let imax: Array1<i64> = read_npy(data("detect/match_imax.npy")).unwrap();
    // Kilosort4's nonzero() orders by (template, column); ours is in time order.
    let mut theirs: Vec<(usize, usize, f32, u16)> =
        (0..xy.nrows()).map(|i| (xy[[i, 1]] as usize, xy[[i, 0]] as usize, amp[i], imax[i] as u16)).collect();
    theirs.sort_by_key(|d| (d.0, d.1));
    let mut ours: Vec<(usize, usize, f32, u16)> = (0..found.column.len())
        .map(|i| (found.column[i], found.template[i] as usize, found.amplitude[i], found.kind[i]))
        .collect();
    ours.sort_by_key(|d| (d.0, d.1));
    eprintln!("batch 0 detections: ours {} Kilosort4 {}", ours.len(), theirs.len());
    assert_eq!(ours.len(), theirs.len());
    let mut worst = 0.0f32;
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!((o.0, o.1), (t.0, t.1), "column/template differ");
        assert_eq!(o.3, t.3, "best template kind differs at column {}", o.0);
        worst = worst.max((o.2 - t.2).abs() / t.2);
    }
    eprintln!("largest relative amplitude difference {worst:.2e}");
    assert!(worst < 1e-3, "amplitudes differ by {worst:.2e}");
}
