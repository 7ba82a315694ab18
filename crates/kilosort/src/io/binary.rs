//! Memory-mapped raw binary recordings, one file or several concatenated in time.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{Dtype, Recording};
use crate::error::{Error, Result};

/// Samples read between releases of the mapped pages (1.5 MB at 385 int16 channels).
const SAMPLES_PER_PIECE: u64 = 2048;

/// One file of a recording.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    map: Mmap,
    /// Absolute index of this file's first sample in the concatenated recording.
    first_sample: u64,
    n_samples: u64,
}

/// A raw recording: `(n_samples, n_chan_bin)` row-major values of one dtype, across one or more
/// files read as if they were one long file.
#[derive(Debug)]
pub struct BinaryRecording {
    segments: Vec<Segment>,
    n_chan_bin: usize,
    dtype: Dtype,
    total_samples: u64,
}

impl BinaryRecording {
    /// Opens and memory-maps `paths` (in time order), checking each size against the layout.
    pub fn open(paths: &[PathBuf], n_chan_bin: usize, dtype: Dtype) -> Result<Self> {
        if paths.is_empty() {
            return Err(Error::BadRecording {
                path: PathBuf::new(),
                detail: "no recording file given; pass a .bin/.dat file or a folder that holds one".into(),
            });
        }
        let mut segments = Vec::with_capacity(paths.len());
        let mut total_samples = 0;
        for path in paths {
            let segment = map_segment(path, n_chan_bin, dtype, total_samples)?;
            total_samples += segment.n_samples;
            segments.push(segment);
        }
        Ok(BinaryRecording { segments, n_chan_bin, dtype, total_samples })
    }

    /// Calls `read(bytes, first)` on the raw rows of samples `[start, end)` in pieces of at most
    /// [`SAMPLES_PER_PIECE`] within one file (`first`: the piece's first sample relative to
    /// `start`), releasing each piece's pages after it, so a read never holds more than one
    /// piece of the file in memory.
    fn for_each_piece(&self, start: u64, end: u64, mut read: impl FnMut(&[u8], usize)) {
        assert!(start <= end && end <= self.total_samples, "read [{start}, {end}) beyond {}", self.total_samples);
        let row_bytes = self.n_chan_bin * self.dtype.size();
        let mut sample = start;
        while sample < end {
            let segment = self.segment_of(sample);
            let local_end = end.min(segment.first_sample + segment.n_samples).min(sample + SAMPLES_PER_PIECE);
            let first_byte = (sample - segment.first_sample) as usize * row_bytes;
            read(
                &segment.map[first_byte..first_byte + (local_end - sample) as usize * row_bytes],
                (sample - start) as usize,
            );
            segment.release(sample, local_end, row_bytes);
            sample = local_end;
        }
        // The kernel maps a few already-cached pages around each fault ("fault-around"), which
        // can bring back the end of a piece released just before; one release of the whole
        // range drops those too (otherwise they accumulate, ~1 MB per batch).
        let mut sample = start;
        while sample < end {
            let segment = self.segment_of(sample);
            let local_end = end.min(segment.first_sample + segment.n_samples);
            segment.release(sample, local_end, row_bytes);
            sample = local_end;
        }
    }

    fn segment_of(&self, sample: u64) -> &Segment {
        let i = self.segments.partition_point(|s| s.first_sample + s.n_samples <= sample);
        &self.segments[i]
    }
}

impl Recording for BinaryRecording {
    /// Total samples over all files.
    fn total_samples(&self) -> u64 {
        self.total_samples
    }

    /// Channels (rows) per sample in the file.
    fn n_chan_bin(&self) -> usize {
        self.n_chan_bin
    }

    /// Sample type.
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// The files, in time order.
    fn paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// The first file, used to name the recording in messages.
    fn path(&self) -> &Path {
        &self.segments[0].path
    }

    // Channel-major reads straight from the map (the default would go through a copy).
    /// Reads samples `[start, end)` (absolute) of the given file rows into `out`, channel-major:
    /// `out[k * stride + (s - start)]` receives row `channels[k]` at sample `s`, converted to f32.
    ///
    /// # Panics
    /// If the range exceeds the recording or `out` is too small: callers compute both from a
    /// validated [`super::BatchLayout`] and probe.
    fn read_channels(&self, start: u64, end: u64, channels: &[u32], out: &mut [f32], stride: usize) {
        let size = self.dtype.size();
        self.for_each_piece(start, end, |bytes, first| {
            for (i, row) in bytes.chunks_exact(self.n_chan_bin * size).enumerate() {
                for (k, &c) in channels.iter().enumerate() {
                    let offset = c as usize * size;
                    out[k * stride + first + i] = self.dtype.decode(&row[offset..offset + size]);
                }
            }
        });
    }

