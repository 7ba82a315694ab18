//! Where universal templates sit: a grid of positions over the probe, each with its nearest
//! channels and spatial envelopes (Kilosort4's `template_centers`, `nearest_chans`, `weigh`;
//! spec §6.2–6.3).

use ndarray::{Array2, Array3};

use crate::probe::Probe;
use crate::settings::Settings;

/// Vertical grid spacing when a probe has a single row of contacts, µm (Kilosort4 uses 1).
const SINGLE_ROW_DMIN: f64 = 1.0;
/// Kilosort4 extends each shank's vertical range by this before stepping, so the last row is
/// kept despite float rounding.
const RANGE_SLACK_UM: f64 = 0.01;

/// The vertical spacing parameter: `dmin` if set, else the median gap between distinct contact
/// depths (Kilosort4's automatic choice).
pub fn vertical_spacing(probe: &Probe, dmin: Option<f64>) -> f64 {
    if let Some(d) = dmin {
        return d;
    }
    let mut ys: Vec<f64> = probe.y.iter().map(|&y| y as f64).collect();
    ys.sort_by(f64::total_cmp);
    ys.dedup();
    if ys.len() < 2 {
        return SINGLE_ROW_DMIN;
    }
    let mut gaps: Vec<f64> = ys.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let n = gaps.len();
    if n % 2 == 1 { gaps[n / 2] } else { (gaps[n / 2 - 1] + gaps[n / 2]) / 2.0 }
}

/// The distinct depths and lateral positions of the grid, over all shanks (`yup`, `xup`).
pub fn grid_axes(probe: &Probe, dmin: f64, dminx: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut yup, mut xup) = (Vec::new(), Vec::new());
    for shank in probe.shank_ids() {
        let on_shank = |v: &[f32]| -> Vec<f64> {
            v.iter().zip(&probe.shank).filter(|(_, s)| **s == shank).map(|(&v, _)| v as f64).collect()
        };
        let (xs, ys) = (on_shank(&probe.x), on_shank(&probe.y));
        let (xmin, xmax) = min_max(&xs);
        let (ymin, ymax) = min_max(&ys);
        let step = dmin / 2.0;
        let n_rows = ((ymax + RANGE_SLACK_UM - ymin) / step).ceil().max(0.0) as usize;
        yup.extend((0..n_rows).map(|i| ymin + i as f64 * step));
        let n_cols = ((xmax - xmin) / (dminx / 2.0)).round_ties_even() as usize + 1;
        xup.extend(
            (0..n_cols).map(|i| if n_cols == 1 { xmin } else { xmin + (xmax - xmin) * i as f64 / (n_cols - 1) as f64 }),
        );
    }
    for v in [&mut yup, &mut xup] {
        v.sort_by(f64::total_cmp);
        v.dedup();
    }
    (yup, xup)
}

