//! Matching-pursuit speed: `TemplateMatcher::new` and `match_batch` on one 2 s batch of
//! synthetic whitened data on the Neuropixels 1.0 layout (383 channels), with 300 and 1000
//! random spatially local templates, each firing ≈ 5 Hz.
//!
//!     cargo bench -p kilosort --bench matching
//!
//! Prints seconds per batch (fastest of three runs; wall and CPU time) and the real-time factor,
//! for 1 thread and for all threads; first, the two ways of computing the PC projections.

use std::path::Path;
use std::time::Instant;

use kilosort::detect::TemporalBasis;
use kilosort::matching::{MatchingOptions, TemplateMatcher};
use kilosort::probe::builtin;
use kilosort::{Probe, Settings};
use ndarray::{Array2, Array3, s};
use ndarray_npy::read_npy;

const FS: f64 = 30_000.0;
/// Mean firing rate of every template, Hz.
const RATE_HZ: f64 = 5.0;
/// Template spatial profile: Gaussian σ and the distance beyond which it is exactly zero, µm
/// (clustering gives templates that are zero outside a neighbourhood of this size).
const SIGMA_UM: f32 = 20.0;
const CUTOFF_UM: f32 = 60.0;
/// Timed runs per case; the fastest is reported.
const REPEATS: usize = 3;

/// The two ways of computing the PC projections `Bp` (8.4·10⁹ multiply-adds per batch at 383
/// channels), timed on one channel's worth of data repeated: the direct loop the library uses
/// (plain multiply and add, AVX2), and an im2col copy followed by faer's GEMM. Also the direct
/// loop with fused multiply-add on AVX-512, which the library does not use (its rounding would
/// differ between machines).
fn projection_kernels(basis: &TemporalBasis) {
    let (n_pcs, nt) = basis.pcs.dim();
    let pcs: Vec<f32> = basis.pcs.iter().copied().collect();
    let mut rng = Rng(5);
    let x: Vec<f32> = (0..60_000 + nt).map(|_| rng.normal()).collect();
    let chunk = 256;
    // A tenth of a batch: 383 channels × 6 PCs × 6000 samples.
    let calls = 383 * 6000 / chunk;
    let time = |name: &str, f: &mut dyn FnMut(&[f32], &mut [f32])| {
        let mut out = vec![0.0f32; n_pcs * chunk];
        let start = Instant::now();
        for call in 0..calls {
            let offset = (call * chunk) % (60_000 - chunk);
            f(&x[offset..offset + chunk + nt - 1], &mut out);
        }
        let seconds = start.elapsed().as_secs_f64() * 10.0;
        let gmacs = (383 * 60_000 * n_pcs * nt) as f64 / seconds / 1e9;
        println!("projections, {name}: {seconds:.3} s per batch ({gmacs:.1} GMAC/s, one thread)");
    };
    time("direct (AVX2)", &mut |x, out| {
        for (p, o) in out.chunks_exact_mut(chunk).enumerate() {
            correlate(x, &pcs[p * nt..(p + 1) * nt], o);
        }
    });
    let mut columns = vec![0.0f32; nt * chunk];
    let lhs = faer::MatRef::from_row_major_slice(&pcs, n_pcs, nt);
    time("im2col + faer GEMM", &mut |x, out| {
        for (s, row) in columns.chunks_exact_mut(chunk).enumerate() {
            row.copy_from_slice(&x[s..s + chunk]);
        }
        let rhs = faer::MatRef::from_row_major_slice(&columns, nt, chunk);
        let dst = faer::MatMut::from_row_major_slice_mut(out, n_pcs, chunk);
        faer::linalg::matmul::matmul(dst, faer::Accum::Replace, lhs, rhs, 1.0, faer::Par::Seq);
    });
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
        time("direct (AVX-512 + FMA, not used)", &mut |x, out| {
            for (p, o) in out.chunks_exact_mut(chunk).enumerate() {
                // SAFETY: the CPU supports AVX-512F and FMA, checked above.
                unsafe { correlate_fused(x, &pcs[p * nt..(p + 1) * nt], o) };
            }
        });
    }
}

kilosort::avx2_dispatch! {
    /// `out[i] = Σ_s w[s]·x[i + s]`, as the library computes it.
    fn correlate(x: &[f32], w: &[f32], out: &mut [f32]) => correlate_portable
}

