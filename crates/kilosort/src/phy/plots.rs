//! The two summary figures Kilosort4 saves beside the Phy files (spec §10):
//! `spike_positions.png`, every kept spike at its estimated (depth, lateral) position coloured
//! by cluster, and `diagnostics.png`, four panels on the temporal basis and the final templates.
//!
//! Drawn with `plotters` like the drift figures ([`crate::drift::plots`]). Differences from
//! Kilosort4's matplotlib figures: smaller pixel sizes; the channel-norm image, amplitudes and
//! spike counts are those of the final clusters (Kilosort4 uses the first clustering's
//! templates and labels); the nine cluster colours are tab10 without its grey, which is kept
//! for the units that fail the refractory test; the channel-norm image is in grey levels.

use std::path::Path;

use ndarray::{ArrayView2, ArrayView3, Axis};
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::drift::plots::{ScatterAxes, extent, plot_error, register_fonts, white_scatter_chart};
use crate::error::Result;
use crate::pipeline::SortOutput;
use crate::plan::Plan;
use crate::postprocess::{cluster_amplitudes, spike_positions};

/// File name of the spike-position figure.
const POSITIONS_FILE: &str = "spike_positions.png";
/// File name of the four-panel figure.
const DIAGNOSTICS_FILE: &str = "diagnostics.png";
/// Pixel size of `spike_positions.png` (Kilosort4: 30 × 14 in, depth drawn horizontally).
const POSITIONS_SIZE: (u32, u32) = (3000, 1400);
/// Pixel size of `diagnostics.png` (Kilosort4: 16 × 16 in).
const DIAGNOSTICS_SIZE: (u32, u32) = (1600, 1600);
/// Cluster colours, cycled by cluster id mod 9: matplotlib's tab10 without its grey, so grey
/// marks only the units that fail the refractory test.
const UNIT_COLOURS: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Colour of spikes in units that fail the refractory test ("mua").
const MUA_COLOUR: RGBColor = RGBColor(128, 128, 128);
/// Opacity of each spike dot, as Kilosort4's scatter (α 0.5) so dense clusters stay readable.
const SPIKE_ALPHA: f64 = 0.5;
/// Radius of each dot, pixels.
const DOT_RADIUS: i32 = 2;
/// Channel norms are clipped to this range for the image's grey level (Kilosort4's `vmin`, `vmax`).
const NORM_LEVELS: (f64, f64) = (0.0, 25.0);

/// Writes `spike_positions.png` and `diagnostics.png` for the sort `sort` of `plan` into `dir`.
pub fn write_diagnostic_plots(sort: &SortOutput, plan: &Plan, dir: &Path) -> Result<()> {
    let spikes = &sort.spikes;
    let channels = sort.spike_channels();
    let positions = spike_positions(spikes.features.view(), &channels, &plan.probe.x, &plan.probe.y);
    draw_spike_positions(positions.view(), &spikes.cluster, &sort.is_refractory, &dir.join(POSITIONS_FILE))?;
    let mut counts = vec![0usize; sort.cluster_templates.len_of(Axis(0))];
    for &c in &spikes.cluster {
        counts[c as usize] += 1;
    }
    let pcs = sort.basis.pcs.view();
    draw_diagnostics(pcs, plan.settings.fs, sort.cluster_templates.view(), &counts, &dir.join(DIAGNOSTICS_FILE))
}

