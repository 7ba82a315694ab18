//! How a recording is cut into padded batches (Kilosort4's `BinaryFiltered` batching).
//!
//! Batch `i` covers samples `[i·NT, (i+1)·NT)` of the analysed window, padded with `nt` samples
//! on each side, so padded column `p` holds sample `i·NT + p − nt` (relative to `imin`). Where
//! that sample falls outside the window (before the first or after the last sample) the nearest
//! sample inside is repeated, as Kilosort4 does at the first and last batch.

use std::path::Path;

use crate::error::{Error, Result};

/// The analysed window of a recording and its division into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLayout {
    /// First analysed sample (absolute index in the file), `int(tmin·fs)`.
    pub imin: u64,
    /// One past the last analysed sample (absolute), after dropping a too-short last batch.
    pub imax: u64,
    /// Samples per batch (`batch_size`, Kilosort4's `NT`).
    pub batch_size: usize,
    /// Padding on each side of a batch, samples (`nt`).
    pub pad: usize,
    /// Batches covering the window, before downsampling.
    pub n_batches_raw: usize,
    /// Only every `downsampling`-th batch is used.
    pub downsampling: usize,
    /// Batches used (`n_batches_raw / downsampling`, rounded down).
    pub n_batches: usize,
}

/// The inputs of a [`BatchLayout`].
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Sampling rate, Hz.
    pub fs: f64,
    /// Start of the window, seconds.
    pub tmin: f64,
    /// End of the window, seconds (inf = end of file).
    pub tmax: f64,
    /// Samples per batch.
    pub batch_size: usize,
    /// Waveform length = padding per side.
    pub nt: usize,
    /// Use every k-th batch.
    pub downsampling: usize,
}

impl BatchLayout {
    /// Computes the window and batches for a recording of `total_samples` samples.
    ///
    /// `path` names the recording in errors.
    pub fn new(total_samples: u64, opts: BatchOptions, path: &Path) -> Result<Self> {
        let duration = total_samples as f64 / opts.fs;
        let window_error = |detail: String| Error::TimeWindow { path: path.to_path_buf(), detail };
        if opts.tmax <= opts.tmin {
            return Err(window_error(format!(
                "tmin = {} s is not before tmax = {} s; choose tmin < tmax",
                opts.tmin, opts.tmax
            )));
        }
        let imin = ((opts.tmin * opts.fs) as u64).min(total_samples);
        if imin >= total_samples {
            return Err(window_error(format!(
                "tmin = {} s is at or beyond the end of the recording ({duration:.3} s); choose tmin < {duration:.3}",
                opts.tmin
            )));
        }
        let imax =
            if opts.tmax.is_infinite() { total_samples } else { ((opts.tmax * opts.fs) as u64).min(total_samples) };
        let n_samples = imax - imin;
        if n_samples < opts.nt as u64 {
            return Err(Error::RecordingTooShort { path: path.to_path_buf(), n_samples, nt: opts.nt });
        }
        let mut layout = BatchLayout {
            imin,
            imax,
            batch_size: opts.batch_size,
            pad: opts.nt,
            n_batches_raw: n_samples.div_ceil(opts.batch_size as u64) as usize,
            downsampling: opts.downsampling.max(1),
            n_batches: 0,
        };
        layout.drop_short_last_batch();
        layout.n_batches = layout.n_batches_raw / layout.downsampling;
        if layout.n_batches == 0 {
            return Err(window_error(format!(
                "batch_downsampling = {} leaves no batch of the {} in the window; lower batch_downsampling",
                layout.downsampling, layout.n_batches_raw
            )));
        }
        Ok(layout)
    }

    /// Kilosort4 drops a last batch that adds fewer than `nt` new samples, and shortens the window.
    fn drop_short_last_batch(&mut self) {
        let last = self.n_batches_raw - 1;
        if last == 0 {
            return;
        }
        let start = self.imin + (last * self.batch_size - self.pad) as u64;
        let end = self.imax.min(start + (self.batch_size + 2 * self.pad) as u64);
        let new_samples = end - start - self.pad as u64;
        if new_samples < self.pad as u64 {
            self.n_batches_raw -= 1;
            self.imax -= new_samples;
        }
    }

    /// Samples in the analysed window.
    pub fn n_samples(&self) -> u64 {
        self.imax - self.imin
    }

    /// Length of a padded batch, `NT + 2·nt` (Kilosort4's `NTbuff`).
    #[doc(alias = "NTbuff")]
    pub fn padded_len(&self) -> usize {
        self.batch_size + 2 * self.pad
    }

    /// The raw batch read for used batch `batch` (differs from it only with downsampling).
    pub fn raw_index(&self, batch: usize) -> usize {
        batch * self.downsampling
    }

