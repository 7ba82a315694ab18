//! Clustering centres: the probe is cut into regions around a grid of (x, y) centres, and each
//! template is clustered with the others of its nearest centre (spec §7.1).

use crate::probe::Probe;

/// Histogram bin width for finding lateral centres automatically, µm (Kilosort4's constant).
const LATERAL_BIN_UM: f64 = 50.0;
/// Lloyd iterations stop when the mean distance changes by less than this (scipy's default).
const KMEANS_TOLERANCE: f64 = 1e-5;
/// Random restarts when `x_centers` gives a number of centres (scipy's `kmeans` default).
const KMEANS_RESTARTS: usize = 20;
/// Seed of those restarts (Kilosort4 passes 5330).
const KMEANS_SEED: u64 = 5330;

/// Lateral centres: `x_centers` k-means centres of the contacts' x, or, automatically, one per
/// peak of the smoothed histogram of contact x positions (one per shank on multi-shank probes).
pub fn lateral_centres(probe: &Probe, x_centers: Option<usize>) -> Vec<f64> {
    let xs: Vec<f64> = probe.x.iter().map(|&x| x as f64).collect();
    let mut centres = match x_centers {
        Some(k) => kmeans_restarts(&xs, k),
        None => {
            let guesses = histogram_peaks(&xs);
            if guesses.len() <= 1 { vec![mean(&xs)] } else { lloyd(&xs, guesses).0 }
        }
    };
    centres.sort_by(f64::total_cmp);
    centres
}

/// Vertical centres every `2·dmin`, from just above the lowest template to past the highest.
pub fn vertical_centres(template_y: &[f64], dmin: f64) -> Vec<f64> {
    let lo = template_y.iter().copied().fold(f64::INFINITY, f64::min) + dmin - 1.0;
    let hi = template_y.iter().copied().fold(f64::NEG_INFINITY, f64::max) + dmin + 1.0;
    let step = 2.0 * dmin;
    let n = ((hi - lo) / step).ceil().max(0.0) as usize;
    (0..n).map(|i| lo + i as f64 * step).collect()
}

/// For each template at (x, y), the flat index `b + a·len(y_centres)` of its nearest centre
/// `(x_centres[a], y_centres[b])` (first one on ties).
pub fn nearest_centre(template_x: &[f64], template_y: &[f64], x_centres: &[f64], y_centres: &[f64]) -> Vec<usize> {
    template_x
        .iter()
        .zip(template_y)
        .map(|(&x, &y)| {
            let mut best = (f64::INFINITY, 0);
            for (a, &cx) in x_centres.iter().enumerate() {
                for (b, &cy) in y_centres.iter().enumerate() {
                    let d = (x - cx).powi(2) + (y - cy).powi(2);
                    if d < best.0 {
                        best = (d, b + a * y_centres.len());
                    }
                }
            }
            best.1
        })
        .collect()
}

/// Left edges of the peaks of the smoothed position histogram (Kilosort4's initial guesses).
fn histogram_peaks(xs: &[f64]) -> Vec<f64> {
    let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
    let n_edges = ((hi - lo) / LATERAL_BIN_UM) as usize + 4;
    let (first, last) = (lo - 2.0 * LATERAL_BIN_UM, hi + 2.0 * LATERAL_BIN_UM);
    let edges: Vec<f64> = (0..n_edges).map(|i| first + (last - first) * i as f64 / (n_edges - 1) as f64).collect();
    let mut counts = vec![0i64; n_edges - 1];
    for &x in xs {
        // numpy's histogram: half-open bins, the last one closed.
        let bin = edges.partition_point(|&e| e <= x).saturating_sub(1).min(n_edges - 2);
        counts[bin] += 1;
    }
    find_peaks(&smooth_integer(&counts)).into_iter().map(|p| edges[p]).collect()
}

/// Gaussian smoothing, σ = 0.5 bins, radius 2, reflected edges; truncated back to integers
/// (the histogram is integer-typed in Kilosort4, so scipy returns integers).
fn smooth_integer(counts: &[i64]) -> Vec<i64> {
    let weights: Vec<f64> = (-2i64..=2).map(|k| (-(k * k) as f64 / (2.0 * 0.25)).exp()).collect();
    let total: f64 = weights.iter().sum();
    let n = counts.len() as i64;
    let reflect = |i: i64| -> usize {
        // scipy's "reflect": (d c b a | a b c d | d c b a).
        let period = 2 * n;
        let i = i.rem_euclid(period);
        (if i < n { i } else { period - 1 - i }) as usize
    };
    (0..n)
        .map(|i| {
            let v: f64 = (-2i64..=2).map(|k| weights[(k + 2) as usize] * counts[reflect(i + k)] as f64).sum();
            (v / total) as i64
        })
        .collect()
}

/// Local maxima as `scipy.signal.find_peaks` defines them: a value or flat run strictly above
/// both neighbours, reported at the run's middle (rounded down); the ends are never peaks.
fn find_peaks(x: &[i64]) -> Vec<usize> {
    let mut peaks = Vec::new();
    let mut i = 1;
    while i + 1 < x.len() {
        if x[i - 1] < x[i] {
            let mut ahead = i + 1;
            while ahead + 1 < x.len() && x[ahead] == x[i] {
                ahead += 1;
            }
            if x[ahead] < x[i] {
                peaks.push((i + ahead - 1) / 2);
                i = ahead;
            }
        }
        i += 1;
    }
    peaks
}

