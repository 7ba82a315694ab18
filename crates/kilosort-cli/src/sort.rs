//! `kilosort-rs sort`: a raw recording in, a Phy results folder out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use kilosort::phy::{PhyResults, ResultsFolder};
use kilosort::pipeline::SortOutput;

use crate::progress_bar::StderrProgress;
use crate::session::Session;
use crate::settings_args::SettingsArgs;

/// The log written into the results folder.
pub const LOG_FILE: &str = "kilosort-rs.log";

#[derive(Debug, Args)]
pub struct SortArgs {
    /// The binary recording(s), concatenated in time, or a folder holding one.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Probe file (.json/.mat/.prb) or built-in name (see `kilosort-rs probe list`).
    #[arg(long)]
    pub probe: Option<String>,
    /// Replace an existing results folder (atomically).
    #[arg(long)]
    pub overwrite: bool,
    /// Also write the intermediate results (Kilosort4's `save_extra_vars`): st0.npy, clu0.npy,
    /// Wall0.npy (universal detections, first clustering) and Wall3.npy (learned templates).
    #[arg(long)]
    pub save_extra_vars: bool,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

pub fn run(args: &SortArgs) -> Result<()> {
    let start = Instant::now();
    let session = Session::open(&args.files, args.probe.as_deref(), &args.settings)?;
    // `--results-dir` is Kilosort4's `results_dir` setting.
    let target = match &session.plan.settings.results_dir {
        Some(d) => d.clone(),
        None => session.recording.path().parent().unwrap_or(Path::new(".")).join("kilosort4"),
    };
    // Refuse an existing folder before the long work, not after.
    let mut folder = ResultsFolder::create(&target, args.overwrite, &session.inputs())?;
    let progress = StderrProgress::new(args.quiet);
    let out = kilosort::pipeline::sort(session.recording.as_ref(), &session.plan, &progress)?;
    let sorted_at = start.elapsed().as_secs_f64();
    let mut log = run_log(&out, &session, sorted_at);
    kilosort::phy::write_drift_plots(&out, &session.plan, folder.path())?;
    kilosort::phy::write_diagnostic_plots(&out, &session.plan, folder.path())?;
    if args.save_extra_vars {
        kilosort::phy::write_extra_vars(&out, folder.path())?;
    }
    // The export consumes the sort, so its per-spike tables are not held twice.
    let results = PhyResults::from_sort(out, &session.plan, session.recording.as_ref(), &session.probe_name);
    folder.write_phy(&results)?;
    drop(results);
    log_export(&mut log, start.elapsed().as_secs_f64() - sorted_at, start.elapsed().as_secs_f64());
    folder.add_file(LOG_FILE, log.as_bytes())?;
    let written = folder.commit().with_context(|| format!("writing results to {}", target.display()))?;
    if !args.quiet {
        eprint!("{log}");
        eprintln!("results in {}", written.display());
    }
    Ok(())
}

/// What Kilosort4's log reports: version, settings that differ from the defaults, probe,
/// recording, per-stage time and peak memory, and the result counts.
fn run_log(out: &SortOutput, session: &Session, total_s: f64) -> String {
    use std::fmt::Write;
    let plan = &session.plan;
    let mut log = String::new();
    let _ = writeln!(log, "kilosort-rs {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(log, "recording: {}", session.recording.path().display());
    let _ = writeln!(
        log,
        "  {} channels in file, {} sorted, {:.1} s analysed, {} batches",
        session.recording.n_chan_bin(),
        plan.n_channels(),
        plan.layout.n_samples() as f64 / plan.settings.fs,
        plan.layout.n_batches
    );
    let _ = writeln!(log, "probe: {}", session.probe_name);
    let _ = writeln!(log, "settings changed from the defaults:");
    for (name, value) in plan.settings.changed_from_default() {
        let _ = writeln!(log, "  {name} = {value}");
    }
    if let Some(d) = &out.drift {
        let _ = writeln!(log, "drift: {} blocks, mean |shift| of block 0 {:.2} µm", d.n_blocks(), d.mean_drift());
    }
    let n_good = out.is_refractory.iter().filter(|&&g| g).count();
    let _ = writeln!(
        log,
        "spikes: {} universal detections, {} first clusters, {} learned templates, {} sorted spikes in {} units ({} good)",
        out.n_universal_spikes,
        out.n_first_clusters,
        out.learned_templates.dim().0,
        out.spikes.len(),
        out.cluster_templates.dim().0,
        n_good
    );
    let _ = writeln!(log, "{:<20} {:>9} {:>14}", "stage", "seconds", "peak RSS (MB)");
    for s in &out.timings.stages {
        let rss = s.peak_rss_bytes.map_or("-".to_string(), |b| format!("{:.0}", b as f64 / 1e6));
        let _ = writeln!(log, "{:<20} {:>9.2} {:>14}", s.name, s.seconds, rss);
    }
    let _ = writeln!(log, "{:<20} {:>9.2}", "sorting", total_s);
    log
}

/// The export's line (plots and Phy files) and the run's total, with the run's peak memory.
fn log_export(log: &mut String, export_s: f64, total_s: f64) {
    use std::fmt::Write;
    let rss = kilosort::timing::peak_rss_bytes().map_or("-".to_string(), |b| format!("{:.0}", b as f64 / 1e6));
    let _ = writeln!(log, "{:<20} {:>9.2} {:>14}", "export", export_s, rss);
    let _ = writeln!(log, "{:<20} {:>9.2} {:>14}", "total", total_s, rss);
}
