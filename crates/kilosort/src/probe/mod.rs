//! Probe geometry: which rows of the binary file are sorted, and where each contact sits.
//!
//! [`Probe`] is Kilosort4's probe dictionary (`chanMap`, `xc`, `yc`, `kcoords`, `n_chan`) with
//! named fields. Readers exist for every format Kilosort4 accepts plus probeinterface JSON;
//! [`Probe::load`] picks one by the file's extension and contents, [`builtin`] holds the
//! probes Kilosort4 downloads, generated from their geometry.

pub mod builtin;
mod json;
mod mat;
mod prb;
mod probeinterface;

use std::path::Path;

use crate::error::{Error, Result};

pub use json::{from_settings_value, write_kilosort_json};

/// A probe: the sorted channels and their positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Row of the binary file (0-based) read for each sorted contact.
    #[doc(alias = "chanMap")]
    pub channel_map: Vec<u32>,
    /// Lateral position of each contact, µm.
    #[doc(alias = "xc")]
    pub x: Vec<f32>,
    /// Depth of each contact along the shank, µm.
    #[doc(alias = "yc")]
    pub y: Vec<f32>,
    /// Shank id of each contact (Kilosort4 stores it as a float).
    #[doc(alias = "kcoords")]
    pub shank: Vec<f32>,
    /// Number of channels in the source description, before disconnected sites were dropped.
    pub n_chan: usize,
}

impl Probe {
    /// Builds a probe and checks it: equal lengths, no duplicate channels, finite coordinates.
    ///
    /// `source_name` (a file path or built-in name) is used in error messages.
    pub fn new(
        source_name: &str,
        channel_map: Vec<u32>,
        x: Vec<f32>,
        y: Vec<f32>,
        shank: Vec<f32>,
        n_chan: usize,
    ) -> Result<Self> {
        let probe = Probe { channel_map, x, y, shank, n_chan };
        probe.validate(source_name)?;
        Ok(probe)
    }

    /// Number of sorted channels.
    pub fn len(&self) -> usize {
        self.channel_map.len()
    }

    /// True when the probe has no channels.
    pub fn is_empty(&self) -> bool {
        self.channel_map.is_empty()
    }

    /// Checks the invariants every stage relies on.
    pub fn validate(&self, source_name: &str) -> Result<()> {
        let invalid = |detail: String| Error::ProbeInvalid { source_name: source_name.to_string(), detail };
        let n = self.channel_map.len();
        if n == 0 {
            return Err(invalid("the probe has no channels; give at least one connected contact".into()));
        }
        for (name, len) in [("xc", self.x.len()), ("yc", self.y.len()), ("kcoords", self.shank.len())] {
            if len != n {
                return Err(invalid(format!(
                    "`{name}` has {len} entries but `chanMap` has {n}; every per-channel list must have one entry per channel"
                )));
            }
        }
        let mut seen = std::collections::HashMap::new();
        for (i, &c) in self.channel_map.iter().enumerate() {
            if let Some(first) = seen.insert(c, i) {
                return Err(invalid(format!(
                    "channel {c} appears twice in `chanMap` (entries {first} and {i}); each binary row may be sorted once"
                )));
            }
        }
        for (i, (&x, &y)) in self.x.iter().zip(&self.y).enumerate() {
            if !x.is_finite() || !y.is_finite() {
                return Err(invalid(format!("contact {i} has a non-finite position ({x}, {y}) µm")));
            }
        }
        Ok(())
    }

    /// Checks that every channel exists in a binary file with `n_chan_bin` rows.
    pub fn check_fits(&self, source_name: &str, n_chan_bin: usize) -> Result<()> {
        if let Some(&max) = self.channel_map.iter().max()
            && max as usize >= n_chan_bin
        {
            return Err(Error::ProbeInvalid {
                source_name: source_name.to_string(),
                detail: format!(
                    "channel index {max} is ≥ n_chan_bin = {n_chan_bin}; chanMap must be 0-indexed rows of the \
                     binary file (subtract 1 from a 1-based map) and n_chan_bin must count every channel in the file"
                ),
            });
        }
        Ok(())
    }