#[inline(always)]
fn correlate_portable(x: &[f32], w: &[f32], out: &mut [f32]) {
    const LANES: usize = 64;
    for (b, block) in out.chunks_exact_mut(LANES).enumerate() {
        let mut acc = [0.0f32; LANES];
        for (s, &ws) in w.iter().enumerate() {
            let xs: &[f32; LANES] = x[b * LANES + s..b * LANES + s + LANES].try_into().unwrap();
            for i in 0..LANES {
                acc[i] += ws * xs[i];
            }
        }
        block.copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn correlate_fused(x: &[f32], w: &[f32], out: &mut [f32]) {
    const LANES: usize = 128;
    for (b, block) in out.chunks_exact_mut(LANES).enumerate() {
        let mut acc = [0.0f32; LANES];
        for (s, &ws) in w.iter().enumerate() {
            let xs: &[f32; LANES] = x[b * LANES + s..b * LANES + s + LANES].try_into().unwrap();
            for i in 0..LANES {
                acc[i] = ws.mul_add(xs[i], acc[i]);
            }
        }
        block.copy_from_slice(&acc);
    }
}

fn main() {
    projection_kernels(&kilosort4_basis());
    let probe = builtin::by_name("np1").expect("np1");
    let basis = kilosort4_basis();
    let settings = Settings::default();
    let options = MatchingOptions {
        batch_size: settings.batch_size,
        nt0min: settings.trough_index(),
        batch_downsampling: 1,
        th_learned: settings.th_learned as f32,
        max_peels: settings.max_peels,
        position_limit: settings.position_limit as f32,
        nearest_chans: settings.nearest_chans,
    };
    let batch_s = options.batch_size as f64 / FS;
    for k in [300, 1000] {
        let mut rng = Rng(k as u64);
        let templates = random_templates(&probe, basis.n_pcs(), k, &mut rng);
        let (data, planted) = synthetic_batch(&templates, &basis, &options, &mut rng);
        for threads in [1, rayon::current_num_threads()] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let start = Instant::now();
                let matcher = TemplateMatcher::new(templates.view(), &basis, &probe, options);
                let prepare = start.elapsed().as_secs_f64();
                // The fastest of three runs: the least disturbed by other work on the machine.
                let (mut run, mut cpu) = (f64::INFINITY, f64::INFINITY);
                let mut found = Default::default();
                for _ in 0..REPEATS {
                    let (start, cpu_start) = (Instant::now(), cpu_seconds());
                    found = matcher.match_batch(data.view(), 1);
                    run = run.min(start.elapsed().as_secs_f64());
                    cpu = cpu.min(cpu_seconds() - cpu_start);
                }
                let found: kilosort::matching::MatchedBatch = found;
                println!(
                    "K = {k:4}, threads {threads}: prepare {prepare:.2} s; match_batch {run:.3} s wall, {cpu:.3} s CPU \
                     per {batch_s:.0} s batch ({:.1}× real time), {} spikes found of {planted} planted",
                    batch_s / run,
                    found.len()
                );
            });
        }
    }
}

/// CPU time of all threads of this process so far, seconds (Linux; NaN elsewhere). Less
/// sensitive than wall time to other work on a shared machine.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return f64::NAN };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// Kilosort4's universal PCs and temporal templates (saved by the matching fixtures script).
fn kilosort4_basis() -> TemporalBasis {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/matching");
    TemporalBasis { pcs: read_npy(dir.join("wPCA.npy")).unwrap(), templates: read_npy(dir.join("wTEMP.npy")).unwrap() }
}

/// `k` templates at random positions on the probe: random PC coefficients, Gaussian spatial
/// profile, unit-ish norm scaled to 10…20 (so that spikes explain well above Th_learned²).
fn random_templates(probe: &Probe, n_pcs: usize, k: usize, rng: &mut Rng) -> Array3<f32> {
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
fn synthetic_batch(
    templates: &Array3<f32>,
    basis: &TemporalBasis,
    options: &MatchingOptions,
    rng: &mut Rng,
) -> (Array2<f32>, usize) {
    let (k, n_chan, _) = templates.dim();
    let nt = basis.nt();
    let len = options.batch_size + 2 * nt;
    let mut data = Array2::from_shape_fn((n_chan, len), |_| rng.normal());
    let n_spikes = (k as f64 * RATE_HZ * options.batch_size as f64 / FS) as usize;
    for _ in 0..n_spikes {
        let j = (rng.uniform() * k as f64) as usize;
        let start = nt + (rng.uniform() * (options.batch_size - nt) as f64) as usize;
        let wave = templates.slice(s![j, .., ..]).dot(&basis.pcs);
        data.slice_mut(s![.., start..start + nt]).scaled_add(0.7 + 0.6 * rng.uniform() as f32, &wave);
    }
    (data, n_spikes)
}

/// splitmix64 uniforms and Box–Muller normals: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
}
