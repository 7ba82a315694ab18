//! The two drift figures Kilosort4 saves in the results folder (spec §10): `drift_amount.png`,
//! each block's shift against time, and `drift_scatter.png`, every first-pass spike's depth
//! against time, darker for larger amplitudes.
//!
//! Drawn with `plotters` and a bundled font, so no system fonts are needed. Differences from
//! Kilosort4's matplotlib figures: smaller pixel sizes (Kilosort4 saves 2400² and 9000 × 4200
//! pixels at 300 dpi), and the block colour Kilosort4 draws in black on its black background
//! is grey here.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::{DriftModel, DriftSpikes};
use crate::error::{Error, Result};

/// Pixel size of `drift_amount.png`.
const AMOUNT_SIZE: (u32, u32) = (1200, 1200);
/// Pixel size of `drift_scatter.png`.
const SCATTER_SIZE: (u32, u32) = (3000, 1400);
/// Matplotlib's single-letter colours `b g r c m y k w`, in the order Kilosort4 cycles through
/// them for the blocks; `k` (black, invisible on the dark background) is grey here.
const BLOCK_COLOURS: [RGBColor; 8] = [
    RGBColor(0, 0, 255),
    RGBColor(0, 128, 0),
    RGBColor(255, 0, 0),
    RGBColor(0, 191, 191),
    RGBColor(191, 0, 191),
    RGBColor(191, 191, 0),
    RGBColor(128, 128, 128),
    RGBColor(255, 255, 255),
];
/// Side of each spike's square dot in the scatter, pixels.
const DOT_PX: i32 = 2;
/// Amplitudes are clipped to this range for the grey level of the scatter.
const AMPLITUDE_RANGE: (f64, f64) = (10.0, 100.0);
/// Logarithmic amplitude bins; each spike is drawn with its bin's mean amplitude.
const AMPLITUDE_LEVELS: usize = 90;

static FONT: Once = Once::new();

/// Registers the bundled font once: plotters' pure-Rust text renderer needs one.
pub(crate) fn register_fonts() {
    FONT.call_once(|| {
        // The bytes are a valid TTF shipped by the dependency; failure would be a build bug.
        let _ = register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
    });
}

/// A drawing failure as an I/O error on `path`.
pub(crate) fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io("cannot draw", path, std::io::Error::other(e.to_string()))
}

/// Writes `drift_amount.png`: the shift of every block (µm) against time (s), dark theme.
/// Batch `t` is at `tmin + t·batch_seconds`.
pub fn drift_amount(model: &DriftModel, batch_seconds: f64, tmin: f64, path: &Path) -> Result<()> {
    register_fonts();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let n = model.n_batches();
    let time = |t: usize| tmin + t as f64 * batch_seconds;
    let (t0, t1) = (time(0), time(n.saturating_sub(1)).max(time(0) + batch_seconds));
    let (lo, hi) = model.shifts_um.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let pad = ((hi - lo) * 0.05).max(1.0);
    let (lo, hi) = if lo.is_finite() { (lo - pad, hi + pad) } else { (-1.0, 1.0) };
    let root = BitMapBackend::new(path, AMOUNT_SIZE).into_drawing_area();
    root.fill(&BLACK).map_err(|e| fail(&e))?;
    let text = ("sans-serif", 22).into_font().color(&WHITE);
    let mut chart = ChartBuilder::on(&root)
        .caption("Drift amount per probe section, across batches", ("sans-serif", 28).into_font().color(&WHITE))
        .margin(20)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(t0..t1, lo..hi)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .axis_style(WHITE)
        .label_style(text.clone())
        .axis_desc_style(text)
        .x_desc("Time (s)")
        .y_desc("Depth shift (µm)")
        .draw()
        .map_err(|e| fail(&e))?;
    for j in 0..model.n_blocks() {
        let colour = BLOCK_COLOURS[j % BLOCK_COLOURS.len()];
        let line = (0..n).map(|t| (time(t), model.shifts_um[[t, j]]));
        chart.draw_series(LineSeries::new(line, colour.stroke_width(2))).map_err(|e| fail(&e))?;
    }
    root.present().map_err(|e| fail(&e))
}

/// Ranges and labels of a scatter figure's axes.
pub(crate) struct ScatterAxes<'a> {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub x_desc: &'a str,
    pub y_desc: &'a str,
}

/// A white canvas with a captioned, gridless chart in the house style of the large scatter
/// figures (`drift_scatter.png`, `spike_positions.png`).
pub(crate) fn white_scatter_chart<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    caption: &str,
    axes: &ScatterAxes,
    path: &Path,
) -> Result<ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 40))
        .margin(30)
        .x_label_area_size(70)
        .y_label_area_size(100)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(("sans-serif", 24))
        .axis_desc_style(("sans-serif", 30))
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .draw()
        .map_err(|e| fail(&e))?;
    Ok(chart)
}