    /// Loads a probe from a Kilosort4 `.json`, probeinterface `.json`, Kilosort `.mat` or `.prb` file.
    pub fn load(path: &Path) -> Result<Self> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read probe file", path, e))?;
        let probe = match ext.as_str() {
            "json" => {
                let text = utf8(path, &bytes)?;
                if probeinterface::looks_like_probeinterface(text) {
                    probeinterface::parse(text, path)?
                } else {
                    json::parse(text, path)?
                }
            }
            "mat" => mat::parse(&bytes, path)?,
            "prb" => prb::parse(utf8(path, &bytes)?, path)?,
            other => {
                return Err(Error::probe_format(
                    path,
                    format!(
                        "unsupported probe extension `.{other}`; use a Kilosort4 or probeinterface .json, a Kilosort \
                         .mat channel map or a .prb file"
                    ),
                ));
            }
        };
        probe.validate(&path.display().to_string())?;
        Ok(probe)
    }

    /// Resolves a probe argument: a built-in name, else a path to a probe file.
    pub fn from_name_or_path(arg: &str) -> Result<Self> {
        if let Some(probe) = builtin::by_name(arg) {
            return Ok(probe);
        }
        let path = Path::new(arg);
        if !path.exists() {
            return Err(Error::FileNotFound {
                path: path.to_path_buf(),
                hint: format!(
                    "it is neither a probe file nor a built-in probe (built-ins: {})",
                    builtin::NAMES.join(", ")
                ),
            });
        }
        Self::load(path)
    }

    /// Removes the given binary rows (values of `chanMap`) from the probe, as Kilosort4's
    /// `remove_bad_channels` does.
    pub fn without_channels(&self, bad_channels: &[u32]) -> Result<Self> {
        for &bad in bad_channels {
            if !self.channel_map.contains(&bad) {
                return Err(Error::ProbeInvalid {
                    source_name: "bad_channels".into(),
                    detail: format!(
                        "bad channel {bad} is not in the probe's chanMap; bad_channels lists binary-file rows \
                         (values of chanMap), not positions in the probe"
                    ),
                });
            }
        }
        Ok(self.filtered(|i| !bad_channels.contains(&self.channel_map[i])))
    }

    /// Keeps only the contacts on shank `shank`, as Kilosort4's `select_shank`.
    pub fn shank_only(&self, shank: f32) -> Result<Self> {
        let kept = self.filtered(|i| self.shank[i] == shank);
        if kept.is_empty() {
            return Err(Error::ProbeInvalid {
                source_name: "shank_idx".into(),
                detail: format!("no contact has kcoords == {shank}; the probe's shanks are {:?}", self.shank_ids()),
            });
        }
        Ok(Probe { n_chan: kept.len(), ..kept })
    }

    /// The distinct shank ids, sorted.
    pub fn shank_ids(&self) -> Vec<f32> {
        let mut ids = self.shank.clone();
        ids.sort_by(f32::total_cmp);
        ids.dedup();
        ids
    }

    fn filtered(&self, keep: impl Fn(usize) -> bool) -> Self {
        let idx: Vec<usize> = (0..self.len()).filter(|&i| keep(i)).collect();
        Probe {
            channel_map: idx.iter().map(|&i| self.channel_map[i]).collect(),
            x: idx.iter().map(|&i| self.x[i]).collect(),
            y: idx.iter().map(|&i| self.y[i]).collect(),
            shank: idx.iter().map(|&i| self.shank[i]).collect(),
            n_chan: self.n_chan - (self.len() - idx.len()),
        }
    }
}

fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::probe_format(path, format!("not valid UTF-8 text ({e}); is this really a text probe file?"))
    })
}
