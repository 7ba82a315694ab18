//! Preprocessing one batch in a few passes over memory.
//!
//! The file is time-major (one row of channels per sample), and every step but the whitening
//! works on a sample's row: sign, mean removal, the median across channels, and the high-pass
//! recursion (which runs along time for all channels at once). So the batch stays time-major
//! until it is whitened; each row is referenced and forward-filtered while in cache, and the
//! backward filter hands finished blocks of rows straight to the whitening, which transposes
//! them to channels × time.

use ndarray::{Array2, ArrayView2};

use super::BLOCK_ROWS;
use super::Preprocessor;
use super::highpass::{FilterScratch, RowHooks};
use super::median::RowMedian;
use super::whiten::SparseRows;
use crate::io::BatchReader;

/// Rows summed in single precision before the running per-channel sums (double precision)
/// take them, so the inner sum vectorises without losing accuracy over a long batch.
const ROWS_PER_PARTIAL_SUM: usize = 256;

/// Buffers for preparing batches, reused from batch to batch (one per worker thread).
#[derive(Debug, Clone, Default)]
pub struct BatchScratch {
    time_major: Vec<f32>,
    rows: RowScratch,
    block: Vec<f32>,
    whitened: Vec<f32>,
}

/// The buffers of the row-wise steps.
#[derive(Debug, Clone, Default)]
struct RowScratch {
    filter: FilterScratch,
    median: RowMedian,
    sums: Vec<f64>,
    partial: Vec<f32>,
    means: Vec<f32>,
}

impl Preprocessor {
    /// Reads batch `batch` and writes it preprocessed into `out` (channels × padded length):
    /// filtered, whitened and, when `drift` (this batch's correction matrix) is given,
    /// drift-corrected. Returns false, with `out` zeroed, for an artifact batch.
    pub fn prepare(
        &self,
        reader: &BatchReader,
        batch: usize,
        drift: Option<&SparseRows>,
        scratch: &mut BatchScratch,
        out: &mut Array2<f32>,
    ) -> bool {
        reader.read_time_major_into(batch, &mut scratch.time_major);
        whiten_time_major_wide(self, reader.n_channels(), drift, scratch, out)
    }

    /// Filters `batch` (channels × time, unchanged) and writes it whitened into `out`.
    pub fn apply(&self, batch: ArrayView2<f32>, out: &mut Array2<f32>) {
        let mut scratch = BatchScratch::default();
        transpose_into(batch, &mut scratch.time_major);
        whiten_time_major_wide(self, batch.nrows(), None, &mut scratch, out);
    }

    /// Sign, mean removal, CAR, high-pass and artifact check, in place. Returns false (and
    /// leaves zeros) when the batch is an artifact.
    pub fn filter(&self, batch: &mut Array2<f32>) -> bool {
        let mut scratch = BatchScratch::default();
        transpose_into(batch.view(), &mut scratch.time_major);
        let n = batch.nrows();
        let kept = filter_only_wide(self, &mut scratch.time_major, n, &mut scratch.rows);
        for (c, mut row) in batch.rows_mut().into_iter().enumerate() {
            row.iter_mut().enumerate().for_each(|(t, v)| *v = scratch.time_major[t * n + c]);
        }
        kept
    }

