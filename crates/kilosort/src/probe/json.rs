//! Kilosort4's probe `.json`: `{"chanMap": [...], "xc": [...], "yc": [...], "kcoords": [...], "n_chan": N}`.

use std::path::Path;

use super::Probe;
use crate::error::{Error, Result};
use crate::settings::value::{Value, parse_json_object};

/// Parses a Kilosort4 probe JSON document.
pub(super) fn parse(text: &str, path: &Path) -> Result<Probe> {
    let entries = parse_json_object(text).map_err(|e| {
        Error::probe_format(
            path,
            format!("{e}; expected a Kilosort4 probe object with chanMap, xc, yc, kcoords and n_chan"),
        )
    })?;
    from_entries(&entries, &path.display().to_string()).map_err(|detail| Error::probe_format(path, detail))
}

/// Builds a probe from a probe dictionary embedded in settings (the Kilosort4 GUI's `probe`).
pub fn from_settings_value(value: &Value) -> Result<Probe> {
    let invalid = |detail: String| Error::ProbeInvalid { source_name: "settings `probe`".into(), detail };
    match value {
        Value::Map(entries) => from_entries(entries, "settings `probe`").map_err(invalid),
        other => Err(invalid(format!("expected a dictionary with chanMap, xc, yc, got {other}"))),
    }
}

fn from_entries(entries: &[(String, Value)], source: &str) -> Result<Probe, String> {
    let get = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let numbers = |key: &str| -> Result<Option<Vec<f64>>, String> {
        let Some(value) = get(key) else { return Ok(None) };
        let Value::List(items) = value else { return Err(format!("`{key}` must be a list of numbers")) };
        items
            .iter()
            .map(|v| v.as_f64().ok_or_else(|| format!("`{key}` holds a non-number: {v}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    };
    let required = |key: &str| {
        numbers(key)?
            .ok_or_else(|| format!("missing `{key}`; a Kilosort4 probe needs chanMap, xc, yc (and kcoords, n_chan)"))
    };
    let channel_map = required("chanMap")?
        .into_iter()
        .map(|c| {
            if c >= 0.0 && c.fract() == 0.0 && c <= u32::MAX as f64 {
                Ok(c as u32)
            } else {
                Err(format!("`chanMap` entry {c} is not a 0-based channel index"))
            }
        })
        .collect::<Result<Vec<u32>, String>>()?;
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let x = to_f32(required("xc")?);
    let y = to_f32(required("yc")?);
    let shank = numbers("kcoords")?.map(to_f32).unwrap_or_else(|| vec![0.0; channel_map.len()]);
    let n_chan = match get("n_chan") {
        None => channel_map.len(),
        Some(v) => v
            .as_f64()
            .filter(|n| *n >= 0.0 && n.fract() == 0.0)
            .ok_or_else(|| format!("`n_chan` must be a whole number, got {v}"))? as usize,
    };
    Probe::new(source, channel_map, x, y, shank, n_chan).map_err(|e| e.to_string())
}

/// Writes `probe` as a Kilosort4 probe JSON (one line, keys in Kilosort4's order), creating
/// parent folders. The file is written beside its final name and renamed, so it is never partial.
pub fn write_kilosort_json(probe: &Probe, path: &Path) -> Result<()> {
    if !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return Err(Error::probe_format(path, "probes are saved as Kilosort4 .json; give a path ending in .json"));
    }
    let list = |v: &[f32]| Value::List(v.iter().map(|&x| Value::Float(x as f64)).collect());
    let doc = Value::Map(vec![
        ("chanMap".into(), Value::List(probe.channel_map.iter().map(|&c| Value::Int(c.into())).collect())),
        ("xc".into(), list(&probe.x)),
        ("yc".into(), list(&probe.y)),
        ("kcoords".into(), list(&probe.shank)),
        ("n_chan".into(), Value::Int(probe.n_chan as i64)),
    ]);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create folder", parent, e))?;
    }
    let tmp = path.with_extension("json.partial");
    std::fs::write(&tmp, doc.to_string()).map_err(|e| Error::io("cannot write probe", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("cannot write probe", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kilosort4_writes() {
        let text = r#"{"chanMap": [0, 1, 3], "xc": [43.0, 11.0, 27.0], "yc": [20.0, 20.0, 40.0], "kcoords": [0.0, 0.0, 0.0], "n_chan": 4}"#;
        let p = parse(text, Path::new("p.json")).unwrap();
        assert_eq!(p.channel_map, [0, 1, 3]);
        assert_eq!((p.x[2], p.y[2], p.n_chan), (27.0, 40.0, 4));
    }

    #[test]
    fn round_trip_through_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let probe = super::super::builtin::by_name("NeuroPix1_default").unwrap();
        let path = dir.path().join("sub/np1.json");
        write_kilosort_json(&probe, &path).unwrap();
        assert_eq!(Probe::load(&path).unwrap(), probe);
        assert!(write_kilosort_json(&probe, &dir.path().join("np1.prb")).unwrap_err().to_string().contains(".json"));
    }

    #[test]
    fn malformed_json_names_the_problem() {
        let cases = [
            ("{not json", "invalid JSON"),
            (r#"{"xc": [1], "yc": [1]}"#, "missing `chanMap`"),
            (r#"{"chanMap": [-1], "xc": [1], "yc": [1]}"#, "not a 0-based"),
            (r#"{"chanMap": [0, 1], "xc": [1], "yc": [1, 2]}"#, "`xc` has 1 entries"),
            (r#"{"chanMap": [0, 0], "xc": [1, 2], "yc": [1, 2]}"#, "appears twice"),
            (r#"{"chanMap": "0", "xc": [1], "yc": [1]}"#, "must be a list"),
        ];
        for (text, expected) in cases {
            let msg = parse(text, Path::new("bad.json")).unwrap_err().to_string();
            assert!(msg.contains("bad.json") && msg.contains(expected), "{text}: {msg}");
        }
    }
}
