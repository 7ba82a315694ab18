//! Preprocessing: sign, mean removal, common median reference, high-pass, artifact blanking and
//! local whitening of each padded batch (Kilosort4's `BinaryFiltered.filter`, spec §2.3, §4).
//!
//! [`Preprocessor::fit`] reads every `nskip`-th batch once to estimate the whitening matrix;
//! [`Preprocessor::apply`] then turns any raw padded batch into whitened data.

mod batch;
mod car;
mod highpass;
mod median;
mod save;
mod whiten;

use ndarray::{Array2, s};

/// Samples per block in which the preprocessing hands data from the time-major filter to the
/// whitening (a block of all channels stays in L1/L2 cache).
pub(crate) const BLOCK_ROWS: usize = 64;

pub use batch::BatchScratch;
pub use car::remove_channel_means;
pub use highpass::{HighPass, KILOSORT4_KERNEL_LEN, WRAP_SAMPLES};
pub use save::{INT16_SCALE, PreprocessedWriter};
pub use whiten::{CovarianceSum, SparseRows, Whitening, nearest_channels};

use crate::io::BatchReader;
use crate::parallel::{Pool, for_each_batch_in_order};
use crate::plan::Plan;
use crate::progress::Progress;

/// Learned preprocessing: the filter chain and the whitening matrix.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    /// The high-pass filter (`None` when `highpass_cutoff` is 0).
    pub highpass: Option<HighPass>,
    /// Subtract the median across channels at every sample.
    pub do_car: bool,
    /// Multiply data by −1 first (applied in every stage, see docs/differences.md).
    pub invert_sign: bool,
    /// Batches whose filtered data reach this absolute value are zeroed.
    pub artifact_threshold: f32,
    /// Local whitening.
    pub whitening: Whitening,
    /// Batches the covariance was averaged over.
    pub covariance_batches: usize,
}

impl Preprocessor {
    /// Estimates the whitening matrix from every `nskip`-th batch of `reader`.
    ///
    /// Like Kilosort4 the last batch is left out of the covariance (it may be short), except
    /// when it is the only one: then it is used rather than giving NaN.
    pub fn fit(reader: &BatchReader, plan: &Plan, progress: &dyn Progress) -> Self {
        let s = &plan.settings;
        let mut pre = Preprocessor {
            highpass: (s.highpass_cutoff > 0.0).then(|| HighPass::butterworth(s.highpass_cutoff, s.fs)),
            do_car: s.do_car,
            invert_sign: s.invert_sign,
            artifact_threshold: s.artifact_threshold as f32,
            whitening: Whitening::from_matrix(Array2::eye(plan.n_channels())),
            covariance_batches: 0,
        };
        let n_batches = reader.n_batches();
        let used: Vec<usize> = (0..n_batches.saturating_sub(1).max(1)).step_by(s.nskip.max(1)).collect();
        progress.start("computing whitening matrix", used.len() as u64);
        let pad = plan.layout.pad;
        let mut covariance = CovarianceSum::new(plan.n_channels());
        // Batches are filtered in parallel and summed in order, so the result does not depend
        // on the number of threads.
        let scratch: Pool<BatchScratch> = Pool::default();
        for_each_batch_in_order(
            used.len(),
            || (),
            |_, i| {
                let b = used[i];
                scratch.with(|scratch| {
                    let filtered = pre.filtered_time_major(reader, b, scratch)?;
                    // Only rows holding real samples: a recording shorter than one batch has
                    // repeated edge values after its end, which would dilute the covariance.
                    let real = plan.layout.batch_size.min((plan.layout.n_samples() - batch_start(plan, b)) as usize);
                    Some(CovarianceSum::batch_product(filtered.slice(s![pad..pad + real, ..]).t()))
                })
            },
            |product| {
                if let Some(product) = product {
                    covariance.add_product(product);
                }
                progress.advance(1);
            },
        );
        progress.finish();
        let mean = if covariance.batches() > 0 { covariance.mean() } else { Array2::eye(plan.n_channels()) };
        pre.whitening = Whitening::local(&mean, &plan.probe, s.whitening_range);
        pre.covariance_batches = covariance.batches();
        pre
    }
}

/// Writes the whole recording, preprocessed, as `temp_wh.dat` (Kilosort4's
/// `save_preprocessed_copy`): batches are read, filtered and whitened one at a time.
pub fn save_preprocessed_copy(
    reader: &BatchReader,
    pre: &Preprocessor,
    plan: &Plan,
    path: &std::path::Path,
    progress: &dyn Progress,
) -> crate::Result<()> {
    let n_chan_bin = plan.settings.n_chan_bin.expect("a plan has n_chan_bin");
    let mut writer =
        PreprocessedWriter::create(path, &plan.probe.channel_map, n_chan_bin, plan.layout.batch_size, plan.layout.pad)?;
    let n = reader.n_batches();
    progress.start("saving preprocessed copy", n as u64);
    let mut out = Array2::zeros((plan.n_channels(), plan.layout.padded_len()));
    let mut scratch = BatchScratch::default();
    for b in 0..n {
        pre.prepare(reader, b, None, &mut scratch, &mut out);
        writer.push(out.view(), b + 1 == n)?;
        progress.advance(1);
    }
    progress.finish();
    writer.finish()
}

/// First window sample (relative to `imin`) of batch `b`'s unpadded part.
fn batch_start(plan: &Plan, b: usize) -> u64 {
    (plan.layout.raw_index(b) * plan.layout.batch_size) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preprocessor(artifact_threshold: f32) -> Preprocessor {
        Preprocessor {
            highpass: Some(HighPass::butterworth(300.0, 30000.0)),
            do_car: true,
            invert_sign: false,
            artifact_threshold,
            whitening: Whitening::from_matrix(Array2::eye(3)),
            covariance_batches: 0,
        }
    }

    fn batch_with_spike(height: f32) -> Array2<f32> {
        let mut batch = Array2::from_shape_fn((3, 500), |(c, t)| ((t * 7 + c * 3) % 11) as f32 - 5.0);
        batch[[1, 250]] += height;
        batch
    }

    #[test]
    fn artifact_batches_are_zeroed_and_others_kept() {
        let mut quiet = batch_with_spike(100.0);
        assert!(preprocessor(1000.0).filter(&mut quiet), "below the threshold");
        assert!(quiet.iter().any(|&v| v != 0.0));
        let mut loud = batch_with_spike(5000.0);
        assert!(!preprocessor(1000.0).filter(&mut loud), "above the threshold");
        assert!(loud.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn invert_sign_flips_the_filtered_output() {
        let mut plain = batch_with_spike(300.0);
        let mut flipped = plain.clone();
        preprocessor(f32::INFINITY).filter(&mut plain);
        Preprocessor { invert_sign: true, ..preprocessor(f32::INFINITY) }.filter(&mut flipped);
        // The median of 3 channels commutes with negation, so the whole chain is odd.
        for (a, b) in plain.iter().zip(&flipped) {
            assert!((a + b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
