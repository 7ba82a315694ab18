//! The merge tree of a centre's clusters (spec §7.7): clusters are joined greedily, most
//! strongly linked pair first, where a link's strength is the number of graph edges between the
//! two clusters over the number a configuration null model expects.

use ndarray::Array2;

use super::knn::{Degrees, NeighbourGraph};

/// Added to every expected edge count so empty clusters do not divide by zero (Kilosort4's).
const EXPECTED_FLOOR: f64 = 0.001;
/// Value marking the diagonal and merged-away rows of the strength matrix.
const GONE: f64 = -1.0;

/// One agglomeration step: `absorbed` joins `absorber` into the node `n_clusters + step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    /// Node merged away (Kilosort4's `xtree[t, 0]`): a cluster label or an earlier merge's node.
    pub absorbed: usize,
    /// Node it joins (`xtree[t, 1]`).
    pub absorber: usize,
    /// Observed over expected edges between the two when they merged (`tstat[t, 0]`).
    pub strength: f64,
    /// Original clusters under the new node (`tstat[t, 1]`).
    pub n_leaves: usize,
    /// Local modularity of the pair (`tstat[t, 2]`), computed as Kilosort4 does (it counts the
    /// absorber→absorbed edges twice); only an unreachable split criterion reads it.
    pub local_modularity: f64,
}

/// The full binary merge tree over `n_clusters` leaves; merge t creates node `n_clusters + t`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeTree {
    /// Number of leaves (original cluster labels `0..n_clusters`).
    pub n_clusters: usize,
    /// The `n_clusters − 1` merges, in order.
    pub merges: Vec<Merge>,
}

impl MergeTree {
    /// The leaves under every node, `2·n_clusters − 1` lists (Kilosort4's `my_clus`): a leaf is
    /// itself; a merge lists its absorber's leaves, then its absorbed node's.
    pub fn members(&self) -> Vec<Vec<u32>> {
        let mut members: Vec<Vec<u32>> = (0..self.n_clusters as u32).map(|c| vec![c]).collect();
        for merge in &self.merges {
            let mut node = members[merge.absorber].clone();
            node.extend_from_slice(&members[merge.absorbed]);
            members.push(node);
        }
        members
    }
}

/// Builds the tree from the graph, the spike labels (`0..n_clusters`) and landmark labels.
#[doc(alias = "maketree")]
pub fn merge_tree(
    graph: &NeighbourGraph,
    degrees: &Degrees,
    spike_labels: &[u32],
    landmark_labels: &[u32],
    n_clusters: usize,
) -> MergeTree {
    let (observed, expected) = edge_counts(graph, degrees, spike_labels, landmark_labels, n_clusters);
    agglomerate(observed, expected)
}

/// `observed[a, b]`: edges (self-links excluded) from spikes of cluster a to landmarks of
/// cluster b; `expected[a, b] = 0.001 + (Σ_{i∈a} kᵢ)(Σ_{r∈b} kⱼ)/m` (Kilosort4's `cc`, `cneg`).
pub fn edge_counts(
    graph: &NeighbourGraph,
    degrees: &Degrees,
    spike_labels: &[u32],
    landmark_labels: &[u32],
    n_clusters: usize,
) -> (Array2<f64>, Array2<f64>) {
    let mut observed = Array2::zeros((n_clusters, n_clusters));
    let (mut spike_degree, mut landmark_degree) = (vec![0.0; n_clusters], vec![0.0; n_clusters]);
    for (i, &a) in spike_labels.iter().enumerate() {
        for r in graph.links_of(i) {
            observed[[a as usize, landmark_labels[r as usize] as usize]] += 1.0;
        }
        spike_degree[a as usize] += degrees.spike[i];
    }
    for (&b, &k) in landmark_labels.iter().zip(&degrees.landmark) {
        landmark_degree[b as usize] += k;
    }
    let scale = if degrees.total > 0.0 { 1.0 / degrees.total } else { 0.0 };
    let expected = Array2::from_shape_fn((n_clusters, n_clusters), |(a, b)| {
        EXPECTED_FLOOR + spike_degree[a] * landmark_degree[b] * scale
    });
    (observed, expected)
}