/// Draws every spike at (depth, lateral position) from `positions` `(n, 2)` = (x, y) µm,
/// coloured by its cluster (grey when the cluster is not refractory).
fn draw_spike_positions(
    positions: ArrayView2<f32>,
    cluster: &[u32],
    is_refractory: &[bool],
    path: &Path,
) -> Result<()> {
    assert_eq!(positions.dim(), (cluster.len(), 2), "spike positions: one (x, y) per spike");
    register_fonts();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let (d0, d1) = extent(positions.column(1).iter().map(|&v| v as f64));
    let (l0, l1) = extent(positions.column(0).iter().map(|&v| v as f64));
    let root = BitMapBackend::new(path, POSITIONS_SIZE).into_drawing_area();
    let axes = ScatterAxes { x: (d0, d1), y: (l0, l1), x_desc: "Depth (µm)", y_desc: "Lateral position (µm)" };
    let caption = "Spike positions, coloured by unit (grey: not refractory)";
    let mut chart = white_scatter_chart(&root, caption, &axes, path)?;
    let dots = positions.outer_iter().zip(cluster).map(|(xy, &c)| {
        let good = is_refractory.get(c as usize).copied().unwrap_or(false);
        let colour = if good { UNIT_COLOURS[c as usize % UNIT_COLOURS.len()] } else { MUA_COLOUR };
        Circle::new((xy[1] as f64, xy[0] as f64), DOT_RADIUS, colour.mix(SPIKE_ALPHA).filled())
    });
    chart.draw_series(dots).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))
}

