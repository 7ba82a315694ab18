//! `kilosort-rs view`: a PNG heatmap of a time window, raw or preprocessed, channels by depth
//! (like the data view of Kilosort4's GUI).

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use kilosort::io::{BatchLayout, BatchOptions};
use kilosort::preprocess::Preprocessor;
use kilosort::progress::NoProgress;
use ndarray::Array2;
use plotters::prelude::*;

use crate::probe_plot::register_fonts;
use crate::session::{Session, robust_sd};
use crate::settings_args::SettingsArgs;

/// Widest picture, pixels; longer windows are binned keeping each bin's largest deflection.
const MAX_COLUMNS: usize = 1600;

#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The binary recording(s), or a folder holding one.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Probe file or built-in name.
    #[arg(long)]
    probe: Option<String>,
    /// Start of the window, seconds.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    start: f64,
    /// Length of the window, seconds (cut at the end of the recording).
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    duration: f64,
    /// Show filtered and whitened data instead of raw.
    #[arg(long)]
    preprocessed: bool,
    /// Output picture.
    #[arg(long, default_value = "view.png")]
    png: PathBuf,
    #[command(flatten)]
    settings: SettingsArgs,
}

/// The window's length, cut at the end of the recording (`available` seconds after `tmin`).
fn clamped_duration(args: &ViewArgs, available: f64, path: &std::path::Path) -> Result<f64> {
    if !(args.start.is_finite() && args.start >= 0.0) {
        bail!("--start must be a time in seconds ≥ 0, got {}", args.start);
    }
    if args.duration.is_nan() || args.duration <= 0.0 {
        bail!("--duration must be a positive number of seconds, got {}", args.duration);
    }
    if args.start >= available {
        bail!(
            "{}: --start {} s is past the end of the recording ({available:.3} s after tmin); start earlier",
            path.display(),
            args.start
        );
    }
    Ok(args.duration.min(available - args.start))
}

pub fn run(args: &ViewArgs) -> Result<()> {
    let session = Session::open(&args.files, args.probe.as_deref(), &args.settings)?;
    let plan = &session.plan;
    let fs = plan.settings.fs;
    let available = session.recording.total_samples() as f64 / fs - plan.settings.tmin;
    let duration = clamped_duration(args, available, session.recording.path())?;
    let samples = (duration * fs) as usize;
    if samples < plan.settings.nt {
        bail!(
            "--duration {} s is shorter than one waveform; give at least {:.4} s",
            args.duration,
            plan.settings.nt as f64 / fs
        );
    }
    let window = BatchOptions {
        fs,
        tmin: plan.settings.tmin + args.start,
        tmax: plan.settings.tmin + args.start + duration,
        batch_size: samples,
        nt: plan.settings.nt,
        downsampling: 1,
    };
    let layout = BatchLayout::new(session.recording.total_samples(), window, session.recording.path())?;
    let mut data = session.reader_with(layout).read(0).data;
    let (scale, unit) = if args.preprocessed {
        let pre = Preprocessor::fit(&session.reader(), plan, &NoProgress);
        let mut out = Array2::zeros(data.dim());
        pre.apply(data.view(), &mut out);
        data = out;
        (6.0, "whitened SD")
    } else {
        kilosort::preprocess::remove_channel_means(data.view_mut());
        let sd =
            data.rows().into_iter().map(|r| robust_sd(r.as_slice().unwrap_or(&[]))).sum::<f64>() / data.nrows() as f64;
        (6.0 * sd, "raw units")
    };
    let pad = plan.layout.pad;
    let shown = data.slice(ndarray::s![.., pad..pad + layout.n_samples() as usize]).to_owned();
    draw(&session, &shown, scale as f32, unit, args)?;
    println!("wrote {}", args.png.display());
    Ok(())
}

fn draw(session: &Session, data: &Array2<f32>, scale: f32, unit: &str, args: &ViewArgs) -> Result<()> {
    register_fonts();
    let probe = &session.plan.probe;
    let mut order: Vec<usize> = (0..probe.len()).collect();
    order.sort_by(|&a, &b| probe.y[a].total_cmp(&probe.y[b]).then(probe.x[a].total_cmp(&probe.x[b])));
    let per_bin = data.ncols().div_ceil(MAX_COLUMNS);
    let bins = data.ncols().div_ceil(per_bin);
    let (width, height) = ((bins as u32 + 140).max(500), (order.len() as u32 * 3).clamp(300, 1400) + 80);
    let root = BitMapBackend::new(&args.png, (width, height)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", args.png.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let kind = if args.preprocessed { "preprocessed" } else { "raw" };
    let end = args.start + data.ncols() as f64 / session.plan.settings.fs;
    let caption = format!("{kind}, {:.3}–{end:.3} s, colour ±{scale:.1} {unit}", args.start);
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(args.start..end, 0..order.len())
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("time (s)")
        .y_desc("channel (by depth)")
        .draw()
        .map_err(|e| fail(&e))?;
    let dt = per_bin as f64 / session.plan.settings.fs;
    let cells = order.iter().enumerate().flat_map(|(row, &c)| {
        (0..bins).map(move |b| {
            let chunk = data.row(c);
            let chunk = chunk.iter().skip(b * per_bin).take(per_bin);
            let v = chunk.fold(0.0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
            let t = args.start + b as f64 * dt;
            Rectangle::new([(t, row), (t + dt, row + 1)], colour(v / scale).filled())
        })
    });
    chart.draw_series(cells).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

/// Blue (negative) – white – red (positive), saturating at ±1.
fn colour(v: f32) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let fade = |x: f32| (255.0 * (1.0 - x.abs())) as u8;
    if v < 0.0 { RGBColor(fade(v), fade(v), 255) } else { RGBColor(255, fade(v), fade(v)) }
}
