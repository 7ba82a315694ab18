//! Clustering speed: `cluster_spikes` on synthetic features, and the steps of one large centre.
//!
//!     cargo bench -p kilosort --bench cluster                  # 200 000 spikes, 50 000 per centre
//!     KS_BENCH_SPIKES=1000000 KS_BENCH_CENTRE=100000 cargo bench -p kilosort --bench cluster
//!
//! Features: units on a 64-channel single-column probe (20 µm pitch), one per ~2 channels, each a
//! fixed pattern of 6 PCs decaying over channels plus unit noise; a spike's template is a channel
//! near its unit's peak. Prints seconds for 1 thread and for all threads, and the time of each
//! step (kNN graph, k-means++, propagation, tree, splits) on one centre.

use std::time::Instant;

use kilosort::cluster::data::centre_data;
use kilosort::cluster::kmeanspp::{N_INITIAL_CLUSTERS, kmeans_plusplus};
use kilosort::cluster::knn::NeighbourGraph;
use kilosort::cluster::propagate::{PROPAGATION_ROUNDS, propagate_labels};
use kilosort::cluster::split::{keep_splits, split_labels};
use kilosort::cluster::tree::merge_tree;
use kilosort::cluster::{ClusterInput, cluster_spikes};
use kilosort::progress::NoProgress;
use kilosort::{Probe, Settings};
use ndarray::{Array2, Array3};

const N_CHANNELS: usize = 64;
const NEAREST: usize = 10;
const N_PCS: usize = 6;

fn main() {
    let n_spikes = env_usize("KS_BENCH_SPIKES", 200_000);
    let centre_spikes = env_usize("KS_BENCH_CENTRE", 50_000);
    let s = Synthetic::new(n_spikes, 32, 1);
    let settings = Settings::default();
    let input = s.input();
    println!("cluster_spikes: {n_spikes} spikes, {N_CHANNELS} channels, {} units", s.n_units);
    for threads in [1, rayon::current_num_threads()] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (clustering, time) = timed(|| pool.install(|| cluster_spikes(&input, &settings, &NoProgress).unwrap()));
        println!("  threads {threads}: {time} (wall s / CPU s), {} clusters", clustering.n_clusters());
    }
    steps_of_one_centre(centre_spikes, &settings);
}

/// Times each step on one centre holding `n` spikes of 4 units (templates on channels 30–33).
fn steps_of_one_centre(n: usize, settings: &Settings) {
    let s = Synthetic::new(n, 4, 2);
    let mut templates: Vec<usize> = s.spike_template.iter().map(|&t| t as usize).collect();
    templates.sort_unstable();
    templates.dedup();
    let data =
        centre_data(s.features.view(), &s.spike_template, s.template_channels.view(), &templates, (0..n).collect());
    let x = data.matrix.view();
    println!("one centre: {n} spikes × {} features, 1 thread (wall s / CPU s of this process)", x.ncols());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    pool.install(|| {
        let (graph, time) = timed(|| {
            NeighbourGraph::build(
                x,
                settings.cluster_downsampling,
                settings.cluster_neighbors,
                settings.max_cluster_subset,
            )
        });
        println!("  kNN graph ({} landmarks): {time}", graph.n_landmarks());
        let degrees = graph.degrees();
        let (initial, time) = timed(|| kmeans_plusplus(x, N_INITIAL_CLUSTERS, settings.cluster_init_seed));
        println!("  k-means++: {time}");
        let (found, time) =
            timed(|| propagate_labels(&graph, &degrees, initial, N_INITIAL_CLUSTERS, PROPAGATION_ROUNDS));
        println!("  propagation ({} clusters): {time}", found.n_clusters);
        let (tree, time) =
            timed(|| merge_tree(&graph, &degrees, &found.spike_labels, &found.landmark_labels, found.n_clusters));
        println!("  merge tree: {time}");
        let ((_, n_final), time) = timed(|| {
            let kept = keep_splits(&tree, x, &found.spike_labels, None);
            split_labels(&tree, &kept, &found.spike_labels)
        });
        println!("  splits ({n_final} clusters): {time}");
    });
}

/// Runs `f`, returning its result and "wall s / CPU s".
fn timed<T>(f: impl FnOnce() -> T) -> (T, String) {
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    let out = f();
    (out, format!("{:.2} / {:.2}", wall.elapsed().as_secs_f64(), cpu_seconds() - cpu))
}

/// User + system CPU time of this process (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Synthetic spikes of `n_units` units spread along the probe.
struct Synthetic {
    n_units: usize,
    probe: Probe,
    features: Array3<f32>,
    spike_template: Vec<u32>,
    template_channels: Array2<usize>,
    y: Vec<f64>,
    x: Vec<f64>,
}

impl Synthetic {
    fn new(n_spikes: usize, n_units: usize, seed: u64) -> Self {
        let y: Vec<f64> = (0..N_CHANNELS).map(|c| 20.0 * c as f64).collect();
        let x = vec![16.0; N_CHANNELS];
        let probe = Probe::new(
            "linear64",
            (0..N_CHANNELS as u32).collect(),
            x.iter().map(|&v| v as f32).collect(),
            y.iter().map(|&v| v as f32).collect(),
            vec![0.0; N_CHANNELS],
            N_CHANNELS,
        )
        .unwrap();
        let template_channels = Array2::from_shape_fn((N_CHANNELS, NEAREST), |(t, j)| {
            let mut near: Vec<usize> = (0..N_CHANNELS).collect();
            near.sort_by_key(|&c| (c as i64 - t as i64).abs());
            near[j]
        });
        let mut rng = Lcg(seed);
        // Units evenly over the probe (or, for few units, around its middle).
        let spacing = if n_units >= 8 { N_CHANNELS as f64 / n_units as f64 } else { 1.0 };
        let first = if n_units >= 8 { 0.5 } else { 30.0 };
        let units: Vec<(f64, Vec<f64>)> = (0..n_units)
            .map(|u| (first + spacing * u as f64, (0..N_PCS).map(|_| 6.0 * rng.gaussian()).collect()))
            .collect();
        let mut features = Array3::zeros((n_spikes, NEAREST, N_PCS));
        let mut spike_template = Vec::with_capacity(n_spikes);
        for s in 0..n_spikes {
            let (peak, pattern) = &units[(rng.uniform() * n_units as f64) as usize];
            let template = ((peak + rng.uniform() - 0.5).round() as usize).min(N_CHANNELS - 1);
            for j in 0..NEAREST {
                let c = template_channels[[template, j]] as f64;
                let gain = (-(c - peak).powi(2) / 4.0).exp();
                for p in 0..N_PCS {
                    features[[s, j, p]] = (pattern[p] * gain + rng.gaussian()) as f32;
                }
            }
            spike_template.push(template as u32);
        }
        Synthetic { n_units, probe, features, spike_template, template_channels, y, x }
    }

    fn input(&self) -> ClusterInput<'_> {
        ClusterInput {
            features: self.features.view(),
            spike_template: &self.spike_template,
            template_channels: self.template_channels.view(),
            template_x: &self.x,
            template_y: &self.y,
            grid_y: &self.y,
            dmin: 20.0,
            probe: &self.probe,
            spike_times_s: None,
            ccg_veto: None,
        }
    }
}

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
