//! Reading sortings (Phy folders, .npy pairs) and ground truth (make_gt.py / simulator folders).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use ndarray_npy::{ReadNpyError, read_npy};

use super::SpikeTrains;

/// Why loading spike trains or ground truth failed; every message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A file is missing or unreadable.
    #[error("{path}: {source}. {hint}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
        /// What to do about it.
        hint: String,
    },
    /// A .npy file could not be read as an integer vector.
    #[error(
        "{path}: {detail}. Expected a 1-D (n,) or (n,1) integer .npy array (int64/uint64/int32/...), e.g. numpy.save(path, x.astype('int64'))"
    )]
    Npy {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Spike times and clusters differ in length.
    #[error(
        "{times} has {n_times} entries but {clusters} has {n_clusters}: both must hold one entry per spike, in the same order"
    )]
    LengthMismatch {
        /// Times file.
        times: PathBuf,
        /// Entries in it.
        n_times: usize,
        /// Clusters file.
        clusters: PathBuf,
        /// Entries in it.
        n_clusters: usize,
    },
    /// A metadata file (params.py, meta.json, simulation.json, gt_units.json) lacks what is needed.
    #[error("{path}: {detail}")]
    Metadata {
        /// The file (or folder) looked at.
        path: PathBuf,
        /// What was wrong and what to add.
        detail: String,
    },
}

fn npy_err(path: &Path, detail: impl Into<String>) -> CompareError {
    CompareError::Npy { path: path.to_path_buf(), detail: detail.into() }
}

/// Read an integer (n,) or (n,1) .npy file of any common integer dtype (floats only if integral).
fn read_int_vector(path: &Path) -> Result<Vec<i64>, CompareError> {
    if !path.is_file() {
        return Err(CompareError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
            hint: if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("gt_")) {
                "a ground-truth folder holds gt_spike_times.npy and gt_spike_clusters.npy (make_gt.py, kilosort-rs simulate)"
                    .into()
            } else {
                "a sorter's Phy output folder holds spike_times.npy and spike_clusters.npy".into()
            },
        });
    }
    fn attempt<T, F>(path: &Path, conv: F) -> Result<Option<Vec<i64>>, CompareError>
    where
        T: ndarray_npy::ReadableElement,
        F: Fn(T) -> Option<i64>,
    {
        match read_npy::<_, ArrayD<T>>(path) {
            Ok(a) => {
                let shape = a.shape().to_vec();
                let ok = shape.len() == 1 || (shape.len() == 2 && shape[1] == 1);
                if !ok {
                    return Err(npy_err(path, format!("shape {shape:?}")));
                }
                a.into_iter()
                    .map(|x| conv(x).ok_or_else(|| npy_err(path, "a value is not an integer in i64 range")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
            }
            Err(ReadNpyError::WrongDescriptor(_)) => Ok(None),
            Err(e) => Err(npy_err(path, e.to_string())),
        }
    }
    let float = |x: f64| (x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64);
    if let Some(v) = attempt::<i64, _>(path, Some)? {
        return Ok(v);
    }
    if let Some(v) = attempt::<u64, _>(path, |x| i64::try_from(x).ok())? {
        return Ok(v);
    }
    if let Some(v) = attempt::<i32, _>(path, |x| Some(x.into()))? {
        return Ok(v);
    }
    if let Some(v) = attempt::<u32, _>(path, |x| Some(x.into()))? {
        return Ok(v);
    }
    if let Some(v) = attempt::<i16, _>(path, |x| Some(x.into()))? {
        return Ok(v);
    }
    if let Some(v) = attempt::<u16, _>(path, |x| Some(x.into()))? {
        return Ok(v);
    }
    if let Some(v) = attempt::<i8, _>(path, |x| Some(x.into()))? {
        return Ok(v);
    }
    if let Some(v) = attempt::<u8, _>(path, |x| Some(x.into()))? {
        return Ok(v);
    }
    if let Some(v) = attempt::<f64, _>(path, float)? {
        return Ok(v);
    }
    if let Some(v) = attempt::<f32, _>(path, |x| float(x.into()))? {
        return Ok(v);
    }
    Err(npy_err(path, "unsupported dtype"))
}

/// Spike times and cluster ids from two .npy files (each (n,) or (n,1), any integer dtype).
pub fn load_npy_pair(times: &Path, clusters: &Path) -> Result<SpikeTrains, CompareError> {
    let t = read_int_vector(times)?;
    let c = read_int_vector(clusters)?;
    if t.len() != c.len() {
        return Err(CompareError::LengthMismatch {
            times: times.to_path_buf(),
            n_times: t.len(),
            clusters: clusters.to_path_buf(),
            n_clusters: c.len(),
        });
    }
    Ok(SpikeTrains { times: t, units: c })
}

/// `sample_rate = <number>` from a Phy `params.py`, read as text (never executed).
fn params_sample_rate(path: &Path) -> Result<f64, CompareError> {
    let text = std::fs::read_to_string(path).map_err(|e| CompareError::Io {
        path: path.to_path_buf(),
        source: e,
        hint: "params.py must be a readable text file".into(),
    })?;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        if key.trim() != "sample_rate" {
            continue;
        }
        let value = value.split('#').next().unwrap_or("").trim().replace('_', "");
        return value.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0).ok_or_else(|| CompareError::Metadata {
            path: path.to_path_buf(),
            detail: format!("sample_rate = {value:?} is not a positive number; write e.g. `sample_rate = 30000.0`"),
        });
    }
    Err(CompareError::Metadata {
        path: path.to_path_buf(),
        detail: "no `sample_rate = ...` line; add one (e.g. `sample_rate = 30000.0`)".into(),
    })
}

