//! The generator of kilosort-rs's built-in universal temporal templates (what Kilosort4 loads
//! from its downloaded `wTEMP.npz` when `templates_from_data` is false, spec §6.1).
//!
//! We do not ship Kilosort4's file. Instead a fixed simulation ([`recipe`]) is preprocessed
//! exactly as `sort` does (filter, common median reference, whitening), the isolated
//! single-channel peaks of **every** batch are cut out (not only every 25th, for more snippets),
//! and the temporal PCs and k-means templates are learned from them by the library's own §6.1
//! code ([`kilosort::detect::learn_basis`]). [`rust_source`] writes the result as the library's
//! `crates/kilosort/src/detect/builtin_templates.rs`; regenerate it with
//!
//! ```text
//! cargo run --release -p groundtruth --example make_universal_templates -- \
//!     crates/kilosort/src/detect/builtin_templates.rs
//! ```
//!
//! Every step is seeded and independent of the thread count, so the same code gives the same
//! numbers (to float rounding) on any machine.

use std::fmt::Write as _;
use std::path::Path;

use kilosort::detect::{
    BUILTIN_N_PCS as N_PCS, BUILTIN_N_TEMPLATES as N_TEMPLATES, BUILTIN_NT as NT, MAX_SNIPPETS, TemporalBasis,
    isolated_snippets, learn_basis,
};
use kilosort::io::{BatchReader, BinaryRecording, Dtype};
use kilosort::pipeline::prepared_batch;
use kilosort::preprocess::Preprocessor;
use kilosort::progress::NoProgress;
use kilosort::{Plan, Probe, Settings};
use rayon::prelude::*;

use crate::sim::{SimulationConfig, simulate};

/// The simulation the built-in set is learned from: the `np1-64` probe with many units, half of
/// them narrow (fast-spiking), firing often enough for about 12 000 isolated peaks in 60 s.
///
/// The stored set depends on the simulator's exact output for this recipe: a change to the
/// simulator that alters these bytes makes `regenerating_gives_the_stored_builtin_templates`
/// fail until `builtin_templates.rs` is regenerated.
pub fn recipe() -> SimulationConfig {
    let base = SimulationConfig::preset("np1-64").expect("np1-64 is a preset");
    SimulationConfig {
        preset: "universal-templates".into(),
        seed: 20_240_601,
        duration_s: 60.0,
        n_units: 60,
        narrow_fraction: 0.5,
        rate_median_hz: 10.0,
        ..base
    }
}

/// A learned set and what it was learned from.
#[derive(Debug, Clone)]
pub struct LearnedSet {
    /// The temporal PCs and templates.
    pub basis: TemporalBasis,
    /// Isolated snippets they were learned from.
    pub n_snippets: usize,
    /// Batches the snippets came from.
    pub n_batches: usize,
}

/// Simulates `config` into `scratch` (a folder that may not exist yet; replaced) and learns the
/// temporal basis from it with [`learn_from_recording`].
pub fn generate(config: &SimulationConfig, scratch: &Path) -> kilosort::Result<LearnedSet> {
    simulate(config, scratch, true, &mut |_| {})?;
    learn_from_recording(scratch)
}

