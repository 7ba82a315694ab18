//! `kilosort-rs compare`: score a sorting against ground truth (SpikeInterface's metrics).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use groundtruth::compare::{CompareOptions, compare, load_gt_folder, load_gt_snr, load_npy_pair, load_phy_folder};
use kilosort::output_guard::is_within;

/// SNR above which a ground-truth unit should be found by any good sorter (as score.py reports).
const SNR_SUBSET: f64 = 5.0;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Ground-truth folder (from `kilosort-rs simulate` or shared/bench/make_gt.py).
    #[arg(long, required_unless_present = "gt_times")]
    gt: Option<PathBuf>,
    /// Sorted Phy-format results folder (spike_times.npy, spike_clusters.npy, params.py).
    #[arg(long, required_unless_present = "sorted_times")]
    sorted: Option<PathBuf>,
    /// Instead of --gt: ground-truth spike times (.npy, samples).
    #[arg(long, requires_all = ["gt_clusters", "fs"])]
    gt_times: Option<PathBuf>,
    /// Ground-truth unit of each spike (.npy).
    #[arg(long)]
    gt_clusters: Option<PathBuf>,
    /// Instead of --sorted: sorted spike times (.npy, samples).
    #[arg(long, requires = "sorted_clusters")]
    sorted_times: Option<PathBuf>,
    /// Sorted unit of each spike (.npy).
    #[arg(long)]
    sorted_clusters: Option<PathBuf>,
    /// Sampling rate, Hz (needed with --gt-times).
    #[arg(long)]
    fs: Option<f64>,
    /// Spikes match when closer than this, ms.
    #[arg(long, default_value_t = 0.4, allow_negative_numbers = true)]
    delta_ms: f64,
    /// Where to write comparison.json (default: inside the sorted folder).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &CompareArgs) -> Result<()> {
    if !(args.delta_ms.is_finite() && args.delta_ms > 0.0) {
        bail!("--delta-ms must be a positive number of milliseconds (SpikeInterface uses 0.4), got {}", args.delta_ms);
    }
    // Checked before the work: the report may replace only an earlier report.
    let out = report_path(args)?;
    let (gt, gt_fs, snr) = match (&args.gt, &args.gt_times, &args.gt_clusters) {
        (Some(dir), _, _) => {
            let (trains, fs) = load_gt_folder(dir)?;
            (trains, fs, load_gt_snr(dir)?)
        }
        (None, Some(t), Some(c)) => (load_npy_pair(t, c)?, args.fs.unwrap_or(0.0), None),
        _ => bail!("give --gt DIR, or --gt-times and --gt-clusters with --fs"),
    };
    let (sorted, sorted_fs) = match (&args.sorted, &args.sorted_times, &args.sorted_clusters) {
        (Some(dir), _, _) => load_phy_folder(dir)?,
        (None, Some(t), Some(c)) => (load_npy_pair(t, c)?, None),
        _ => bail!("give --sorted DIR, or --sorted-times and --sorted-clusters"),
    };
    let fs = args.fs.unwrap_or(gt_fs);
    if let Some(sfs) = sorted_fs
        && (sfs - fs).abs() > 1e-6 * fs
    {
        bail!(
            "the sorting's params.py says sample_rate = {sfs} but the ground truth is at {fs} Hz; sort at the recording's rate"
        );
    }
    let options = CompareOptions { delta_ms: args.delta_ms, ..CompareOptions::default() };
    let result = compare(&gt, &sorted, fs, &options);
    print!("{}", result.table());
    let json = match &snr {
        Some(snr) => {
            let strong: Vec<i64> = result
                .per_gt_unit
                .iter()
                .map(|u| u.gt_unit)
                .filter(|u| snr.get(u).is_some_and(|&s| s >= SNR_SUBSET))
                .collect();
            let subset = result.restrict_to(&strong);
            println!("GT units with SNR ≥ {SNR_SUBSET}: {}", subset_line(&subset));
            result.to_json_with_subset(&subset)
        }
        None => result.to_json(),
    };
    let tmp = out.with_extension("json.partial");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Where comparison.json goes: `--out`, else inside the sorted folder. The path must end in
/// `.json`, must not be one of the inputs, and may replace only a report this command wrote.
fn report_path(args: &CompareArgs) -> Result<PathBuf> {
    let out = match (&args.out, &args.sorted) {
        (Some(out), _) => out.clone(),
        (None, Some(dir)) => dir.join("comparison.json"),
        (None, None) => PathBuf::from("comparison.json"),
    };
    if out.extension().is_none_or(|e| e != "json") {
        bail!("--out {}: the report is JSON; give a path ending in .json", out.display());
    }
    let inputs = [&args.gt_times, &args.gt_clusters, &args.sorted_times, &args.sorted_clusters];
    if inputs.into_iter().flatten().any(|input| is_within(&out, input)) {
        bail!(
            "--out {}: that is one of the inputs, which the report would overwrite; choose another file",
            out.display()
        );
    }
    if std::fs::symlink_metadata(&out).is_ok() && !is_earlier_report(&out) {
        bail!(
            "--out {}: the file exists and is not a report of `kilosort-rs compare`, so it is not replaced; choose \
             another file",
            out.display()
        );
    }
    Ok(out)
}

/// Whether `path` is a plain file holding a report this command wrote.
fn is_earlier_report(path: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else { return false };
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    json.as_ref().and_then(|j| j.get("scorer")).and_then(|s| s.as_str()).is_some_and(|s| s.starts_with("kilosort-rs"))
}

fn subset_line(s: &groundtruth::compare::Summary) -> String {
    format!(
        "{} units, {} well detected (accuracy ≥ 0.8), mean accuracy {:.3}, Kilosort-correct {}",
        s.n_gt_units,
        s.n_acc_ge_0_8,
        s.accuracy_mean.unwrap_or(0.0),
        s.ks_correct
    )
}
