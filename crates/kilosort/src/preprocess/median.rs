//! The median across channels at one sample, found fast by guessing where it lies.
//!
//! Consecutive samples have nearly the same median, so a narrow window around the last median
//! usually holds the new one. One pass counts the values below the window and collects those
//! inside it; when the count shows the median is inside, only the few collected values need a
//! selection. The answer is exact, the same value a full selection gives.

/// Values the window should hold: enough that the median rarely escapes it, few enough that
/// selecting among them is cheap.
const TARGET_INSIDE: usize = 24;
/// Window misses tolerated (the window doubles each time) before a full selection is used.
const MAX_MISSES: usize = 4;

/// Finds medians of successive rows, remembering where the last one was.
#[derive(Debug, Clone, Default)]
pub(crate) struct RowMedian {
    centre: f32,
    half_width: f32,
    inside: Vec<f32>,
}

impl RowMedian {
    /// The `rank`-th smallest value of `row` (the order of `f32::total_cmp` for equal values),
    /// for `rank < row.len()`.
    #[inline(always)]
    pub fn select(&mut self, row: &[f32], rank: usize) -> f32 {
        assert!(rank < row.len(), "median rank {rank} of {} values", row.len());
        if self.inside.len() < row.len() {
            self.inside.resize(row.len(), 0.0);
        }
        if !(self.half_width > 0.0 && self.half_width.is_finite() && self.centre.is_finite()) {
            return self.full_select(row, rank);
        }
        for _ in 0..MAX_MISSES {
            let (low, high) = (self.centre - self.half_width, self.centre + self.half_width);
            let (below, inside) = self.split(row, low, high);
            if below <= rank && rank < below + inside {
                let median = *self.inside[..inside].select_nth_unstable_by(rank - below, f32::total_cmp).1;
                self.adapt(median, inside);
                return median;
            }
            self.half_width *= 2.0;
        }
        self.full_select(row, rank)
    }

    /// Counts values below `low` and copies those in `[low, high]` to the start of `inside`.
    #[inline(always)]
    fn split(&mut self, row: &[f32], low: f32, high: f32) -> (usize, usize) {
        let below = row.iter().map(|&v| (v < low) as usize).sum();
        let mut inside = 0;
        for &v in row {
            // Always written, kept only when inside: no branch to mispredict.
            self.inside[inside] = v;
            inside += (v >= low && v <= high) as usize;
        }
        (below, inside)
    }

    #[cold]
    fn full_select(&mut self, row: &[f32], rank: usize) -> f32 {
        let scratch = &mut self.inside[..row.len()];
        scratch.copy_from_slice(row);
        let median = *scratch.select_nth_unstable_by(rank, f32::total_cmp).1;
        // A first guess of the spread for the next row: the distance to a nearby order statistic.
        let step = (row.len() / 8).max(1);
        let neighbour = *scratch[..rank + 1].select_nth_unstable_by(rank.saturating_sub(step), f32::total_cmp).1;
        let spread = (median - neighbour).abs();
        self.half_width = if spread > 0.0 { spread } else { median.abs().max(1.0) };
        self.centre = median;
        median
    }

    /// Re-centres on the median found and widens or narrows the window toward the target count.
    fn adapt(&mut self, median: f32, inside: usize) {
        self.centre = median;
        if inside > 2 * TARGET_INSIDE {
            self.half_width *= 0.7;
        } else if inside < TARGET_INSIDE / 2 {
            self.half_width *= 1.4;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(row: &[f32], rank: usize) -> f32 {
        let mut sorted = row.to_vec();
        sorted.sort_by(f32::total_cmp);
        sorted[rank]
    }

    #[test]
    fn equals_a_full_sort_on_drifting_rows_with_jumps_and_ties() {
        let mut state = 17u64;
        let mut noise = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let mut median = RowMedian::default();
        for n in [1usize, 2, 3, 384, 385] {
            let rank = (n - 1) / 2;
            for t in 0..400 {
                // Slow common drift, a jump at t = 200, rows of integers (many ties) at t ≥ 300.
                let offset = (t as f32 * 0.05).sin() * 30.0 + if t >= 200 { 500.0 } else { 0.0 };
                let row: Vec<f32> = (0..n)
                    .map(|_| {
                        let v = offset + 40.0 * noise();
                        if t >= 300 { v.round() } else { v }
                    })
                    .collect();
                assert_eq!(median.select(&row, rank), exact(&row, rank), "n {n}, t {t}");
            }
        }
    }

    #[test]
    fn constant_and_non_finite_rows_fall_back_to_a_full_selection() {
        let mut median = RowMedian::default();
        assert_eq!(median.select(&[0.0; 9], 4), 0.0);
        assert_eq!(median.select(&[5.0; 9], 4), 5.0);
        let row = [1.0, f32::INFINITY, -2.0, f32::NAN, 3.0];
        assert_eq!(median.select(&row, 2).to_bits(), exact(&row, 2).to_bits());
        assert_eq!(median.select(&[4.0, 1.0, 2.0], 1), 2.0);
    }
}
