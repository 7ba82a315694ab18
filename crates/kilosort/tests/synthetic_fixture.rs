//! The integer synthetic recording generated in Rust matches the one `tests/data/preprocess/
//! make_preprocessing_fixtures.py` fed to Kilosort4 (checksum written by that script).

mod common;

use std::path::Path;

use common::synthetic::synthetic_recording;

#[test]
fn synthetic_recording_matches_python_generator() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/preprocess/recording_checksum.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let field = |key: &str| -> Vec<i64> {
        let line = text.lines().find(|l| l.split_whitespace().next() == Some(key)).unwrap_or_else(|| panic!("{key}"));
        line.split_whitespace().skip(1).map(|v| v.parse::<i64>().unwrap()).collect()
    };
    let (n_chan, n_samples, seed) = (field("n_chan")[0] as usize, field("n_samples")[0] as usize, field("seed")[0]);
    assert_eq!((n_chan, n_samples, seed), (32, 120000, 12345));

    let rec = synthetic_recording(n_chan, n_samples, seed as u64);
    assert_eq!(rec.len(), n_chan * n_samples);
    let first: Vec<i64> = rec[..8].iter().map(|&v| v as i64).collect();
    let last: Vec<i64> = rec[rec.len() - 8..].iter().map(|&v| v as i64).collect();
    assert_eq!(first, field("first8"));
    assert_eq!(last, field("last8"));
    let sum = rec
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &v)| acc.wrapping_add((i as u64 + 1).wrapping_mul(v as i64 as u64)));
    let expected: u64 = text.lines().find_map(|l| l.strip_prefix("checksum ")).unwrap().trim().parse().unwrap();
    assert_eq!(sum, expected, "checksum: sum of (i+1)*value, wrapping u64");
}
