//! The files of a Phy folder: `.npy` arrays, `cluster_*.tsv`, `kilosort-rs.json` and `params.py`.

use std::fmt::Write as _;
use std::path::Path;

use ndarray::{Array2, ArrayBase, ArrayView1, Data, Dimension};
use ndarray_npy::{WritableElement, write_npy};

use crate::error::{Error, Result};

use super::PhyResults;

/// Name of the provenance file.
pub const PROVENANCE_FILE: &str = "kilosort-rs.json";

/// Writes every file of `results` into `dir`; `params.py`, which Phy needs to open a folder,
/// comes last. `target` is where `dir` will end up (for messages only).
pub fn write_all(results: &PhyResults, dir: &Path, target: &Path) -> Result<()> {
    write_channels(results, dir)?;
    write_clusters(results, dir)?;
    write_spikes(results, dir)?;
    write_tsv(results, dir)?;
    if let Some(drift) = &results.drift {
        npy(dir, "dshift.npy", &drift.dshift)?;
        npy(dir, "yblk.npy", &ArrayView1::from(&drift.yblk[..]))?;
    }
    let provenance = provenance_json(results)?;
    text(dir, PROVENANCE_FILE, &provenance)?;
    text(dir, "params.py", &params_py(results, target)?)
}

fn write_channels(r: &PhyResults, dir: &Path) -> Result<()> {
    npy(dir, "channel_map.npy", &ArrayView1::from(&r.channel_map[..]))?;
    npy(dir, "channel_positions.npy", &r.channel_positions)?;
    npy(dir, "channel_shanks.npy", &ArrayView1::from(&r.channel_shanks[..]))?;
    npy(dir, "whitening_mat.npy", &r.whitening_mat)?;
    // Kept for tools that read Kilosort 2's name; identical to whitening_mat.npy, as in Kilosort4.
    npy(dir, "whitening_mat_dat.npy", &r.whitening_mat)?;
    npy(dir, "whitening_mat_inv.npy", &r.whitening_mat_inv)
}

fn write_clusters(r: &PhyResults, dir: &Path) -> Result<()> {
    let (k, _, n_chan) = r.templates.dim();
    npy(dir, "templates.npy", &r.templates)?;
    // Kilosort4's name with an s, which phylib ignores: the templates are read as dense.
    let templates_ind = Array2::from_shape_fn((k, n_chan), |(_, c)| c as i64);
    npy(dir, "templates_ind.npy", &templates_ind)?;
    npy(dir, "similar_templates.npy", &r.similar_templates)?;
    npy(dir, "pc_feature_ind.npy", &r.pc_feature_ind)?;
    if let Some(tf) = &r.template_features {
        npy(dir, "template_feature_ind.npy", &tf.template_index)?;
    }
    Ok(())
}

fn write_spikes(r: &PhyResults, dir: &Path) -> Result<()> {
    npy(dir, "spike_times.npy", &ArrayView1::from(&r.spike_times[..]))?;
    npy(dir, "spike_clusters.npy", &ArrayView1::from(&r.spike_clusters[..]))?;
    // Phy's templates are Kilosort4's final clusters, so spike_templates repeats spike_clusters.
    npy(dir, "spike_templates.npy", &ArrayView1::from(&r.spike_clusters[..]))?;
    npy(dir, "spike_detection_templates.npy", &ArrayView1::from(&r.spike_detection_templates[..]))?;
    npy(dir, "amplitudes.npy", &ArrayView1::from(&r.amplitudes[..]))?;
    npy(dir, "spike_positions.npy", &r.spike_positions)?;
    npy(dir, "kept_spikes.npy", &ArrayView1::from(&r.kept_spikes[..]))?;
    npy(dir, "pc_features.npy", &r.pc_features)?;
    if let Some(tf) = &r.template_features {
        npy(dir, "template_features.npy", &tf.features)?;
    }
    Ok(())
}

/// `cluster_ContamPct.tsv`, `cluster_Amplitude.tsv`, `cluster_KSLabel.tsv` and its copy
/// `cluster_group.tsv` (whose header still says KSLabel, as in Kilosort4, so Phy's own `group`
/// column starts empty: the labels are Kilosort's, not the user's curation).
fn write_tsv(r: &PhyResults, dir: &Path) -> Result<()> {
    let column = |name: &str, values: Vec<String>| {
        let mut s = format!("cluster_id\t{name}\n");
        for (i, v) in values.iter().enumerate() {
            writeln!(s, "{i}\t{v}").expect("writing to a String");
        }
        s
    };
    let contam = r.contamination.iter().map(|c| format!("{:.1}", 100.0 * c)).collect();
    let amplitude = r.cluster_amplitudes.iter().map(|a| format!("{a:.1}")).collect();
    let labels =
        column("KSLabel", r.is_refractory.iter().map(|&g| if g { "good" } else { "mua" }.to_string()).collect());
    text(dir, "cluster_ContamPct.tsv", &column("ContamPct", contam))?;
    text(dir, "cluster_Amplitude.tsv", &column("Amplitude", amplitude))?;
    text(dir, "cluster_KSLabel.tsv", &labels)?;
    text(dir, "cluster_group.tsv", &labels)
}

