//! The score table of one batch during matching pursuit: `B[k, t]` for every template and
//! sample (stored time-major), the variance each template would explain there
//! (`relu(B)²/‖T_k‖²`, Kilosort4's `Cf`), and the best template at every sample.
//!
//! Subtracting a spike changes the scores of the templates that share channels with it, over
//! ±nt samples. Templates are kept in depth order, so those form a contiguous range of columns;
//! the table keeps the best template of every block of [`BLOCK`] columns at every sample, and
//! after a subtraction recomputes only the blocks that changed, then the best over blocks.

use std::ops::Range;

use rayon::prelude::*;

/// Columns per block of the best-template summary.
pub(crate) const BLOCK: usize = 32;

/// Rows of the table handled together when refreshing changed samples.
const REFRESH_ROWS: usize = 256;

/// Scores and their best-template summaries for the samples `nt…L−nt` of a padded batch.
#[derive(Debug, Clone)]
pub(crate) struct ScoreTable {
    k: usize,
    n_blocks: usize,
    /// Squared template norms; an all-zero template has +∞ so it never explains anything.
    norms: Vec<f32>,
    scores: Vec<f32>,
    block_best: Vec<f32>,
    block_arg: Vec<u32>,
    best: Vec<f32>,
    best_arg: Vec<u32>,
    /// Changed blocks of each row since the last refresh (`lo > hi` when unchanged).
    dirty: Vec<(u32, u32)>,
}

/// The variance a template explains at its optimal positive amplitude: `relu(b)²/nm`.
#[inline(always)]
pub(crate) fn explained(score: f32, norm: f32) -> f32 {
    let r = score.max(0.0);
    r * r / norm
}

impl ScoreTable {
    /// A zeroed table of `n_rows` samples for templates with squared norms `norms`.
    pub fn new(n_rows: usize, norms: &[f32]) -> Self {
        let k = norms.len();
        let n_blocks = k.div_ceil(BLOCK).max(1);
        ScoreTable {
            k,
            n_blocks,
            norms: norms.iter().map(|&n| if n > 0.0 { n } else { f32::INFINITY }).collect(),
            scores: vec![0.0; n_rows * k],
            block_best: vec![0.0; n_rows * n_blocks],
            block_arg: vec![0; n_rows * n_blocks],
            best: vec![0.0; n_rows],
            best_arg: vec![0; n_rows],
            dirty: vec![(1, 0); n_rows],
        }
    }

    /// Samples covered.
    pub fn n_rows(&self) -> usize {
        self.best.len()
    }

    /// Templates (columns).
    pub fn n_templates(&self) -> usize {
        self.k
    }

    /// Score of template column `j` at row `r`.
    pub fn score(&self, r: usize, j: usize) -> f32 {
        self.scores[r * self.k + j]
    }

    /// Best explained variance at row `r` and its template column.
    pub fn best(&self, r: usize) -> (f32, usize) {
        (self.best[r], self.best_arg[r] as usize)
    }

    /// Rows whose best explained variance exceeds `threshold` and is the largest within
    /// ±`radius` rows (ties all count, as in Kilosort4's max-pool comparison), ascending.
    pub fn peaks(&self, radius: usize, threshold: f32) -> Vec<usize> {
        let n = self.best.len();
        (0..n)
            .filter(|&r| {
                let v = self.best[r];
                v > threshold && self.best[r.saturating_sub(radius)..(r + radius + 1).min(n)].iter().all(|&u| u <= v)
            })
            .collect()
    }

    /// Subtracts `amplitude·ctc[τ, i]` from the scores of columns `columns.start + i` at rows
    /// `centre + τ − radius`, for τ = 0…2·radius (rows outside the table are skipped).
    pub fn subtract(&mut self, centre: usize, radius: usize, amplitude: f32, ctc: &[f32], columns: Range<usize>) {
        let width = columns.len();
        let blocks = ((columns.start / BLOCK) as u32, ((columns.end - 1) / BLOCK) as u32);
        for (tau, lags) in ctc.chunks_exact(width).enumerate() {
            let Some(r) = (centre + tau).checked_sub(radius).filter(|&r| r < self.best.len()) else { continue };
            let row = &mut self.scores[r * self.k + columns.start..][..width];
            row.iter_mut().zip(lags).for_each(|(s, &c)| *s -= amplitude * c);
            let d = &mut self.dirty[r];
            *d = (d.0.min(blocks.0), d.1.max(blocks.1));
        }
    }

    /// Recomputes the summaries of every row changed since the last refresh.
    pub fn refresh_changed(&mut self) {
        self.par_row_chunks(REFRESH_ROWS).for_each(|mut rows| {
            for r in 0..rows.len() {
                let (lo, hi) = rows.dirty[r];
                if lo <= hi {
                    rows.refresh(r, lo as usize..hi as usize + 1);
                }
            }
        });
    }

    /// The table cut into chunks of `rows` consecutive rows, for parallel work.
    pub fn par_row_chunks(&mut self, rows: usize) -> impl ParallelIterator<Item = RowChunk<'_>> {
        let (k, n_blocks, norms) = (self.k, self.n_blocks, self.norms.as_slice());
        self.scores
            .par_chunks_mut(rows * k.max(1))
            .zip(self.block_best.par_chunks_mut(rows * n_blocks))
            .zip(self.block_arg.par_chunks_mut(rows * n_blocks))
            .zip(self.best.par_chunks_mut(rows))
            .zip(self.best_arg.par_chunks_mut(rows))
            .zip(self.dirty.par_chunks_mut(rows))
            .enumerate()
            .map(move |(i, (((((scores, block_best), block_arg), best), best_arg), dirty))| RowChunk {
                first: i * rows,
                k,
                n_blocks,
                norms,
                scores,
                block_best,
                block_arg,
                best,
                best_arg,
                dirty,
            })
    }
}

