//! Drift speed: estimation from a spike table, and correction of a whitened batch.
//!
//!     cargo bench -p kilosort --bench drift
//!
//! Estimation: 60 batches of ~50 000 spikes each (Neuropixels 1.0, rigid and 5-block
//! non-rigid). Correction: one 2 s batch of 383 channels × 60 122 samples, the sparse product
//! against a dense f32 GEMM (faer) of the same matrix. Each for 1 thread and for all threads.

#[allow(dead_code)]
#[path = "../src/drift/synthetic.rs"]
mod synthetic;

use std::time::Instant;

use kilosort::drift::{DriftCorrector, DriftSpikes, estimate_drift};
use kilosort::probe::builtin;
use kilosort::{Probe, Settings};
use ndarray::Array2;
use synthetic::{Rng, Scenario, random_walk_with_jump, simulate};

const N_BATCHES: usize = 60;
const PADDED_BATCH: usize = 60_122;

fn main() {
    let probe = builtin::by_name("np1").unwrap();
    let truth = random_walk_with_jump(N_BATCHES, 1.5, 15.0, 40, 1);
    let scenario = Scenario {
        n_units: 2000,
        n_batches: N_BATCHES,
        depth_range: (40.0, 3820.0),
        rate_range: (15.0, 35.0),
        jitter_um: 3.0,
        seed: 2,
    };
    let spikes = simulate(&scenario, |y, t| truth[t] + 10.0 * (y - 1930.0) / 3820.0 * (t as f64 / 30.0 - 1.0));
    println!(
        "estimation input: {} spikes over {N_BATCHES} batches ({:.0} per batch)",
        spikes.batch.len(),
        spikes.batch.len() as f64 / N_BATCHES as f64
    );
    for threads in [1, rayon::current_num_threads()] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(&probe, &spikes, threads));
    }
}

fn run(probe: &Probe, spikes: &synthetic::SyntheticSpikes, threads: usize) {
    let table = DriftSpikes { batch: &spikes.batch, depth_um: &spikes.depth_um, amplitude: &spikes.amplitude };
    let mut model = None;
    for nblocks in [1, 5] {
        let settings = Settings { nblocks, ..Settings::default() };
        let start = Instant::now();
        model = estimate_drift(&table, N_BATCHES, probe, &settings).unwrap();
        println!("threads {threads}: estimate_drift nblocks {nblocks}: {:.3} s", start.elapsed().as_secs_f64());
    }
    let model = model.unwrap();
    let start = Instant::now();
    let corrector = DriftCorrector::new(&model, probe, 20.0);
    let new_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let rows = corrector.sparse_rows(7);
    let matrix_s = start.elapsed().as_secs_f64();
    let per_row = rows.nnz() as f64 / rows.n_rows() as f64;
    let mut rng = Rng::new(3);
    let input = Array2::from_shape_fn((probe.len(), PADDED_BATCH), |_| rng.normal() as f32);
    let mut out = Array2::zeros(input.dim());
    corrector.apply(7, input.view(), out.view_mut());
    let repeats = 3;
    let start = Instant::now();
    for _ in 0..repeats {
        corrector.apply(7, input.view(), out.view_mut());
    }
    let apply_s = start.elapsed().as_secs_f64() / repeats as f64;
    let dense_s = dense_product(&corrector, &input, threads);
    println!(
        "threads {threads}: DriftCorrector::new {new_s:.3} s; per batch: M {matrix_s:.4} s ({per_row:.1} entries per row), \
         apply {apply_s:.3} s ({:.1} GMAC/s), dense faer GEMM {dense_s:.3} s",
        per_row * probe.len() as f64 * PADDED_BATCH as f64 / apply_s / 1e9
    );
}

/// The same product with the dense matrix (8.8 GMAC for NP1), for comparison.
fn dense_product(corrector: &DriftCorrector, input: &Array2<f32>, threads: usize) -> f64 {
    let m = corrector.matrix(7);
    let n = m.nrows();
    let a = faer::Mat::<f32>::from_fn(n, n, |i, j| m[[i, j]] as f32);
    let x = faer::Mat::<f32>::from_fn(n, input.ncols(), |i, j| input[[i, j]]);
    let mut y = faer::Mat::<f32>::zeros(n, input.ncols());
    let par = if threads == 1 { faer::Par::Seq } else { faer::Par::rayon(threads) };
    let start = Instant::now();
    faer::linalg::matmul::matmul(y.as_mut(), faer::Accum::Replace, a.as_ref(), x.as_ref(), 1.0f32, par);
    start.elapsed().as_secs_f64()
}
