//! Integer-only synthetic recording, bit-identical to `synthetic_recording` in
//! `tests/data/preprocess/make_preprocessing_fixtures.py` (whose docstring is the reference definition).

/// Spike waveform in units of 1/128: trough of −128 at sample 8, then a positive lobe.
const WAVE: [i64; 30] = [
    0, -2, -6, -14, -28, -50, -80, -110, -128, -120, -95, -60, -25, 5, 28, 44, 54, 58, 57, 52, 45, 37, 29, 22, 16, 11,
    7, 4, 2, 0,
];
/// Spike weight (in quarters) by distance in channel index from the centre channel.
const SPATIAL: [i64; 3] = [4, 2, 1];

/// A synthetic int16 recording, row-major `n_samples × n_chan` (sample `t`, channel `c` at `t * n_chan + c`),
/// computed with integer arithmetic only so that Rust and Python produce the same bytes.
///
/// `>>` on signed values is an arithmetic (floor) shift; every `/` has a non-negative numerator.
///
/// 1. LCG: `state` starts at `seed`; each draw does
///    `state = state * 6364136223846793005 + 1442695040888963407 (mod 2^64)` and returns
///    `u = ((state >> 33) & 0xFFFF) − 32768`. Per sample `t`: one common-mode draw, then one draw per channel.
/// 2. White noise `e(t,c) = u_c >> 7`, common mode `g(t) = u_g >> 8`.
/// 3. Spatial mixing over channel-index neighbours (missing ones are 0):
///    `m = (4 e(c) + 2 (e(c−1) + e(c+1)) + e(c−2) + e(c+2)) >> 3`.
/// 4. DC offset `(c·37 mod 200) − 100`.
/// 5. Triangle wave, period 2000 samples: `p = t mod 2000`, `tri = (|p − 1000|·3) / 5 − 300`,
///    scaled per channel: `(tri · (6 + c mod 5)) >> 3`.
/// 6. Spikes `k = 0, 1, …` while `t_k + 30 ≤ n_samples`: start `t_k = 700 + 1500k + (389k mod 241)`,
///    centre channel `c_k = 7k mod n_chan`, amplitude `a_k = 400 + (137k mod 401)`; for `j < 30` and
///    `d ∈ −2..=2` (channels inside the probe) add `(WAVE[j] · a_k · SPATIAL[|d|]) >> 9` at `(t_k + j, c_k + d)`.
/// 7. Sum of 2–6 (in `i64`), then cast to `i16`; every value stays below 2000 in magnitude.
pub fn synthetic_recording(n_chan: usize, n_samples: usize, seed: u64) -> Vec<i16> {
    let mut state = seed;
    let mut draw = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) & 0xFFFF) as i64 - 32768
    };
    let nc = n_chan as i64;
    let mut x = vec![0i64; n_chan * n_samples];
    let mut e = vec![0i64; n_chan];
    for t in 0..n_samples {
        let g = draw() >> 8;
        for v in e.iter_mut() {
            *v = draw() >> 7;
        }
        let at = |c: i64| if (0..nc).contains(&c) { e[c as usize] } else { 0 };
        let p = (t % 2000) as i64;
        let tri = ((p - 1000).abs() * 3) / 5 - 300;
        for c in 0..nc {
            let m = (4 * at(c) + 2 * (at(c - 1) + at(c + 1)) + at(c - 2) + at(c + 2)) >> 3;
            let dc = (c * 37) % 200 - 100;
            let slow = (tri * (6 + c % 5)) >> 3;
            x[t * n_chan + c as usize] = dc + slow + g + m;
        }
    }
    for k in 0.. {
        let tk = 700 + 1500 * k + (k * 389) % 241;
        if tk + 30 > n_samples {
            break;
        }
        let ck = ((k * 7) % n_chan) as i64;
        let ak = (400 + (k * 137) % 401) as i64;
        for d in -2i64..=2 {
            let ch = ck + d;
            if !(0..nc).contains(&ch) {
                continue;
            }
            for (j, w) in WAVE.iter().enumerate() {
                x[(tk + j) * n_chan + ch as usize] += (w * ak * SPATIAL[d.unsigned_abs() as usize]) >> 9;
            }
        }
    }
    x.into_iter()
        .map(|v| {
            debug_assert!(v.abs() < 2000);
            v as i16
        })
        .collect()
}

/// [`synthetic_recording`] (32 channels, 4 s, seed 12345) in a temporary file, opened, with the
/// plan the Kilosort4 fixture scripts used for it.
// Not every test crate that includes `common` uses it.
#[allow(dead_code)]
pub struct SyntheticFixture {
    _dir: tempfile::TempDir,
    pub recording: kilosort::io::BinaryRecording,
    pub plan: kilosort::Plan,
}

/// The fixture recording with `probe` (a probe file) and `batch_size`.
// Not every test crate that includes `common` uses it.
#[allow(dead_code)]
pub fn synthetic_fixture(probe: &std::path::Path, batch_size: usize) -> SyntheticFixture {
    use kilosort::io::{BinaryRecording, Dtype};
    use kilosort::{Plan, Probe, Settings};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.bin");
    let values = synthetic_recording(32, 120_000, 12345);
    std::fs::write(&path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let recording = BinaryRecording::open(std::slice::from_ref(&path), 32, Dtype::Int16).unwrap();
    let probe = Probe::load(probe).unwrap();
    let settings = Settings { n_chan_bin: Some(32), batch_size, nskip: 1, ..Settings::default() };
    let plan = Plan::new(&settings, &probe, &recording).unwrap();
    SyntheticFixture { _dir: dir, recording, plan }
}