/// Consecutive rows of a [`ScoreTable`], borrowed mutably.
pub(crate) struct RowChunk<'a> {
    first: usize,
    k: usize,
    n_blocks: usize,
    norms: &'a [f32],
    scores: &'a mut [f32],
    block_best: &'a mut [f32],
    block_arg: &'a mut [u32],
    best: &'a mut [f32],
    best_arg: &'a mut [u32],
    dirty: &'a mut [(u32, u32)],
}

impl RowChunk<'_> {
    /// Table row of the chunk's first row.
    pub fn first_row(&self) -> usize {
        self.first
    }

    /// Rows in the chunk.
    pub fn len(&self) -> usize {
        self.best.len()
    }

    /// The scores of row `r` of the chunk, one per template column.
    pub fn scores_mut(&mut self, r: usize) -> &mut [f32] {
        &mut self.scores[r * self.k..(r + 1) * self.k]
    }

    /// Recomputes every summary of every row.
    pub fn refresh_all(&mut self) {
        for r in 0..self.len() {
            self.refresh(r, 0..self.n_blocks);
        }
    }

    /// Recomputes the given blocks of row `r`, then the row's best template.
    fn refresh(&mut self, r: usize, blocks: Range<usize>) {
        let row = &self.scores[r * self.k..(r + 1) * self.k];
        let (bb, ba) = (r * self.n_blocks, r * self.n_blocks);
        for b in blocks {
            let cols = b * BLOCK..((b + 1) * BLOCK).min(self.k);
            let (v, i) = block_max(&row[cols.clone()], &self.norms[cols.clone()]);
            self.block_best[bb + b] = v;
            self.block_arg[ba + b] = (cols.start + i) as u32;
        }
        let mut best = (f32::NEG_INFINITY, 0);
        for b in 0..self.n_blocks {
            // Strictly greater: the first block, hence the first column, wins ties.
            if self.block_best[bb + b] > best.0 {
                best = (self.block_best[bb + b], self.block_arg[ba + b]);
            }
        }
        (self.best[r], self.best_arg[r]) = if self.k == 0 { (0.0, 0) } else { best };
        self.dirty[r] = (1, 0);
    }
}

/// The largest explained variance in a block of columns and the first column reaching it.
#[inline]
fn block_max(scores: &[f32], norms: &[f32]) -> (f32, usize) {
    const LANES: usize = 8;
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut arg = [usize::MAX; LANES];
    for (c, (s, n)) in scores.chunks(LANES).zip(norms.chunks(LANES)).enumerate() {
        for l in 0..s.len() {
            let v = explained(s[l], n[l]);
            if v > best[l] {
                best[l] = v;
                arg[l] = c * LANES + l;
            }
        }
    }
    // Each lane holds its first maximum; the overall first is the smallest index among lanes
    // holding the overall maximum.
    let top = best.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let first = (0..LANES).filter(|&l| best[l] == top).map(|l| arg[l]).min().unwrap_or(0);
    (top, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[Vec<f32>], norms: &[f32]) -> ScoreTable {
        let mut t = ScoreTable::new(rows.len(), norms);
        t.par_row_chunks(2).for_each(|mut chunk| {
            let first = chunk.first_row();
            for r in 0..chunk.len() {
                chunk.scores_mut(r).copy_from_slice(&rows[first + r]);
            }
            chunk.refresh_all();
        });
        t
    }

    #[test]
    fn best_template_is_the_first_largest_explained_variance() {
        let k = 70; // three blocks, the last one partial
        let mut row = vec![-1.0; k];
        row[5] = 2.0; // 4/1
        row[40] = 4.0; // 16/4 = 4: a tie, the first column wins
        row[66] = 3.0; // 9/4
        let mut norms = vec![1.0; k];
        norms[40] = 4.0;
        norms[66] = 4.0;
        norms[3] = 0.0; // an all-zero template never explains anything
        row[3] = 100.0;
        let t = table(&[row.clone(), vec![-1.0; k]], &norms);
        assert_eq!(t.best(0), (4.0, 5));
        assert_eq!(t.best(1), (0.0, 0), "all scores negative: nothing explained, first column");
    }

    #[test]
    fn subtracting_refreshes_only_what_changed_and_finds_the_new_best() {
        let k = 70;
        let mut rows = vec![vec![0.0; k]; 7];
        rows[3][2] = 5.0;
        rows[3][65] = 4.0;
        let mut t = table(&rows, &vec![1.0; k]);
        assert_eq!(t.best(3), (25.0, 2));
        assert_eq!(t.peaks(2, 1.0), [3]);
        // Remove most of column 2's score around row 3 (lags −1…1 over columns 0…3).
        let ctc = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        t.subtract(3, 1, 1.0, &ctc, 0..4);
        t.refresh_changed();
        assert_eq!(t.score(3, 2), 1.0);
        assert_eq!(t.best(3), (16.0, 65));
        assert_eq!(t.score(2, 2), -1.0);
        assert_eq!(t.peaks(2, 1.0), [3]);
    }

    #[test]
    fn peaks_are_local_maxima_within_the_radius_and_ties_both_count() {
        let values = [0.0, 3.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 5.0, 0.0, 5.0];
        let rows: Vec<Vec<f32>> = values.iter().map(|&v: &f32| vec![v.sqrt()]).collect();
        let t = table(&rows, &[1.0]);
        assert_eq!(t.peaks(2, 1.0), [1, 4, 8, 10]);
        assert_eq!(t.peaks(3, 1.0), [1, 8, 10]);
        assert_eq!(t.peaks(3, 4.0), [8, 10]);
    }
}
