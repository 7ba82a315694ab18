//! Duplicate-spike removal at export (Kilosort4's `remove_duplicates`, spec §9.3): matching
//! pursuit sometimes explains one spike twice with the same unit a few samples apart.

/// Which spikes to keep: a spike is dropped when it is closer than `dt` samples to the last
/// *kept* spike of its own cluster. `times` are samples, in time order; `dt = 0` keeps all.
#[doc(alias = "kept_spikes")]
pub fn remove_duplicates(times: &[i64], labels: &[u32], dt: i64) -> Vec<bool> {
    assert_eq!(times.len(), labels.len(), "one label per spike time");
    let n_clusters = super::label_count(labels);
    let mut last_kept: Vec<Option<i64>> = vec![None; n_clusters];
    times
        .iter()
        .zip(labels)
        .map(|(&t, &label)| {
            let last = &mut last_kept[label as usize];
            let keep = last.is_none_or(|t0| t >= t0 + dt);
            if keep {
                *last = Some(t);
            }
            keep
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_spikes_near_the_last_kept_one_of_the_same_cluster() {
        let times = [0, 3, 6, 7, 8, 20, 26, 27];
        let labels = [0, 1, 0, 0, 1, 0, 0, 0];
        // Cluster 0 at 0 (kept), 6 (< 0+7, dropped), 7 (= 0+7, kept), 20 (kept), 26 (dropped),
        // 27 (= 20+7, kept): the distance counts from the last kept spike, not the last one.
        // Cluster 1 at 3 (kept), 8 (< 10, dropped).
        assert_eq!(remove_duplicates(&times, &labels, 7), vec![true, true, false, true, false, true, false, true]);
        assert!(remove_duplicates(&times, &labels, 0).into_iter().all(|k| k));
    }
}