/// Learns the built-in set's 6 PCs and 6 templates of 61 samples from a simulated recording
/// folder (`recording.bin`, `probe.json`), preprocessed with the default settings (no drift
/// correction: the recipe has no drift), from the isolated peaks of every batch.
pub fn learn_from_recording(folder: &Path) -> kilosort::Result<LearnedSet> {
    let probe = Probe::load(&folder.join("probe.json"))?;
    let n_chan_bin = probe.channel_map.iter().max().map_or(0, |&m| m as usize + 1);
    let recording = BinaryRecording::open(&[folder.join("recording.bin")], n_chan_bin, Dtype::Int16)?;
    let settings = Settings { n_chan_bin: Some(n_chan_bin), nblocks: 0, nt: NT, ..Settings::default() };
    let plan = Plan::new(&settings, &probe, &recording)?;
    let reader = BatchReader::new(&recording, plan.layout, plan.probe.channel_map.clone(), None, None);
    let pre = Preprocessor::fit(&reader, &plan, &NoProgress);
    let threshold = settings.th_single_ch as f32;
    let per_batch: Vec<Vec<Vec<f32>>> = (0..plan.layout.n_batches)
        .into_par_iter()
        .map(|b| isolated_snippets(prepared_batch(&reader, &pre, None, b).view(), NT, plan.trough_index, threshold))
        .collect();
    let n_batches = per_batch.len();
    // The recipe yields far fewer than the cap; it only bounds memory for larger recipes.
    let snippets: Vec<Vec<f32>> = per_batch.into_iter().flatten().take(MAX_SNIPPETS).collect();
    let basis = learn_basis(&snippets, NT, N_PCS, N_TEMPLATES).ok_or_else(|| kilosort::Error::NoSpikes {
        stage: "learning the built-in templates",
        detail: format!("only {} isolated peaks in the simulation", snippets.len()),
        fix: "simulate longer or with more units".into(),
    })?;
    Ok(LearnedSet { basis, n_snippets: snippets.len(), n_batches })
}

/// The Rust source of `builtin_templates.rs`: a header saying how it was made, then the PCs and
/// templates as `[[f32; NT]; N]` constants (shortest round-trip decimal of each `f32`).
pub fn rust_source(set: &LearnedSet, config: &SimulationConfig) -> String {
    let mut out = String::new();
    let c = config;
    let header = [
        "//! Built-in universal temporal templates (used when `templates_from_data` is false).".to_string(),
        "//!".into(),
        "//! GENERATED by `cargo run --release -p groundtruth --example make_universal_templates --".into(),
        "//! crates/kilosort/src/detect/builtin_templates.rs` — do not edit by hand.".into(),
        "//!".into(),
        format!(
            "//! Learned (spec §6.1, `learn_basis`) from {} isolated peaks in all {} batches of a simulated",
            set.n_snippets, set.n_batches
        ),
        format!(
            "//! recording (`groundtruth::universal::recipe`: probe {}, {} units, {} % narrow, seed {}, {} s),",
            c.probe,
            c.n_units,
            (c.narrow_fraction * 100.0).round(),
            c.seed,
            c.duration_s
        ),
        "//! filtered, common-median referenced and whitened as `sort` does. Not Kilosort4's file.".into(),
    ];
    header.iter().for_each(|line| writeln!(out, "{line}").unwrap());
    out.push('\n');
    write_matrix(
        &mut out,
        "BUILTIN_PCS",
        "Temporal PCs (`wPCA`), orthonormal rows, largest entry positive.",
        &set.basis.pcs,
    );
    out.push('\n');
    write_matrix(
        &mut out,
        "BUILTIN_TEMPLATES",
        "Temporal templates (`wTEMP`), unit-norm k-means centroids, trough at sample 20.",
        &set.basis.templates,
    );
    out
}

/// Values per source line of a generated matrix row.
const VALUES_PER_LINE: usize = 6;

fn write_matrix(out: &mut String, name: &str, doc: &str, m: &ndarray::Array2<f32>) {
    let (rows, cols) = m.dim();
    writeln!(out, "/// {doc}").unwrap();
    writeln!(out, "#[rustfmt::skip]").unwrap();
    writeln!(out, "pub(super) const {name}: [[f32; {cols}]; {rows}] = [").unwrap();
    for row in m.rows() {
        out.push_str("    [\n");
        let values: Vec<String> = row.iter().map(|v| format!("{v:?},")).collect();
        for chunk in values.chunks(VALUES_PER_LINE) {
            writeln!(out, "        {}", chunk.join(" ")).unwrap();
        }
        out.push_str("    ],\n");
    }
    out.push_str("];\n");
}