/// `params.py`, in Kilosort4's order; `dat_path` as a list of absolute paths.
fn params_py(r: &PhyResults, target: &Path) -> Result<String> {
    let p = &r.params;
    let paths = p.dat_path.iter().map(|path| python_path(path, target)).collect::<Result<Vec<_>>>()?.join(", ");
    let python_bool = |b: bool| if b { "True" } else { "False" };
    Ok(format!(
        "n_channels_dat = {}\noffset = {}\nsample_rate = {:?}\ndtype = '{}'\nhp_filtered = {}\ndat_path = [{paths}]\n",
        p.n_channels_dat,
        p.offset,
        p.sample_rate,
        p.dtype.name(),
        python_bool(p.hp_filtered),
    ))
}

/// An absolute path as a Python string literal.
fn python_path(path: &Path, target: &Path) -> Result<String> {
    let absolute = std::path::absolute(path).map_err(|e| Error::io("cannot resolve", path, e))?;
    let Some(text) = absolute.to_str() else {
        return Err(Error::ResultsFolder {
            path: target.to_path_buf(),
            detail: format!(
                "the recording path {} is not valid UTF-8, so params.py cannot name it; rename the file",
                absolute.display()
            ),
        });
    };
    let mut literal = String::from("'");
    for ch in text.chars() {
        match ch {
            '\\' => literal.push_str("\\\\"),
            '\'' => literal.push_str("\\'"),
            c if c.is_control() => write!(literal, "\\u{:04x}", c as u32).expect("writing to a String"),
            c => literal.push(c),
        }
    }
    literal.push('\'');
    Ok(literal)
}

/// `kilosort-rs.json`. The settings are embedded as [`Settings::to_json`] writes them, which
/// Python's `json` and `Settings::from_file` read back (non-finite values as `Infinity`/`NaN`).
///
/// [`Settings::to_json`]: crate::settings::Settings::to_json
fn provenance_json(r: &PhyResults) -> Result<String> {
    let written = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let value = serde_json::json!({
        "software": "kilosort-rs",
        "version": env!("CARGO_PKG_VERSION"),
        "reimplements": "Kilosort4 4.1.7",
        "written_unix_s": written,
        "probe": r.provenance.probe_name,
        "n_spikes": r.n_spikes(),
        "n_spikes_before_duplicate_removal": r.kept_spikes.len(),
        "n_clusters": r.n_clusters(),
        "n_good_clusters": r.is_refractory.iter().filter(|&&g| g).count(),
        "stages": r.provenance.stages,
    });
    let head = serde_json::to_string_pretty(&value)
        .map_err(|e| Error::InvalidResults { detail: format!("provenance does not serialise: {e}") })?;
    let head = head.strip_suffix("\n}").expect("a pretty-printed JSON object ends with a closing brace");
    let settings = r.provenance.settings.to_json().trim_end().replace('\n', "\n  ");
    Ok(format!("{head},\n  \"settings\": {settings}\n}}\n"))
}

pub(crate) fn npy<A, S, D>(dir: &Path, name: &str, array: &ArrayBase<S, D>) -> Result<()>
where
    A: WritableElement,
    S: Data<Elem = A>,
    D: Dimension,
{
    let path = dir.join(name);
    write_npy(&path, array).map_err(|e| Error::io("cannot write", &path, std::io::Error::other(e)))
}

fn text(dir: &Path, name: &str, contents: &str) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|e| Error::io("cannot write", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_python_string_literals() {
        let target = Path::new("/r");
        assert_eq!(python_path(Path::new("/data/a b.bin"), target).unwrap(), "'/data/a b.bin'");
        assert_eq!(python_path(Path::new("/d/it's\\x\n.bin"), target).unwrap(), "'/d/it\\'s\\\\x\\u000a.bin'");
        let relative = python_path(Path::new("rec.bin"), target).unwrap();
        assert!(relative.starts_with("'/") && relative.ends_with("/rec.bin'"), "made absolute: {relative}");
    }
}