    /// Reads and filters batch `batch`, time-major (padded length × channels) in `scratch`,
    /// and returns it, or `None` for an artifact batch.
    pub(crate) fn filtered_time_major<'s>(
        &self,
        reader: &BatchReader,
        batch: usize,
        scratch: &'s mut BatchScratch,
    ) -> Option<ArrayView2<'s, f32>> {
        reader.read_time_major_into(batch, &mut scratch.time_major);
        let n = reader.n_channels();
        let kept = filter_only_wide(self, &mut scratch.time_major, n, &mut scratch.rows);
        let len = scratch.time_major.len() / n.max(1);
        kept.then(|| ArrayView2::from_shape((len, n), &scratch.time_major).expect("whole rows"))
    }

    /// Filters the time-major data in `scratch` and whitens it block by block into `out`
    /// (called through [`whiten_time_major_wide`]).
    #[inline(always)]
    fn whiten_time_major_portable(
        &self,
        n_chan: usize,
        drift: Option<&SparseRows>,
        scratch: &mut BatchScratch,
        out: &mut Array2<f32>,
    ) -> bool {
        let len = scratch.time_major.len() / n_chan.max(1);
        assert_eq!(out.dim(), (n_chan, len), "preprocessing output has the wrong shape");
        let BatchScratch { time_major, rows, block, whitened } = scratch;
        block.resize(n_chan * BLOCK_ROWS, 0.0);
        whitened.resize(n_chan * BLOCK_ROWS, 0.0);
        let whitening = self.whitening.sparse();
        let out_slice = out.as_slice_mut().expect("output batches are contiguous");
        let kept = self.filter_rows(
            time_major,
            n_chan,
            rows,
            #[inline(always)]
            |first, finished| {
                let width = finished.len() / n_chan;
                transpose_block(finished, n_chan, block);
                match drift {
                    None => whitening.times_block(block, out_slice, len, first, width),
                    Some(correction) => {
                        whitening.times_block(block, whitened, BLOCK_ROWS, 0, BLOCK_ROWS);
                        correction.times_block(whitened, out_slice, len, first, width);
                    }
                }
            },
        );
        if !kept {
            out.fill(0.0);
        }
        kept
    }

    /// Sign, mean removal, CAR and high-pass of time-major `data` (samples × `n_chan`) in
    /// place; `finished(first, rows)` receives the filtered rows in blocks of [`BLOCK_ROWS`]
    /// samples. Returns false, with `data` zeroed, when the batch is an artifact.
    #[inline(always)]
    fn filter_rows(
        &self,
        data: &mut [f32],
        n_chan: usize,
        scratch: &mut RowScratch,
        mut finished: impl FnMut(usize, &[f32]),
    ) -> bool {
        if n_chan == 0 || data.is_empty() {
            return true;
        }
        let RowScratch { filter, median, sums, partial, means } = scratch;
        self.channel_means(data, n_chan, sums, partial, means);
        let rank = (n_chan - 1) / 2;
        let check = self.artifact_threshold.is_finite();
        let mut hooks = BatchHooks {
            means,
            median: self.do_car.then_some((median, rank)),
            check,
            largest: 0.0,
            finished: &mut finished,
        };
        match &self.highpass {
            Some(highpass) => highpass.zero_phase(data, n_chan, filter, &mut hooks),
            None => {
                for (b, block) in data.chunks_mut(BLOCK_ROWS * n_chan).enumerate() {
                    block.chunks_exact_mut(n_chan).for_each(|row| hooks.prepare(row));
                    hooks.finished(b * BLOCK_ROWS, block);
                }
            }
        }
        let largest = hooks.largest;
        let kept = !(check && largest >= self.artifact_threshold);
        if !kept {
            data.fill(0.0);
        }
        kept
    }

    /// Applies the sign and leaves each channel's mean over the batch in `means`.
    #[inline(always)]
    fn channel_means(
        &self,
        data: &mut [f32],
        n_chan: usize,
        sums: &mut Vec<f64>,
        partial: &mut Vec<f32>,
        means: &mut Vec<f32>,
    ) {
        sums.clear();
        sums.resize(n_chan, 0.0);
        partial.resize(n_chan, 0.0);
        let len = data.len() / n_chan;
        for chunk in data.chunks_mut(ROWS_PER_PARTIAL_SUM * n_chan) {
            partial.fill(0.0);
            for row in chunk.chunks_exact_mut(n_chan) {
                if self.invert_sign {
                    row.iter_mut().for_each(|v| *v = -*v);
                }
                partial.iter_mut().zip(row.iter()).for_each(|(p, v)| *p += v);
            }
            sums.iter_mut().zip(partial.iter()).for_each(|(s, &p)| *s += p as f64);
        }
        means.clear();
        means.extend(sums.iter().map(|s| (s / len as f64) as f32));
    }
}

