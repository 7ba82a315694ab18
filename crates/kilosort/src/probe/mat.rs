//! Kilosort 1–3 channel-map `.mat` files (MATLAB v5, as MATLAB and scipy write them).
//!
//! Fields: `chanMap` (1-based), `connected`, `xcoords`, `ycoords`, optional `kcoords`. As in
//! Kilosort4, disconnected sites are removed and `n_chan` keeps the full site count.

use std::path::Path;

use matfile::{MatFile, NumericData};

use super::Probe;
use crate::error::{Error, Result};

/// HDF5 files start with this signature; MATLAB v7.3 puts it after a 512-byte text header.
const HDF5_SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Parses a channel-map `.mat` file.
pub(super) fn parse(bytes: &[u8], path: &Path) -> Result<Probe> {
    if is_hdf5(bytes) {
        return Err(Error::probe_format(
            path,
            "MATLAB v7.3 (HDF5) .mat files are not supported; re-save it in MATLAB with \
             save(..., '-v7') or convert the probe to .json (kilosort-rs probe convert)",
        ));
    }
    if bytes.len() < 128 || !bytes.starts_with(b"MATLAB 5.0") {
        return Err(Error::probe_format(
            path,
            "not a MATLAB v5 .mat file (no 'MATLAB 5.0' header); save the channel map with MATLAB -v7 or \
             scipy.io.savemat, or give a .json probe",
        ));
    }
    let mat = MatFile::parse(bytes)
        .map_err(|e| Error::probe_format(path, format!("cannot parse the .mat file ({e}); is it corrupted?")))?;
    let field = |name: &str| mat.find_by_name(name).map(numbers);
    let required = |name: &str| {
        field(name).ok_or_else(|| {
            Error::probe_format(
                path,
                format!("missing `{name}`; a channel map needs chanMap, connected, xcoords and ycoords"),
            )
        })
    };
    let chan_map = required("chanMap")?;
    let n_chan = chan_map.len();
    let connected = field("connected").unwrap_or_else(|| vec![1.0; n_chan]);
    let xcoords = required("xcoords")?;
    let ycoords = required("ycoords")?;
    let kcoords = field("kcoords").unwrap_or_else(|| vec![0.0; n_chan]);
    for (name, v) in [("connected", &connected), ("xcoords", &xcoords), ("ycoords", &ycoords), ("kcoords", &kcoords)] {
        if v.len() != n_chan {
            return Err(Error::probe_format(
                path,
                format!(
                    "`{name}` has {} entries but `chanMap` has {n_chan}; every field needs one entry per site",
                    v.len()
                ),
            ));
        }
    }
    let keep: Vec<usize> = (0..n_chan).filter(|&i| connected[i] != 0.0).collect();
    let mut channel_map = Vec::with_capacity(keep.len());
    for &i in &keep {
        let c = chan_map[i];
        if c < 1.0 || c.fract() != 0.0 {
            return Err(Error::probe_format(
                path,
                format!("`chanMap` entry {c} at site {i} is not a 1-based channel number (MATLAB maps start at 1)"),
            ));
        }
        channel_map.push(c as u32 - 1);
    }
    let pick = |v: &[f64]| keep.iter().map(|&i| v[i] as f32).collect::<Vec<f32>>();
    Probe::new(&path.display().to_string(), channel_map, pick(&xcoords), pick(&ycoords), pick(&kcoords), n_chan)
}

fn is_hdf5(bytes: &[u8]) -> bool {
    bytes.starts_with(HDF5_SIGNATURE) || bytes.get(512..520) == Some(HDF5_SIGNATURE)
}

/// Every numeric class as f64 (channel maps are stored as double, int or logical).
fn numbers(array: &matfile::Array) -> Vec<f64> {
    fn widen<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
        v.iter().map(|&x| x.into()).collect()
    }
    match array.data() {
        NumericData::Int8 { real, .. } => widen(real),
        NumericData::UInt8 { real, .. } => widen(real),
        NumericData::Int16 { real, .. } => widen(real),
        NumericData::UInt16 { real, .. } => widen(real),
        NumericData::Int32 { real, .. } => widen(real),
        NumericData::UInt32 { real, .. } => widen(real),
        NumericData::Int64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        NumericData::UInt64 { real, .. } => real.iter().map(|&x| x as f64).collect(),
        NumericData::Single { real, .. } => widen(real),
        NumericData::Double { real, .. } => real.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v73_files_get_the_resave_advice() {
        let mut bytes = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".to_vec();
        bytes.resize(512, b' ');
        bytes.extend_from_slice(HDF5_SIGNATURE);
        bytes.resize(2048, 0);
        let msg = parse(&bytes, Path::new("chanMap73.mat")).unwrap_err().to_string();
        assert!(
            msg.contains("chanMap73.mat") && msg.contains("v7.3") && msg.contains("-v7") && msg.contains(".json"),
            "{msg}"
        );
    }

    #[test]
    fn garbage_is_rejected_with_the_file_name() {
        let msg = parse(b"hello", Path::new("junk.mat")).unwrap_err().to_string();
        assert!(msg.contains("junk.mat") && msg.contains("not a MATLAB v5"), "{msg}");
        let mut truncated = b"MATLAB 5.0 MAT-file".to_vec();
        truncated.resize(200, 0);
        let msg = parse(&truncated, Path::new("trunc.mat")).unwrap_err().to_string();
        assert!(msg.contains("trunc.mat"), "{msg}");
    }
}
