//! Spike-level matching: SpikeInterface's match-count matrix, Kilosort's `nmatch` counts and
//! score.py's median lag. Everything runs on time-sorted spike vectors in one sweep.

use super::SpikeTrains;

/// A spike train reduced to what matching needs: unit ids sorted ascending, spikes sorted by time
/// (stable, like `NumpySorting.from_samples_and_labels`), each spike's unit as an index into `ids`.
pub(crate) struct Indexed {
    pub ids: Vec<i64>,
    pub times: Vec<i64>,
    pub unit: Vec<usize>,
    pub counts: Vec<usize>,
}

impl Indexed {
    /// Units are the sorted unique labels plus `extra_ids` (units that may have no spikes).
    ///
    /// # Panics
    /// If `times` and `units` differ in length.
    pub fn new(st: &SpikeTrains, extra_ids: &[i64]) -> Indexed {
        assert_eq!(
            st.times.len(),
            st.units.len(),
            "SpikeTrains: {} times but {} unit labels",
            st.times.len(),
            st.units.len()
        );
        let mut ids: Vec<i64> = st.units.iter().chain(extra_ids).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let mut order: Vec<usize> = (0..st.times.len()).collect();
        order.sort_by_key(|&k| st.times[k]); // stable, as numpy's argsort(stable=True)
        let times: Vec<i64> = order.iter().map(|&k| st.times[k]).collect();
        let unit: Vec<usize> =
            order.iter().map(|&k| ids.binary_search(&st.units[k]).expect("label is in ids")).collect();
        let mut counts = vec![0usize; ids.len()];
        for &u in &unit {
            counts[u] += 1;
        }
        Indexed { ids, times, unit, counts }
    }

    /// Time-sorted spike times of every unit.
    pub fn per_unit_times(&self) -> Vec<Vec<i64>> {
        let mut out: Vec<Vec<i64>> = self.counts.iter().map(|&c| Vec::with_capacity(c)).collect();
        for (&t, &u) in self.times.iter().zip(&self.unit) {
            out[u].push(t);
        }
        out
    }
}

/// `int(delta_ms / 1000 * fs)`: SpikeInterface truncates (so 0.6 ms at 25 kHz is 14 frames).
pub(crate) fn si_delta_frames(delta_ms: f64, fs: f64) -> i64 {
    (delta_ms / 1000.0 * fs) as i64
}

/// Match counts `n1 × n2` (row-major), SpikeInterface's `make_match_count_matrix` with
/// `ensure_symmetry=False`, including its final clip to the tested unit's spike count.
///
/// For each spike of train 1 in time order, every spike of train 2 with `|t1 − t2| ≤ delta` is a
/// candidate; a candidate counts for the unit pair unless that pair's previous match used the same
/// spike 1 or the same spike 2. So a spike 1 is counted at most once per pair, while a spike 2 can
/// be re-used by a later spike 1 once the pair has matched something else in between — which is
/// why the clip is needed.
pub(crate) fn si_match_counts(a: &Indexed, b: &Indexed, delta: i64) -> Vec<u64> {
    let (n1, n2) = (a.ids.len(), b.ids.len());
    let mut counts = vec![0u64; n1 * n2];
    let mut last1 = vec![usize::MAX; n1 * n2];
    let mut last2 = vec![usize::MAX; n1 * n2];
    let mut start = 0usize;
    for (i1, (&f1, &u1)) in a.times.iter().zip(&a.unit).enumerate() {
        let lo = f1.saturating_sub(delta);
        let hi = f1.saturating_add(delta);
        while start < b.times.len() && b.times[start] < lo {
            start += 1;
        }
        for i2 in start..b.times.len() {
            if b.times[i2] > hi {
                break;
            }
            let k = u1 * n2 + b.unit[i2];
            if i1 != last1[k] && i2 != last2[k] {
                last1[k] = i1;
                last2[k] = i2;
                counts[k] += 1;
            }
        }
    }
    for (k, c) in counts.iter_mut().enumerate() {
        *c = (*c).min(b.counts[k % n2.max(1)] as u64);
    }
    counts
}

/// Kilosort `bench.nmatch` counts `n1 × n2`: for each unit pair, how many spikes of the GT unit
/// have a spike of the sorted unit within `±dt` samples (a sorted spike may serve several GT
/// spikes). Equals `nmatch(ss0, ss, dt)[0]` for time-sorted trains.
pub(crate) fn ks_match_counts(a: &Indexed, b: &Indexed, dt: i64) -> Vec<u64> {
    let (n1, n2) = (a.ids.len(), b.ids.len());
    let mut counts = vec![0u64; n1 * n2];
    let mut seen = vec![usize::MAX; n2];
    let mut start = 0usize;
    for (i1, (&t, &u1)) in a.times.iter().zip(&a.unit).enumerate() {
        let lo = t.saturating_sub(dt);
        let hi = t.saturating_add(dt);
        while start < b.times.len() && b.times[start] < lo {
            start += 1;
        }
        for i2 in start..b.times.len() {
            if b.times[i2] > hi {
                break;
            }
            let s = b.unit[i2];
            if seen[s] != i1 {
                seen[s] = i1;
                counts[u1 * n2 + s] += 1;
            }
        }
    }
    counts
}

