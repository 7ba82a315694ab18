//! The gain of each k-means++ candidate centroid μ (spec §7.5): `Σᵢ relu(2·xᵢ·μ − |μ|² − vᵢ)`,
//! the variance it would explain beyond each spike's current `vᵢ`. All candidates are scored by
//! one GEMM per block of spikes.
//!
//! Pruning, exact: `2·x·μ − |μ|² − v = r − |x − μ|²` with `r = |x|² − v` the unexplained variance,
//! so spike x gains from μ only if `|x − μ|² < r`. Every spike's `v` came from one earlier centroid
//! a (or none: a = 0), and `r = |x − a|²`; by the triangle inequality `|x − μ| ≥ |a − μ| − |x − a|`,
//! so x cannot gain from μ when `|a − μ|² ≥ 4r`. Spikes are grouped by their centroid a (in a
//! copy kept between iterations), and a block of them is multiplied only with the candidates
//! near enough to its centroids. The pairs skipped contribute exactly 0 (a margin covers float
//! rounding). With one unit in a centre nothing is skipped; with k well separated units about
//! (k − 1)/k of the products are.

use rayon::prelude::*;

use super::gemm::product_transposed;

/// Spikes per block of the candidate GEMM: 2048 × 100 f32 = 800 kB of products per thread.
const BLOCK_ROWS: usize = 2048;
/// Spikes whose gains are summed in f32 before joining the f64 totals (relative error ≲ 1e-5).
const F32_RUN: usize = 64;
/// Cost of regrouping (copying) one spike, in spike × candidate products: the copy is a gather
/// of scattered rows, memory-bound, measured at about 40 candidates' worth of GEMM.
const REGROUP_COST: f64 = 40.0;
/// Relative slack on the pruning bounds, far above the f32 rounding of `v`, `|x|²` and the
/// anchor distances (~1e-6 relative), so no pair that gains is ever skipped.
const PRUNE_MARGIN: f32 = 1e-4;

/// What the spikes explain so far.
pub(super) struct Explained<'a> {
    /// Spikes, row-major `n × d`.
    pub rows: &'a [f32],
    /// Features per spike.
    pub d: usize,
    /// `|x|²` per spike.
    pub totals: &'a [f32],
    /// Variance explained so far per spike (`vexp0`).
    pub explained: &'a [f32],
    /// Per spike, the centroid that explains it: 0 for none (the origin), j + 1 for centroid j.
    pub anchor: &'a [u32],
    /// The origin, then every centroid chosen so far, row-major.
    pub anchors: &'a [f32],
}

/// Computes gains, keeping a copy of the spikes grouped by anchor between calls: regrouping
/// copies every spike, so it is redone only when the old grouping has grown too mixed.
#[derive(Default)]
pub(super) struct Gains {
    /// Spike index of each row of `grouped`.
    order: Vec<u32>,
    /// The spikes in `order`, row-major.
    grouped: Vec<f32>,
}

/// A block of consecutive grouped rows and the candidates any of them may gain from.
type Block = (std::ops::Range<usize>, Vec<usize>);

impl Gains {
    /// The gain of each candidate (rows of `centroids`), summed per block in f64 and over blocks
    /// in order, so independent of the thread count. Takes the cheapest of: all spikes against
    /// all candidates; the current grouping, pruned; a fresh grouping, pruned, plus its copy.
    pub(super) fn compute(&mut self, s: &Explained, centroids: &[f32]) -> Vec<f64> {
        let norms: Vec<f32> = centroids.chunks(s.d).map(|c| c.iter().map(|v| v * v).sum()).collect();
        let (n, n_c, n_anchors) = (s.explained.len(), norms.len(), s.anchors.len() / s.d);
        if n_anchors < 2 {
            return all_gains(s, centroids, &norms);
        }
        let distances = anchor_distances(s.anchors, s.d, centroids, &norms);
        let current = (!self.order.is_empty()).then(|| plan(s, &self.order, &distances, n_c, false));
        let fresh_order = group_by_anchor(s.anchor, n_anchors);
        let fresh = plan(s, &fresh_order, &distances, n_c, true);
        let plain_cost = (n * n_c) as f64;
        let current_cost = current.as_ref().map_or(f64::INFINITY, |(_, work)| *work as f64);
        let fresh_cost = fresh.1 as f64 + REGROUP_COST * n as f64;
        if plain_cost <= current_cost.min(fresh_cost) {
            return all_gains(s, centroids, &norms);
        }
        let blocks = if fresh_cost < current_cost {
            self.grouped =
                fresh_order.iter().flat_map(|&i| &s.rows[i as usize * s.d..(i as usize + 1) * s.d]).copied().collect();
            self.order = fresh_order;
            fresh.0
        } else {
            current.expect("a grouping exists").0
        };
        self.pruned_gains(s, centroids, &norms, &blocks)
    }

