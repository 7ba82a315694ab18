//! `kilosort-rs simulate`: write a ground-truth recording folder.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use groundtruth::sim::{DriftConfig, DriftKind, PRESETS, SimulationConfig, simulate};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DriftArg {
    None,
    Rigid,
    NonRigid,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Output folder (must not exist unless --overwrite).
    out: PathBuf,
    /// Preset: tetrode-like, linear32, np1-64, np1-384, np1-384-drift, np2-4shank.
    #[arg(long, default_value = "np1-64")]
    preset: String,
    /// Probe: a built-in name or a probe file (replaces the preset's probe).
    #[arg(long)]
    probe: Option<String>,
    /// Seconds of data.
    #[arg(long)]
    duration: Option<f64>,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long)]
    seed: Option<u64>,
    /// Ground-truth units.
    #[arg(long)]
    units: Option<usize>,
    /// Background (distractor) units, not scored.
    #[arg(long)]
    distractors: Option<usize>,
    /// Drift type.
    #[arg(long, value_enum)]
    drift: Option<DriftArg>,
    /// Drift: peak-to-peak amplitude of the slow motion, µm.
    #[arg(long)]
    drift_um: Option<f64>,
    /// Drift: a lasting step of this size, µm, at the middle of the recording.
    #[arg(long)]
    drift_step_um: Option<f64>,
    /// Replace an existing output folder.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: &SimulateArgs) -> Result<()> {
    let Some(mut config) = SimulationConfig::preset(&args.preset) else {
        bail!("unknown preset `{}`; choose one of {}", args.preset, PRESETS.join(", "));
    };
    if let Some(p) = &args.probe {
        config.probe = p.clone();
    }
    config.duration_s = args.duration.unwrap_or(config.duration_s);
    config.seed = args.seed.unwrap_or(config.seed);
    config.n_units = args.units.unwrap_or(config.n_units);
    config.n_distractors = args.distractors.unwrap_or(config.n_distractors);
    if let Some(kind) = args.drift {
        let kind = match kind {
            DriftArg::None => DriftKind::None,
            DriftArg::Rigid => DriftKind::Rigid,
            DriftArg::NonRigid => DriftKind::NonRigid,
        };
        config.drift = DriftConfig {
            kind,
            amplitude_um: 20.0,
            jumps_per_minute: 1.0,
            step_um: 0.0,
            step_time_s: config.duration_s / 2.0,
        };
    }
    if let Some(um) = args.drift_um {
        config.drift.amplitude_um = um;
    }
    if let Some(step) = args.drift_step_um {
        config.drift.step_um = step;
        config.drift.step_time_s = config.duration_s / 2.0;
    }
    if config.duration_s <= 0.0 {
        bail!("--duration must be positive, got {}", config.duration_s);
    }
    let started = Instant::now();
    let mut last = -1;
    let summary = simulate(&config, &args.out, args.overwrite, &mut |f| {
        let pct = (f * 100.0) as i32;
        if pct / 10 != last / 10 {
            eprint!("\rsimulating {pct:3}%");
            let _ = std::io::stderr().flush();
            last = pct;
        }
    })?;
    let wall = started.elapsed().as_secs_f64();
    eprintln!();
    println!(
        "wrote {}: {} channels, {:.1} s, {} ground-truth spikes ({} with distractors) in {wall:.1} s ({:.1}× real time)",
        args.out.display(),
        summary.n_chan_bin,
        summary.n_samples as f64 / config.fs,
        summary.n_gt_spikes,
        summary.n_all_spikes,
        config.duration_s / wall
    );
    Ok(())
}