    /// Reads samples `[start, end)` (absolute) of the given file rows into `out`, time-major as
    /// the file is: `out[(s - start) * channels.len() + k]` receives row `channels[k]` at sample
    /// `s`, converted to f32.
    ///
    /// # Panics
    /// As [`Self::read_channels`].
    fn read_samples(&self, start: u64, end: u64, channels: &[u32], out: &mut [f32]) {
        let n = channels.len();
        assert!(out.len() >= (end - start) as usize * n, "output too small for [{start}, {end})");
        let size = self.dtype.size();
        let row_bytes = self.n_chan_bin * size;
        self.for_each_piece(start, end, |bytes, first| {
            let out = &mut out[first * n..(first + bytes.len() / row_bytes) * n];
            // One loop per dtype, so the decoding is not re-dispatched per value.
            match self.dtype {
                Dtype::Int16 => {
                    gather_rows(bytes, row_bytes, size, channels, out, |b| i16::from_le_bytes([b[0], b[1]]) as f32)
                }
                dtype => gather_rows(bytes, row_bytes, size, channels, out, |b| dtype.decode(b)),
            }
        });
    }
}

/// Decodes `channels` (values of `size` bytes) of every `row_bytes`-long row of `bytes` into
/// consecutive rows of `out`. Channels are taken in runs of consecutive file rows (a probe's
/// map usually is one or two such runs), so each run converts a contiguous slice and vectorises.
#[inline(always)]
fn gather_rows(
    bytes: &[u8],
    row_bytes: usize,
    size: usize,
    channels: &[u32],
    out: &mut [f32],
    decode: impl Fn(&[u8]) -> f32,
) {
    if channels.is_empty() {
        return;
    }
    let runs = consecutive_runs(channels);
    for (row, out) in bytes.chunks_exact(row_bytes).zip(out.chunks_exact_mut(channels.len())) {
        for &(first_out, first_channel, len) in &runs {
            let values = &row[first_channel * size..(first_channel + len) * size];
            out[first_out..first_out + len].iter_mut().zip(values.chunks_exact(size)).for_each(|(o, v)| *o = decode(v));
        }
    }
}

/// `channels` as runs `(position in channels, first channel, length)` of consecutive values.
fn consecutive_runs(channels: &[u32]) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (k, &c) in channels.iter().enumerate() {
        match runs.last_mut() {
            Some((_, first, len)) if *first + *len == c as usize => *len += 1,
            _ => runs.push((k, c as usize, 1)),
        }
    }
    runs
}

impl Segment {
    /// Lets the OS drop the mapped pages of samples `[start, end)` from this process: each pass
    /// reads a batch once, and without this the whole file would count in the resident memory
    /// of a long sort. Pages are re-read from the file if touched again, so this is only a hint.
    fn release(&self, start: u64, end: u64, row_bytes: usize) {
        #[cfg(unix)]
        {
            let offset = (start - self.first_sample) as usize * row_bytes;
            let len = (end - start) as usize * row_bytes;
            // SAFETY: the map is a read-only shared file mapping; MADV_DONTNEED only unmaps the
            // pages, and a later access faults them back in from the file with the same bytes.
            let _ = unsafe { self.map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
        }
        #[cfg(not(unix))]
        let _ = (start, end, row_bytes);
    }
}

fn map_segment(path: &Path, n_chan_bin: usize, dtype: Dtype, first_sample: u64) -> Result<Segment> {
    let file = File::open(path).map_err(|e| Error::io("cannot open recording", path, e))?;
    let size = file.metadata().map_err(|e| Error::io("cannot stat recording", path, e))?.len();
    if size == 0 {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    let bytes_per_sample = (n_chan_bin * dtype.size()) as u64;
    if n_chan_bin == 0 || !size.is_multiple_of(bytes_per_sample) {
        return Err(Error::FileSizeMismatch {
            path: path.to_path_buf(),
            size,
            n_chan_bin,
            bytes_per_value: dtype.size(),
            dtype: dtype.name(),
        });
    }
    // SAFETY: the map is read-only; like every memmap reader we rely on the recording not being
    // truncated by another process while it is sorted.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io("cannot memory-map recording", path, e))?;
    Ok(Segment { path: path.to_path_buf(), map, first_sample, n_samples: size / bytes_per_sample })
}

/// Finds the one recording in `dir`: a `.bin`, `.dat`, `.raw` or `.bat` file. With several, only
/// those whose name contains `ap.bin` (SpikeGLX's action-potential band) are kept, as Kilosort4.
pub fn find_binary(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list data folder", dir, e))?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["bin", "dat", "raw", "bat"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    found.sort();
    if found.len() > 1 {
        found.retain(|p| p.to_string_lossy().contains("ap.bin"));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Error::FileNotFound {
            path: dir.to_path_buf(),
            hint: "no .bin, .dat, .raw or .bat recording in this folder (or several, none named *ap.bin); \
                   give the file itself"
                .into(),
        }),
        _ => Err(Error::BadRecording {
            path: dir.to_path_buf(),
            detail: format!(
                "several recordings match ({}); give the file to sort explicitly",
                found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}
