//! Label propagation on the bipartite kNN graph (spec §7.6): landmarks take the label that most
//! of their spikes carry, spikes the label most of their landmarks carry, each count less a
//! modularity penalty for large labels.
//!
//! Kilosort4 scores every (node, label) pair in dense `n × 200` matrices. A node has at most a
//! few distinct labels among its links, and every other label scores just `−penalty·size`, so the
//! argmax is found exactly from the labels present plus the best absent one.

use rayon::prelude::*;

use super::knn::{Degrees, NeighbourGraph};

/// Weight of the null-model penalty (Kilosort4's `lam`).
const RESOLUTION: f64 = 1.0;
/// Alternating rounds (Kilosort4's `niter`).
pub const PROPAGATION_ROUNDS: usize = 200;

/// The outcome of propagation.
#[derive(Debug, Clone, PartialEq)]
pub struct Propagation {
    /// Label of each spike, consecutive `0..n_clusters` in the order of the labels they replace.
    pub spike_labels: Vec<u32>,
    /// Label of each landmark, recomputed once from the final spike labels (`isub`).
    pub landmark_labels: Vec<u32>,
    /// Number of distinct spike labels.
    pub n_clusters: usize,
}

/// Runs `rounds` alternating rounds from `initial` spike labels in `n_slots` label slots, then
/// renumbers the spike labels consecutively and labels the landmarks once more (Kilosort4's
/// `cluster` after `kmeans_plusplus`). Stops early at a fixed point, which later rounds would
/// only repeat.
pub fn propagate_labels(
    graph: &NeighbourGraph,
    degrees: &Degrees,
    initial: Vec<u32>,
    n_slots: usize,
    rounds: usize,
) -> Propagation {
    let incoming = Incoming::new(graph);
    let mut labels = initial;
    for _ in 0..rounds {
        let landmark_labels = label_landmarks(graph, &incoming, degrees, &labels, n_slots);
        let next = label_spikes(graph, degrees, &landmark_labels, n_slots);
        if next == labels {
            break;
        }
        labels = next;
    }
    let mut used: Vec<u32> = labels.clone();
    used.sort_unstable();
    used.dedup();
    let spike_labels: Vec<u32> = labels.iter().map(|l| used.binary_search(l).expect("used") as u32).collect();
    let landmark_labels = label_landmarks(graph, &incoming, degrees, &spike_labels, used.len());
    Propagation { spike_labels, landmark_labels, n_clusters: used.len() }
}

/// For each landmark, the label c maximising `S[r, c] − λ/m · kⱼ[r] · N_c`, where `S[r, c]`
/// counts the spikes of label c linked to r (self-links included) and `N_c` the spikes of label c
/// (Kilosort4's `assign_isub`).
#[doc(alias = "assign_isub")]
pub fn label_landmarks(
    graph: &NeighbourGraph,
    incoming: &Incoming,
    degrees: &Degrees,
    spike_labels: &[u32],
    n_slots: usize,
) -> Vec<u32> {
    let sizes = label_sizes(spike_labels, n_slots);
    let order = slots_by_size(&sizes);
    let mut out = vec![0u32; graph.n_landmarks()];
    out.par_iter_mut().enumerate().for_each_init(
        || Tally::new(n_slots),
        |tally, (r, out)| {
            let rate = penalty_rate(degrees.landmark[r], degrees.total);
            let labels = incoming.spikes_of(r).iter().map(|&i| spike_labels[i as usize]);
            *out = tally.best(labels, rate, &sizes, &order);
        },
    );
    out
}

/// For each spike, the label c maximising `T[i, c] − λ/m · kᵢ[i] · L_c`, where `T[i, c]` counts
/// its neighbour landmarks of label c and `L_c` the landmarks of label c (`assign_iclust`).
#[doc(alias = "assign_iclust")]
pub fn label_spikes(graph: &NeighbourGraph, degrees: &Degrees, landmark_labels: &[u32], n_slots: usize) -> Vec<u32> {
    let sizes = label_sizes(landmark_labels, n_slots);
    let order = slots_by_size(&sizes);
    let mut out = vec![0u32; graph.n_spikes()];
    out.par_iter_mut().enumerate().for_each_init(
        || Tally::new(n_slots),
        |tally, (i, out)| {
            let rate = penalty_rate(degrees.spike[i], degrees.total);
            let labels = graph.neighbours_of(i).iter().map(|&r| landmark_labels[r as usize]);
            *out = tally.best(labels, rate, &sizes, &order);
        },
    );
    out
}

