//! Clustering (spec §7): each step against Kilosort4 4.1.7 on the same inputs
//! (`tests/data/cluster/make_cluster_fixtures.py`), the whole graph pipeline on Gaussian blobs,
//! and `cluster_spikes` end to end on synthetic features of a 32-channel probe.

use std::path::{Path, PathBuf};

use kilosort::cluster::kmeanspp::{N_INITIAL_CLUSTERS, kmeans_plusplus};
use kilosort::cluster::knn::{NeighbourGraph, landmark_rows};
use kilosort::cluster::propagate::{PROPAGATION_ROUNDS, propagate_labels};
use kilosort::cluster::split::{bimodality_score, discriminant_projection, keep_splits, split_labels};
use kilosort::cluster::tree::{MergeTree, merge_tree};
use kilosort::cluster::{ClusterInput, cluster_spikes};
use kilosort::progress::NoProgress;
use kilosort::{Probe, Settings};
use ndarray::{Array1, Array2, Array3};
use ndarray_npy::read_npy;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/cluster").join(name)
}

fn vector(name: &str) -> Vec<i64> {
    read_npy::<_, Array1<i64>>(data(name)).unwrap().to_vec()
}

fn as_u32(v: Vec<i64>) -> Vec<u32> {
    v.into_iter().map(|x| x as u32).collect()
}

/// Kilosort4's pipeline settings for the fixture: nskip 4, 10 neighbours, at most 300 landmarks.
fn fixture_graph(xd: &Array2<f32>) -> NeighbourGraph {
    NeighbourGraph::build(xd.view(), 4, 10, Some(300))
}

#[test]
fn landmark_removal_equals_kilosort4s() {
    let cases: Array2<i64> = read_npy(data("subsample_cases.npy")).unwrap();
    let removed = vector("subsample_removed.npy");
    let mut at = 0;
    for case in cases.rows() {
        let (n1, n2) = (case[0] as usize, case[1] as usize);
        let kept = landmark_rows(n1, 1, Some(n1 - n2));
        let gone = &removed[at..at + n1 - kept.len()];
        at += gone.len();
        let expected: Vec<usize> = (0..n1).filter(|i| !gone.contains(&(*i as i64))).collect();
        assert_eq!(kept, expected, "subsample_idx({n1}, {n2})");
    }
    assert_eq!(at, removed.len());
}

#[test]
fn graph_propagation_tree_and_splits_equal_kilosort4s() {
    let xd: Array2<f32> = read_npy(data("xd.npy")).unwrap();
    let graph = fixture_graph(&xd);
    let landmarks: Vec<usize> = vector("landmarks.npy").into_iter().map(|x| x as usize).collect();
    assert_eq!(graph.landmarks, landmarks);
    let kn: Array2<i32> = read_npy(data("kn.npy")).unwrap();
    let kn: Vec<u32> = kn.iter().map(|&j| j as u32).collect();
    assert_eq!(graph.neighbours, kn, "exact kNN equals faiss IndexFlatL2");

    let degrees = graph.degrees();
    let init = as_u32(vector("init.npy"));
    let found = propagate_labels(&graph, &degrees, init, N_INITIAL_CLUSTERS, PROPAGATION_ROUNDS);
    assert_eq!(found.spike_labels, as_u32(vector("iclust.npy")));
    assert_eq!(found.landmark_labels, as_u32(vector("isub.npy")));

    let tree = merge_tree(&graph, &degrees, &found.spike_labels, &found.landmark_labels, found.n_clusters);
    let xtree: Array2<i32> = read_npy(data("xtree.npy")).unwrap();
    let tstat: Array2<f32> = read_npy(data("tstat.npy")).unwrap();
    assert_eq!(tree.merges.len(), xtree.nrows());
    for (t, merge) in tree.merges.iter().enumerate() {
        assert_eq!([merge.absorbed, merge.absorber, tree.n_clusters + t], [0, 1, 2].map(|k| xtree[[t, k]] as usize));
        assert!((merge.strength - tstat[[t, 0]] as f64).abs() < 1e-5, "strength {t}");
        assert_eq!(merge.n_leaves as f32, tstat[[t, 1]]);
        assert!((merge.local_modularity - tstat[[t, 2]] as f64).abs() < 1e-5, "local modularity {t}");
    }

    check_split_scores(&xd, &tree, &found.spike_labels);

    let kept = keep_splits(&tree, xd.view(), &found.spike_labels, None);
    let split_xtree: Array2<i32> = read_npy(data("split_xtree.npy")).unwrap();
    let kept_nodes: Vec<usize> = (0..kept.len()).filter(|&t| kept[t]).map(|t| tree.n_clusters + t).collect();
    let expected: Vec<usize> = split_xtree.column(2).iter().map(|&v| v as usize).collect();
    assert_eq!(kept_nodes, expected);
    let (labels, _) = split_labels(&tree, &kept, &found.spike_labels);
    assert_eq!(labels, as_u32(vector("final_labels.npy")));
}