/// Number of grid positions [`grid_axes`] makes (per shank, rows × columns), counted without
/// building the grid, so an absurd spacing can be refused first.
pub fn grid_position_count(probe: &Probe, dmin: f64, dminx: f64) -> f64 {
    probe
        .shank_ids()
        .into_iter()
        .map(|shank| {
            let on_shank = |v: &[f32]| -> Vec<f64> {
                v.iter().zip(&probe.shank).filter(|(_, s)| **s == shank).map(|(&v, _)| v as f64).collect()
            };
            let (xmin, xmax) = min_max(&on_shank(&probe.x));
            let (ymin, ymax) = min_max(&on_shank(&probe.y));
            let rows = ((ymax + RANGE_SLACK_UM - ymin) / (dmin / 2.0)).ceil().max(1.0);
            let columns = ((xmax - xmin) / (dminx / 2.0)).round() + 1.0;
            rows * columns
        })
        .sum()
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// Universal-template positions with their channel neighbourhoods and envelopes.
#[derive(Debug, Clone)]
pub struct TemplateGrid {
    /// Lateral position of each kept template, µm (`xcup`).
    #[doc(alias = "xcup")]
    pub x: Vec<f64>,
    /// Depth of each kept template, µm (`ycup`).
    #[doc(alias = "ycup")]
    pub y: Vec<f64>,
    /// The vertical spacing used (`dmin`).
    pub dmin: f64,
    /// Nearest channels of each template, nearest first: `(n_templates, nearest_chans)` (`iC`ᵀ).
    #[doc(alias = "iC")]
    pub channels: Array2<usize>,
    /// Nearest other templates of each template, itself first: `(n_templates, k)` (`iC2`ᵀ).
    #[doc(alias = "iC2")]
    pub neighbours: Array2<usize>,
    /// Spatial envelopes `(template_sizes, n_templates, nearest_chans)`: exp(−d²/s²) over the
    /// template's channels, unit L2 norm for each size (`weigh`, axes reordered).
    #[doc(alias = "weigh")]
    pub envelopes: Array3<f32>,
}

impl TemplateGrid {
    /// Builds the grid for `probe` with the settings' spacing, distance and neighbourhood sizes.
    pub fn new(probe: &Probe, settings: &Settings) -> Self {
        let dmin = vertical_spacing(probe, settings.dmin);
        let (yup, xup) = grid_axes(probe, dmin, settings.dminx);
        let max_distance = settings.max_channel_distance.unwrap_or(32.0);
        let n_near = settings.nearest_chans.min(probe.len());
        let (mut x, mut y, mut channel_rows, mut distance_rows) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // x-major order, as Kilosort4 flattens its meshgrid.
        for &gx in &xup {
            for &gy in &yup {
                let near = nearest(probe.len(), n_near, |c| {
                    (gx - probe.x[c] as f64).powi(2) + (gy - probe.y[c] as f64).powi(2)
                });
                if near[0].1 <= max_distance * max_distance {
                    x.push(gx);
                    y.push(gy);
                    channel_rows.extend(near.iter().map(|&(c, _)| c));
                    distance_rows.push(near.into_iter().map(|(_, d)| d).collect::<Vec<_>>());
                }
            }
        }
        let n = x.len();
        let n_neighbours = settings.nearest_templates.min(n);
        let mut neighbours = Vec::with_capacity(n * n_neighbours);
        for k in 0..n {
            let near = nearest(n, n_neighbours, |j| (x[k] - x[j]).powi(2) + (y[k] - y[j]).powi(2));
            neighbours.extend(near.into_iter().map(|(j, _)| j));
        }
        let sizes = settings.template_sizes;
        let mut envelopes = Array3::zeros((sizes, n, n_near));
        for (m, mut per_size) in envelopes.outer_iter_mut().enumerate() {
            let s = settings.min_template_size * (m + 1) as f64;
            for (k, mut row) in per_size.outer_iter_mut().enumerate() {
                let w: Vec<f64> = distance_rows[k].iter().map(|d2| (-d2 / (s * s)).exp()).collect();
                let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt();
                row.iter_mut().zip(&w).for_each(|(r, v)| *r = (v / norm) as f32);
            }
        }
        TemplateGrid {
            x,
            y,
            dmin,
            channels: Array2::from_shape_vec((n, n_near), channel_rows).expect("one row per template"),
            neighbours: Array2::from_shape_vec((n, n_neighbours), neighbours).expect("one row per template"),
            envelopes,
        }
    }

    /// Number of template positions kept (Kilosort4's `Nu`).
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// True when no position is close enough to a contact.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// The `count` smallest of `distance(0..n)` as (index, distance), nearest first; ties by index
/// (Kilosort4's `argsort` leaves ties in an unspecified order).
fn nearest(n: usize, count: usize, distance: impl Fn(usize) -> f64) -> Vec<(usize, f64)> {
    let mut all: Vec<(usize, f64)> = (0..n).map(|i| (i, distance(i))).collect();
    let by_distance = |a: &(usize, f64), b: &(usize, f64)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
    if count < n {
        all.select_nth_unstable_by(count, by_distance);
        all.truncate(count);
    }
    all.sort_by(by_distance);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::builtin;

    fn linear(spacing: f32, n: usize) -> Probe {
        Probe::new(
            "linear",
            (0..n as u32).collect(),
            vec![0.0; n],
            (0..n).map(|i| spacing * i as f32).collect(),
            vec![0.0; n],
            n,
        )
        .unwrap()
    }

    #[test]
    fn automatic_dmin_and_lateral_positions_match_kilosort4s_tests() {
        let np1 = builtin::by_name("np1").unwrap();
        assert_eq!(vertical_spacing(&np1, None), 20.0);
        assert_eq!(grid_axes(&np1, 20.0, 32.0).1, [11.0, 27.0, 43.0, 59.0]);
        let np2 = builtin::by_name("np2").unwrap();
        assert_eq!(vertical_spacing(&np2, None), 15.0);
        assert_eq!(grid_axes(&np2, 15.0, 32.0).1, [0.0, 16.0, 32.0]);
        let lin = linear(20.0, 32);
        assert_eq!(vertical_spacing(&lin, None), 20.0);
        assert_eq!(grid_axes(&lin, 20.0, 32.0).1.len(), 1);
        assert_eq!(vertical_spacing(&lin, Some(7.5)), 7.5, "an explicit dmin is respected");
        assert_eq!(vertical_spacing(&linear(0.0, 3), None), 1.0, "one row of contacts");
    }

    #[test]
    fn neuropixels1_grid_has_1532_templates() {
        let np1 = builtin::by_name("np1").unwrap();
        let grid = TemplateGrid::new(&np1, &Settings::default());
        let (yup, _) = grid_axes(&np1, 20.0, 32.0);
        assert_eq!((yup.len(), yup[0], yup[yup.len() - 1]), (383, 20.0, 3840.0));
        assert_eq!(grid.len(), 1532);
        assert_eq!(grid.channels.dim(), (1532, 10));
        assert_eq!(grid.neighbours.dim(), (1532, 100));
        assert_eq!(grid.envelopes.dim(), (5, 1532, 10));
        // x-major order: the first 383 templates share the smallest x.
        assert!(grid.x[..383].iter().all(|&x| x == 11.0) && grid.y[1] == 30.0);
    }

    #[test]
    fn neighbourhoods_and_envelopes() {
        let np1 = builtin::by_name("np1").unwrap();
        let grid = TemplateGrid::new(&np1, &Settings::default());
        for k in [0, 500, 1531] {
            assert_eq!(grid.neighbours[[k, 0]], k, "a template is its own nearest");
            let c0 = grid.channels[[k, 0]];
            let d = |c: usize| (grid.x[k] - np1.x[c] as f64).powi(2) + (grid.y[k] - np1.y[c] as f64).powi(2);
            assert!((1..10).all(|i| d(grid.channels[[k, i]]) >= d(c0)), "nearest channel first");
            for m in 0..5 {
                let norm: f32 = (0..10).map(|i| grid.envelopes[[m, k, i]].powi(2)).sum();
                assert!((norm - 1.0).abs() < 1e-5);
            }
            // Wider envelopes weigh far channels more.
            assert!(grid.envelopes[[4, k, 9]] > grid.envelopes[[0, k, 9]]);
        }
    }

    #[test]
    fn far_positions_are_dropped_per_shank_gaps() {
        // Four shanks 250 µm apart: positions between shanks are beyond 32 µm of any contact.
        let four = builtin::by_name("np2-4shank").unwrap();
        let grid = TemplateGrid::new(&four, &Settings::default());
        assert!(grid.x.iter().all(|&x| four.x.iter().any(|&cx| (x - cx as f64).abs() <= 32.0)));
        let (_, xup) = grid_axes(&four, 15.0, 32.0);
        assert_eq!(xup.len(), 12, "3 lateral positions per shank");
    }
}
