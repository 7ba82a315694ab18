//! `kilosort-rs info`: what a recording holds, read through the same reader the sorter uses.

use std::path::PathBuf;

use anyhow::Result;
use kilosort::io::{BatchReader, BinaryRecording};
use kilosort::{Plan, Probe};

use crate::probe_cmd::describe_probe;
use crate::settings_args::SettingsArgs;

/// At most this many batches, spread over the recording, are read for the RMS summary.
const RMS_BATCHES: usize = 8;

pub fn run(files: &[PathBuf], probe_arg: Option<&str>, args: &SettingsArgs) -> Result<()> {
    let mut settings = args.resolve()?;
    settings.filename = expand_folder(files)?;
    settings.validate("command line")?;
    let n_chan_bin = settings.n_chan_bin.expect("validated");
    let recording = BinaryRecording::open(&settings.filename, n_chan_bin, settings.data_dtype)?;
    let (probe, probe_name) = match probe_arg {
        Some(arg) => (Probe::from_name_or_path(arg)?, arg.to_string()),
        None => (every_channel(n_chan_bin), "none given: all channels in file order".to_string()),
    };
    let plan = Plan::new(&settings, &probe, &recording)?;
    print_summary(&recording, &plan, &probe_name);
    let reader = BatchReader::new(
        &recording,
        plan.layout,
        plan.probe.channel_map.clone(),
        plan.settings.scale,
        plan.settings.shift,
    );
    print_rms(&reader, &plan);
    Ok(())
}

fn expand_folder(files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    match files {
        [one] if one.is_dir() => Ok(vec![kilosort::io::find_binary(one)?]),
        _ => Ok(files.to_vec()),
    }
}

/// A stand-in probe when none is given: every file row, on a vertical line 20 µm apart.
fn every_channel(n: usize) -> Probe {
    let channels = (0..n as u32).collect();
    let y = (0..n).map(|i| 20.0 * i as f32).collect();
    Probe::new("all channels", channels, vec![0.0; n], y, vec![0.0; n], n).expect("a plain list of channels is valid")
}

fn print_summary(recording: &BinaryRecording, plan: &Plan, probe_name: &str) {
    let s = &plan.settings;
    let files: Vec<String> = recording.paths().map(|p| p.display().to_string()).collect();
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