    /// Each block of grouped rows against its reachable candidates.
    fn pruned_gains(&self, s: &Explained, centroids: &[f32], norms: &[f32], blocks: &[Block]) -> Vec<f64> {
        let (d, n_c) = (s.d, norms.len());
        let partial: Vec<Vec<f64>> = blocks
            .par_iter()
            .map_init(Vec::new, |products, (rows, candidates)| {
                let mut gains = vec![0f64; n_c];
                if candidates.is_empty() {
                    return gains;
                }
                let explained: Vec<f32> = self.order[rows.clone()].iter().map(|&i| s.explained[i as usize]).collect();
                let chosen: Vec<f32> =
                    candidates.iter().flat_map(|&c| &centroids[c * d..(c + 1) * d]).copied().collect();
                let chosen_norms: Vec<f32> = candidates.iter().map(|&c| norms[c]).collect();
                products.resize(rows.len() * candidates.len(), 0f32);
                product_transposed(&self.grouped[rows.start * d..rows.end * d], &chosen, d, products, false);
                let mut some = vec![0f64; candidates.len()];
                accumulate_gains(products, &chosen_norms, &explained, &mut some);
                candidates.iter().zip(some).for_each(|(&c, g)| gains[c] = g);
                gains
            })
            .collect();
        sum_in_order(partial, n_c)
    }
}

/// [`Gains::compute`] without pruning, to check that pruning changes nothing.
#[cfg(test)]
pub(super) fn unpruned_gains(s: &Explained, centroids: &[f32]) -> Vec<f64> {
    let norms: Vec<f32> = centroids.chunks(s.d).map(|c| c.iter().map(|v| v * v).sum()).collect();
    all_gains(s, centroids, &norms)
}

/// Every spike against every candidate.
fn all_gains(s: &Explained, centroids: &[f32], norms: &[f32]) -> Vec<f64> {
    let n_c = norms.len();
    let partial: Vec<Vec<f64>> = s
        .rows
        .par_chunks(BLOCK_ROWS * s.d)
        .zip(s.explained.par_chunks(BLOCK_ROWS))
        .map_init(Vec::new, |products, (block, explained)| {
            // Reused per thread; the GEMM overwrites it, so it is never cleared.
            products.resize(explained.len() * n_c, 0f32);
            product_transposed(block, centroids, s.d, products, false);
            let mut gains = vec![0f64; n_c];
            accumulate_gains(products, norms, explained, &mut gains);
            gains
        })
        .collect();
    sum_in_order(partial, n_c)
}

/// Blocks of `order` with their reachable candidates, and the work (rows × candidates). With
/// `by_anchor`, blocks also end where the anchor changes (for a fresh grouping; an older one is
/// too fragmented for that).
fn plan(s: &Explained, order: &[u32], distances: &[f32], n_c: usize, by_anchor: bool) -> (Vec<Block>, usize) {
    let mut runs = Vec::new();
    let mut start = 0;
    for run in order.chunk_by(|&a, &b| !by_anchor || s.anchor[a as usize] == s.anchor[b as usize]) {
        runs.extend((start..start + run.len()).step_by(BLOCK_ROWS).map(|b| b..(b + BLOCK_ROWS).min(start + run.len())));
        start += run.len();
    }
    let blocks: Vec<Block> = runs
        .into_iter()
        .map(|rows| {
            let candidates = reachable(s, &order[rows.clone()], distances, n_c);
            (rows, candidates)
        })
        .collect();
    let work = blocks.iter().map(|(rows, c)| rows.len() * c.len()).sum();
    (blocks, work)
}

/// Lower bounds of `|a − μ|²` for every anchor a and candidate μ (row-major anchors × candidates):
/// `|a|² + |μ|² − 2·a·μ` by GEMM, less a margin for its rounding.
fn anchor_distances(anchors: &[f32], d: usize, centroids: &[f32], norms: &[f32]) -> Vec<f32> {
    let n_c = norms.len();
    let mut products = vec![0f32; anchors.len() / d * n_c];
    product_transposed(anchors, centroids, d, &mut products, false);
    for (a, row) in anchors.chunks(d).zip(products.chunks_mut(n_c)) {
        let anchor_norm: f32 = a.iter().map(|v| v * v).sum();
        for (p, &norm) in row.iter_mut().zip(norms) {
            let scale = anchor_norm + norm;
            *p = anchor_norm + norm - 2.0 * *p - PRUNE_MARGIN * scale;
        }
    }
    products
}

/// Spike indices ordered by anchor (stable counting sort).
fn group_by_anchor(anchor: &[u32], n_anchors: usize) -> Vec<u32> {
    let mut start = vec![0usize; n_anchors + 1];
    for &a in anchor {
        start[a as usize + 1] += 1;
    }
    for g in 0..n_anchors {
        start[g + 1] += start[g];
    }
    let mut order = vec![0u32; anchor.len()];
    for (i, &a) in anchor.iter().enumerate() {
        order[start[a as usize]] = i as u32;
        start[a as usize] += 1;
    }
    order
}

