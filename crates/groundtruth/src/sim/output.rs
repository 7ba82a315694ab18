//! The recording file, written block after block. On Linux, whole blocks go to the disk
//! directly (`O_DIRECT`): copying gigabytes into the page cache costs as much CPU as rendering
//! them on some machines (more under memory pressure, when the kernel must first reclaim
//! pages), and a long recording would evict everything else from the cache.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Alignment of direct writes: addresses, lengths and file offsets (the largest logical block
/// size of common disks).
pub const DIRECT_ALIGN: usize = 4096;

/// A byte buffer whose contents start at a multiple of [`DIRECT_ALIGN`] in memory.
#[derive(Default)]
pub struct AlignedBytes {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBytes {
    /// Makes the buffer `len` bytes long; when the length changes, the contents become zero.
    pub fn set_len(&mut self, len: usize) {
        if len != self.len || self.storage.is_empty() {
            self.storage.clear();
            self.storage.resize(len + DIRECT_ALIGN, 0);
            self.start = self.storage.as_ptr().align_offset(DIRECT_ALIGN);
            self.len = len;
        }
    }

    /// The contents.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// The contents, to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// A file written block after block from the start.
pub struct BlockFile {
    buffered: File,
    /// The same file opened for direct writes, while the system accepts them.
    direct: Option<File>,
    /// Bytes written so far.
    offset: u64,
}

impl BlockFile {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let buffered = File::create(path)?;
        Ok(BlockFile { buffered, direct: open_direct(path), offset: 0 })
    }

    /// Appends `bytes`: directly when it is aligned (address, length and offset), else through
    /// the page cache. Direct writes that the file system refuses are redone buffered, and the
    /// rest of the file is written buffered too.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let aligned = bytes.as_ptr().align_offset(DIRECT_ALIGN) == 0
            && bytes.len().is_multiple_of(DIRECT_ALIGN)
            && self.offset.is_multiple_of(DIRECT_ALIGN as u64);
        if let (Some(direct), true) = (&self.direct, aligned) {
            match write_at(direct, bytes, self.offset) {
                Ok(()) => {
                    self.offset += bytes.len() as u64;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        write_at(&self.buffered, bytes, self.offset)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Flushes buffered writes.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.buffered.flush()
    }
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

/// `O_DIRECT` from Linux's `fcntl.h`, where it is known (its value depends on the architecture).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const O_DIRECT: Option<i32> = Some(0x4000);
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const O_DIRECT: Option<i32> = Some(0x10000);
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
const O_DIRECT: Option<i32> = None;

/// The file opened again for direct writes, if the system and file system allow it (tmpfs,
/// for one, may not).
fn open_direct(path: &Path) -> Option<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().write(true).custom_flags(O_DIRECT?).open(path).ok()
    }
    #[cfg(not(unix))]
    {
        let _ = (path, O_DIRECT);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_unaligned_blocks_make_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        let mut file = BlockFile::create(&path).unwrap();
        let mut block = AlignedBytes::default();
        let mut expected = Vec::new();
        // Two whole blocks (direct where possible), an odd tail (buffered).
        for (len, value) in [(2 * DIRECT_ALIGN, 1u8), (DIRECT_ALIGN, 2), (1000, 3)] {
            block.set_len(len);
            assert_eq!(block.as_slice().as_ptr().align_offset(DIRECT_ALIGN), 0);
            assert!(block.as_slice().iter().all(|&b| b == 0), "a new length starts from zeros");
            block.as_mut_slice().fill(value);
            file.append(block.as_slice()).unwrap();
            expected.extend(std::iter::repeat_n(value, len));
        }
        file.append(&[7, 8, 9]).unwrap();
        expected.extend([7, 8, 9]);
        file.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
