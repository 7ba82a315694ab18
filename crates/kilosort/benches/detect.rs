//! Universal-template detection speed (spec §6.4–6.6): `UniversalMatcher::detect_with` on one
//! 2 s batch of synthetic whitened data on the Neuropixels 1.0 layout (383 channels), 1000
//! random spatially local templates each firing ≈ 5 Hz, with Kilosort4's own universal
//! templates.
//!
//!     cargo bench -p kilosort --bench detect
//!
//! Prints seconds per batch on one thread (fastest of three runs, wall and CPU time), and the
//! throughput with every thread detecting its own batch, as `sort` runs it.

mod common;

use std::time::Instant;

use common::{FS, Rng, cpu_seconds, kilosort4_basis, random_templates, synthetic_batch};
use kilosort::Settings;
use kilosort::detect::{DetectionScratch, TemplateGrid, UniversalMatcher};
use kilosort::probe::builtin;
use rayon::prelude::*;

/// Timed runs per case; the fastest is reported.
const REPEATS: usize = 3;
/// Templates planted in the batch.
const TEMPLATES: usize = 1000;

fn main() {
    let probe = builtin::by_name("np1").expect("np1");
    let settings = Settings::default();
    let basis = kilosort4_basis();
    let grid = TemplateGrid::new(&probe, &settings);
    let matcher = UniversalMatcher::new(&basis, &grid, &probe.y, settings.trough_index(), settings.th_universal);
    let mut rng = Rng(7);
    let templates = random_templates(&probe, basis.n_pcs(), TEMPLATES, &mut rng);
    let (data, planted) = synthetic_batch(&templates, &basis, settings.batch_size, &mut rng);
    let batch_s = settings.batch_size as f64 / FS;
    println!(
        "{} channels, {} grid positions, {planted} spikes planted per {batch_s:.0} s batch",
        probe.len(),
        grid.len()
    );

    let (mut wall, mut cpu) = (f64::INFINITY, f64::INFINITY);
    let mut scratch = DetectionScratch::default();
    let mut found = 0;
    for _ in 0..REPEATS {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        found = matcher.detect_with(data.view(), &mut scratch).column.len();
        wall = wall.min(start.elapsed().as_secs_f64());
        cpu = cpu.min(cpu_seconds() - cpu_start);
    }
    println!(
        "one thread: {wall:.3} s wall, {cpu:.3} s CPU per batch ({:.1}× real time), {found} detections",
        batch_s / wall
    );

    let threads = rayon::current_num_threads();
    let batches = REPEATS * threads;
    let start = Instant::now();
    (0..batches).into_par_iter().for_each_init(DetectionScratch::default, |scratch, _| {
        matcher.detect_with(data.view(), scratch);
    });
    let per_batch = start.elapsed().as_secs_f64() / batches as f64;
    println!("{threads} threads: {per_batch:.3} s per batch ({:.1}× real time)", batch_s / per_batch);
}
