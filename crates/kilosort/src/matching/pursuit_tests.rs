//! Matching pursuit on synthetic batches: planted spikes are recovered, and the sparse, blocked
//! implementation gives what the plain definition (spec §8.3–8.4) gives.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, s};

use super::pursuit::{MatchedBatch, MatchingOptions, TemplateMatcher};
use super::scores::dense_scores;
use super::templates::test_basis;
use super::xcorr::template_cross_correlations;
use crate::detect::TemporalBasis;
use crate::probe::Probe;

const NT: usize = 61;
const NT0MIN: usize = 20;
const BATCH: usize = 3000;

/// Deterministic normal deviates (splitmix64 + Box–Muller).
pub(crate) struct Normal(u64);

impl Normal {
    pub fn new(seed: u64) -> Self {
        Normal(seed)
    }

    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn sample(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}

/// 32 channels in two columns 32 µm apart, 20 µm vertical pitch.
fn probe32() -> Probe {
    let n = 32;
    Probe::new(
        "two-column",
        (0..n as u32).collect(),
        (0..n).map(|i| [0.0, 32.0][i % 2]).collect(),
        (0..n).map(|i| 20.0 * (i / 2) as f32).collect(),
        vec![0.0; n],
        n,
    )
    .unwrap()
}

/// A template centred at depth `y0`: random PC coefficients with a Gaussian spatial profile
/// (σ = 20 µm), exactly zero beyond `cutoff` µm; scaled to norm `norm`.
fn local_template(probe: &Probe, y0: f32, cutoff: f32, norm: f32, rng: &mut Normal, n_pcs: usize) -> Array2<f32> {
    let shape: Vec<f32> = (0..n_pcs).map(|p| rng.sample() / (1.0 + p as f32)).collect();
    let mut w = Array2::from_shape_fn((probe.len(), n_pcs), |(c, p)| {
        let d = ((probe.x[c] - 16.0).powi(2) + (probe.y[c] - y0).powi(2)).sqrt();
        let g = if d > cutoff { 0.0 } else { (-(d * d) / (2.0 * 400.0)).exp() };
        g * (shape[p] + 0.2 * rng.sample())
    });
    let n = w.iter().map(|v| v * v).sum::<f32>().sqrt();
    w *= norm / n;
    w
}

fn stack(ts: &[Array2<f32>]) -> Array3<f32> {
    let views: Vec<_> = ts.iter().map(|t| t.view()).collect();
    ndarray::stack(Axis(0), &views).unwrap()
}

/// A padded batch 0 with the given spikes `(trough sample, template, amplitude)` plus noise.
fn batch(
    templates: &Array3<f32>,
    basis: &TemporalBasis,
    spikes: &[(i64, usize, f32)],
    noise: f32,
    seed: u64,
) -> Array2<f32> {
    let n_chan = templates.len_of(Axis(1));
    let mut rng = Normal::new(seed);
    let mut x = Array2::from_shape_fn((n_chan, BATCH + 2 * NT), |_| noise * rng.sample());
    for &(t, k, a) in spikes {
        let wave = templates.index_axis(Axis(0), k).dot(&basis.pcs);
        let start = (t - NT0MIN as i64 + NT as i64) as usize;
        let mut window = x.slice_mut(s![.., start..start + NT]);
        window.scaled_add(a, &wave);
    }
    x
}

fn options() -> MatchingOptions {
    MatchingOptions {
        batch_size: BATCH,
        nt0min: NT0MIN,
        batch_downsampling: 1,
        th_learned: 8.0,
        max_peels: 100,
        position_limit: 100.0,
        nearest_chans: 10,
    }
}

#[test]
fn planted_spikes_are_recovered_including_an_overlapping_pair() {
    let probe = probe32();
    let basis = test_basis(6, NT);
    let mut rng = Normal::new(7);
    let templates = stack(&[40.0, 120.0, 200.0, 280.0].map(|y| local_template(&probe, y, 60.0, 20.0, &mut rng, 6)));
    // Template 1 and 2 fire 10 samples apart; the rest are isolated.
    let planted = [
        (150, 0, 1.0),
        (700, 1, 0.9),
        (710, 2, 1.15),
        (1300, 3, 0.8),
        (1900, 0, 1.2),
        (2500, 2, 0.95),
        (2980, 1, 1.05),
    ];
    let x = batch(&templates, &basis, &planted, 0.05, 11);
    let matcher = TemplateMatcher::new(templates.view(), &basis, &probe, options());
    let found = matcher.match_batch(x.view(), 0);
    // Peeling the batch itself (it becomes the residual) gives the same spikes.
    assert_eq!(matcher.match_in_place(&mut x.clone(), 0), found);
    assert_eq!(found.sample, planted.map(|p| p.0));
    assert_eq!(found.template, planted.map(|p| p.1 as u32));
    for (a, p) in found.amplitude.iter().zip(&planted) {
        assert!((a / p.2 - 1.0).abs() < 0.01, "amplitude {a} for {p:?}");
    }
    for (th, p) in found.threshold_amp.iter().zip(&planted) {
        assert!((th / (20.0 * p.2) - 1.0).abs() < 0.01, "th = a·‖T‖");
    }
    // Features: residual ≈ noise (σ 0.05 per PC feature), so they are ≈ the spike's own
    // template on its neighbourhood.
    let peak = matcher.peak_channels()[1];
    let near = matcher.nearest_channels().row(peak).to_vec();
    let own = templates.index_axis(Axis(0), 1).select(Axis(0), &near) * 0.9;
    let diff = (&found.features.index_axis(Axis(0), 1) - &own).iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(diff < 0.25, "{diff}");
    // Later batches add their offset; the same data as batch 3 is shifted by 3·NT.
    let later = matcher.match_batch(x.view(), 3);
    assert_eq!(later.sample, planted.map(|p| p.0 + 3 * BATCH as i64));
}

#[test]
fn a_spike_whose_trough_precedes_the_recording_is_dropped_in_batch_0_only() {
    let probe = probe32();
    let basis = test_basis(6, NT);
    let mut rng = Normal::new(3);
    let templates = stack(&[local_template(&probe, 100.0, 60.0, 20.0, &mut rng, 6)]);
    // Window centre at padded column nt exactly (the first allowed): trough sample nt0min − nt/2 < 0.
    let t = NT0MIN as i64 - (NT / 2) as i64;
    let x = batch(&templates, &basis, &[(t, 0, 1.0), (1000, 0, 1.0)], 0.0, 1);
    let matcher = TemplateMatcher::new(templates.view(), &basis, &probe, options());
    assert_eq!(matcher.match_batch(x.view(), 0).sample, [1000]);
    assert_eq!(matcher.match_batch(x.view(), 1).sample, [t + BATCH as i64, 1000 + BATCH as i64]);
}

/// Matching pursuit by the definition: dense scores over all channels, the dense `ctc`, the full
/// `Cf` recomputed every round, and a max-pool.
fn reference(
    data: ArrayView2<f32>,
    templates: ArrayView3<f32>,
    basis: &TemporalBasis,
    m: &TemplateMatcher,
) -> MatchedBatch {
    let o = options();
    let (len, half) = (data.ncols(), NT / 2);
    let k = templates.len_of(Axis(0));
    let pcs = basis.pcs.view();
    let mut b = dense_scores(data, templates, pcs);
    let ctc = template_cross_correlations(templates, pcs);
    let nm: Vec<f32> = templates.outer_iter().map(|w| w.iter().map(|v| v * v).sum()).collect();
    let mut res = data.to_owned();
    let mut spikes = Vec::new();
    for _ in 0..o.max_peels {
        let mut best = vec![(0.0f32, 0usize); len];
        for t in NT..len - NT {
            for j in 0..k {
                let v = b[[j, t]].max(0.0).powi(2) / nm[j];
                if v > best[t].0 {
                    best[t] = (v, j);
                }
            }
        }
        let pooled =
            |t: usize| best[t.saturating_sub(NT)..(t + NT + 1).min(len)].iter().map(|v| v.0).fold(0.0, f32::max);
        let peaks: Vec<usize> = (0..len).filter(|&t| pooled(t) > 64.0 && pooled(t) == best[t].0).collect();
        if peaks.is_empty() {
            break;
        }
        let round: Vec<(usize, usize, f32, f32)> =
            peaks.iter().map(|&t| (t, best[t].1, b[[best[t].1, t]] / nm[best[t].1], best[t].0.sqrt())).collect();
        for &(t, j, a, _) in &round {
            let wave = templates.index_axis(Axis(0), j).dot(&pcs);
            res.slice_mut(s![.., t - half..t + half + 1]).scaled_add(-a, &wave);
            for tau in 0..=2 * NT {
                if (t + tau).checked_sub(NT).is_some_and(|u| u < len) {
                    let col = ctc.slice(s![.., j, tau]).to_owned();
                    b.column_mut(t + tau - NT).scaled_add(-a, &col);
                }
            }
        }
        spikes.extend(round);
    }
    spikes.retain(|s| s.0 + NT0MIN >= NT + half);
    spikes.sort_by_key(|s| s.0);
    let mut features = Array3::zeros((spikes.len(), 10, basis.n_pcs()));
    for (i, &(t, j, a, _)) in spikes.iter().enumerate() {
        for (c_i, &c) in m.nearest_channels().row(m.peak_channels()[j]).iter().enumerate() {
            let w = res.slice(s![c, t - half..t + half + 1]);
            let own = templates.slice(s![j, c, ..]);
            let f = basis.pcs.dot(&w) + &own.mapv(|v| v * a);
            features.slice_mut(s![i, c_i, ..]).assign(&f);
        }
    }
    MatchedBatch {
        sample: spikes.iter().map(|s| (s.0 + NT0MIN - NT - half) as i64).collect(),
        template: spikes.iter().map(|s| s.1 as u32).collect(),
        amplitude: spikes.iter().map(|s| s.2).collect(),
        threshold_amp: spikes.iter().map(|s| s.3).collect(),
        features,
    }
}

#[test]
fn sparse_blocked_matching_equals_the_dense_definition() {
    let probe = probe32();
    let basis = test_basis(6, NT);
    let mut rng = Normal::new(21);
    // 40 templates (two blocks of the table) with Gaussian tails reaching every channel, so the
    // support truncation drops channels; neighbours overlap strongly.
    let ys: Vec<f32> = (0..40).map(|i| 10.0 + 7.5 * i as f32).collect();
    let full = stack(&ys.iter().map(|&y| local_template(&probe, y, 1e9, 15.0, &mut rng, 6)).collect::<Vec<_>>());
    let matcher = TemplateMatcher::new(full.view(), &basis, &probe, options());
    let truncated = matcher.templates().to_owned();
    let zeros = |a: &Array3<f32>| a.iter().filter(|&&v| v == 0.0).count();
    assert!(zeros(&truncated) > zeros(&full) + 100, "tails were cut");
    let mut planted = Vec::new();
    for i in 0..60 {
        let t = 40 + 49 * i as i64 + (i as i64 * 7) % 13;
        planted.push((t, (i * 17) % 40, 0.8 + 0.01 * (i % 30) as f32));
    }
    let x = batch(&full, &basis, &planted, 1.0, 5);
    let ours = matcher.match_batch(x.view(), 0);
    let dense = reference(x.view(), truncated.view(), &basis, &matcher);
    assert!(ours.len() > 50, "most planted spikes are found: {}", ours.len());
    assert_eq!(ours.sample, dense.sample);
    assert_eq!(ours.template, dense.template);
    let close = |a: &[f32], b: &[f32], tol: f32| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * y.abs().max(1.0));
    assert!(close(&ours.amplitude, &dense.amplitude, 1e-4));
    assert!(close(&ours.threshold_amp, &dense.threshold_amp, 1e-4));
    let feature_err = (&ours.features - &dense.features).iter().map(|v| v.abs()).fold(0.0, f32::max);
    assert!(feature_err < 1e-3, "{feature_err}");
    // The untruncated templates give the same spikes: what was cut is negligible.
    let untruncated = reference(x.view(), full.view(), &basis, &matcher);
    assert_eq!((untruncated.sample, untruncated.template), (ours.sample, ours.template));
}

