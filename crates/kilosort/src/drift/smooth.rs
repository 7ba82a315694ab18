//! Separable Gaussian smoothing of an n-d array as `scipy.ndimage.gaussian_filter` does it
//! (default `mode="reflect"`, `truncate=4.0`), for the block-correlation array of spec §5.4.

use ndarray::{Array3, Axis};

/// The kernel reaches `TRUNCATE` standard deviations each side (scipy's default).
const TRUNCATE: f64 = 4.0;
/// scipy skips an axis whose σ is at most this.
const SIGMA_NEGLIGIBLE: f64 = 1e-15;

/// Normalised Gaussian weights over `−r…r`, `r = int(4σ + 0.5)`.
pub(super) fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    let radius = (TRUNCATE * sigma + 0.5) as isize;
    let w: Vec<f64> = (-radius..=radius).map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp()).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|v| v / total).collect()
}

/// Index of sample `i` of a line of length `n` extended by half-sample symmetric reflection
/// (`… c d | d c b a | a b c d | d c b a | a …`), at any distance from the line.
pub(super) fn reflect(i: isize, n: usize) -> usize {
    let period = 2 * n as isize;
    let j = i.rem_euclid(period) as usize;
    if j < n { j } else { 2 * n - 1 - j }
}

/// Smooths `a` in place along each axis in turn with a Gaussian of the given σ (in samples),
/// reflecting at the borders; axes with σ ≈ 0 are left alone.
pub(super) fn gaussian_filter(a: &mut Array3<f64>, sigmas: [f64; 3]) {
    for (axis, &sigma) in sigmas.iter().enumerate() {
        if sigma <= SIGMA_NEGLIGIBLE {
            continue;
        }
        let kernel = gaussian_kernel(sigma);
        let radius = (kernel.len() / 2) as isize;
        let mut line = Vec::new();
        for mut lane in a.lanes_mut(Axis(axis)) {
            line.clear();
            line.extend(lane.iter().copied());
            let n = line.len();
            for (i, out) in lane.iter_mut().enumerate() {
                *out = kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| w * line[reflect(i as isize + k as isize - radius, n)])
                    .sum();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_scipys_for_sigma_one_half() {
        // scipy.ndimage._filters._gaussian_kernel1d(0.5, 0, 2), normalised.
        let k = gaussian_kernel(0.5);
        let raw = [(-8f64).exp(), (-2f64).exp(), 1.0, (-2f64).exp(), (-8f64).exp()];
        let total: f64 = raw.iter().sum();
        assert_eq!(k.len(), 5);
        for (a, b) in k.iter().zip(raw) {
            assert!((a - b / total).abs() < 1e-15);
        }
    }

    #[test]
    fn reflection_repeats_with_period_twice_the_length() {
        let seq: Vec<usize> = (-5..8).map(|i| reflect(i, 3)).collect();
        assert_eq!(seq, [1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1]);
        assert!((-4..4).all(|i| reflect(i, 1) == 0));
    }

    #[test]
    fn smoothing_keeps_constants_and_spreads_an_impulse() {
        let mut a = Array3::from_elem((4, 3, 1), 2.5);
        gaussian_filter(&mut a, [0.5, 0.5, 0.5]);
        assert!(a.iter().all(|v| (v - 2.5).abs() < 1e-12));
        let mut b = Array3::zeros((7, 1, 1));
        b[[3, 0, 0]] = 1.0;
        gaussian_filter(&mut b, [0.5, 0.0, 0.0]);
        let k = gaussian_kernel(0.5);
        for i in 0..7 {
            let expected = if (1..=5).contains(&i) { k[i - 1] } else { 0.0 };
            assert!((b[[i, 0, 0]] - expected).abs() < 1e-15);
        }
        // At the border the reflected part folds back: [1, 0, …] → k0 + k1 + k2 at 0.
        let mut c = Array3::zeros((5, 1, 1));
        c[[0, 0, 0]] = 1.0;
        gaussian_filter(&mut c, [0.5, 0.0, 0.0]);
        assert!((c[[0, 0, 0]] - (k[2] + k[1])).abs() < 1e-15);
        assert!((c[[1, 0, 0]] - (k[1] + k[0])).abs() < 1e-15);
    }
}