/// Copies a channels × time array into a time-major buffer.
fn transpose_into(batch: ArrayView2<f32>, time_major: &mut Vec<f32>) {
    let (n, len) = batch.dim();
    time_major.resize(n * len, 0.0);
    for (c, row) in batch.rows().into_iter().enumerate() {
        row.iter().enumerate().for_each(|(t, &v)| time_major[t * n + c] = v);
    }
}

/// The row-wise steps around the high-pass filter: referencing before it, the artifact check
/// and the caller's `finished` after it.
struct BatchHooks<'a, F> {
    means: &'a [f32],
    /// The median finder and the median's rank, when the median is subtracted.
    median: Option<(&'a mut RowMedian, usize)>,
    check: bool,
    largest: f32,
    finished: &'a mut F,
}

impl<F: FnMut(usize, &[f32])> RowHooks for BatchHooks<'_, F> {
    /// Subtracts the channel means and the median across channels.
    #[inline(always)]
    fn prepare(&mut self, row: &mut [f32]) {
        row.iter_mut().zip(self.means).for_each(|(v, m)| *v -= m);
        if let Some((median, rank)) = &mut self.median {
            let m = median.select(row, *rank);
            row.iter_mut().for_each(|v| *v -= m);
        }
    }

    #[inline(always)]
    fn finished(&mut self, first: usize, rows: &[f32]) {
        if self.check {
            self.largest = rows.iter().fold(self.largest, |m, v| m.max(v.abs()));
        }
        (self.finished)(first, rows);
    }
}

crate::fma_dispatch! {
    /// The whole batch compiled for the widest vectors the CPU has: the row loops (means,
    /// references, transposes) are inlined here and vectorise across channels.
    fn whiten_time_major_wide(
        pre: &Preprocessor,
        n_chan: usize,
        drift: Option<&SparseRows>,
        scratch: &mut BatchScratch,
        out: &mut Array2<f32>,
    ) -> bool => Preprocessor::whiten_time_major_portable
}

crate::fma_dispatch! {
    /// The filter without whitening, compiled as [`whiten_time_major_wide`].
    fn filter_only_wide(pre: &Preprocessor, data: &mut [f32], n_chan: usize, scratch: &mut RowScratch) -> bool
        => filter_only_portable
}

#[inline(always)]
fn filter_only_portable(pre: &Preprocessor, data: &mut [f32], n_chan: usize, scratch: &mut RowScratch) -> bool {
    pre.filter_rows(data, n_chan, scratch, |_, _| {})
}

