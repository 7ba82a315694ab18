//! Regenerates kilosort-rs's built-in universal temporal templates:
//!
//! ```text
//! cargo run --release -p groundtruth --example make_universal_templates -- \
//!     crates/kilosort/src/detect/builtin_templates.rs
//! ```
//!
//! Simulates `groundtruth::universal::recipe()` in a temporary folder, learns the temporal PCs
//! and templates from it, and writes them as Rust source to the given file.

use std::time::Instant;

use groundtruth::universal::{generate, recipe, rust_source};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).ok_or("usage: make_universal_templates <output .rs file>")?;
    let scratch = tempfile::tempdir()?;
    let start = Instant::now();
    let config = recipe();
    let set = generate(&config, &scratch.path().join("simulation"))?;
    std::fs::write(&out, rust_source(&set, &config))?;
    println!(
        "{out}: {} PCs and {} templates from {} snippets in {} batches ({:.1} s)",
        set.basis.n_pcs(),
        set.basis.n_templates(),
        set.n_snippets,
        set.n_batches,
        start.elapsed().as_secs_f64()
    );
    for (k, row) in set.basis.templates.rows().into_iter().enumerate() {
        let trough = row.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        let peak = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
        println!("template {k}: trough at sample {trough}, peak at sample {peak}");
    }
    Ok(())
}
