//! Extracellular spike shapes: a temporal profile per unit and a spatial footprint per channel.
//!
//! The temporal profile is a sharp negative trough followed by a slower positive
//! repolarisation, narrower for fast-spiking cells. Away from the soma the spike gets smaller
//! (power-law decay with 3-D distance), slightly wider (tissue low-passes it) and later or
//! earlier (propagation along the dendrite), so moving a unit changes its waveform on every
//! channel, not only which channel is largest.

/// Samples per sample of the tabulated profile (for sub-sample shifts without `exp` per sample).
const OVERSAMPLE: usize = 16;
/// The waveform window around the trough, ms.
pub const WINDOW_MS: [f64; 2] = [-1.0, 2.0];
/// Length scale of the amplitude decay, µm: amplitude ∝ (λ / √(λ² + r²))^DECAY_POWER.
const DECAY_LENGTH_UM: f64 = 15.0;
/// Exponent of the amplitude decay (a dipole's far field falls as 1/r²).
const DECAY_POWER: f64 = 2.0;
/// Channels where a unit's amplitude is below this fraction of its peak get nothing…
pub const FOOTPRINT_CUTOFF: f64 = 0.01;
/// …nor where it is below this fraction of the noise SD (invisible, and costly for far units).
pub const FOOTPRINT_NOISE_FRACTION: f64 = 0.1;
/// Relative widening of the spike per 100 µm of distance.
const WIDENING_PER_100UM: f64 = 0.25;

/// Shape parameters of one unit's spike (times in ms).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Shape {
    /// Width (SD) of the trough, ms.
    pub trough_ms: f64,
    /// Delay of the repolarisation peak after the trough, ms.
    pub repolarisation_delay_ms: f64,
    /// Width (SD) of the repolarisation, ms.
    pub repolarisation_ms: f64,
    /// Height of the repolarisation relative to the trough depth.
    pub repolarisation_ratio: f64,
    /// Propagation speed along the probe, µm/ms (signed: direction of propagation).
    pub propagation_um_per_ms: f64,
}

impl Shape {
    /// The profile at time `t` ms from the trough; the trough value is about −1.
    fn value(&self, t: f64) -> f64 {
        let gauss = |x: f64, s: f64| (-0.5 * (x / s).powi(2)).exp();
        let pre = 0.08 * gauss(t + 2.2 * self.trough_ms, self.trough_ms);
        pre - gauss(t, self.trough_ms)
            + self.repolarisation_ratio * gauss(t - self.repolarisation_delay_ms, self.repolarisation_ms)
    }
}

/// A unit's profile tabulated finely, with the window taper applied.
#[derive(Debug, Clone)]
pub struct Profile {
    table: Vec<f32>,
    /// Time of table entry 0, ms.
    t0_ms: f64,
    /// Table step, ms.
    step_ms: f64,
    /// Where the profile is not negligible (|value| > `SUPPORT_LEVEL`), ms from the trough.
    pub support_ms: [f64; 2],
}

/// Profile values below this (the trough is about −1) are left out of the recording.
const SUPPORT_LEVEL: f32 = 2e-3;

impl Profile {
    /// Tabulates `shape` over a window wide enough for the widest, most delayed channel.
    pub fn new(shape: &Shape, fs: f64) -> Self {
        let step_ms = 1000.0 / fs / OVERSAMPLE as f64;
        let (t0_ms, t1_ms) = (3.0 * WINDOW_MS[0], 3.0 * WINDOW_MS[1]);
        let n = ((t1_ms - t0_ms) / step_ms) as usize + 1;
        let table: Vec<f32> = (0..n).map(|i| shape.value(t0_ms + i as f64 * step_ms) as f32).collect();
        let first = table.iter().position(|v| v.abs() > SUPPORT_LEVEL).unwrap_or(0);
        let last = table.iter().rposition(|v| v.abs() > SUPPORT_LEVEL).unwrap_or(0);
        let support_ms = [t0_ms + first as f64 * step_ms, t0_ms + last as f64 * step_ms];
        Profile { table, t0_ms, step_ms, support_ms }
    }

