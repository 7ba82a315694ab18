//! Per-channel mean removal and common (median) average referencing.

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

/// Subtracts, at every sample, the median across channels: the lower of the two middle values
/// for an even channel count, as Kilosort4's `torch.median`.
pub fn common_median_reference(mut data: ArrayViewMut2<f32>) {
    let n_chan = data.nrows();
    if n_chan == 0 {
        return;
    }
    let rank = (n_chan - 1) / 2;
    data.axis_chunks_iter_mut(Axis(1), COLUMNS_PER_TASK).into_par_iter().for_each(|mut block| {
        let mut column = vec![0.0f32; n_chan];
        for mut samples in block.axis_iter_mut(Axis(1)) {
            column.iter_mut().zip(samples.iter()).for_each(|(c, &v)| *c = v);
            let (_, &mut median, _) = column.select_nth_unstable_by(rank, f32::total_cmp);
            samples.iter_mut().for_each(|v| *v -= median);
        }
    });
}

/// Samples per parallel task of the median reference.
const COLUMNS_PER_TASK: usize = 2048;

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

    #[test]
    fn median_across_channels_is_zero_after_car() {
        let mut odd = array![[1.0f32, 5.0], [2.0, -1.0], [9.0, 0.0]];
        common_median_reference(odd.view_mut());
        assert_eq!(odd, array![[-1.0, 5.0], [0.0, -1.0], [7.0, 0.0]]);
        // Even count: the lower middle value (2 of {1, 2, 3, 4}) is subtracted.
        let mut even = array![[4.0f32], [1.0], [3.0], [2.0]];
        common_median_reference(even.view_mut());
        assert_eq!(even, array![[2.0], [-1.0], [1.0], [0.0]]);
    }
}
