//! Seeded random streams. Every random choice draws from a stream derived from the user's seed
//! and a purpose tag, so results do not depend on thread count or on the order of stages.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a random stream is used for (keeps streams independent).
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// Unit positions, shapes, amplitudes, rates.
    Units,
    /// Spike train of unit `n`.
    Train(u64),
    /// Noise of channel `n` (the last index is the common-mode signal).
    Noise(u64),
    /// Per-channel noise levels and offsets.
    Channels,
    /// Drift trajectory.
    Drift,
}

/// A deterministic stream for `purpose` under `seed`.
pub fn stream(seed: u64, purpose: Stream) -> ChaCha8Rng {
    let (tag, index) = match purpose {
        Stream::Units => (1, 0),
        Stream::Train(n) => (2, n),
        Stream::Noise(n) => (3, n),
        Stream::Channels => (4, 0),
        Stream::Drift => (5, 0),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(tag << 40 | index);
    rng
}

/// A standard normal draw (Box–Muller; used where only a few draws are needed).
pub fn normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniform draw in `[lo, hi)`.
pub fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}