/// Draws the four panels: temporal PCs `pcs` `(nPC, nt)` against time (ms at sampling rate
/// `fs`), each template's per-channel norm over PCs for `templates` `(K, Nchan, nPC)`, unit
/// amplitudes, and amplitude against log(1 + spike count) with `counts` per unit.
fn draw_diagnostics(
    pcs: ArrayView2<f32>,
    fs: f64,
    templates: ArrayView3<f32>,
    counts: &[usize],
    path: &Path,
) -> Result<()> {
    assert_eq!(counts.len(), templates.len_of(Axis(0)), "diagnostics: one spike count per unit");
    register_fonts();
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = BitMapBackend::new(path, DIAGNOSTICS_SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let panels = root.split_evenly((2, 2));
    temporal_features(&panels[0], pcs, fs, path)?;
    channel_norms(&panels[1], templates, path)?;
    let amplitude: Vec<f64> = cluster_amplitudes(templates).iter().map(|&a| a as f64).collect();
    let by_unit: Vec<(f64, f64)> = amplitude.iter().enumerate().map(|(k, &a)| (k as f64, a)).collect();
    scatter(&panels[2], &by_unit, ("Unit amplitudes", "Unit", "Amplitude (a.u.)"), path)?;
    let by_count: Vec<(f64, f64)> = counts.iter().zip(&amplitude).map(|(&n, &a)| ((n as f64).ln_1p(), a)).collect();
    scatter(&panels[3], &by_count, ("Amplitude vs. spike count", "log(1 + spike count)", "Amplitude (a.u.)"), path)?;
    root.present().map_err(|e| fail(&e))
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Panel (a): each temporal PC against time in ms.
fn temporal_features(area: &Panel, pcs: ArrayView2<f32>, fs: f64, path: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let ms = |s: usize| s as f64 * 1000.0 / fs;
    let nt = pcs.len_of(Axis(1));
    let (t1, (y0, y1)) = (ms(nt.saturating_sub(1)).max(ms(1)), extent(pcs.iter().map(|&v| v as f64)));
    let mut chart = panel_chart(area, "Temporal features", 0.0..t1, y0..y1, path)?;
    draw_axes(&mut chart, "Time (ms)", "Weight (a.u.)", path)?;
    for (j, pc) in pcs.outer_iter().enumerate() {
        let line = pc.iter().enumerate().map(|(s, &v)| (ms(s), v as f64)).collect::<Vec<_>>();
        let colour = UNIT_COLOURS[j % UNIT_COLOURS.len()];
        chart.draw_series(LineSeries::new(line, colour.stroke_width(2))).map_err(|e| fail(&e))?;
    }
    Ok(())
}

/// Panel (b): image of each unit's norm over PCs on each channel, black at 0, white at 25 or more.
fn channel_norms(area: &Panel, templates: ArrayView3<f32>, path: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let (k, nchan, _) = templates.dim();
    let (c1, k1) = (nchan.max(1) as f64, k.max(1) as f64);
    let mut chart = panel_chart(area, "Spatial features", 0.0..c1, 0.0..k1, path)?;
    draw_axes(&mut chart, "Channel", "Unit", path)?;
    let (lo, hi) = NORM_LEVELS;
    let cells = templates.outer_iter().enumerate().flat_map(|(u, w)| {
        w.outer_iter()
            .enumerate()
            .map(|(c, pcs)| {
                let norm = pcs.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                let g = (255.0 * (norm.clamp(lo, hi) - lo) / (hi - lo)).round() as u8;
                let (c, u) = (c as f64, u as f64);
                Rectangle::new([(c, u), (c + 1.0, u + 1.0)], RGBColor(g, g, g).filled())
            })
            .collect::<Vec<_>>()
    });
    chart.draw_series(cells).map_err(|e| fail(&e))?;
    Ok(())
}

/// Panels (c) and (d): one dot per unit; `labels` = (title, x label, y label).
fn scatter(area: &Panel, points: &[(f64, f64)], labels: (&str, &str, &str), path: &Path) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| plot_error(path, e);
    let (x0, x1) = extent(points.iter().map(|p| p.0));
    let (y0, y1) = extent(points.iter().map(|p| p.1));
    let mut chart = panel_chart(area, labels.0, x0..x1, y0..y1, path)?;
    draw_axes(&mut chart, labels.1, labels.2, path)?;
    let dots = points.iter().map(|&p| Circle::new(p, DOT_RADIUS + 1, UNIT_COLOURS[0].filled()));
    chart.draw_series(dots).map_err(|e| fail(&e))?;
    Ok(())
}

type PanelChart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart with a caption over the given ranges on `area`.
fn panel_chart<'a, 'b>(
    area: &'a Panel<'b>,
    title: &str,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    path: &Path,
) -> Result<PanelChart<'a, 'b>> {
    ChartBuilder::on(area)
        .caption(title, ("sans-serif", 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(|e| plot_error(path, e))
}

/// Axes without a grid, with their descriptions.
fn draw_axes(chart: &mut PanelChart, x_desc: &str, y_desc: &str, path: &Path) -> Result<()> {
    chart
        .configure_mesh()
        .disable_mesh()
        .label_style(("sans-serif", 18))
        .axis_desc_style(("sans-serif", 22))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| plot_error(path, e))
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, Array3};

    use super::*;
    use crate::drift::plots::tests::png_size;

    #[test]
    fn spike_positions_figure_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let n = 400;
        let positions =
            Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { (i % 4) as f32 * 16.0 } else { (i * 7 % 300) as f32 });
        let cluster: Vec<u32> = (0..n as u32).map(|i| i % 12).collect();
        let good: Vec<bool> = (0..12).map(|k| k % 3 != 0).collect();
        let path = dir.path().join(POSITIONS_FILE);
        draw_spike_positions(positions.view(), &cluster, &good, &path).unwrap();
        assert_eq!(png_size(&path), POSITIONS_SIZE);
        let bad = dir.path().join("missing-folder").join("x.png");
        assert!(draw_spike_positions(positions.view(), &cluster, &good, &bad).is_err());
    }

    #[test]
    fn diagnostics_figure_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let pcs = Array2::from_shape_fn((6, 61), |(j, s)| ((s as f32 / 10.0) * (j + 1) as f32).sin());
        let templates = Array3::from_shape_fn((10, 32, 6), |(k, c, p)| (k + c) as f32 / (p + 1) as f32);
        let counts: Vec<usize> = (0..10).map(|k| 10 * k + 1).collect();
        let path = dir.path().join(DIAGNOSTICS_FILE);
        draw_diagnostics(pcs.view(), 30_000.0, templates.view(), &counts, &path).unwrap();
        assert_eq!(png_size(&path), DIAGNOSTICS_SIZE);
        // No units at all still draws empty panels.
        let none = Array3::<f32>::zeros((0, 32, 6));
        let empty = dir.path().join("empty.png");
        draw_diagnostics(pcs.view(), 30_000.0, none.view(), &[], &empty).unwrap();
        assert_eq!(png_size(&empty), DIAGNOSTICS_SIZE);
    }
}
