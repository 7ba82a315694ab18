//! The bipartite kNN graph of a centre (spec §7.4): every spike is linked to its nearest
//! "landmark" spikes, a regular subsample of the rows.

use ndarray::ArrayView2;
use rayon::prelude::*;

use super::gemm::product_transposed;

/// Most entries of one block of the spike × landmark distance matrix (f32: 16 MiB). Bounds the
/// memory of the search to this per thread, whatever the number of spikes.
const BLOCK_ENTRIES: usize = 1 << 22;

/// Marks a spike that is not a landmark.
const NOT_A_LANDMARK: u32 = u32::MAX;

/// Which rows are landmarks: every `downsampling`-th, then, if there are more than
/// `max_subset`, the surplus removed at evenly spread positions (Kilosort4's `subsample_idx`).
#[doc(alias = "subsample_idx")]
pub fn landmark_rows(n_rows: usize, downsampling: usize, max_subset: Option<usize>) -> Vec<usize> {
    let strided: Vec<usize> = (0..n_rows).step_by(downsampling.max(1)).collect();
    let n1 = strided.len();
    match max_subset {
        Some(max) if n1 > max => {
            let mut keep = vec![true; n1];
            for position in evenly_spread(n1, n1 - max) {
                keep[position] = false;
            }
            strided.into_iter().zip(keep).filter(|(_, k)| *k).map(|(r, _)| r).collect()
        }
        _ => strided,
    }
}

/// `round(linspace(0, n − 1, count))` as NumPy computes it (ties to even, exact last point).
/// Rounding can repeat a position, so fewer than `count` distinct positions may come out.
fn evenly_spread(n: usize, count: usize) -> Vec<usize> {
    let last = (n - 1) as f64;
    let step = if count > 1 { last / (count - 1) as f64 } else { 0.0 };
    (0..count)
        .map(|i| if count > 1 && i == count - 1 { n - 1 } else { (i as f64 * step).round_ties_even() as usize })
        .collect()
}

/// For every row of `data` (`n × d`, standard layout), the indices (into `landmarks`) of its `k`
/// nearest landmark rows in squared Euclidean distance, nearest first, ties to the lower index.
/// Returns `n · k` indices, row by row. Needs `k ≤ landmarks.len()`.
///
/// Exact brute force as Kilosort4 (faiss `IndexFlatL2`): distances come from one GEMM per block of
/// rows against all landmarks, followed by a partial selection of the k smallest.
pub fn nearest_landmarks(data: ArrayView2<f32>, landmarks: &[usize], k: usize) -> Vec<u32> {
    let (n, d) = data.dim();
    assert!(k <= landmarks.len(), "k = {k} exceeds the {} landmarks", landmarks.len());
    let rows = data.as_slice().expect("standard layout");
    let points: Vec<f32> = landmarks.iter().flat_map(|&r| data.row(r).to_vec()).collect();
    let norms: Vec<f32> = points.chunks(d).map(squared_norm).collect();
    let mut neighbours = vec![0u32; n * k];
    let block = (BLOCK_ENTRIES / landmarks.len().max(1)).clamp(1, n.max(1));
    // Each thread reuses one product buffer (the GEMM overwrites it, so it is never cleared).
    neighbours.par_chunks_mut(block * k).enumerate().for_each_init(Vec::new, |products, (b, out)| {
        let first = b * block;
        let count = out.len() / k.max(1);
        products.resize(count * landmarks.len(), 0f32);
        product_transposed(&rows[first * d..(first + count) * d], &points, d, products, false);
        for (row, nearest) in products.chunks(landmarks.len()).zip(out.chunks_mut(k)) {
            smallest_k(row, &norms, nearest);
        }
    });
    neighbours
}

/// The `out.len()` landmarks with the smallest `|l|² − 2·x·l` (the squared distance less the
/// row's own constant `|x|²`), ascending, ties to the lower index.
fn smallest_k(products: &[f32], norms: &[f32], out: &mut [u32]) {
    let k = out.len();
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (j, (&p, &norm)) in products.iter().zip(norms).enumerate() {
        let distance = norm - 2.0 * p;
        if best.len() == k && distance >= best[k - 1].0 {
            continue;
        }
        // After every equal distance, so the lower index stays ahead.
        let at = best.partition_point(|&(b, _)| b <= distance);
        best.insert(at, (distance, j as u32));
        best.truncate(k);
    }
    for (o, (_, j)) in out.iter_mut().zip(best) {
        *o = j;
    }
}

fn squared_norm(v: &[f32]) -> f32 {
    v.iter().map(|&x| x as f64 * x as f64).sum::<f64>() as f32
}

/// The kNN graph of one centre: spikes on one side, landmarks on the other.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighbourGraph {
    /// Neighbours per spike.
    pub k: usize,
    /// Row (spike) of each landmark, ascending.
    pub landmarks: Vec<usize>,
    /// `n_spikes · k` landmark indices: each spike's nearest landmarks, nearest first (`kn`).
    /// A landmark spike normally lists itself first.
    pub neighbours: Vec<u32>,
    /// Per spike, the landmark it is, or [`NOT_A_LANDMARK`].
    own_landmark: Vec<u32>,
}