/// Symmetrises the counts, then merges the pair of highest observed/expected ratio (first in
/// row-major order on ties) until one node is left (Kilosort4's `merge_reduce`, `find_merges`).
pub fn agglomerate(observed: Array2<f64>, expected: Array2<f64>) -> MergeTree {
    let n = observed.nrows();
    let mut cc = &observed + &observed.t();
    let mut cneg = &expected + &expected.t();
    let mut ratio = &cc / &cneg;
    ratio.diag_mut().fill(GONE);
    let mut node: Vec<usize> = (0..n).collect();
    let mut leaves = vec![1usize; n];
    let mut merges = Vec::with_capacity(n.saturating_sub(1));
    for step in 0..n.saturating_sub(1) {
        let (y, x) = argmax_row_major(&ratio);
        let strength = ratio[[y, x]];
        let local_modularity = local_modularity(&cc, y, x);
        for m in [&mut cc, &mut cneg] {
            let row = m.row(x).to_owned();
            m.row_mut(y).zip_mut_with(&row, |a, b| *a += b);
            let column = m.column(x).to_owned();
            m.column_mut(y).zip_mut_with(&column, |a, b| *a += b);
        }
        cc.row_mut(x).fill(GONE);
        cc.column_mut(x).fill(GONE);
        let updated = &cc.row(y) / &cneg.row(y);
        ratio.row_mut(y).assign(&updated);
        ratio.column_mut(y).assign(&updated);
        ratio[[y, y]] = GONE;
        ratio.row_mut(x).fill(GONE);
        ratio.column_mut(x).fill(GONE);
        merges.push(Merge {
            absorbed: node[x],
            absorber: node[y],
            strength,
            n_leaves: leaves[x] + leaves[y],
            local_modularity,
        });
        leaves[y] += leaves[x];
        node[y] = n + step;
    }
    MergeTree { n_clusters: n, merges }
}

/// Kilosort4's local modularity of merging x into y, including its double count of `cc[y, x]`
/// and omission of `cc[y, y]` in the pair's edge total.
fn local_modularity(cc: &Array2<f64>, y: usize, x: usize) -> f64 {
    let total = cc[[y, x]] + cc[[x, x]] + cc[[x, y]] + cc[[y, x]];
    let ka = cc[[x, x]] + cc[[x, y]];
    let kb = cc[[y, y]] + cc[[y, x]];
    let expected = 0.5 * (ka * kb + (total - ka) * (total - kb)) / total;
    (cc[[y, x]] + cc[[x, y]]) / expected
}

/// Position of the largest entry, the first in row-major order on ties (as `np.argmax`).
fn argmax_row_major(m: &Array2<f64>) -> (usize, usize) {
    let mut best = ((0, 0), f64::NEG_INFINITY);
    for ((i, j), &v) in m.indexed_iter() {
        if v > best.1 {
            best = ((i, j), v);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn two_clean_clusters_split_at_the_root() {
        // Four clusters: {0, 1} densely linked, {2, 3} densely linked, the pairs barely.
        let observed =
            array![[20.0, 30.0, 0.0, 1.0], [30.0, 20.0, 1.0, 0.0], [0.0, 1.0, 20.0, 30.0], [1.0, 0.0, 30.0, 20.0]];
        let expected = Array2::from_elem((4, 4), 10.0);
        let tree = agglomerate(observed, expected);
        assert_eq!(tree.merges.len(), 3);
        // The strongest pairs merge first (0 absorbs 1, then 2 absorbs 3); the root joins them.
        assert_eq!((tree.merges[0].absorbed, tree.merges[0].absorber), (1, 0));
        assert_eq!((tree.merges[1].absorbed, tree.merges[1].absorber), (3, 2));
        assert_eq!((tree.merges[2].absorbed, tree.merges[2].absorber), (5, 4));
        assert!((tree.merges[0].strength - 60.0 / 20.0).abs() < 1e-12);
        // Root: 4 symmetrised cross edges over 4 · 20 expected = 0.05 < 0.2.
        assert!((tree.merges[2].strength - 4.0 / 80.0).abs() < 1e-12, "{}", tree.merges[2].strength);
        assert_eq!(tree.merges[2].n_leaves, 4);
        let members = tree.members();
        assert_eq!(members[6], [0, 1, 2, 3]);
    }

    #[test]
    fn edges_and_null_model_come_from_the_graph() {
        // 4 spikes, landmarks = spikes 0 and 2, k = 2.
        let graph = NeighbourGraph::from_neighbours(4, vec![0, 2], 2, vec![0, 1, 0, 1, 1, 0, 1, 0]);
        let degrees = graph.degrees();
        assert_eq!(degrees.spike, [1.0, 2.0, 1.0, 2.0]);
        let (observed, expected) = edge_counts(&graph, &degrees, &[0, 0, 1, 1], &[0, 1], 2);
        // Non-self edges: 0→1, 1→0, 1→1, 2→0, 3→1, 3→0.
        assert_eq!(observed, array![[1.0, 2.0], [2.0, 1.0]]);
        // Cluster degrees: spikes (3, 3), landmarks (3, 3); m = 6.
        assert!(expected.iter().all(|&e| (e - (0.001 + 9.0 / 6.0)).abs() < 1e-12));
    }
}