/// Kilosort's per-GT-unit score, `1 − fpos − miss` of the best sorted unit (bench.py
/// `match_neuron` with every sorted unit as a candidate), and that unit's index.
///
/// Candidates are tried in index order and replace the best only when strictly better; with no
/// candidate above 0 the score is `1 − 0 − 1 = 0`. A GT unit without spikes, or a sorting without
/// units (bench.py raises and reports NaN), scores 0 with no best unit.
pub(crate) fn ks_scores(n0: &[u64], gt_counts: &[usize], sorted_counts: &[usize]) -> Vec<(f64, Option<usize>)> {
    let n2 = sorted_counts.len();
    gt_counts
        .iter()
        .enumerate()
        .map(|(g, &ng)| {
            if ng == 0 || n2 == 0 {
                return (0.0, None);
            }
            let (mut fmax, mut miss, mut fpos, mut best) = (0.0f64, 1.0f64, 0.0f64, None);
            for (s, &ns) in sorted_counts.iter().enumerate() {
                if ns == 0 {
                    continue;
                }
                let m = n0[g * n2 + s] as f64;
                let this_miss = (1.0 - m / ng as f64).max(0.0);
                let this_fpos = (1.0 - m / ns as f64).max(0.0);
                let f = 1.0 - this_miss - this_fpos;
                if f > fmax {
                    (fmax, miss, fpos, best) = (f, this_miss, this_fpos, Some(s));
                }
            }
            (1.0 - fpos - miss, best)
        })
        .collect()
}

/// score.py's `median_lag`: median of (sorted − GT) offsets, in samples, to the nearest spike of
/// the matched unit, over the spikes of all matched pairs whose offset is within `±window`.
pub(crate) fn median_lag(gt: &[Vec<i64>], sorted: &[Vec<i64>], pairs: &[(usize, usize)], window: i64) -> Option<f64> {
    let mut lags: Vec<i64> = Vec::new();
    for &(g, s) in pairs {
        let (a, b) = (&gt[g], &sorted[s]);
        if a.is_empty() || b.is_empty() {
            continue;
        }
        for &t in a {
            let d = if b.len() > 1 {
                let i = b.partition_point(|&x| x < t).clamp(1, b.len() - 1);
                let (c0, c1) = (b[i - 1] - t, b[i] - t);
                // argmin takes the first of equal distances
                if c1.abs() < c0.abs() { c1 } else { c0 }
            } else {
                b[0] - t
            };
            if d.abs() <= window {
                lags.push(d);
            }
        }
    }
    if lags.is_empty() {
        return None;
    }
    lags.sort_unstable();
    let n = lags.len();
    Some(if n % 2 == 1 { lags[n / 2] as f64 } else { (lags[n / 2 - 1] as f64 + lags[n / 2] as f64) / 2.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(times: &[i64], units: &[i64]) -> Indexed {
        Indexed::new(&SpikeTrains { times: times.to_vec(), units: units.to_vec() }, &[])
    }

    #[test]
    fn delta_truncates_like_python_int() {
        assert_eq!(si_delta_frames(0.4, 30000.0), 12);
        assert_eq!(si_delta_frames(0.6, 25000.0), 14);
        assert_eq!(si_delta_frames(0.3, 20000.0), 5);
        assert_eq!(si_delta_frames(0.4, 32000.0), 12);
    }

    #[test]
    fn stable_sort_and_ids() {
        let x = idx(&[30, 10, 10, 20], &[7, 3, 9, 3]);
        assert_eq!(x.ids, vec![3, 7, 9]);
        assert_eq!(x.times, vec![10, 10, 20, 30]);
        assert_eq!(x.unit, vec![0, 2, 0, 1]);
        assert_eq!(x.counts, vec![2, 1, 1]);
    }

    #[test]
    fn inclusive_window_and_single_use() {
        let a = idx(&[100, 200], &[0, 0]);
        let b = idx(&[112, 187, 300], &[5, 5, 5]);
        assert_eq!(si_match_counts(&a, &b, 12), vec![1]);
        assert_eq!(si_match_counts(&a, &b, 13), vec![2]);
        // two GT spikes around one sorted spike: counted once
        let a = idx(&[100, 104], &[0, 0]);
        let b = idx(&[102], &[1]);
        assert_eq!(si_match_counts(&a, &b, 12), vec![1]);
        assert_eq!(ks_match_counts(&a, &b, 6), vec![2]);
    }

    #[test]
    fn clip_to_sorted_count() {
        // a1 matches x, a2 matches y, a3 may re-use x (last match of the pair was y): clipped to 2
        let a = idx(&[100, 101, 102], &[0, 0, 0]);
        let b = idx(&[100, 101], &[1, 1]);
        assert_eq!(si_match_counts(&a, &b, 12), vec![2]);
    }

    #[test]
    fn median_lag_nearest() {
        let gt = vec![vec![100, 200, 300]];
        let so = vec![vec![102, 199, 330]];
        assert_eq!(median_lag(&gt, &so, &[(0, 0)], 12), Some(0.5));
        assert_eq!(median_lag(&gt, &so, &[], 12), None);
    }
}
