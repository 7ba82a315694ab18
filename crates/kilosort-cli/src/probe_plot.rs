//! A PNG picture of a probe's contacts, coloured by shank.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result, anyhow};
use kilosort::Probe;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

static FONT: Once = Once::new();

/// Registers the bundled font once: plotters' pure-Rust text renderer needs one, and we ship it
/// so the binary does not depend on system fonts.
pub fn register_fonts() {
    FONT.call_once(|| {
        // The font bytes are a valid TTF shipped by the dependency; failure would be a build bug.
        let _ = register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
    });
}

/// Draws the contacts at their positions (µm), axes labelled, one colour per shank.
pub fn draw(probe: &Probe, title: &str, path: &Path) -> Result<()> {
    register_fonts();
    let (x0, x1) = extent(&probe.x);
    let (y0, y1) = extent(&probe.y);
    let margin = 20.0f32.max((x1 - x0).max(y1 - y0) * 0.02);
    let (x0, x1, y0, y1) = (x0 - margin, x1 + margin, y0 - margin, y1 + margin);
    let height = 1200u32;
    let width = ((height as f32 * (x1 - x0) / (y1 - y0)) as u32).clamp(320, 1600);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    let plot_error = |e: &dyn std::fmt::Display| anyhow!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| plot_error(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| plot_error(&e))?;
    chart.configure_mesh().x_desc("x (µm)").y_desc("y (µm)").disable_mesh().draw().map_err(|e| plot_error(&e))?;
    let shanks = probe.shank_ids();
    let radius = (height as f32 / ((y1 - y0) / 8.0).max(1.0)).clamp(1.5, 6.0) as i32;
    for (k, &shank) in shanks.iter().enumerate() {
        let colour = Palette99::pick(k).to_rgba();
        let points = (0..probe.len()).filter(|&i| probe.shank[i] == shank).map(|i| (probe.x[i], probe.y[i]));
        chart
            .draw_series(points.map(|p| Circle::new(p, radius, colour.filled())))
            .map_err(|e| plot_error(&e))?
            .label(format!("shank {shank}"))
            .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
    }
    if shanks.len() > 1 {
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).draw().map_err(|e| plot_error(&e))?;
    }
    root.present().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn extent(v: &[f32]) -> (f32, f32) {
    v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}