/// The candidates some spike of `block` may gain from: for each anchor among the block's
/// spikes, those within twice its spikes' largest unexplained radius (plus margin) of it.
fn reachable(s: &Explained, block: &[u32], anchor_distances: &[f32], n_c: usize) -> Vec<usize> {
    let mut limits = vec![f32::NEG_INFINITY; anchor_distances.len() / n_c.max(1)];
    for &i in block {
        let (t, v) = (s.totals[i as usize], s.explained[i as usize]);
        let limit = &mut limits[s.anchor[i as usize] as usize];
        *limit = limit.max(4.0 * ((t - v).max(0.0) + PRUNE_MARGIN * t));
    }
    let mut needed = vec![false; n_c];
    for (distances, &limit) in anchor_distances.chunks(n_c).zip(&limits).filter(|(_, l)| l.is_finite()) {
        for (need, &distance) in needed.iter_mut().zip(distances) {
            *need |= distance < limit;
        }
    }
    (0..n_c).filter(|&c| needed[c]).collect()
}

fn sum_in_order(partial: Vec<Vec<f64>>, n_c: usize) -> Vec<f64> {
    let mut gains = vec![0f64; n_c];
    for block in partial {
        gains.iter_mut().zip(block).for_each(|(g, b)| *g += b);
    }
    gains
}

crate::avx2_dispatch! {
    /// `gains[c] += Σ_rows relu(2·products[row, c] − norms[c] − explained[row])`.
    fn accumulate_gains(products: &[f32], norms: &[f32], explained: &[f32], gains: &mut [f64]) => accumulate_gains_portable
}

/// Sums in f32 over short runs of rows (vectorised across candidates), then in f64.
#[inline(always)]
fn accumulate_gains_portable(products: &[f32], norms: &[f32], explained: &[f32], gains: &mut [f64]) {
    let n_c = norms.len();
    let mut partial = vec![0f32; n_c];
    for (products, explained) in products.chunks(n_c * F32_RUN).zip(explained.chunks(F32_RUN)) {
        partial.fill(0.0);
        for (row, &v) in products.chunks_exact(n_c).zip(explained) {
            for ((s, &p), &norm) in partial.iter_mut().zip(row).zip(norms) {
                let gain = 2.0 * p - norm - v;
                *s += if gain > 0.0 { gain } else { 0.0 };
            }
        }
        gains.iter_mut().zip(&partial).for_each(|(g, &s)| *g += s as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points in 8 tight groups at the corners of a cube of side 40.
    fn points(n: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| {
                let g = i % 8;
                let jitter = |k: usize| (((i * 7 + k * 13) % 17) as f32 - 8.0) / 8.0;
                [0, 1, 2].map(|k| 40.0 * ((g >> k) & 1) as f32 + jitter(k))
            })
            .collect()
    }

    #[test]
    fn pruned_gains_equal_direct_sums() {
        let (n, d) = (6000, 3);
        let rows = points(n);
        let totals: Vec<f32> = rows.chunks(d).map(|x| x.iter().map(|v| v * v).sum()).collect();
        // Spikes explained by the first point of their group (anchor = group + 1, except group 7,
        // which nothing explains yet).
        let anchors: Vec<f32> = [vec![0.0; d], rows[..7 * d].to_vec()].concat();
        let anchor: Vec<u32> = (0..n).map(|i| if i % 8 == 7 { 0 } else { (i % 8) as u32 + 1 }).collect();
        let explained: Vec<f32> = (0..n)
            .map(|i| {
                let a = &anchors[anchor[i] as usize * d..(anchor[i] as usize + 1) * d];
                let x = &rows[i * d..(i + 1) * d];
                2.0 * x.iter().zip(a).map(|(p, q)| p * q).sum::<f32>() - a.iter().map(|v| v * v).sum::<f32>()
            })
            .collect();
        let s =
            Explained { rows: &rows, d, totals: &totals, explained: &explained, anchor: &anchor, anchors: &anchors };
        // 100 candidates from every group.
        let centroids: Vec<f32> = rows[800 * d..900 * d].to_vec();
        let mut engine = Gains::default();
        let pruned = engine.compute(&s, &centroids);
        assert!(!engine.order.is_empty(), "well separated groups are pruned");
        let direct: Vec<f64> = centroids
            .chunks(d)
            .map(|mu| {
                let norm: f32 = mu.iter().map(|v| v * v).sum();
                (0..n)
                    .map(|i| {
                        let x = &rows[i * d..(i + 1) * d];
                        let p: f64 = x.iter().zip(mu).map(|(a, b)| *a as f64 * *b as f64).sum();
                        (2.0 * p - norm as f64 - explained[i] as f64).max(0.0)
                    })
                    .sum()
            })
            .collect();
        for (p, t) in pruned.iter().zip(&direct) {
            assert!((p - t).abs() <= 1e-4 * t.max(1.0), "{p} vs {t}");
        }
        let all = unpruned_gains(&s, &centroids);
        for (a, t) in all.iter().zip(&direct) {
            assert!((a - t).abs() <= 1e-4 * t.max(1.0), "{a} vs {t}");
        }
    }
}