/// The spikes linked to each landmark (the columns of `kn`, self-links included).
#[derive(Debug, Clone)]
pub struct Incoming {
    offsets: Vec<usize>,
    spikes: Vec<u32>,
}

impl Incoming {
    /// Inverts the neighbour lists of `graph`.
    pub fn new(graph: &NeighbourGraph) -> Self {
        let mut offsets = vec![0usize; graph.n_landmarks() + 1];
        for &r in &graph.neighbours {
            offsets[r as usize + 1] += 1;
        }
        for j in 0..graph.n_landmarks() {
            offsets[j + 1] += offsets[j];
        }
        let mut fill = offsets.clone();
        let mut spikes = vec![0u32; graph.neighbours.len()];
        for (slot, &r) in graph.neighbours.iter().enumerate() {
            spikes[fill[r as usize]] = (slot / graph.k) as u32;
            fill[r as usize] += 1;
        }
        Incoming { offsets, spikes }
    }

    /// The spikes that list landmark `r` among their neighbours, ascending.
    pub fn spikes_of(&self, r: usize) -> &[u32] {
        &self.spikes[self.offsets[r]..self.offsets[r + 1]]
    }
}

/// Penalty per member of a label for a node of degree `degree` (`λ/m · k`).
fn penalty_rate(degree: f64, total: f64) -> f64 {
    if total > 0.0 { RESOLUTION / total * degree } else { 0.0 }
}

/// The score of a label with `count` links to the node and `size` members.
fn score(count: u32, rate: f64, size: u64) -> f64 {
    count as f64 - rate * size as f64
}

fn label_sizes(labels: &[u32], n_slots: usize) -> Vec<u64> {
    let mut sizes = vec![0u64; n_slots];
    for &l in labels {
        sizes[l as usize] += 1;
    }
    sizes
}

/// Slots by (size, slot): among labels a node is not linked to, the first here scores highest.
fn slots_by_size(sizes: &[u64]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..sizes.len() as u32).collect();
    order.sort_by_key(|&c| (sizes[c as usize], c));
    order
}

/// Per-thread counts of the labels around one node.
struct Tally {
    counts: Vec<u32>,
    present: Vec<u32>,
}

impl Tally {
    fn new(n_slots: usize) -> Self {
        Tally { counts: vec![0; n_slots], present: Vec::new() }
    }