#[test]
fn reference_helper_agrees_with_a_hand_computed_score() {
    // One channel, one PC equal to a unit impulse at the centre: B is the data itself.
    let mut pcs = Array2::zeros((1, 5));
    pcs[[0, 2]] = 1.0;
    let data = Array2::from_shape_vec((1, 6), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let t = Array3::from_elem((1, 1, 1), 2.0);
    let b = dense_scores(data.view(), t.view(), pcs.view());
    assert_eq!(b.row(0).to_vec(), [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
}

#[test]
fn results_do_not_depend_on_the_thread_count_or_the_previous_batch() {
    let probe = probe32();
    let basis = test_basis(6, NT);
    let mut rng = Normal::new(5);
    let ys: Vec<f32> = (0..40).map(|i| 10.0 + 7.5 * i as f32).collect();
    let templates = stack(&ys.iter().map(|&y| local_template(&probe, y, 60.0, 15.0, &mut rng, 6)).collect::<Vec<_>>());
    let planted: Vec<(i64, usize, f32)> = (0..50).map(|i| (30 + 58 * i as i64, (i * 7) % 40, 1.0)).collect();
    let x = batch(&templates, &basis, &planted, 1.0, 8);
    let other = batch(&templates, &basis, &planted[..10], 1.0, 9);
    let matcher = TemplateMatcher::new(templates.view(), &basis, &probe, options());
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let one = pool(1).install(|| matcher.match_batch(x.view(), 2));
    let _ = matcher.match_batch(other.view(), 0);
    let three = pool(3).install(|| matcher.match_batch(x.view(), 2));
    assert!(one.len() > 40);
    assert_eq!(one, three);
}

#[test]
fn no_templates_or_an_all_zero_template_find_nothing() {
    let probe = probe32();
    let basis = test_basis(6, NT);
    let data = Array2::from_elem((32, BATCH + 2 * NT), 50.0f32);
    for k in [0, 1] {
        let templates = Array3::<f32>::zeros((k, 32, 6));
        let matcher = TemplateMatcher::new(templates.view(), &basis, &probe, options());
        let found = matcher.match_batch(data.view(), 0);
        assert!(found.is_empty() && found.features.dim() == (0, 10, 6), "K = {k}");
    }
}
