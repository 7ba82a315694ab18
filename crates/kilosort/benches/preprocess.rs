//! Preprocessing speed: `fit` (whitening) over a recording and `apply` on 2 s batches.
//!
//!     cargo bench -p kilosort --bench preprocess               # uses $KS_BENCH_RECORDING if set
//!     KS_BENCH_RECORDING=~/ks-bench/data/sim-np1-384 cargo bench -p kilosort --bench preprocess
//!
//! The folder must hold `recording.bin` (int16) and `probe.json`; without one, 20 s of
//! 384-channel noise on the Neuropixels 1.0 layout is generated in a temporary folder.
//! Prints seconds per batch and the real-time factor, for 1 thread and for all threads.

use std::path::PathBuf;
use std::time::Instant;

use kilosort::io::{BatchReader, BinaryRecording, Dtype};
use kilosort::preprocess::Preprocessor;
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
    let n = reader.n_batches().min(5);
    let mut out = Array2::zeros((plan.n_channels(), plan.layout.padded_len()));
    let (mut read_s, mut apply_s) = (0.0, 0.0);
    for b in 0..n {
        let t0 = Instant::now();
        let mut batch = reader.read(b).data;
        let t1 = Instant::now();
        pre.apply(&mut batch, &mut out);
        read_s += (t1 - t0).as_secs_f64();
        apply_s += t1.elapsed().as_secs_f64();
    }
    let batch_s = plan.layout.batch_size as f64 / plan.settings.fs;
    let steps = step_times(&reader, &pre);
    println!(
        "threads {threads}: fit {fit:.2} s ({:.0}× real time, {} covariance batches); per {batch_s:.0} s batch: read {:.3} s, \
         filter+whiten {:.3} s ({:.1}× real time)",
        seconds / fit,
        pre.covariance_batches,
        read_s / n as f64,
        apply_s / n as f64,
        batch_s * n as f64 / apply_s
    );
    println!("           steps: {steps}");
}

/// Seconds of each step on batch 0: mean removal, CAR, high-pass, whitening.
fn step_times(reader: &BatchReader, pre: &Preprocessor) -> String {
    use kilosort::preprocess::{common_median_reference, remove_channel_means};
    let mut batch = reader.read(0).data;
    let mut out = Array2::zeros(batch.dim());
    let mut lap = Instant::now();
    let mut next = |name: &str| {
        let s = format!("{name} {:.3} s", lap.elapsed().as_secs_f64());
        lap = Instant::now();
        s
    };
    remove_channel_means(batch.view_mut());
    let means = next("means");
    common_median_reference(batch.view_mut());
    let car = next("CAR");
    pre.highpass.as_ref().expect("default settings filter").apply(batch.view_mut());
    let filter = next("high-pass");
    pre.whitening.apply(batch.view(), out.view_mut());
    let whiten = next("whitening");
    [means, car, filter, whiten].join(", ")
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