    /// `argmax_c score(count_c, rate, sizes[c])` over all slots, ties to the smallest c.
    fn best(&mut self, labels: impl Iterator<Item = u32>, rate: f64, sizes: &[u64], order: &[u32]) -> u32 {
        for c in labels {
            if self.counts[c as usize] == 0 {
                self.present.push(c);
            }
            self.counts[c as usize] += 1;
        }
        // Absent labels score −rate·size: the smallest size wins, or with no penalty (all score
        // 0) the smallest slot. At most `present.len()` slots are skipped either way.
        let absent = if rate > 0.0 {
            order.iter().copied().find(|&c| self.counts[c as usize] == 0)
        } else {
            (0..sizes.len() as u32).find(|&c| self.counts[c as usize] == 0)
        };
        let mut best = absent.map(|c| (score(0, rate, sizes[c as usize]), c));
        for &c in &self.present {
            let s = score(self.counts[c as usize], rate, sizes[c as usize]);
            if best.is_none_or(|(b, bc)| s > b || (s == b && c < bc)) {
                best = Some((s, c));
            }
        }
        for &c in &self.present {
            self.counts[c as usize] = 0;
        }
        self.present.clear();
        best.map_or(0, |(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    /// Kilosort4's dense computation: the full (node × slot) score matrix, first argmax per row.
    fn dense_argmax(
        links: &[Vec<u32>],
        degrees: &[f64],
        total: f64,
        member_labels: &[u32],
        n_slots: usize,
    ) -> Vec<u32> {
        let sizes = label_sizes(member_labels, n_slots);
        links
            .iter()
            .zip(degrees)
            .map(|(row, &degree)| {
                let mut counts = vec![0u32; n_slots];
                for &c in row {
                    counts[c as usize] += 1;
                }
                let rate = penalty_rate(degree, total);
                let scores: Vec<f64> = (0..n_slots).map(|c| score(counts[c], rate, sizes[c])).collect();
                let mut best = 0;
                for c in 1..n_slots {
                    if scores[c] > scores[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }

    fn random_graph(rng: &mut ChaCha8Rng, n: usize, step: usize, k: usize) -> NeighbourGraph {
        let landmarks: Vec<usize> = (0..n).step_by(step).collect();
        let nl = landmarks.len();
        let mut neighbours = Vec::new();
        for i in 0..n {
            let mut row: Vec<u32> = if i % step == 0 { vec![(i / step) as u32] } else { Vec::new() };
            while row.len() < k {
                let r = (rng.next_u32() as usize % nl) as u32;
                if !row.contains(&r) {
                    row.push(r);
                }
            }
            neighbours.extend(row);
        }
        NeighbourGraph::from_neighbours(n, landmarks, k, neighbours)
    }

    #[test]
    fn sparse_steps_equal_the_dense_reference() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for trial in 0..20 {
            // Few spikes and slots make ties and empty or absent labels common.
            let (n, step, k, n_slots) = (60 + trial, 1 + trial % 4, 2 + trial % 5, 3 + trial % 9);
            let graph = random_graph(&mut rng, n, step, k);
            let degrees = graph.degrees();
            let incoming = Incoming::new(&graph);
            // Labels use only part of the slots, so some slots are empty.
            let used = 1 + (rng.next_u32() as usize % n_slots);
            let spike_labels: Vec<u32> = (0..n).map(|_| rng.next_u32() % used as u32).collect();
            let sparse = label_landmarks(&graph, &incoming, &degrees, &spike_labels, n_slots);
            let links: Vec<Vec<u32>> = (0..graph.n_landmarks())
                .map(|r| incoming.spikes_of(r).iter().map(|&i| spike_labels[i as usize]).collect())
                .collect();
            let dense = dense_argmax(&links, &degrees.landmark, degrees.total, &spike_labels, n_slots);
            assert_eq!(sparse, dense, "landmark step, trial {trial}");

            let landmark_labels: Vec<u32> = (0..graph.n_landmarks()).map(|_| rng.next_u32() % used as u32).collect();
            let sparse = label_spikes(&graph, &degrees, &landmark_labels, n_slots);
            let links: Vec<Vec<u32>> =
                (0..n).map(|i| graph.neighbours_of(i).iter().map(|&r| landmark_labels[r as usize]).collect()).collect();
            let dense = dense_argmax(&links, &degrees.spike, degrees.total, &landmark_labels, n_slots);
            assert_eq!(sparse, dense, "spike step, trial {trial}");
        }
    }

    #[test]
    fn an_unpenalised_node_with_no_links_takes_slot_zero() {
        // Landmark 1 has no incoming links and degree 0: every slot scores 0.
        let graph = NeighbourGraph::from_neighbours(3, vec![0, 2], 1, vec![0, 0, 0]);
        let degrees = graph.degrees();
        let labels = label_landmarks(&graph, &Incoming::new(&graph), &degrees, &[2, 2, 2], 3);
        assert_eq!(labels[1], 0);
    }

    #[test]
    fn two_disconnected_groups_keep_two_labels() {
        // Spikes 0..50 link to all of landmarks 0..5, spikes 50..100 to all of landmarks 5..10;
        // the groups start from mixed labels of their own.
        let landmarks: Vec<usize> = (0..100).step_by(10).collect();
        let neighbours: Vec<u32> = (0..100).flat_map(|i: u32| (0..5).map(move |s| (i / 50) * 5 + s)).collect();
        let graph = NeighbourGraph::from_neighbours(100, landmarks, 5, neighbours);
        let initial: Vec<u32> = (0..100).map(|i| i % 3 + 3 * (i / 50)).collect();
        let out = propagate_labels(&graph, &graph.degrees(), initial, 7, PROPAGATION_ROUNDS);
        assert_eq!(out.n_clusters, 2);
        assert!(out.spike_labels[..50].iter().all(|&l| l == out.spike_labels[0]));
        assert!(out.spike_labels[50..].iter().all(|&l| l == out.spike_labels[50]));
        assert_ne!(out.spike_labels[0], out.spike_labels[50]);
    }
}
