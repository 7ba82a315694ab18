//! Probes of the simulator presets that Kilosort4 does not ship.

use kilosort::Probe;

/// A preset probe name (`tetrode`, `linear32`, `np1-64`), else a kilosort built-in or a file.
pub fn resolve(name: &str) -> kilosort::Result<Probe> {
    let (x, y): (Vec<f32>, Vec<f32>) = match name {
        // Four wires in a tight bundle, 25 µm apart.
        "tetrode" => (vec![0.0, 25.0, 0.0, 25.0], vec![0.0, 0.0, 25.0, 25.0]),
        // One column, 25 µm pitch.
        "linear32" => ((0..32).map(|_| 0.0).collect(), (0..32).map(|i| 25.0 * i as f32).collect()),
        // The first 64 sites of a Neuropixels 1.0 (staggered, 20 µm rows).
        "np1-64" => (
            (0..64).map(|i| [43.0, 11.0, 59.0, 27.0][i % 4]).collect(),
            (0..64).map(|i| 20.0 * (i / 2 + 1) as f32).collect(),
        ),
        other => return Probe::from_name_or_path(other),
    };
    let n = x.len();
    Probe::new(name, (0..n as u32).collect(), x, y, vec![0.0; n], n)
}
