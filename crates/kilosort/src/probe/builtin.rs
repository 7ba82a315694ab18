//! Built-in probes: the layouts Kilosort4 downloads, generated from their geometry so the
//! binary needs no download (spec §3.4).

use super::Probe;

/// Canonical names of the built-in probes, as `probe list` shows them.
pub const NAMES: &[&str] =
    &["NeuroPix1_default", "neuropixPhase3A", "neuropixPhase3B2", "NeuroPix2_default", "NP2_4shank", "Linear16x1_test"];

/// Other spellings users type (Kilosort4 file names, short names).
const ALIASES: &[(&str, &str)] = &[
    ("neuropixPhase3B1", "NeuroPix1_default"),
    ("np1", "NeuroPix1_default"),
    ("np1-3a", "neuropixPhase3A"),
    ("np1-3b2", "neuropixPhase3B2"),
    ("np2", "NeuroPix2_default"),
    ("np2-4shank", "NP2_4shank"),
    ("linear16", "Linear16x1_test"),
];

/// One-line description of each built-in.
pub fn description(name: &str) -> &'static str {
    match canonical(name).unwrap_or("") {
        "NeuroPix1_default" => {
            "Neuropixels 1.0 phase 3B1: 384 staggered sites, 20 µm rows, reference site 191 off (383 ch)"
        }
        "neuropixPhase3A" => "Neuropixels 1.0 phase 3A: staggered, 10 reference sites off (374 ch)",
        "neuropixPhase3B2" => "Neuropixels 1.0 phase 3B2: 2 aligned columns, reference site 191 off (383 ch)",
        "NeuroPix2_default" => "Neuropixels 2.0 single shank: 2 columns 32 µm apart, 15 µm rows (384 ch)",
        "NP2_4shank" => "Neuropixels 2.0 four shanks 250 µm apart, 96 sites each, bank 0 (384 ch)",
        "Linear16x1_test" => "Kilosort's 16-site linear test probe, unit spacing, sites 4 and 9 off (14 ch)",
        _ => "",
    }
}

/// The built-in probe called `name` (case-insensitive; a `.mat`/`.json` extension is ignored).
pub fn by_name(name: &str) -> Option<Probe> {
    let sites = match canonical(name)? {
        "NeuroPix1_default" => neuropixels1(&[43.0, 11.0, 59.0, 27.0], &[191]),
        "neuropixPhase3A" => neuropixels1(&[43.0, 11.0, 59.0, 27.0], &[36, 75, 112, 151, 188, 227, 264, 303, 340, 379]),
        "neuropixPhase3B2" => neuropixels1(&[43.0, 11.0], &[191]),
        "NeuroPix2_default" => Sites::new(384, |i| ([0.0, 32.0][i % 2], 15.0 * (i / 2) as f32, 1.0), &[]),
        "NP2_4shank" => Sites::new(
            384,
            |i| {
                let (shank, site) = (i / 96, i % 96);
                ([0.0, 32.0][site % 2] + 250.0 * shank as f32, 15.0 * (site / 2) as f32, shank as f32)
            },
            &[],
        ),
        "Linear16x1_test" => Sites::new(16, |i| (1.0, (i + 1) as f32, 1.0), &[4, 9]),
        _ => return None,
    };
    Some(sites.into_probe())
}

fn canonical(name: &str) -> Option<&'static str> {
    let stem = name.trim();
    let stem = stem.strip_suffix(".mat").or_else(|| stem.strip_suffix(".json")).unwrap_or(stem);
    NAMES
        .iter()
        .copied()
        .find(|n| n.eq_ignore_ascii_case(stem))
        .or_else(|| ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(stem)).map(|&(_, n)| n))
}

/// Kilosort's Neuropixels 1.0 maps: `x` cycles through `columns`, two sites per 20 µm row
/// starting at 20 µm, no kcoords in the original files (so shank 0).
fn neuropixels1(columns: &[f32], disconnected: &[usize]) -> Sites {
    Sites::new(384, |i| (columns[i % columns.len()], 20.0 * (i / 2 + 1) as f32, 0.0), disconnected)
}

/// A full site list before disconnected sites are removed.
struct Sites {
    x: Vec<f32>,
    y: Vec<f32>,
    shank: Vec<f32>,
    connected: Vec<bool>,
}

impl Sites {
    fn new(n: usize, site: impl Fn(usize) -> (f32, f32, f32), disconnected: &[usize]) -> Self {
        let (mut x, mut y, mut shank) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let (xi, yi, si) = site(i);
            x.push(xi);
            y.push(yi);
            shank.push(si);
        }
        let connected = (0..n).map(|i| !disconnected.contains(&i)).collect();
        Sites { x, y, shank, connected }
    }

    fn into_probe(self) -> Probe {
        let keep: Vec<usize> = (0..self.x.len()).filter(|&i| self.connected[i]).collect();
        let pick = |v: &[f32]| keep.iter().map(|&i| v[i]).collect();
        Probe {
            channel_map: keep.iter().map(|&i| i as u32).collect(),
            x: pick(&self.x),
            y: pick(&self.y),
            shank: pick(&self.shank),
            n_chan: self.x.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_is_valid_and_named() {
        for name in NAMES {
            let p = by_name(name).unwrap();
            p.validate(name).unwrap();
            assert!(!description(name).is_empty());
        }
        for (alias, target) in ALIASES {
            assert_eq!(by_name(alias), by_name(target));
        }
        assert_eq!(by_name("neuropix1_default.mat"), by_name("NeuroPix1_default"));
        assert!(by_name("np3").is_none());
    }

    #[test]
    fn geometry_matches_the_kilosort_maps() {
        let np1 = by_name("np1").unwrap();
        assert_eq!((np1.len(), np1.n_chan), (383, 384));
        assert!(!np1.channel_map.contains(&191));
        assert_eq!((np1.x[0], np1.y[0], np1.x[3], np1.y[3]), (43.0, 20.0, 27.0, 40.0));
        assert_eq!(*np1.y.last().unwrap(), 3840.0);
        assert_eq!(by_name("neuropixPhase3A").unwrap().len(), 374);
        let np2 = by_name("np2").unwrap();
        assert_eq!((np2.len(), np2.x[1], np2.y[383], np2.shank[0]), (384, 32.0, 2865.0, 1.0));
        let four = by_name("np2-4shank").unwrap();
        assert_eq!(four.shank_ids(), [0.0, 1.0, 2.0, 3.0]);
        assert_eq!((four.x[96], four.y[96], four.y[95]), (250.0, 0.0, 705.0));
        let lin = by_name("linear16").unwrap();
        assert_eq!(lin.channel_map, [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15]);
        assert_eq!((lin.y[4], lin.n_chan), (6.0, 16));
    }
}
