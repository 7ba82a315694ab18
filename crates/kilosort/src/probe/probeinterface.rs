//! probeinterface JSON (`ProbeGroup` files written by `probeinterface.write_probeinterface`).
//!
//! Contacts whose `device_channel_indices` entry is −1 (or missing) are not wired to the file
//! and are dropped. Shank ids become `kcoords`; in a group of several probes, each probe's shank
//! numbers continue after the previous probe's, so shanks of different probes stay distinct.

use std::path::Path;

use serde_json::Value as Json;

use super::Probe;
use crate::error::{Error, Result};

/// True when the document declares itself a probeinterface file.
pub(super) fn looks_like_probeinterface(text: &str) -> bool {
    serde_json::from_str::<Json>(text)
        .map(|doc| {
            doc.get("specification").and_then(Json::as_str) == Some("probeinterface") || doc.get("probes").is_some()
        })
        .unwrap_or(false)
}

/// Parses a probeinterface `ProbeGroup` JSON document.
pub(super) fn parse(text: &str, path: &Path) -> Result<Probe> {
    let fail = |detail: String| Error::probe_format(path, detail);
    let doc: Json = serde_json::from_str(text).map_err(|e| fail(format!("invalid JSON: {e}")))?;
    let probes = doc
        .get("probes")
        .and_then(Json::as_array)
        .ok_or_else(|| fail("no `probes` list; expected a probeinterface ProbeGroup file".into()))?;
    let mut out = Contacts::default();
    for (index, probe) in probes.iter().enumerate() {
        add_probe(probe, &mut out).map_err(|e| fail(format!("probe {index}: {e}")))?;
    }
    let n = out.channel_map.len();
    Probe::new(&path.display().to_string(), out.channel_map, out.x, out.y, out.shank, n)
}

#[derive(Default)]
struct Contacts {
    channel_map: Vec<u32>,
    x: Vec<f32>,
    y: Vec<f32>,
    shank: Vec<f32>,
}

fn add_probe(probe: &Json, out: &mut Contacts) -> Result<(), String> {
    let positions = probe.get("contact_positions").and_then(Json::as_array).ok_or("missing `contact_positions`")?;
    let n = positions.len();
    let channels: Vec<i64> = match probe.get("device_channel_indices") {
        Some(Json::Array(v)) => v.iter().map(|c| c.as_i64().ok_or(format!("device channel {c} is not an integer"))).collect::<Result<_, _>>()?,
        _ => return Err("no `device_channel_indices`: the probe is not wired to the recording's channels; set them with probe.set_device_channel_indices(...)".into()),
    };
    if channels.len() != n {
        return Err(format!("{} device channels for {n} contacts", channels.len()));
    }
    let shank_names: Vec<String> = match probe.get("shank_ids") {
        Some(Json::Array(v)) => {
            v.iter().map(|s| s.as_str().map(str::to_string).unwrap_or_else(|| s.to_string())).collect()
        }
        _ => vec![String::new(); n],
    };
    let shank_ids = number_shanks(&shank_names);
    let offset = out
        .shank
        .iter()
        .copied()
        .fold(None, |m: Option<f32>, s| Some(m.map_or(s, |m| m.max(s))))
        .map_or(0.0, |m| m + 1.0);
    for (i, position) in positions.iter().enumerate() {
        if channels[i] < 0 {
            continue;
        }
        let xy = position.as_array().filter(|p| p.len() >= 2).ok_or(format!("contact {i} position is not [x, y]"))?;
        let coord = |k: usize| xy[k].as_f64().ok_or(format!("contact {i} position {} is not a number", xy[k]));
        out.channel_map
            .push(u32::try_from(channels[i]).map_err(|_| format!("device channel {} is too large", channels[i]))?);
        out.x.push(coord(0)? as f32);
        out.y.push(coord(1)? as f32);
        out.shank.push(shank_ids[i] + offset);
    }
    Ok(())
}

/// Shank ids are strings; numeric ones keep their value, others are numbered in order of appearance.
fn number_shanks(names: &[String]) -> Vec<f32> {
    if names.iter().all(|s| s.is_empty() || s.parse::<f32>().is_ok()) {
        return names.iter().map(|s| s.parse().unwrap_or(0.0)).collect();
    }
    let mut distinct: Vec<&String> = Vec::new();
    names
        .iter()
        .map(|s| match distinct.iter().position(|d| *d == s) {
            Some(k) => k as f32,
            None => {
                distinct.push(s);
                (distinct.len() - 1) as f32
            }
        })
        .collect()
}
