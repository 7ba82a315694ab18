//! `kilosort-rs demo`: simulate a small recording with known spikes, sort it and score the
//! result — the whole tool at work in about a minute.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use groundtruth::compare::{CompareOptions, compare, load_gt_folder, load_phy_folder};
use groundtruth::sim::{PRESETS, SimulationConfig, simulate};

use kilosort::output_guard::check_output_folder;
use kilosort::phy::PROVENANCE_FILE;

use crate::settings_args::SettingsArgs;
use crate::sort::SortArgs;

/// Median firing rate of the demo's units, Hz.
const DEMO_RATE_HZ: f64 = 10.0;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the simulated recording (`recording/`) and the results (`kilosort4/`).
    #[arg(long, default_value = "kilosort-rs-demo")]
    dir: PathBuf,
    /// Simulator preset (≤ 64 channels keeps it quick): tetrode-like, linear32, np1-64, …
    #[arg(long, default_value = "np1-64")]
    preset: String,
    /// Seconds of data.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Random seed of the simulation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let Some(mut config) = SimulationConfig::preset(&args.preset) else {
        bail!("unknown preset `{}`; choose one of {}", args.preset, PRESETS.join(", "));
    };
    if !(args.duration > 0.0 && args.duration <= 600.0) {
        bail!("--duration must be between 0 and 600 s, got {}", args.duration);
    }
    config.duration_s = args.duration;
    // Kilosort's graph clustering only splits groups of at least 1000 spikes, so a demo needs
    // busy units; cortex at 10 Hz median is within the range of real recordings.
    config.rate_median_hz = DEMO_RATE_HZ;
    config.seed = args.seed;
    let recording = args.dir.join("recording");
    let results = args.dir.join("kilosort4");
    // A demo replaces only what an earlier demo wrote (a simulation, a results folder of ours);
    // both are checked before either is touched.
    check_output_folder(&results, PROVENANCE_FILE, true, &[])?;
    eprintln!("simulating {} s of `{}` into {} …", args.duration, args.preset, recording.display());
    let summary = simulate(&config, &recording, true, &mut |_| {})?;
    let mut settings = SettingsArgs::default();
    settings.overrides.push(("n_chan_bin", summary.n_chan_bin.to_string()));
    settings.overrides.push(("results_dir", results.display().to_string()));
    crate::sort::run(&SortArgs {
        files: vec![recording.join("recording.bin")],
        probe: Some(recording.join("probe.json").display().to_string()),
        overwrite: true,
        save_extra_vars: false,
        quiet: false,
        settings,
    })?;
    let (gt, fs) = load_gt_folder(&recording)?;
    let (sorted, _) = load_phy_folder(&results)?;
    let result = compare(&gt, &sorted, fs, &CompareOptions::default());
    println!("\nground truth vs kilosort-rs ({} ground-truth spikes):", summary.n_gt_spikes);
    print!("{}", result.table());
    println!("open the results in Phy: phy template-gui {}", results.join("params.py").display());
    Ok(())
}