/// Degrees of the graph without its self-links (Kilosort4's `Mstats` of the adjacency `M`).
#[derive(Debug, Clone, PartialEq)]
pub struct Degrees {
    /// Links of each spike (`ki`).
    pub spike: Vec<f64>,
    /// Links of each landmark (`kj`).
    pub landmark: Vec<f64>,
    /// Number of links (`m`).
    pub total: f64,
}

impl NeighbourGraph {
    /// Builds the graph of the rows of `data`: landmarks by [`landmark_rows`], then each row's `k`
    /// nearest landmarks (k is capped at the number of landmarks).
    #[doc(alias = "neigh_mat")]
    pub fn build(data: ArrayView2<f32>, downsampling: usize, k: usize, max_subset: Option<usize>) -> Self {
        let landmarks = landmark_rows(data.nrows(), downsampling, max_subset);
        let k = k.min(landmarks.len());
        let neighbours = nearest_landmarks(data, &landmarks, k);
        Self::from_neighbours(data.nrows(), landmarks, k, neighbours)
    }

    /// A graph from given neighbour lists (`n_spikes · k` landmark indices).
    pub fn from_neighbours(n_spikes: usize, landmarks: Vec<usize>, k: usize, neighbours: Vec<u32>) -> Self {
        assert_eq!(neighbours.len(), n_spikes * k, "one list of k neighbours per spike");
        let mut own_landmark = vec![NOT_A_LANDMARK; n_spikes];
        for (j, &row) in landmarks.iter().enumerate() {
            own_landmark[row] = j as u32;
        }
        NeighbourGraph { k, landmarks, neighbours, own_landmark }
    }

    /// Number of spikes (rows).
    pub fn n_spikes(&self) -> usize {
        self.own_landmark.len()
    }

    /// Number of landmarks.
    pub fn n_landmarks(&self) -> usize {
        self.landmarks.len()
    }

    /// The neighbours of spike `i`, nearest first.
    pub fn neighbours_of(&self, i: usize) -> &[u32] {
        &self.neighbours[i * self.k..(i + 1) * self.k]
    }

    /// The links of spike `i` other than to itself (the non-zeros of row i of Kilosort4's `M`).
    pub fn links_of(&self, i: usize) -> impl Iterator<Item = u32> + '_ {
        let own = self.own_landmark[i];
        self.neighbours_of(i).iter().copied().filter(move |&j| j != own)
    }

    /// Degrees without self-links.
    pub fn degrees(&self) -> Degrees {
        let mut spike = vec![0.0; self.n_spikes()];
        let mut landmark = vec![0.0; self.n_landmarks()];
        for (i, degree) in spike.iter_mut().enumerate() {
            for j in self.links_of(i) {
                *degree += 1.0;
                landmark[j as usize] += 1.0;
            }
        }
        let total = spike.iter().sum();
        Degrees { spike, landmark, total }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{RngCore, SeedableRng};

    #[test]
    fn landmark_removal_is_evenly_spread() {
        // Kilosort4's docstring example: subsample_idx(6, 3) keeps positions 1, 3, 4.
        assert_eq!(evenly_spread(6, 3), [0, 2, 5]);
        assert_eq!(landmark_rows(6, 1, Some(3)), [1, 3, 4]);
        assert_eq!(landmark_rows(100, 20, None), [0, 20, 40, 60, 80]);
        assert_eq!(landmark_rows(100, 20, Some(10)), [0, 20, 40, 60, 80]);
        assert_eq!(landmark_rows(100, 20, Some(4)), [20, 40, 60, 80]);
        assert_eq!(landmark_rows(10, 1, Some(9)), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    fn random_data(n: usize, d: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| (rng.next_u32() as f64 / u32::MAX as f64 * 4.0 - 2.0) as f32)
    }

    #[test]
    fn search_equals_naive_search() {
        let data = random_data(700, 9, 3);
        let landmarks = landmark_rows(700, 3, Some(200));
        let k = 10;
        let fast = nearest_landmarks(data.view(), &landmarks, k);
        for i in 0..700 {
            let mut naive: Vec<(f64, usize)> = landmarks
                .iter()
                .enumerate()
                .map(|(j, &r)| {
                    (data.row(i).iter().zip(data.row(r)).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum(), j)
                })
                .collect();
            naive.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let expected: Vec<u32> = naive[..k].iter().map(|&(_, j)| j as u32).collect();
            assert_eq!(&fast[i * k..(i + 1) * k], &expected[..], "row {i}");
        }
    }

    #[test]
    fn graph_degrees_drop_self_links() {
        let data = random_data(50, 3, 4);
        let graph = NeighbourGraph::build(data.view(), 5, 4, None);
        assert_eq!(graph.n_landmarks(), 10);
        let degrees = graph.degrees();
        for (j, &row) in graph.landmarks.iter().enumerate() {
            assert_eq!(graph.neighbours_of(row)[0], j as u32, "a landmark is its own nearest landmark");
            assert_eq!(degrees.spike[row], 3.0);
        }
        assert_eq!(degrees.total, (50 * 4 - 10) as f64);
        assert_eq!(degrees.landmark.iter().sum::<f64>(), degrees.total);
    }
}
