//! Per-spike feature rows parked in a temporary file while a pass over the recording runs.
//!
//! A pass holds its batch buffers (hundreds of MB at 384 channels) while the spikes' features
//! accumulate (240 bytes a spike). Keeping the features on disk until the pass ends, and
//! reading them back once the batch buffers are freed, means the two never add up: the peak
//! memory of a long recording stays near that of a short one. The file is unnamed (deleted by
//! the OS when closed, even after a crash) and is read and written with plain I/O, so its pages
//! are not counted in the process's memory.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use crate::error::{Error, Result};

/// Bytes written per system call.
const WRITE_BUFFER: usize = 1 << 20;
/// Values converted per read when the rows come back.
const READ_CHUNK: usize = 1 << 16;

/// What the error names when the temporary file cannot be used.
const SPILL_ACTION: &str = "cannot use a temporary file for spike features (set TMPDIR to a folder with free space) in";

/// `f32` values appended in order, kept in a temporary file until [`FeatureSpill::finish`].
#[derive(Debug)]
pub(crate) struct FeatureSpill {
    writer: BufWriter<File>,
    values: usize,
}

impl FeatureSpill {
    /// An empty spill in the system's temporary folder.
    pub fn new() -> Result<Self> {
        let file = tempfile::tempfile().map_err(io_error)?;
        Ok(FeatureSpill { writer: BufWriter::with_capacity(WRITE_BUFFER, file), values: 0 })
    }

    /// Appends `values`.
    pub fn extend(&mut self, values: &[f32]) -> Result<()> {
        for v in values {
            self.writer.write_all(&v.to_le_bytes()).map_err(io_error)?;
        }
        self.values += values.len();
        Ok(())
    }

    /// Every value appended, in order.
    pub fn finish(self) -> Result<Vec<f32>> {
        let mut file = self.writer.into_inner().map_err(|e| io_error(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let mut values = Vec::with_capacity(self.values);
        let mut bytes = vec![0u8; READ_CHUNK * 4];
        while values.len() < self.values {
            let chunk = READ_CHUNK.min(self.values - values.len());
            file.read_exact(&mut bytes[..chunk * 4]).map_err(io_error)?;
            values.extend(bytes[..chunk * 4].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
        }
        Ok(values)
    }
}

fn io_error(source: std::io::Error) -> Error {
    Error::Io { action: SPILL_ACTION, path: std::env::temp_dir(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_in_order_across_chunks() {
        let mut spill = FeatureSpill::new().unwrap();
        let values: Vec<f32> = (0..READ_CHUNK * 2 + 17).map(|i| i as f32 * 0.5 - 3.0).collect();
        for part in values.chunks(1000) {
            spill.extend(part).unwrap();
        }
        spill.extend(&[f32::NAN, -0.0]).unwrap();
        let back = spill.finish().unwrap();
        assert_eq!(back.len(), values.len() + 2);
        assert_eq!(&back[..values.len()], &values[..]);
        assert!(back[values.len()].is_nan() && back[values.len() + 1].to_bits() == (-0.0f32).to_bits());
        assert!(FeatureSpill::new().unwrap().finish().unwrap().is_empty());
    }
}