/// Writes `drift_scatter.png`: each spike at (time + `tmin`, depth), white background, grey
/// level by amplitude (clipped to 10–100, 90 log bins, darker = larger).
pub fn drift_scatter(spikes: &DriftSpikes, times_s: &[f64], tmin: f64, path: &Path) -> Result<()> {
    assert_eq!(times_s.len(), spikes.len(), "drift scatter: one time per spike");
    register_fonts();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let (t0, t1) = extent(times_s.iter().map(|t| t + tmin));
    let (y0, y1) = extent(spikes.depth_um.iter().map(|&y| y as f64));
    let greys = grey_levels(spikes.amplitude);
    let root = BitMapBackend::new(path, SCATTER_SIZE).into_drawing_area();
    let axes = ScatterAxes { x: (t0, t1), y: (y0, y1), x_desc: "Time (s)", y_desc: "Depth (µm)" };
    let mut chart = white_scatter_chart(&root, "Spike amplitude across time and depth", &axes, path)?;
    let points = (0..spikes.len()).map(|i| {
        let g = greys[i];
        let at = (times_s[i] + tmin, spikes.depth_um[i] as f64);
        EmptyElement::at(at) + Rectangle::new([(0, 0), (DOT_PX, DOT_PX)], RGBColor(g, g, g).filled())
    });
    chart.draw_series(points).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

/// The range of finite values, widened a little (and to a unit range if empty or flat).
pub(crate) fn extent(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.02).max(0.5);
    (lo - pad, hi + pad)
}

/// Grey level (0 black … 255 white) of each spike, as Kilosort4 colours its scatter: amplitudes
/// clipped to 10–100 are binned on a log scale (`digitize` with `logspace(1, 2, 90)` edges), and
/// a bin's spikes get matplotlib's `binary` colour map at their mean's position in 10–100.
fn grey_levels(amplitude: &[f32]) -> Vec<u8> {
    let (lo, hi) = AMPLITUDE_RANGE;
    let clipped: Vec<f64> = amplitude.iter().map(|&a| (a as f64).clamp(lo, hi)).collect();
    let (log_lo, log_hi) = (lo.log10(), hi.log10());
    let edge = |k: usize| 10f64.powf(log_lo + (log_hi - log_lo) * k as f64 / (AMPLITUDE_LEVELS - 1) as f64);
    let edges: Vec<f64> = (0..AMPLITUDE_LEVELS).map(edge).collect();
    // digitize (right = False): the number of edges ≤ the value.
    let bins: Vec<usize> = clipped.iter().map(|&z| edges.partition_point(|&e| e <= z)).collect();
    let mut sums = vec![(0.0, 0usize); AMPLITUDE_LEVELS + 1];
    for (&b, &z) in bins.iter().zip(&clipped) {
        sums[b].0 += z;
        sums[b].1 += 1;
    }
    let level = |b: usize| {
        let mean = sums[b].0 / sums[b].1 as f64;
        (255.0 * (1.0 - (mean - lo) / (hi - lo))).round() as u8
    };
    let levels: Vec<u8> = (0..sums.len()).map(|b| if sums[b].1 > 0 { level(b) } else { 255 }).collect();
    bins.iter().map(|&b| levels[b]).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use ndarray::Array2;

    use super::*;

    /// Width and height from a PNG's IHDR chunk.
    pub(crate) fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (word(16), word(20))
    }

    #[test]
    fn grey_levels_follow_amplitude() {
        let g = grey_levels(&[5.0, 10.0, 31.6, 100.0, 500.0]);
        // Below 10 counts as 10 (white); 100 and above are black.
        assert_eq!((g[0], g[1], g[3], g[4]), (255, 255, 0, 0));
        assert!(g[2] > 150 && g[2] < 200, "{}", g[2]);
    }

    #[test]
    fn both_figures_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let model = DriftModel {
            block_centres_um: vec![100.0, 200.0, 300.0],
            shifts_um: Array2::from_shape_fn((20, 3), |(t, j)| (t as f64 / 3.0).sin() * 5.0 + j as f64),
        };
        let amount = dir.path().join("drift_amount.png");
        drift_amount(&model, 2.0, 0.0, &amount).unwrap();
        assert_eq!(png_size(&amount), AMOUNT_SIZE);
        let batch: Vec<u32> = (0..500).map(|i| i / 25).collect();
        let depth: Vec<f32> = (0..500).map(|i| 100.0 + (i * 37 % 300) as f32).collect();
        let amplitude: Vec<f32> = (0..500).map(|i| 10.0 + (i % 90) as f32).collect();
        let times: Vec<f64> = (0..500).map(|i| i as f64 * 0.08).collect();
        let spikes = DriftSpikes { batch: &batch, depth_um: &depth, amplitude: &amplitude };
        let scatter = dir.path().join("drift_scatter.png");
        drift_scatter(&spikes, &times, 10.0, &scatter).unwrap();
        assert_eq!(png_size(&scatter), SCATTER_SIZE);
        let bad = dir.path().join("missing-folder").join("x.png");
        assert!(drift_amount(&model, 2.0, 0.0, &bad).is_err());
    }
}
