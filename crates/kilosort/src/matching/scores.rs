//! The inner product of every template, centred at every sample, with a whitened batch
//! (Kilosort4's `B`, spec §8.3 step 1), and the best-scoring template at every sample.
//!
//! `B[k, t] = Σ_{c,p} W_k[c, p]·Bp[c, p, t]`, where `Bp[c, p, t] = Σ_s pcs[p, s]·X[c, t + s − nt/2]`
//! are the PC projections of the data. Templates are spatially local, so each template sums only
//! over the channels of its support: the cost is (channels × PCs × nt + local channels × PCs ×
//! templates) per sample instead of channels × PCs × templates. The batch is processed in
//! chunks of [`CHUNK`] samples, in parallel, each chunk's projections staying in cache.

use ndarray::{ArrayView2, ArrayView3};
use rayon::prelude::*;

use super::table::ScoreTable;
use crate::correlate::{FilterLayout, LANES, correlate_filters};

/// Samples per chunk: the projections of all channels for one chunk (channels × PCs × 128
/// floats, 1.2 MB at 384 channels and 6 PCs) stay in L2 while every template reads its rows.
pub(crate) const CHUNK: usize = 128;

/// Samples of a chunk combined at once (eight AVX registers of sums).
const PART: usize = 64;

/// Which projection rows each template combines, with which weights.
#[derive(Debug, Clone)]
pub(crate) struct ScoreKernel {
    /// `wPCA` transposed `(tap, pc)`.
    pcs: Vec<f32>,
    nt: usize,
    n_pcs: usize,
    /// Data channels read (those in any template's support), in slot order.
    channels: Vec<usize>,
    /// Template j uses `rows[offsets[j]..offsets[j + 1]]` (slot·n_pcs + p) with `weights[…]`.
    offsets: Vec<usize>,
    rows: Vec<u32>,
    weights: Vec<f32>,
}

impl ScoreKernel {
    /// `templates` `(K, n_channels, n_pcs)` in the order of the score table's columns;
    /// `supports[j]` the channels template j is summed over.
    pub fn new(templates: ArrayView3<f32>, supports: &[Vec<usize>], pcs: ArrayView2<f32>) -> Self {
        let (_, n_channels, n_pcs) = templates.dim();
        let mut slot = vec![u32::MAX; n_channels];
        let mut channels = Vec::new();
        let (mut offsets, mut rows, mut weights) = (vec![0], Vec::new(), Vec::new());
        for (w, support) in templates.outer_iter().zip(supports) {
            for &c in support {
                if slot[c] == u32::MAX {
                    slot[c] = channels.len() as u32;
                    channels.push(c);
                }
                for p in 0..n_pcs {
                    rows.push(slot[c] * n_pcs as u32 + p as u32);
                    weights.push(w[[c, p]]);
                }
            }
            offsets.push(rows.len());
        }
        ScoreKernel { pcs: pcs.t().iter().copied().collect(), nt: pcs.ncols(), n_pcs, channels, offsets, rows, weights }
    }

    /// Fills `table` (scores of every template at columns nt…L−nt of the padded batch `data`)
    /// and its best-template summaries.
    pub fn fill(&self, data: ArrayView2<f32>, table: &mut ScoreTable) {
        let (nt, n_rows, k) = (self.nt, table.n_rows(), table.n_templates());
        assert_eq!(data.ncols(), n_rows + 2 * nt, "the table covers the batch without its padding");
        let data = data.as_standard_layout();
        let n_proj = self.channels.len() * self.n_pcs;
        table.row_chunks(CHUNK).into_par_iter().for_each_init(
            || (vec![0.0f32; n_proj * CHUNK], vec![0.0f32; k * CHUNK]),
            |(proj, scores), mut rows| {
                let (first, len) = (rows.first_row(), rows.len());
                self.project(data.view(), first + nt, len, proj);
                self.combine(proj, scores);
                for (j, column) in scores.chunks_exact(CHUNK).enumerate() {
                    rows.set_column(j, &column[..len]);
                }
                rows.refresh_all();
            },
        );
    }

    /// PC projections of `len` samples from padded column `start`, every used channel:
    /// `proj[(slot·n_pcs + p)·CHUNK + i]`; unused tail entries are zero.
    fn project(&self, data: ArrayView2<f32>, start: usize, len: usize, proj: &mut [f32]) {
        let half = self.nt / 2;
        for (slot, &c) in self.channels.iter().enumerate() {
            let row = data.row(c);
            let x = &row.as_slice().expect("standard layout")[start - half..start - half + len + self.nt - 1];
            for p in 0..self.n_pcs {
                proj[(slot * self.n_pcs + p) * CHUNK..][len..CHUNK].fill(0.0);
            }
            let layout = FilterLayout { first: slot * self.n_pcs * CHUNK, block_stride: LANES, filter_stride: CHUNK };
            correlate_filters(x, &self.pcs, self.nt, proj, layout);
        }
    }

    /// `scores[j·CHUNK + i] = Σ weights·proj rows` for every template j.
    fn combine(&self, proj: &[f32], scores: &mut [f32]) {
        for (j, out) in scores.chunks_exact_mut(CHUNK).enumerate() {
            let range = self.offsets[j]..self.offsets[j + 1];
            for (part, out) in out.chunks_exact_mut(PART).enumerate() {
                let out: &mut [f32; PART] = out.try_into().expect("part");
                // A template without support reads no row (and there may be none to read).
                weighted_rows(
                    proj.get(part * PART..).unwrap_or_default(),
                    &self.rows[range.clone()],
                    &self.weights[range.clone()],
                    out,
                );
            }
        }
    }
}

crate::avx2_dispatch! {
    /// `out = Σ weights[r]·proj[rows[r]·CHUNK..][..PART]`, with AVX2 where available.
    fn weighted_rows(proj: &[f32], rows: &[u32], weights: &[f32], out: &mut [f32; PART]) => weighted_rows_portable
}

/// A part of the chunk (8 AVX registers) accumulates in registers across the template's rows.
#[inline(always)]
fn weighted_rows_portable(proj: &[f32], rows: &[u32], weights: &[f32], out: &mut [f32; PART]) {
    let mut acc = [0.0f32; PART];
    for (&r, &w) in rows.iter().zip(weights) {
        let row: &[f32; PART] = proj[r as usize * CHUNK..][..PART].try_into().expect("row");
        for i in 0..PART {
            acc[i] += w * row[i];
        }
    }
    *out = acc;
}

/// Scores by the definition, `B[k, t]` for every template over all channels (test reference).
#[cfg(test)]
pub(crate) fn dense_scores(
    data: ArrayView2<f32>,
    templates: ArrayView3<f32>,
    pcs: ArrayView2<f32>,
) -> ndarray::Array2<f32> {
    let (n_chan, len) = data.dim();
    let (n_pcs, nt) = pcs.dim();
    let half = nt / 2;
    let mut proj = ndarray::Array3::<f32>::zeros((n_chan, n_pcs, len));
    for c in 0..n_chan {
        for p in 0..n_pcs {
            for t in 0..len {
                proj[[c, p, t]] = (0..nt)
                    .filter(|&s| (half..len + half).contains(&(t + s)))
                    .map(|s| pcs[[p, s]] * data[[c, t + s - half]])
                    .sum();
            }
        }
    }
    let k = templates.len_of(ndarray::Axis(0));
    ndarray::Array2::from_shape_fn((k, len), |(j, t)| {
        (0..n_chan).map(|c| (0..n_pcs).map(|p| templates[[j, c, p]] * proj[[c, p, t]]).sum::<f32>()).sum()
    })
}
