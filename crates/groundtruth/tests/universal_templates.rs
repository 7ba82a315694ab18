//! The built-in universal temporal templates are what the generator makes.

use std::time::Instant;

use groundtruth::universal::{generate, recipe};
use kilosort::detect::TemporalBasis;

#[test]
fn regenerating_gives_the_stored_builtin_templates() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let set = generate(&recipe(), &dir.path().join("sim")).unwrap();
    eprintln!("generated from {} snippets in {:.1} s", set.n_snippets, start.elapsed().as_secs_f64());
    let stored = TemporalBasis::builtin();
    for (name, ours, stored) in
        [("PCs", &set.basis.pcs, &stored.pcs), ("templates", &set.basis.templates, &stored.templates)]
    {
        assert_eq!(ours.dim(), stored.dim(), "{name}");
        let worst = ours.iter().zip(stored.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("{name}: largest difference from the stored values {worst:e}");
        assert!(worst < 1e-5, "{name} differ by up to {worst}: regenerate builtin_templates.rs");
    }
}