    /// Fractional table position of time `t` ms, and the position step per `dt` ms, so a caller
    /// can walk the table without a division per sample.
    pub fn position(&self, t_ms: f64, dt_ms: f64) -> (f64, f64) {
        ((t_ms - self.t0_ms) / self.step_ms, dt_ms / self.step_ms)
    }

    /// Adds `amp × profile` to `out`, walking the table from position `x0` by `dx` per sample.
    /// Positions must stay inside the table (callers keep to the support, which it contains).
    pub fn accumulate(&self, out: &mut [f32], amp: f32, x0: f64, dx: f64) {
        let (x0, dx) = (x0 as f32, dx as f32);
        let Some(last) = out.len().checked_sub(1) else { return };
        // Positions grow with k (dx ≥ 0), so checking the last one bounds them all; this is
        // what makes the unchecked gathers below safe.
        assert!(
            x0 >= 0.0 && dx >= 0.0 && (position(x0, dx, last) as usize) + 1 < self.table.len(),
            "spike waveform walks off its table"
        );
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked just above) and every position is inside the table.
            done = unsafe { accumulate_avx2(&self.table, out, amp, x0, dx) };
        }
        for (k, o) in out.iter_mut().enumerate().skip(done) {
            *o += amp * self.lerp(position(x0, dx, k));
        }
    }

    /// Linear interpolation of the table at `x` (≥ 0, before the last entry).
    #[inline(always)]
    fn lerp(&self, x: f32) -> f32 {
        let i = x as usize;
        let f = x - i as f32;
        let (a, b) = (self.table[i], self.table[i + 1]);
        a + (b - a) * f
    }

    /// Value at fractional table position `x`.
    #[cfg(test)]
    pub fn at_index(&self, x: f64) -> f32 {
        if x < 0.0 {
            return 0.0;
        }
        let i = x as usize;
        match (self.table.get(i), self.table.get(i + 1)) {
            (Some(&a), Some(&b)) => {
                let f = (x - i as f64) as f32;
                a + (b - a) * f
            }
            _ => 0.0,
        }
    }
}

/// Table position of sample `k` of a walk from `x0` by `dx` (each from k, not by repeated
/// addition, so that steps do not wait on each other and vector lanes agree with scalar code).
#[inline(always)]
fn position(x0: f32, dx: f32, k: usize) -> f32 {
    x0 + k as f32 * dx
}

/// [`Profile::accumulate`] with AVX2 gathers, 8 samples at a time (the table walk is a
/// different position per sample, which plain loops cannot vectorise); the same arithmetic,
/// operation for operation, as the scalar code, so results are bit-identical. Returns how many
/// samples it did (all of them).
///
/// # Safety
/// The CPU must support AVX2, and `position(x0, dx, k)` must be in `[0, table.len() − 1)` for
/// every `k < out.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn accumulate_avx2(table: &[f32], out: &mut [f32], amp: f32, x0: f32, dx: f32) -> usize {
    use std::arch::x86_64::*;
    let (x0v, dxv, ampv) = (_mm256_set1_ps(x0), _mm256_set1_ps(dx), _mm256_set1_ps(amp));
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (chunk, o) in out.chunks_mut(8).enumerate() {
        let k = _mm256_add_epi32(_mm256_set1_epi32(8 * chunk as i32), lane);
        let x = _mm256_add_ps(x0v, _mm256_mul_ps(_mm256_cvtepi32_ps(k), dxv));
        // Positions are ≥ 0, so truncation is the floor, as `as usize` in the scalar code.
        let i = _mm256_cvttps_epi32(x);
        let f = _mm256_sub_ps(x, _mm256_cvtepi32_ps(i));
        // Lanes past the end of `out` (in the last chunk) neither load nor store.
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(o.len() as i32), lane);
        let (zero, fmask) = (_mm256_setzero_ps(), _mm256_castsi256_ps(mask));
        // SAFETY: the unmasked lanes' i and i + 1 index the table (the caller's contract), and
        // their stores stay inside `o`.
        unsafe {
            let a = _mm256_mask_i32gather_ps::<4>(zero, table.as_ptr(), i, fmask);
            let b = _mm256_mask_i32gather_ps::<4>(zero, table.as_ptr().add(1), i, fmask);
            let v = _mm256_mul_ps(ampv, _mm256_add_ps(a, _mm256_mul_ps(_mm256_sub_ps(b, a), f)));
            let sum = _mm256_add_ps(_mm256_maskload_ps(o.as_ptr(), mask), v);
            _mm256_maskstore_ps(o.as_mut_ptr(), mask, sum);
        }
    }
    out.len()
}