/// Transposes up to [`BLOCK_ROWS`] time-major rows into a channel-major block
/// (`block[c·BLOCK_ROWS + t]`), zero-filling the samples past the last row.
#[inline(always)]
fn transpose_block(rows: &[f32], n_chan: usize, block: &mut [f32]) {
    /// Channels per tile: the tile's block rows stay in L1 cache while all samples are written.
    const TILE: usize = 16;
    let width = rows.len() / n_chan;
    if width < BLOCK_ROWS {
        block.fill(0.0);
    }
    for first in (0..n_chan).step_by(TILE) {
        let tile = TILE.min(n_chan - first);
        for (t, row) in rows.chunks_exact(n_chan).enumerate() {
            for (c, &v) in row[first..first + tile].iter().enumerate() {
                block[(first + c) * BLOCK_ROWS + t] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{HighPass, Whitening};

    fn noise(n: usize, len: usize, seed: u64) -> Array2<f32> {
        let mut state = seed;
        Array2::from_shape_fn((n, len), |_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 100.0
        })
    }

    /// A banded sparse matrix with weights that vary by row.
    fn banded(n: usize, half_width: usize, scale: f32) -> SparseRows {
        let rows: Vec<Vec<(usize, f32)>> = (0..n)
            .map(|i| {
                (i.saturating_sub(half_width)..(i + half_width + 1).min(n))
                    .map(|k| (k, scale * (1.0 + (i * 7 + k * 3) as f32 % 5.0) / (1.0 + i.abs_diff(k) as f32)))
                    .collect()
            })
            .collect();
        SparseRows::from_rows(&rows)
    }

    fn preprocessor(n: usize, highpass: bool, do_car: bool) -> Preprocessor {
        let whitening = banded(n, 2, 0.01);
        let mut matrix = Array2::zeros((n, n));
        (0..n).for_each(|i| whitening.row(i).for_each(|(k, w)| matrix[[i, k]] = w));
        Preprocessor {
            highpass: highpass.then(|| HighPass::butterworth(300.0, 30000.0)),
            do_car,
            invert_sign: true,
            artifact_threshold: f32::INFINITY,
            whitening: Whitening::from_matrix(matrix),
            covariance_batches: 0,
        }
    }

    #[test]
    fn fused_whitening_and_drift_correction_equal_the_steps_one_by_one() {
        let (n, len) = (21, 1000);
        for (highpass, do_car) in [(true, true), (false, true), (true, false)] {
            let pre = preprocessor(n, highpass, do_car);
            let batch = noise(n, len, 4);
            let mut filtered = batch.clone();
            pre.filter(&mut filtered);
            let mut whitened = Array2::zeros(batch.dim());
            pre.whitening.apply(filtered.view(), whitened.view_mut());
            let mut fused = Array2::zeros(batch.dim());
            pre.apply(batch.view(), &mut fused);
            assert_eq!(fused, whitened, "highpass {highpass}, CAR {do_car}: whitening");

            let drift = banded(n, 3, 0.3);
            let mut corrected = Array2::zeros(batch.dim());
            drift.apply(whitened.view(), corrected.view_mut());
            let mut scratch = BatchScratch::default();
            transpose_into(batch.view(), &mut scratch.time_major);
            whiten_time_major_wide(&pre, n, Some(&drift), &mut scratch, &mut fused);
            assert_eq!(fused, corrected, "highpass {highpass}, CAR {do_car}: drift correction");
        }
    }

    #[test]
    fn each_step_does_what_it_says() {
        let (n, len) = (9, 700);
        let batch = noise(n, len, 8).mapv(|v| v + 500.0);
        // Sign and means: without CAR and filter, channel means are removed from the negated data.
        let mut plain = batch.clone();
        preprocessor(n, false, false).filter(&mut plain);
        for (c, row) in plain.rows().into_iter().enumerate() {
            let mean = batch.row(c).mean().unwrap();
            for (t, &v) in row.iter().enumerate() {
                assert!((v - (mean - batch[[c, t]])).abs() < 1e-3, "channel {c} sample {t}");
            }
        }
        // CAR: the median across channels is zero at every sample; with an even count, the
        // lower of the two middle values (as Kilosort4's `torch.median`).
        for n in [n, n - 1] {
            let batch = batch.slice(ndarray::s![..n, ..]).to_owned();
            let mut referenced = batch.clone();
            preprocessor(n, false, true).filter(&mut referenced);
            for column in referenced.columns() {
                let mut sorted = column.to_vec();
                sorted.sort_by(f32::total_cmp);
                assert_eq!(sorted[(n - 1) / 2], 0.0, "{n} channels");
            }
        }
    }

    #[test]
    fn artifact_batches_are_zeroed_in_every_output() {
        let n = 5;
        let mut batch = noise(n, 300, 2);
        batch[[2, 150]] = 1e5;
        let pre = Preprocessor { artifact_threshold: 1e4, ..preprocessor(n, true, true) };
        let mut out = Array2::from_elem(batch.dim(), 1.0f32);
        pre.apply(batch.view(), &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
        let mut filtered = batch.clone();
        assert!(!pre.filter(&mut filtered));
        assert!(filtered.iter().all(|&v| v == 0.0));
    }
}
