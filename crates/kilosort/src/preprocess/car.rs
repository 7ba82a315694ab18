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
        // Gather a few columns at a time row by row (contiguous reads), rather than walking
        // down each column across rows a whole batch apart.
        let mut columns = vec![0.0f32; GATHER * n_chan];
        let mut medians = [0.0f32; GATHER];
        for mut sub in block.axis_chunks_iter_mut(Axis(1), GATHER) {
            let width = sub.ncols();
            for (c, row) in sub.rows().into_iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    columns[j * n_chan + c] = v;
                }
            }
            for (j, median) in medians.iter_mut().enumerate().take(width) {
                let column = &mut columns[j * n_chan..(j + 1) * n_chan];
                *median = *column.select_nth_unstable_by(rank, f32::total_cmp).1;
            }
            for mut row in sub.rows_mut() {
                row.iter_mut().zip(&medians).for_each(|(v, m)| *v -= m);
            }
        }
    });
}

/// Columns gathered together for the median.
const GATHER: usize = 64;

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

    #[test]
    fn blocked_median_equals_a_plain_one() {
        let (n_chan, len) = (7, 300);
        let mut state = 5u64;
        let original = ndarray::Array2::from_shape_fn((n_chan, len), |_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            (state >> 40) as f32
        });
        let mut x = original.clone();
        common_median_reference(x.view_mut());
        for t in 0..len {
            let mut column: Vec<f32> = original.column(t).to_vec();
            column.sort_by(f32::total_cmp);
            for c in 0..n_chan {
                assert_eq!(x[[c, t]], original[[c, t]] - column[3]);
            }
        }
    }
}