/// Amplitude factor at 3-D distance `r` µm, relative to the same unit at distance 0.
pub fn decay(r_um: f64) -> f64 {
    (DECAY_LENGTH_UM / (DECAY_LENGTH_UM * DECAY_LENGTH_UM + r_um * r_um).sqrt()).powf(DECAY_POWER)
}

/// Distance at which the amplitude has fallen to `fraction` of its value at `r0_um`.
pub fn reach(r0_um: f64, fraction: f64) -> f64 {
    let target = decay(r0_um) * fraction;
    let ratio = target.powf(-1.0 / DECAY_POWER);
    (DECAY_LENGTH_UM * DECAY_LENGTH_UM * (ratio * ratio - 1.0)).max(0.0).sqrt()
}

/// How the spike looks on one channel: amplitude factor, time stretch, delay.
#[derive(Debug, Clone, Copy)]
pub struct ChannelView {
    /// Amplitude relative to the unit at distance 0.
    pub gain: f64,
    /// Time-axis stretch (≥ 1).
    pub stretch: f64,
    /// Delay of the spike on this channel relative to the soma, ms.
    pub delay_ms: f64,
}

/// The view of a unit at (`dx`, `dy`, `z`) µm from a channel.
pub fn channel_view(shape: &Shape, dx: f64, dy: f64, z: f64) -> ChannelView {
    let r = (dx * dx + dy * dy + z * z).sqrt();
    ChannelView {
        gain: decay(r),
        stretch: 1.0 + WIDENING_PER_100UM * r / 100.0,
        delay_ms: dy / shape.propagation_um_per_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            trough_ms: 0.1,
            repolarisation_delay_ms: 0.4,
            repolarisation_ms: 0.3,
            repolarisation_ratio: 0.3,
            propagation_um_per_ms: 500.0,
        }
    }

    #[test]
    fn trough_then_repolarisation() {
        let p = Profile::new(&shape(), 30000.0);
        let at = |t: f64| p.at_index(p.position(t, 0.0).0);
        assert!((-1.0..-0.8).contains(&at(0.0)), "trough ≈ −1 at t = 0: {}", at(0.0));
        assert!(at(0.4) > 0.2, "positive repolarisation after the trough");
        assert!(at(-0.8).abs() < 0.01 && at(1.8).abs() < 0.02, "quiet at the window edges");
    }

    #[test]
    fn vector_and_scalar_table_walks_agree() {
        let p = Profile::new(&shape(), 30000.0);
        let (x0, dx) = p.position(-0.9, 1.0 / 30.0 / 1.3);
        let mut walked = vec![1.0f32; 61];
        p.accumulate(&mut walked, -2.5, x0, dx);
        for (k, &w) in walked.iter().enumerate() {
            let expected = 1.0 + -2.5 * p.lerp(position(x0 as f32, dx as f32, k));
            assert_eq!(w, expected, "sample {k}");
            let exact = 1.0 + -2.5 * p.at_index(x0 + k as f64 * dx);
            assert!((w - exact).abs() < 1e-4, "sample {k}: {w} vs {exact}");
        }
    }

    #[test]
    #[should_panic(expected = "walks off its table")]
    fn a_walk_off_the_table_is_refused() {
        let p = Profile::new(&shape(), 30000.0);
        p.accumulate(&mut [0.0; 20], 1.0, p.table.len() as f64 - 10.0, 1.0);
    }

    #[test]
    fn decay_and_reach_agree() {
        assert_eq!(decay(0.0), 1.0);
        assert!(decay(50.0) < decay(20.0));
        let r = reach(20.0, 0.01);
        assert!((decay(r) / decay(20.0) - 0.01).abs() < 1e-9);
    }
}