/// Kilosort4's `check_split` at every merge: the projection at the root and every score.
fn check_split_scores(xd: &Array2<f32>, tree: &MergeTree, labels: &[u32]) {
    let theirs: Array1<f64> = read_npy(data("check_split_scores.npy")).unwrap();
    let members = tree.members();
    for (t, merge) in tree.merges.iter().enumerate() {
        let (a, b) = (&members[merge.absorbed], &members[merge.absorber]);
        let rows: Vec<usize> =
            (0..labels.len()).filter(|&i| a.contains(&labels[i]) || b.contains(&labels[i])).collect();
        let in_a: Vec<bool> = rows.iter().map(|&i| a.contains(&labels[i])).collect();
        let z = discriminant_projection(xd.view(), &rows, &in_a);
        if t + 1 == tree.merges.len() {
            let root: Array1<f64> = read_npy(data("root_projection.npy")).unwrap();
            let worst = z.iter().zip(&root).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-6, "root projection differs by {worst}");
        }
        let score = bimodality_score(&z);
        assert!((score - theirs[t]).abs() < 1e-5, "merge {t}: score {score} vs {}", theirs[t]);
    }
}

#[test]
fn bimodality_scores_equal_kilosort4s() {
    let inputs: Array2<f64> = read_npy(data("bimod_inputs.npy")).unwrap();
    let scores: Array1<f64> = read_npy(data("bimod_scores.npy")).unwrap();
    for (row, &want) in inputs.rows().into_iter().zip(&scores) {
        let got = bimodality_score(&row.to_vec());
        assert!(got == want || (got - want).abs() < 1e-6 || (got.is_nan() && want.is_nan()), "{got} vs {want}");
    }
}

/// Within-cluster over total sum of squares of a labelling.
fn unexplained_fraction(x: &Array2<f32>, labels: &[u32]) -> f64 {
    let d = x.ncols();
    let n_labels = *labels.iter().max().unwrap() as usize + 1;
    let (mut sums, mut counts) = (vec![vec![0.0f64; d]; n_labels], vec![0.0f64; n_labels]);
    for (row, &l) in x.rows().into_iter().zip(labels) {
        row.iter().zip(&mut sums[l as usize]).for_each(|(v, s)| *s += *v as f64);
        counts[l as usize] += 1.0;
    }
    let total_mean: Vec<f64> =
        (0..d).map(|k| x.column(k).iter().map(|&v| v as f64).sum::<f64>() / x.nrows() as f64).collect();
    let (mut within, mut total) = (0.0, 0.0);
    for (row, &l) in x.rows().into_iter().zip(labels) {
        for k in 0..d {
            within += (row[k] as f64 - sums[l as usize][k] / counts[l as usize]).powi(2);
            total += (row[k] as f64 - total_mean[k]).powi(2);
        }
    }
    within / total
}

