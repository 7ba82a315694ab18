//! Preprocessing speed: `fit` (whitening) over a recording and `apply` on 2 s batches.
//!
//!     cargo bench -p kilosort --bench preprocess               # uses $KS_BENCH_RECORDING if set
//!     KS_BENCH_RECORDING=~/ks-bench/data/sim-np1-384 cargo bench -p kilosort --bench preprocess
//!
//! The folder must hold `recording.bin` (int16) and `probe.json`; without one, 20 s of
//! 384-channel noise on the Neuropixels 1.0 layout is generated in a temporary folder.
//! Prints seconds per batch (each batch on one thread) and the real-time factor, and the fit
//! time with 1 thread and with all threads.

use std::path::PathBuf;
use std::time::Instant;

use kilosort::io::{BatchReader, BinaryRecording, Dtype};
use kilosort::preprocess::{BatchScratch, Preprocessor};
use kilosort::probe::builtin;
use kilosort::progress::NoProgress;
use kilosort::{Plan, Probe, Settings};
use ndarray::Array2;

fn main() {
    let (folder, _keep) = recording_folder();
    let probe = Probe::load(&folder.join("probe.json")).expect("probe.json");
    let n_chan_bin = probe.channel_map.iter().max().map_or(0, |&m| m as usize + 1);
    let recording =
        BinaryRecording::open(&[folder.join("recording.bin")], n_chan_bin, Dtype::Int16).expect("recording");
    let settings = Settings { n_chan_bin: Some(n_chan_bin), ..Settings::default() };
    let plan = Plan::new(&settings, &probe, &recording).expect("plan");
    let seconds = plan.layout.n_samples() as f64 / settings.fs;
    println!(
        "recording {}: {} channels, {seconds:.0} s, {} batches",
        folder.display(),
        probe.len(),
        plan.layout.n_batches
    );
    for threads in [1, rayon::current_num_threads()] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| run(&recording, &plan, seconds, threads));
    }
}

fn run(recording: &BinaryRecording, plan: &Plan, seconds: f64, threads: usize) {
    let reader = BatchReader::new(recording, plan.layout, plan.probe.channel_map.clone(), None, None);
    let start = Instant::now();
    let pre = Preprocessor::fit(&reader, plan, &NoProgress);
    let fit = start.elapsed().as_secs_f64();
    let batch_s = plan.layout.batch_size as f64 / plan.settings.fs;
    let n = reader.n_batches().min(5);
    let per_batch = |pre: &Preprocessor| {
        let mut out = Array2::zeros((plan.n_channels(), plan.layout.padded_len()));
        let mut scratch = BatchScratch::default();
        pre.prepare(&reader, 0, None, &mut scratch, &mut out);
        let start = Instant::now();
        for b in 0..n {
            pre.prepare(&reader, b, None, &mut scratch, &mut out);
        }
        start.elapsed().as_secs_f64() / n as f64
    };
    // Batches run one after another here, so the work of one batch is on one thread.
    let full = per_batch(&pre);
    let no_car = per_batch(&Preprocessor { do_car: false, ..pre.clone() });
    let no_filter = per_batch(&Preprocessor { highpass: None, ..pre.clone() });
    let mut time_major = Vec::new();
    let start = Instant::now();
    for b in 0..n {
        reader.read_time_major_into(b, &mut time_major);
    }
    let read = start.elapsed().as_secs_f64() / n as f64;
    println!(
        "threads {threads}: fit {fit:.2} s ({:.0}× real time, {} covariance batches); per {batch_s:.0} s batch on one \
         thread: read+filter+whiten {full:.3} s ({:.1}× real time)",
        seconds / fit,
        pre.covariance_batches,
        batch_s / full,
    );
    println!(
        "           of which read {read:.3} s, CAR {:.3} s, high-pass {:.3} s, means+whitening {:.3} s",
        full - no_car,
        full - no_filter,
        no_car + no_filter - full - read
    );
}

/// The benchmark recording: `$KS_BENCH_RECORDING`, or generated noise (kept alive by the guard).
fn recording_folder() -> (PathBuf, Option<tempfile::TempDir>) {
    if let Ok(path) = std::env::var("KS_BENCH_RECORDING") {
        return (PathBuf::from(path), None);
    }
    let dir = tempfile::tempdir().unwrap();
    let probe = builtin::by_name("NeuroPix1_default").unwrap();
    kilosort::probe::write_kilosort_json(&probe, &dir.path().join("probe.json")).unwrap();
    let (n_chan, n_samples) = (384usize, 20 * 30_000usize);
    let mut state = 1u64;
    let bytes: Vec<u8> = (0..n_chan * n_samples)
        .flat_map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((state >> 48) as i16) >> 9).to_le_bytes()
        })
        .collect();
    std::fs::write(dir.path().join("recording.bin"), bytes).unwrap();
    (dir.path().to_path_buf(), Some(dir))
}
