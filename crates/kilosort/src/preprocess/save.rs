//! `temp_wh.dat`: the preprocessed (filtered, whitened, later drift-corrected) recording as
//! int16, written the way Kilosort4's `save_preprocessing` writes it (spec §10.3).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use ndarray::{Array2, ArrayView2};

use crate::error::{Error, Result};

/// Whitened values are multiplied by this before rounding to int16 (Kilosort4's choice: noise SD
/// 1 becomes 200, leaving room for spikes of ~160 SD).
pub const INT16_SCALE: f32 = 200.0;

/// Streams consecutive padded batches into a `(n_batches·NT) × n_chan_bin` int16 file.
///
/// Each batch contributes its own samples; around every batch boundary the `2·nt` samples are a
/// linear cross-fade between the two batches' padded versions, so filter edge effects do not
/// show as steps. Values are rounded and saturated (Kilosort4 casts without clipping, which
/// wraps large values around).
pub struct PreprocessedWriter {
    writer: BufWriter<File>,
    path: std::path::PathBuf,
    final_path: std::path::PathBuf,
    channel_map: Vec<u32>,
    n_chan_bin: usize,
    batch_size: usize,
    pad: usize,
    /// Columns `[NT, NT + 2·nt)` of the previous batch (the cross-fade's first half).
    previous_tail: Option<Array2<f32>>,
    row: Vec<u8>,
}

impl PreprocessedWriter {
    /// Starts `path` (written as `path.partial`, renamed by [`finish`](Self::finish)).
    pub fn create(path: &Path, channel_map: &[u32], n_chan_bin: usize, batch_size: usize, pad: usize) -> Result<Self> {
        let partial = path.with_extension("dat.partial");
        let file = File::create(&partial).map_err(|e| Error::io("cannot create", &partial, e))?;
        Ok(PreprocessedWriter {
            writer: BufWriter::with_capacity(1 << 22, file),
            path: partial,
            final_path: path.to_path_buf(),
            channel_map: channel_map.to_vec(),
            n_chan_bin,
            batch_size,
            pad,
            previous_tail: None,
            row: vec![0; 2 * n_chan_bin],
        })
    }

    /// Appends the next padded batch (channels × `NT + 2·nt`); `last` marks the final batch.
    pub fn push(&mut self, batch: ArrayView2<f32>, last: bool) -> Result<()> {
        let (nt, big) = (self.pad, self.batch_size);
        match self.previous_tail.take() {
            None => self.write_columns(batch, nt..2 * nt)?,
            Some(tail) => {
                let fade = 2 * nt;
                for k in 0..fade {
                    // Kilosort4's weights: linspace(1, 0, 2nt + 2) without its end points.
                    let w = 1.0 - (k + 1) as f32 / (fade + 1) as f32;
                    let column: Vec<f32> =
                        (0..batch.nrows()).map(|c| w * tail[[c, k]] + (1.0 - w) * batch[[c, k]]).collect();
                    self.write_sample(&column)?;
                }
            }
        }
        self.write_columns(batch, 2 * nt..big)?;
        if last {
            self.write_columns(batch, big..big + nt)?;
        } else {
            self.previous_tail = Some(batch.slice(ndarray::s![.., big..big + 2 * nt]).to_owned());
        }
        Ok(())
    }

    /// Flushes and moves the file to its final name.
    pub fn finish(mut self) -> Result<()> {
        self.writer.flush().map_err(|e| Error::io("cannot write", &self.path, e))?;
        drop(self.writer);
        std::fs::rename(&self.path, &self.final_path).map_err(|e| Error::io("cannot rename", &self.final_path, e))
    }

    fn write_columns(&mut self, batch: ArrayView2<f32>, columns: std::ops::Range<usize>) -> Result<()> {
        for t in columns {
            let column: Vec<f32> = batch.column(t).to_vec();
            self.write_sample(&column)?;
        }
        Ok(())
    }

    fn write_sample(&mut self, values: &[f32]) -> Result<()> {
        self.row.fill(0);
        for (&c, &v) in self.channel_map.iter().zip(values) {
            let q = (v * INT16_SCALE).round().clamp(i16::MIN as f32, i16::MAX as f32) as i16;
            self.row[2 * c as usize..2 * c as usize + 2].copy_from_slice(&q.to_le_bytes());
        }
        debug_assert_eq!(self.row.len(), 2 * self.n_chan_bin);
        self.writer.write_all(&self.row).map_err(|e| Error::io("cannot write", &self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_stitched_with_a_cross_fade() {
        let (nt, big) = (3usize, 10usize);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("temp_wh.dat");
        let mut w = PreprocessedWriter::create(&path, &[1], 2, big, nt).unwrap();
        // Batch i holds the constant i + 1 (in units of 1/200), so the fade is easy to read.
        for i in 0..3 {
            let batch = Array2::from_elem((1, big + 2 * nt), (i + 1) as f32 / INT16_SCALE);
            w.push(batch.view(), i == 2).unwrap();
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let values: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        assert_eq!(values.len(), 2 * 3 * big, "(n_batches·NT) × n_chan_bin");
        let ch1: Vec<i16> = values.iter().skip(1).step_by(2).copied().collect();
        assert!(values.iter().step_by(2).all(|&v| v == 0), "channels outside the map stay 0");
        assert_eq!(&ch1[..7], &[1; 7]);
        // Boundary at sample 10: samples 7..13 fade from 1 to 2 (w = 6/7 … 1/7).
        assert_eq!(&ch1[7..13], &[1, 1, 1, 2, 2, 2]);
        assert_eq!(&ch1[13..17], &[2; 4]);
        assert_eq!(&ch1[27..], &[3; 3]);
        assert!(!dir.path().join("temp_wh.dat.partial").exists());
    }
}