/// A Phy-format results folder: `spike_times.npy` with `spike_clusters.npy` (or, when that is
/// absent, `spike_templates.npy`, Phy's rule), and the `sample_rate` of `params.py` when that file
/// exists (`None` otherwise).
pub fn load_phy_folder(dir: &Path) -> Result<(SpikeTrains, Option<f64>), CompareError> {
    let clusters = dir.join("spike_clusters.npy");
    let clusters = if clusters.is_file() { clusters } else { dir.join("spike_templates.npy") };
    if !clusters.is_file() {
        return Err(CompareError::Io {
            path: dir.join("spike_clusters.npy"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
            hint: "a Phy folder needs spike_clusters.npy or spike_templates.npy next to spike_times.npy".into(),
        });
    }
    let trains = load_npy_pair(&dir.join("spike_times.npy"), &clusters)?;
    let params = dir.join("params.py");
    let fs = if params.is_file() { Some(params_sample_rate(&params)?) } else { None };
    Ok((trains, fs))
}

fn read_json(path: &Path) -> Result<serde_json::Value, CompareError> {
    let text = std::fs::read_to_string(path).map_err(|e| CompareError::Io {
        path: path.to_path_buf(),
        source: e,
        hint: "must be a readable JSON file".into(),
    })?;
    serde_json::from_str(&text).map_err(|e| CompareError::Metadata {
        path: path.to_path_buf(),
        detail: format!("not valid JSON ({e}); rewrite it"),
    })
}

/// A ground-truth folder: `gt_spike_times.npy` + `gt_spike_clusters.npy`, and the sampling rate
/// from `meta.json` (key `fs` or `sampling_frequency`, as /work/shared/bench/make_gt.py and the
/// simulator write) or else `simulation.json` (`fs`, `sampling_frequency` or `config.fs`).
pub fn load_gt_folder(dir: &Path) -> Result<(SpikeTrains, f64), CompareError> {
    let trains = load_npy_pair(&dir.join("gt_spike_times.npy"), &dir.join("gt_spike_clusters.npy"))?;
    let mut looked = Vec::new();
    for name in ["meta.json", "simulation.json"] {
        let path = dir.join(name);
        if !path.is_file() {
            continue;
        }
        let v = read_json(&path)?;
        let fs = v
            .get("fs")
            .or_else(|| v.get("sampling_frequency"))
            .or_else(|| v.get("config").and_then(|c| c.get("fs")))
            .and_then(|x| x.as_f64());
        match fs {
            Some(fs) if fs.is_finite() && fs > 0.0 => return Ok((trains, fs)),
            _ => looked.push(name),
        }
    }
    Err(CompareError::Metadata {
        path: dir.to_path_buf(),
        detail: if looked.is_empty() {
            "no meta.json or simulation.json: add meta.json with {\"fs\": <sampling rate in Hz>}".into()
        } else {
            format!("{} has no positive numeric \"fs\" (or \"sampling_frequency\"); add it", looked.join(" and "))
        },
    })
}

/// Per-GT-unit SNR from `gt_units.json` (a list of objects with `unit_id` and `snr`, as make_gt.py
/// and the simulator write), or `None` when the file is absent. Use it with
/// [`Comparison::restrict_to`](super::Comparison::restrict_to) for score.py's `gt_snr_ge_5`.
pub fn load_gt_snr(dir: &Path) -> Result<Option<BTreeMap<i64, f64>>, CompareError> {
    let path = dir.join("gt_units.json");
    if !path.is_file() {
        return Ok(None);
    }
    let v = read_json(&path)?;
    let bad = || CompareError::Metadata {
        path: path.clone(),
        detail: "expected a list of objects with integer \"unit_id\" and numeric \"snr\"".into(),
    };
    let list = v.as_array().ok_or_else(bad)?;
    let mut out = BTreeMap::new();
    for u in list {
        let id = u.get("unit_id").and_then(|x| x.as_i64()).ok_or_else(bad)?;
        let snr = u.get("snr").and_then(|x| x.as_f64()).ok_or_else(bad)?;
        out.insert(id, snr);
    }
    Ok(Some(out))
}