#[test]
fn kmeans_plusplus_is_statistically_like_kilosort4s() {
    let xd: Array2<f32> = read_npy(data("xd.npy")).unwrap();
    let theirs = as_u32(vector("kmeanspp_labels.npy"));
    let count = |labels: &[u32]| {
        let mut used = labels.to_vec();
        used.sort_unstable();
        used.dedup();
        used.len()
    };
    let (their_unexplained, their_count) = (unexplained_fraction(&xd, &theirs), count(&theirs));
    for seed in [5, 6, 7] {
        let ours = kmeans_plusplus(xd.view(), N_INITIAL_CLUSTERS, seed);
        let unexplained = unexplained_fraction(&xd, &ours);
        assert!(
            (unexplained / their_unexplained - 1.0).abs() < 0.1,
            "seed {seed}: unexplained {unexplained:.4} vs Kilosort4's {their_unexplained:.4}"
        );
        assert!(count(&ours).abs_diff(their_count) <= 10, "{} labels vs {their_count}", count(&ours));
    }
}

/// Blobs of `per` points around the corners `10·e_c` of a `d`-dimensional simplex, unit noise.
fn blobs(n_blobs: usize, per: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = Lcg(seed);
    let truth: Vec<usize> = (0..n_blobs * per).map(|i| (i * 7 + i / 3) % n_blobs).collect();
    let x = Array2::from_shape_fn((n_blobs * per, d), |(i, k)| {
        (if k == truth[i] { 10.0 } else { 0.0 }) + rng.gaussian() as f32
    });
    (x, truth)
}

/// Fraction of points whose cluster's majority truth is their own.
fn purity(labels: &[u32], truth: &[usize], n_truth: usize) -> f64 {
    let n_labels = *labels.iter().max().unwrap() as usize + 1;
    let mut table = vec![vec![0usize; n_truth]; n_labels];
    for (&l, &t) in labels.iter().zip(truth) {
        table[l as usize][t] += 1;
    }
    table.iter().map(|row| row.iter().max().unwrap()).sum::<usize>() as f64 / labels.len() as f64
}

#[test]
fn well_separated_blobs_are_recovered() {
    let (x, truth) = blobs(4, 600, 12, 3);
    let graph = NeighbourGraph::build(x.view(), 20, 10, Some(25000));
    let degrees = graph.degrees();
    let initial = kmeans_plusplus(x.view(), N_INITIAL_CLUSTERS, 5);
    let found = propagate_labels(&graph, &degrees, initial, N_INITIAL_CLUSTERS, PROPAGATION_ROUNDS);
    let p = purity(&found.spike_labels, &truth, 4);
    assert!(p >= 0.95, "purity {p} with {} clusters", found.n_clusters);
    let tree = merge_tree(&graph, &degrees, &found.spike_labels, &found.landmark_labels, found.n_clusters);
    // The blobs share no edges: the last merges, joining them, are at strength 0.
    let root = tree.merges.last().unwrap();
    assert!(root.strength < 0.2, "root strength {}", root.strength);
    let kept = keep_splits(&tree, x.view(), &found.spike_labels, None);
    let (labels, n) = split_labels(&tree, &kept, &found.spike_labels);
    assert!(purity(&labels, &truth, 4) >= 0.95);
    assert_eq!(n, 4, "one cluster per blob after the splits");
}

/// A tiny deterministic generator for test data.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Four units on a 32-channel single-column probe (20 µm pitch): A and B on neighbouring channels
/// 10 and 11 (the same clustering centre, more than 1000 spikes together), C on channel 20, D
/// (under 1000 spikes) on channel 27. Templates are the 32 channel positions; each spike's
/// template is its unit's peak channel and its features are the unit's mean on that template's
/// 10 nearest channels plus unit noise.
struct Synthetic {
    probe: Probe,
    features: Array3<f32>,
    spike_template: Vec<u32>,
    template_channels: Array2<usize>,
    y: Vec<f64>,
    x: Vec<f64>,
    truth: Vec<usize>,
}