    /// Sample (relative to `imin`) held by padded column 0 of used batch `batch`; may be negative.
    pub fn padded_start(&self, batch: usize) -> i64 {
        (self.raw_index(batch) * self.batch_size) as i64 - self.pad as i64
    }

    /// Range of window samples (relative to `imin`) that padded batch `batch` really reads, and the
    /// padded column where the first of them goes. Columns outside repeat the edge samples.
    pub fn read_span(&self, batch: usize) -> ReadSpan {
        let start = self.padded_start(batch);
        let first = start.max(0) as u64;
        let last = ((start + self.padded_len() as i64) as u64).min(self.n_samples());
        ReadSpan { first_sample: first, end_sample: last, first_column: (first as i64 - start) as usize }
    }
}

/// Which samples a padded batch reads, and where they go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSpan {
    /// First sample read, relative to `imin`.
    pub first_sample: u64,
    /// One past the last sample read, relative to `imin`.
    pub end_sample: u64,
    /// Padded column receiving `first_sample`.
    pub first_column: usize,
}

impl ReadSpan {
    /// Number of samples read.
    pub fn len(&self) -> usize {
        (self.end_sample - self.first_sample) as usize
    }

    /// True when nothing is read.
    pub fn is_empty(&self) -> bool {
        self.end_sample == self.first_sample
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(total: u64, tmin: f64, tmax: f64) -> BatchLayout {
        let opts = BatchOptions { fs: 10.0, tmin, tmax, batch_size: 300, nt: 61, downsampling: 1 };
        BatchLayout::new(total, opts, Path::new("ramp.bin")).unwrap()
    }

    #[test]
    fn window_arithmetic_follows_kilosort4() {
        // 10 Hz, 1000 s: 10000 samples, batches of 300 → 34 raw batches; the last adds 100 ≥ 61.
        let l = layout(10_000, 0.0, f64::INFINITY);
        assert_eq!((l.imin, l.imax, l.n_batches_raw, l.n_batches), (0, 10_000, 34, 34));
        // tmin = 17 s, tmax = 893.1 s → samples [170, 8931): 8761 samples, 30 batches; the 30th
        // adds 61 new samples (not < nt), so it is kept.
        let l = layout(10_000, 17.0, 893.1);
        assert_eq!((l.imin, l.imax, l.n_samples(), l.n_batches_raw), (170, 8931, 8761, 30));
    }

    #[test]
    fn short_last_batch_is_dropped_and_window_shortened() {
        // 630 samples: batch 2 would add 30 new samples (< 61): dropped, imax = 600.
        let l = layout(630, 0.0, f64::INFINITY);
        assert_eq!((l.n_batches_raw, l.imax), (2, 600));
    }

    #[test]
    fn spans_cover_padding_and_edges() {
        let l = layout(1000, 0.0, f64::INFINITY); // 4 batches: 0..300, 300..600, 600..900, 900..1000
        assert_eq!(l.padded_len(), 422);
        assert_eq!(l.read_span(0), ReadSpan { first_sample: 0, end_sample: 361, first_column: 61 });
        assert_eq!(l.read_span(1), ReadSpan { first_sample: 239, end_sample: 661, first_column: 0 });
        assert_eq!(l.read_span(3), ReadSpan { first_sample: 839, end_sample: 1000, first_column: 0 });
    }

    #[test]
    fn downsampling_reads_every_kth_batch() {
        let opts = BatchOptions { fs: 10.0, tmin: 0.0, tmax: f64::INFINITY, batch_size: 300, nt: 61, downsampling: 3 };
        let l = BatchLayout::new(10_000, opts, Path::new("x")).unwrap();
        assert_eq!((l.n_batches_raw, l.n_batches, l.raw_index(5)), (34, 11, 15));
        assert_eq!(l.padded_start(5), 15 * 300 - 61);
    }

    #[test]
    fn bad_windows_name_the_file_and_values() {
        let opts =
            BatchOptions { fs: 10.0, tmin: 2000.0, tmax: f64::INFINITY, batch_size: 300, nt: 61, downsampling: 1 };
        let msg = BatchLayout::new(10_000, opts, Path::new("rec.bin")).unwrap_err().to_string();
        assert!(msg.contains("rec.bin") && msg.contains("tmin = 2000") && msg.contains("1000.000"), "{msg}");
        let opts = BatchOptions { tmin: 5.0, tmax: 5.0, ..opts };
        let msg = BatchLayout::new(10_000, opts, Path::new("rec.bin")).unwrap_err().to_string();
        assert!(msg.contains("tmin = 5 s is not before tmax = 5 s"), "{msg}");
        let opts = BatchOptions { tmin: 0.0, tmax: 3.0, ..opts };
        let msg = BatchLayout::new(10_000, opts, Path::new("rec.bin")).unwrap_err().to_string();
        assert!(msg.contains("30 samples") && msg.contains("nt = 61"), "{msg}");
    }
}
