//! Reading raw recordings: memory-mapped binary files, the analysed window, padded batches.
//!
//! Every reader implements [`Recording`]; [`BinaryRecording`] maps flat binary file(s); [`BatchLayout`] decides the window and batches from the
//! settings; [`BatchReader`] combines them with the probe's channel map and yields
//! [`PaddedBatch`]es (channels × `NT + 2·nt`, f32), sequentially or as a rayon parallel iterator.

mod batches;
mod binary;
mod dtype;
mod open;
mod recording;

use ndarray::Array2;
use rayon::prelude::*;

pub use batches::{BatchLayout, BatchOptions, ReadSpan};
pub use binary::{BinaryRecording, find_binary};
pub use dtype::Dtype;
pub use open::{Format, N_CHAN_BIN_FIX, OpenOptions, open_recording, settings_for_recording};
pub use recording::Recording;

/// One padded batch of raw data.
#[derive(Debug, Clone)]
pub struct PaddedBatch {
    /// Index of the batch among the used batches.
    pub index: usize,
    /// Sample (relative to `imin`) of column 0; negative in the first batch.
    pub first_sample: i64,
    /// Data, channels (probe order) × padded time, after dtype conversion, `scale` and `shift`.
    pub data: Array2<f32>,
}

/// Reads padded batches of the probe's channels from a recording.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    recording: &'a dyn Recording,
    layout: BatchLayout,
    channels: Vec<u32>,
    scale: Option<f32>,
    shift: Option<f32>,
}

impl<'a> BatchReader<'a> {
    /// A reader of `channels` (binary rows, probe order) with optional `x·scale + shift`.
    ///
    /// The layout and channels must come from this recording (see [`crate::Plan`]).
    pub fn new(
        recording: &'a dyn Recording,
        layout: BatchLayout,
        channels: Vec<u32>,
        scale: Option<f64>,
        shift: Option<f64>,
    ) -> Self {
        assert!(layout.imax <= recording.total_samples(), "layout does not belong to this recording");
        assert!(channels.iter().all(|&c| (c as usize) < recording.n_chan_bin()), "channel beyond the file");
        BatchReader { recording, layout, channels, scale: scale.map(|s| s as f32), shift: shift.map(|s| s as f32) }
    }

    /// The window and batches.
    pub fn layout(&self) -> &BatchLayout {
        &self.layout
    }

    /// Number of channels read.
    pub fn n_channels(&self) -> usize {
        self.channels.len()
    }

    /// Number of batches.
    pub fn n_batches(&self) -> usize {
        self.layout.n_batches
    }

    /// Fills `out` (channels × padded length) with batch `batch`.
    pub fn read_into(&self, batch: usize, out: &mut Array2<f32>) {
        let width = self.layout.padded_len();
        assert_eq!(out.dim(), (self.channels.len(), width), "output buffer has the wrong shape");
        let span = self.layout.read_span(batch);
        let out_slice = out.as_slice_mut().expect("batch buffers are contiguous");
        let first_column = span.first_column;
        self.recording.read_channels(
            self.layout.imin + span.first_sample,
            self.layout.imin + span.end_sample,
            &self.channels,
            &mut out_slice[first_column..],
            width,
        );
        let last_column = first_column + span.len();
        for row in out_slice.chunks_exact_mut(width) {
            let data = &mut row[first_column..last_column];
            if let Some(scale) = self.scale {
                data.iter_mut().for_each(|x| *x *= scale);
            }
            if let Some(shift) = self.shift {
                data.iter_mut().for_each(|x| *x += shift);
            }
            let (first, last) = (row[first_column], row[last_column - 1]);
            row[..first_column].fill(first);
            row[last_column..].fill(last);
        }
    }

    /// Fills `out` with batch `batch` time-major (padded length × channels, `out` resized to
    /// fit): the file's own order, which the fused preprocessing works in.
    pub fn read_time_major_into(&self, batch: usize, out: &mut Vec<f32>) {
        let n = self.channels.len();
        let width = self.layout.padded_len();
        out.resize(width * n, 0.0);
        let span = self.layout.read_span(batch);
        let (first, last) = (span.first_column, span.first_column + span.len());
        self.recording.read_samples(
            self.layout.imin + span.first_sample,
            self.layout.imin + span.end_sample,
            &self.channels,
            &mut out[first * n..last * n],
        );
        if self.scale.is_some() || self.shift.is_some() {
            let (scale, shift) = (self.scale.unwrap_or(1.0), self.shift.unwrap_or(0.0));
            out[first * n..last * n].iter_mut().for_each(|x| *x = *x * scale + shift);
        }
        if n == 0 || first == last {
            return;
        }
        // Columns outside the recording repeat its edge samples.
        let (head, rest) = out.split_at_mut(first * n);
        head.chunks_exact_mut(n).for_each(|row| row.copy_from_slice(&rest[..n]));
        let (body, tail) = out.split_at_mut(last * n);
        tail.chunks_exact_mut(n).for_each(|row| row.copy_from_slice(&body[body.len() - n..]));
    }

    /// Reads batch `batch` into a new buffer.
    pub fn read(&self, batch: usize) -> PaddedBatch {
        let mut data = Array2::zeros((self.channels.len(), self.layout.padded_len()));
        self.read_into(batch, &mut data);
        PaddedBatch { index: batch, first_sample: self.layout.padded_start(batch), data }
    }

    /// All batches in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = PaddedBatch> + '_ {
        (0..self.n_batches()).map(|b| self.read(b))
    }

    /// All batches as a rayon parallel iterator (each worker reads its own batches).
    pub fn par_iter(&self) -> impl IndexedParallelIterator<Item = PaddedBatch> + '_ {
        (0..self.n_batches()).into_par_iter().map(|b| self.read(b))
    }
}

#[cfg(test)]
mod tests;
