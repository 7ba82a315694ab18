//! `kilosort-rs sort`: a raw recording in, a Phy results folder out.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::progress_bar::StderrProgress;
use crate::session::Session;
use crate::settings_args::SettingsArgs;

#[derive(Debug, Args)]
pub struct SortArgs {
    /// The binary recording(s), concatenated in time, or a folder holding one.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Probe file (.json/.mat/.prb) or built-in name (see `kilosort-rs probe list`).
    #[arg(long)]
    pub probe: Option<String>,
    /// Results folder (default: `kilosort4/` beside the recording).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// Replace an existing results folder (atomically).
    #[arg(long)]
    pub overwrite: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

pub fn run(args: &SortArgs) -> Result<()> {
    let start = Instant::now();
    let session = Session::open(&args.files, args.probe.as_deref(), &args.settings)?;
    let progress = StderrProgress::new(args.quiet);
    let out = kilosort::pipeline::sort(&session.recording, &session.plan, &progress)?;
    eprintln!(
        "{} universal spikes, {} first clusters, {} learned templates; {} spikes in {} units; total {:.1} s",
        out.n_universal_spikes,
        out.n_first_clusters,
        out.learned_templates.dim().0,
        out.spikes.len(),
        out.cluster_templates.dim().0,
        start.elapsed().as_secs_f64()
    );
    for s in &out.timings.stages {
        eprintln!(
            "  {:<20} {:>7.1} s  peak RSS {:.0} MB",
            s.name,
            s.seconds,
            s.peak_rss_bytes.unwrap_or(0) as f64 / 1e6
        );
    }
    Ok(())
}
