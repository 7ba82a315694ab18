//! Seeded random streams. Every random choice draws from a stream derived from the user's seed
//! and a purpose tag, so results do not depend on thread count or on the order of stages.

use rand::{Rng, RngCore, SeedableRng};
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

/// `N` independent xoshiro128++ generators stepped together, so that the CPU's vector lanes run
/// them side by side. The background noise needs 32 random bits per sample and channel, which
/// ChaCha (used everywhere else) makes about ten times more slowly; each lane is seeded from a
/// ChaCha stream, so results still follow from the user's seed alone.
#[derive(Debug, Clone)]
pub struct LaneRng<const N: usize> {
    /// The four state words of every lane.
    s: [[u32; N]; 4],
}

impl<const N: usize> LaneRng<N> {
    /// Lanes seeded from `seeds` (128 bits each; an all-zero state, which xoshiro cannot leave,
    /// is replaced).
    pub fn from_stream(seeds: &mut impl RngCore) -> Self {
        let lanes: [[u32; 4]; N] = std::array::from_fn(|_| {
            let lane = std::array::from_fn(|_| seeds.next_u32());
            if lane == [0; 4] { [1, 0, 0, 0] } else { lane }
        });
        LaneRng { s: std::array::from_fn(|i| lanes.map(|lane| lane[i])) }
    }

    /// The next 32 random bits of every lane.
    #[inline(always)]
    pub fn next(&mut self) -> [u32; N] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u32; N];
        for k in 0..N {
            out[k] = s0[k].wrapping_add(s3[k]).rotate_left(7).wrapping_add(s0[k]);
            let t = s1[k] << 9;
            s2[k] ^= s0[k];
            s3[k] ^= s1[k];
            s1[k] ^= s2[k];
            s0[k] ^= s3[k];
            s2[k] ^= t;
            s3[k] = s3[k].rotate_left(11);
        }
        out
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A source whose `next_u32` counts 1, 2, 3, …
    struct Counter(u32);

    impl RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            self.0 += 1;
            self.0
        }
        fn next_u64(&mut self) -> u64 {
            self.next_u32() as u64
        }
        fn fill_bytes(&mut self, bytes: &mut [u8]) {
            for chunk in bytes.chunks_mut(4) {
                chunk.copy_from_slice(&self.next_u32().to_le_bytes()[..chunk.len()]);
            }
        }
    }

    #[test]
    fn lanes_are_xoshiro128_plus_plus() {
        // The reference implementation's first outputs from the state (1, 2, 3, 4).
        let mut rng = LaneRng::<2>::from_stream(&mut Counter(0));
        let first: Vec<u32> = (0..4).map(|_| rng.next()[0]).collect();
        assert_eq!(first, [641, 1573767, 3222811527, 3517856514]);
        // The second lane has its own state (5, 6, 7, 8).
        let mut alone = LaneRng::<1>::from_stream(&mut Counter(4));
        let mut again = LaneRng::<2>::from_stream(&mut Counter(0));
        assert!((0..10).all(|_| again.next()[1] == alone.next()[0]));
    }
}
