//! `kilosort-rs info`: what a recording holds, read through the same reader the sorter uses.

use std::path::PathBuf;

use anyhow::Result;
use kilosort::Plan;
use kilosort::io::{BatchReader, Recording};
use kilosort::preprocess::Preprocessor;
use kilosort::progress::NoProgress;

use crate::probe_cmd::describe_probe;
use crate::session::{Session, robust_sd};
use crate::settings_args::SettingsArgs;

/// At most this many batches, spread over the recording, are read for the RMS summary.
const RMS_BATCHES: usize = 8;

pub fn run(files: &[PathBuf], probe_arg: Option<&str>, args: &SettingsArgs, preprocessed: bool) -> Result<()> {
    let session = Session::open(files, probe_arg, args)?;
    print_summary(session.recording.as_ref(), &session.plan, &session.probe_name);
    let reader = session.reader();
    print_rms(&reader, &session.plan);
    if preprocessed {
        print_whitened_noise(&reader, &session.plan);
    }
    Ok(())
}

/// Batches spread evenly over the recording, at most `RMS_BATCHES`.
fn sample_batches(n_batches: usize) -> Vec<usize> {
    let k = RMS_BATCHES.min(n_batches);
    (0..k).map(|i| i * n_batches / k).collect()
}

/// Per-channel noise after filtering and whitening: ≈ 1 everywhere when whitening worked; far
/// from 1 flags dead, noisy or mis-mapped channels.
fn print_whitened_noise(reader: &BatchReader, plan: &Plan) {
    let pre = Preprocessor::fit(reader, plan, &NoProgress);
    let pad = plan.layout.pad;
    let mut per_channel: Vec<Vec<f32>> = vec![Vec::new(); plan.n_channels()];
    let mut out = ndarray::Array2::zeros((plan.n_channels(), plan.layout.padded_len()));
    let mut scratch = kilosort::preprocess::BatchScratch::default();
    for b in sample_batches(reader.n_batches()) {
        pre.prepare(reader, b, None, &mut scratch, &mut out);
        for (c, row) in out.rows().into_iter().enumerate() {
            per_channel[c].extend(row.iter().skip(pad).take(row.len() - 2 * pad));
        }
    }
    let mut noise: Vec<(f64, u32)> =
        per_channel.iter().zip(&plan.probe.channel_map).map(|(v, &c)| (robust_sd(v), c)).collect();
    println!(
        "whitened    covariance from {} batches; noise SD per channel after filtering + whitening:",
        pre.covariance_batches
    );
    let odd: Vec<String> =
        noise.iter().filter(|(sd, _)| !(0.5..=2.0).contains(sd)).map(|(sd, c)| format!("{c} ({sd:.2})")).collect();
    noise.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (lo, mid, hi) = (noise[0], noise[noise.len() / 2], noise[noise.len() - 1]);
    println!("            min {:.3} (ch {}), median {:.3}, max {:.3} (ch {})", lo.0, lo.1, mid.0, hi.0, hi.1);
    if !odd.is_empty() {
        println!("            channels far from 1 (dead, noisy or mis-mapped?): {}", odd.join(", "));
    }
}

fn print_summary(recording: &dyn Recording, plan: &Plan, probe_name: &str) {
    let s = &plan.settings;
    let files: Vec<String> = recording.paths().iter().map(|p| p.display().to_string()).collect();
    let total = recording.total_samples();
    let l = &plan.layout;
    println!("recording   {}", files.join(" + "));
    println!("dtype       {}, {} channels per sample", recording.dtype().name(), recording.n_chan_bin());
    println!("duration    {:.3} s ({total} samples at {} Hz)", total as f64 / s.fs, s.fs);
    println!("window      {:.3} – {:.3} s ({} samples)", l.imin as f64 / s.fs, l.imax as f64 / s.fs, l.n_samples());
    println!(
        "batches     {} of {} samples (+{} padding each side){}",
        l.n_batches,
        l.batch_size,
        l.pad,
        if l.downsampling > 1 { format!(", every {}th of {}", l.downsampling, l.n_batches_raw) } else { String::new() }
    );
    println!("probe       {probe_name}");
    println!("            {}", describe_probe(&plan.probe));
}

fn print_rms(reader: &BatchReader, plan: &Plan) {
    let n_batches = reader.n_batches();
    let picks: Vec<usize> =
        (0..RMS_BATCHES.min(n_batches)).map(|k| k * n_batches / RMS_BATCHES.min(n_batches)).collect();
    let pad = plan.layout.pad;
    let mut sum_sq = vec![0.0f64; reader.n_channels()];
    let mut count = 0usize;
    for &b in &picks {
        let batch = reader.read(b);
        let core = batch.data.slice(ndarray::s![.., pad..batch.data.ncols() - pad]);
        for (c, row) in core.rows().into_iter().enumerate() {
            let mean = row.iter().map(|&x| x as f64).sum::<f64>() / row.len() as f64;
            sum_sq[c] += row.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>();
        }
        count += core.ncols();
    }
    let mut rms: Vec<(f64, u32)> =
        sum_sq.iter().zip(&plan.probe.channel_map).map(|(s, &c)| ((s / count as f64).sqrt(), c)).collect();
    rms.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (lo, mid, hi) = (rms[0], rms[rms.len() / 2], rms[rms.len() - 1]);
    println!(
        "raw RMS     over {} batches: min {:.2} (ch {}), median {:.2}, max {:.2} (ch {})",
        picks.len(),
        lo.0,
        lo.1,
        mid.0,
        hi.0,
        hi.1
    );
    let dead: Vec<u32> = rms.iter().filter(|(r, _)| *r < 0.1 * mid.0).map(|&(_, c)| c).collect();
    if !dead.is_empty() {
        println!("            channels below 10% of the median RMS (dead or reference?): {dead:?}");
    }
}