fn synthetic() -> Synthetic {
    let n_chan = 32;
    let y: Vec<f64> = (0..n_chan).map(|c| 20.0 * c as f64).collect();
    let x = vec![16.0; n_chan];
    let probe = Probe::new(
        "linear32",
        (0..n_chan as u32).collect(),
        x.iter().map(|&v| v as f32).collect(),
        y.iter().map(|&v| v as f32).collect(),
        vec![0.0; n_chan],
        n_chan,
    )
    .unwrap();
    let template_channels = Array2::from_shape_fn((n_chan, 10), |(t, j)| {
        let mut near: Vec<usize> = (0..n_chan).collect();
        near.sort_by_key(|&c| (c as i64 - t as i64).abs());
        near[j]
    });
    // (peak channel, spikes, PC pattern)
    let units = [
        (10usize, 1200usize, [6.0f64, 2.0, -1.0]),
        (11, 1000, [-2.0, 5.0, 2.0]),
        (20, 1500, [4.0, -3.0, 1.0]),
        (27, 800, [3.0, 3.0, 3.0]),
    ];
    let mut rng = Lcg(9);
    let total: usize = units.iter().map(|u| u.1).sum();
    let mut features = Array3::zeros((total, 10, 3));
    let (mut spike_template, mut truth) = (Vec::new(), Vec::new());
    let order: Vec<usize> = (0..total).map(|i| (i * 7919) % total).collect();
    let unit_of = |s: usize| {
        let mut s = s;
        units
            .iter()
            .position(|u| {
                if s < u.1 {
                    true
                } else {
                    s -= u.1;
                    false
                }
            })
            .unwrap()
    };
    for (slot, &s) in order.iter().enumerate() {
        let u = unit_of(s);
        let (peak, _, pattern) = units[u];
        for j in 0..10 {
            let c = template_channels[[peak, j]];
            let gain = (-((c as f64 - peak as f64).powi(2)) / 4.0).exp();
            for p in 0..3 {
                features[[slot, j, p]] = (pattern[p] * gain + rng.gaussian()) as f32;
            }
        }
        spike_template.push(peak as u32);
        truth.push(u);
    }
    Synthetic { probe, features, spike_template, template_channels, x, y, truth }
}

#[test]
fn cluster_spikes_finds_every_unit() {
    let s = synthetic();
    let input = ClusterInput {
        features: s.features.view(),
        spike_template: &s.spike_template,
        template_channels: s.template_channels.view(),
        template_x: &s.x,
        template_y: &s.y,
        grid_y: &s.y,
        dmin: 20.0,
        probe: &s.probe,
        spike_times_s: None,
        ccg_veto: None,
    };
    let settings = Settings::default();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| cluster_spikes(&input, &settings, &NoProgress).unwrap())
    };
    let clustering = run(1);
    assert_eq!(clustering, run(3), "labels do not depend on the thread count");
    let n = clustering.n_clusters();
    assert_eq!(clustering.templates.dim(), (n, 32, 3));
    let mut table = vec![[0usize; 4]; n];
    for (&l, &u) in clustering.labels.iter().zip(&s.truth) {
        table[l as usize][u] += 1;
    }
    for u in 0..4 {
        // The cluster holding most of unit u is mostly unit u and holds most of it.
        let best = (0..n).max_by_key(|&c| table[c][u]).unwrap();
        let size: usize = table[best].iter().sum();
        let unit_size = s.truth.iter().filter(|&&t| t == u).count();
        assert!(table[best][u] * 10 >= size * 9, "unit {u}: cluster {best} is {:?}", table[best]);
        assert!(table[best][u] * 2 >= unit_size, "unit {u}: cluster {best} has {} of {unit_size}", table[best][u]);
    }
    // D's centre has under 1000 spikes: exactly one cluster, whose template peaks on channel 27.
    let d_label = clustering.labels[s.truth.iter().position(|&u| u == 3).unwrap()] as usize;
    assert_eq!(table[d_label], [0, 0, 0, 800]);
    let peak = (0..32)
        .max_by(|&a, &b| {
            let e =
                |c: usize| clustering.templates.slice(ndarray::s![d_label, c, ..]).iter().map(|v| v * v).sum::<f32>();
            e(a).total_cmp(&e(b))
        })
        .unwrap();
    assert_eq!(peak, 27);
}
