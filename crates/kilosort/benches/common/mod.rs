//! What the matching and detection benchmarks share: synthetic whitened batches on the
//! Neuropixels 1.0 layout made of random spatially local templates, a seeded generator, and
//! process CPU time.

use std::path::Path;

use kilosort::Probe;
use kilosort::detect::TemporalBasis;
use ndarray::{Array2, Array3, s};
use ndarray_npy::read_npy;

/// Sampling rate, Hz.
pub const FS: f64 = 30_000.0;
/// Mean firing rate of every template, Hz.
const RATE_HZ: f64 = 5.0;
/// Template spatial profile: Gaussian σ and the distance beyond which it is exactly zero, µm
/// (clustering gives templates that are zero outside a neighbourhood of this size).
const SIGMA_UM: f32 = 20.0;
const CUTOFF_UM: f32 = 60.0;

/// CPU time of all threads of this process so far, seconds (Linux; NaN elsewhere). Less
/// sensitive than wall time to other work on a shared machine.
pub fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return f64::NAN };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// Kilosort4's universal PCs and temporal templates (saved by the matching fixtures script).
pub fn kilosort4_basis() -> TemporalBasis {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/matching");
    TemporalBasis { pcs: read_npy(dir.join("wPCA.npy")).unwrap(), templates: read_npy(dir.join("wTEMP.npy")).unwrap() }
}

/// `k` templates at random positions on the probe: random PC coefficients, Gaussian spatial
/// profile, unit-ish norm scaled to 10…20 (so that spikes explain well above Th_learned²).
pub fn random_templates(probe: &Probe, n_pcs: usize, k: usize, rng: &mut Rng) -> Array3<f32> {
    let (ymax, xmax) = (probe.y.iter().copied().fold(0.0, f32::max), probe.x.iter().copied().fold(0.0, f32::max));
    let mut t = Array3::zeros((k, probe.len(), n_pcs));
    for mut w in t.outer_iter_mut() {
        let (x0, y0) = (rng.uniform() as f32 * xmax, rng.uniform() as f32 * ymax);
        let shape: Vec<f32> = (0..n_pcs).map(|p| rng.normal() / (1.0 + p as f32)).collect();
        for c in 0..probe.len() {
            let d = ((probe.x[c] - x0).powi(2) + (probe.y[c] - y0).powi(2)).sqrt();
            if d <= CUTOFF_UM {
                let g = (-(d * d) / (2.0 * SIGMA_UM * SIGMA_UM)).exp();
                for p in 0..n_pcs {
                    w[[c, p]] = g * (shape[p] + 0.2 * rng.normal());
                }
            }
        }
        let norm = w.iter().map(|v| v * v).sum::<f32>().sqrt();
        w *= (10.0 + 10.0 * rng.uniform() as f32) / norm;
    }
    t
}

/// Unit white noise with every template firing at ≈ RATE_HZ, amplitudes 0.7…1.3; returns the
/// padded batch and the number of spikes planted.
pub fn synthetic_batch(
    templates: &Array3<f32>,
    basis: &TemporalBasis,
    batch_size: usize,
    rng: &mut Rng,
) -> (Array2<f32>, usize) {
    let (k, n_chan, _) = templates.dim();
    let nt = basis.nt();
    let len = batch_size + 2 * nt;
    let mut data = Array2::from_shape_fn((n_chan, len), |_| rng.normal());
    let n_spikes = (k as f64 * RATE_HZ * batch_size as f64 / FS) as usize;
    for _ in 0..n_spikes {
        let j = (rng.uniform() * k as f64) as usize;
        let start = nt + (rng.uniform() * (batch_size - nt) as f64) as usize;
        let wave = templates.slice(s![j, .., ..]).dot(&basis.pcs);
        data.slice_mut(s![.., start..start + nt]).scaled_add(0.7 + 0.6 * rng.uniform() as f32, &wave);
    }
    (data, n_spikes)
}

/// splitmix64 uniforms and Box–Muller normals: reproducible without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}
