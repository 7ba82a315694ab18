//! Per-channel mean removal of a channels × time array (the batch pipeline does it, with the
//! median reference, row by row in `batch.rs`).

use ndarray::{ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Subtracts each channel's mean over the buffer (Kilosort4 does this before CAR).
pub fn remove_channel_means(mut data: ArrayViewMut2<f32>) {
    data.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut row| {
        // f32 partial sums over short chunks vectorise; the total is kept in f64.
        let sum: f64 = row.as_slice().map_or_else(
            || row.iter().map(|&v| v as f64).sum(),
            |r| r.chunks(256).map(|c| c.iter().sum::<f32>() as f64).sum(),
        );
        let mean = (sum / row.len() as f64) as f32;
        row.iter_mut().for_each(|v| *v -= mean);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn means_are_removed() {
        let mut x = array![[1.0f32, 2.0, 3.0], [10.0, 10.0, 16.0]];
        remove_channel_means(x.view_mut());
        assert_eq!(x, array![[-1.0, 0.0, 1.0], [-2.0, -2.0, 4.0]]);
    }
}
