//! Synthetic spike tables with known drift, for the drift tests and the drift bench (which
//! includes this file by path, so it uses only `std`).

/// A small deterministic generator (SplitMix64) with uniform and normal draws.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// What to simulate.
pub struct Scenario {
    pub n_units: usize,
    pub n_batches: usize,
    /// Depth range the units are placed in, µm.
    pub depth_range: (f64, f64),
    /// Spikes per unit per batch are drawn around a rate uniform in this range.
    pub rate_range: (f64, f64),
    /// SD of each spike's depth around its unit's drifted depth, µm.
    pub jitter_um: f64,
    pub seed: u64,
}

/// The spike table (columns of equal length) and each unit's depth.
pub struct SyntheticSpikes {
    pub batch: Vec<u32>,
    pub depth_um: Vec<f32>,
    pub amplitude: Vec<f32>,
    pub unit_depths: Vec<f64>,
}

/// Units at random depths, each with a log-normal amplitude in 10–60 and a firing rate; each
/// spike's depth is its unit's depth plus `drift(unit depth, batch)` plus Gaussian jitter.
pub fn simulate(scenario: &Scenario, drift: impl Fn(f64, usize) -> f64) -> SyntheticSpikes {
    let mut rng = Rng::new(scenario.seed);
    let (lo, hi) = scenario.depth_range;
    let units: Vec<(f64, f64, f64)> = (0..scenario.n_units)
        .map(|_| {
            let depth = lo + (hi - lo) * rng.uniform();
            let amplitude = (25f64.ln() + 0.45 * rng.normal()).exp().clamp(10.0, 60.0);
            let (r0, r1) = scenario.rate_range;
            (depth, amplitude, r0 + (r1 - r0) * rng.uniform())
        })
        .collect();
    let mut out = SyntheticSpikes { batch: vec![], depth_um: vec![], amplitude: vec![], unit_depths: vec![] };
    out.unit_depths = units.iter().map(|u| u.0).collect();
    for t in 0..scenario.n_batches {
        for &(depth, amplitude, rate) in &units {
            let count = (rate + rate.sqrt() * rng.normal()).round().max(0.0) as usize;
            let centre = depth + drift(depth, t);
            for _ in 0..count {
                out.batch.push(t as u32);
                out.depth_um.push((centre + scenario.jitter_um * rng.normal()) as f32);
                out.amplitude.push((amplitude * (0.12 * rng.normal()).exp()) as f32);
            }
        }
    }
    out
}

/// A slow random walk (steps of SD `step_um` per batch) with a jump of `jump_um` at `jump_at`.
pub fn random_walk_with_jump(n_batches: usize, step_um: f64, jump_um: f64, jump_at: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    let mut position = 0.0;
    (0..n_batches)
        .map(|t| {
            if t > 0 {
                position += step_um * rng.normal();
            }
            if t == jump_at {
                position += jump_um;
            }
            position
        })
        .collect()
}