/// Lloyd's algorithm in 1-D from `centres`, dropping centres that lose every point; returns the
/// centres and the mean distance of points to their centre.
fn lloyd(xs: &[f64], mut centres: Vec<f64>) -> (Vec<f64>, f64) {
    let mut previous = f64::INFINITY;
    loop {
        let nearest = |x: f64| {
            centres
                .iter()
                .enumerate()
                .map(|(k, &c)| (k, (x - c).abs()))
                .fold((0, f64::INFINITY), |b, c| if c.1 < b.1 { c } else { b })
        };
        let (mut sums, mut counts, mut distortion) = (vec![0.0; centres.len()], vec![0usize; centres.len()], 0.0);
        for &x in xs {
            let (k, d) = nearest(x);
            sums[k] += x;
            counts[k] += 1;
            distortion += d;
        }
        distortion /= xs.len().max(1) as f64;
        centres = sums.iter().zip(&counts).filter(|(_, n)| **n > 0).map(|(s, &n)| s / n as f64).collect();
        if previous - distortion <= KMEANS_TOLERANCE {
            return (centres, distortion);
        }
        previous = distortion;
    }
}

/// k-means with `k` centres started from random points, best of several restarts.
fn kmeans_restarts(xs: &[f64], k: usize) -> Vec<f64> {
    let mut state = KMEANS_SEED;
    let mut random_index = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % xs.len()
    };
    (0..KMEANS_RESTARTS)
        .map(|_| lloyd(xs, (0..k.min(xs.len())).map(|_| xs[random_index()]).collect()))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
        .unwrap_or_default()
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::builtin;

    fn probe(x: Vec<f32>, y: Vec<f32>) -> Probe {
        let n = x.len();
        Probe::new("test", (0..n as u32).collect(), x, y, vec![0.0; n], n).unwrap()
    }

    /// Kilosort4's test layout: 4-shank NP2 with x ∈ {6, 38} + 250·shank, y = 6 + 15·row.
    fn four_shanks(shanks: &[usize]) -> Probe {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for &s in shanks {
            for site in 0..96 {
                x.push([6.0, 38.0][site % 2] + 250.0 * s as f32);
                y.push(6.0 + 15.0 * (site / 2) as f32);
            }
        }
        probe(x, y)
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        assert!(got.iter().zip(want).all(|(g, w)| (g - w).abs() < 5.0), "{got:?} vs {want:?}");
    }

    #[test]
    fn automatic_lateral_centres_match_kilosort4s_tests() {
        assert_close(&lateral_centres(&builtin::by_name("np1").unwrap(), None), &[35.0]);
        assert_close(&lateral_centres(&builtin::by_name("np2").unwrap(), None), &[16.0]);
        assert_close(&lateral_centres(&four_shanks(&[0, 1, 2, 3]), None), &[22.0, 272.0, 522.0, 772.0]);
        assert_close(&lateral_centres(&four_shanks(&[0, 1, 3]), None), &[22.0, 272.0, 772.0]);
        let linear = probe(vec![1.0; 16], (0..16).map(|i| i as f32).collect());
        assert_close(&lateral_centres(&linear, None), &[1.0]);
    }

    #[test]
    fn a_given_number_of_centres_uses_kmeans() {
        assert_close(&lateral_centres(&four_shanks(&[0, 1, 2, 3]), Some(4)), &[22.0, 272.0, 522.0, 772.0]);
        assert_close(&lateral_centres(&four_shanks(&[0, 1, 2, 3]), Some(1)), &[397.0]);
    }

    #[test]
    fn peaks_follow_scipy() {
        assert_eq!(find_peaks(&[0, 2, 0, 3, 3, 3, 1, 4]), [1, 4]);
        assert_eq!(find_peaks(&[0, 5, 5, 0]), [1], "plateau of two: middle rounded down");
        assert_eq!(find_peaks(&[5, 1, 1, 5]), Vec::<usize>::new());
        // Values from scipy.ndimage.gaussian_filter(sigma=0.5) on integer arrays.
        assert_eq!(smooth_integer(&[0, 383, 0]), [40, 301, 40]);
        assert_eq!(smooth_integer(&[0, 0, 96, 96, 0, 0, 0, 96, 96, 0, 0]), [0, 10, 85, 85, 10, 0, 10, 85, 85, 10, 0]);
    }

    #[test]
    fn templates_go_to_their_nearest_centre() {
        let ycent = vertical_centres(&[20.0, 3840.0], 20.0);
        assert_eq!((ycent[0], ycent[1], *ycent.last().unwrap()), (39.0, 79.0, 3839.0));
        let ids = nearest_centre(&[30.0, 30.0, 300.0], &[40.0, 81.0, 40.0], &[35.0, 290.0], &ycent);
        assert_eq!(ids, [0, 1, ycent.len()]);
    }
}
