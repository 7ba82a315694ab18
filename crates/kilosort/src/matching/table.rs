//! The score table of one batch during matching pursuit: `B[k, t]` for every template and
//! sample, and the best template at every sample.
//!
//! Kilosort4 ranks templates by the variance they would explain, `relu(B)²/‖T_k‖²` (`Cf`). The
//! table ranks them by its square root, `relu(B)/‖T_k‖` (the threshold amplitude `th`): the same
//! order, one multiplication instead of a division per entry.
//!
//! Subtracting a spike changes the scores of the templates that share channels with it, over
//! ±nt samples. Templates are kept in depth order, so those form a contiguous range of columns.
//! Columns are grouped in blocks of [`BLOCK`]; each block is stored time-major on its own
//! (`[block][sample][column in block]`), so a subtraction walks a few contiguous strips of
//! memory. The table keeps the best template of every block at every sample, and right after a
//! subtraction (while the rows are in cache) recomputes only the blocks it changed, then the best
//! over blocks.

use std::ops::Range;

/// Columns per block.
pub(crate) const BLOCK: usize = 32;

/// Scores and their best-template summaries for the samples `nt…L−nt` of a padded batch.
#[derive(Debug, Clone)]
pub(crate) struct ScoreTable {
    k: usize,
    n_rows: usize,
    n_blocks: usize,
    /// 1/‖T_k‖, padded with 0 to whole blocks; 0 for an all-zero template, so it never scores.
    inv_norms: Vec<f32>,
    /// `scores[(b·n_rows + r)·BLOCK + i]` is the score of column `b·BLOCK + i` at row `r`.
    scores: Vec<f32>,
    /// Best of each block at each row, `[r·n_blocks + b]`, and its column.
    block_best: Vec<f32>,
    block_arg: Vec<u32>,
    best: Vec<f32>,
    best_arg: Vec<u32>,
}

impl ScoreTable {
    /// A zeroed table of `n_rows` samples for templates with squared norms `norms`.
    pub fn new(n_rows: usize, norms: &[f32]) -> Self {
        let k = norms.len();
        let n_blocks = k.div_ceil(BLOCK).max(1);
        let mut inv_norms: Vec<f32> = norms.iter().map(|&n| if n > 0.0 { 1.0 / n.sqrt() } else { 0.0 }).collect();
        inv_norms.resize(n_blocks * BLOCK, 0.0);
        ScoreTable {
            k,
            n_rows,
            n_blocks,
            inv_norms,
            scores: vec![0.0; n_blocks * n_rows * BLOCK],
            block_best: vec![0.0; n_rows * n_blocks],
            block_arg: vec![0; n_rows * n_blocks],
            best: vec![0.0; n_rows],
            best_arg: vec![0; n_rows],
        }
    }

    /// Samples covered.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Templates (columns).
    pub fn n_templates(&self) -> usize {
        self.k
    }

    /// Score of template column `j` at row `r`.
    pub fn score(&self, r: usize, j: usize) -> f32 {
        self.scores[((j / BLOCK) * self.n_rows + r) * BLOCK + j % BLOCK]
    }

    /// Best threshold amplitude `relu(B)/‖T‖` at row `r` and its template column.
    pub fn best(&self, r: usize) -> (f32, usize) {
        (self.best[r], self.best_arg[r] as usize)
    }

    /// Rows whose best threshold amplitude exceeds `threshold` and is the largest within
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
    /// `centre + τ − radius`, for τ = 0…2·radius (rows outside the table are skipped), and
    /// refreshes those rows' summaries.
    #[cfg(test)]
    pub fn subtract(&mut self, centre: usize, radius: usize, amplitude: f32, ctc: &[f32], columns: Range<usize>) {
        self.row_chunks_at(&[0])[0].subtract(centre, radius, amplitude, ctc, columns);
    }

    /// The table cut into chunks of `rows` consecutive rows, for parallel filling.
    pub fn row_chunks(&mut self, rows: usize) -> Vec<RowChunk<'_>> {
        let starts: Vec<usize> = (0..self.n_rows.max(1)).step_by(rows).collect();
        self.row_chunks_at(&starts)
    }

    /// The table cut into chunks starting at the given rows (ascending, the first 0).
    pub fn row_chunks_at(&mut self, starts: &[usize]) -> Vec<RowChunk<'_>> {
        assert_eq!(starts.first(), Some(&0), "chunks start at row 0");
        let (k, nb, n_rows) = (self.k, self.n_blocks, self.n_rows);
        let lens: Vec<usize> =
            starts.iter().enumerate().map(|(i, &s)| starts.get(i + 1).copied().unwrap_or(n_rows) - s).collect();
        let mut tiles: Vec<Vec<&mut [f32]>> = lens.iter().map(|_| Vec::with_capacity(nb)).collect();
        for block in self.scores.chunks_mut((n_rows * BLOCK).max(1)) {
            for (piece, t) in split_by(block, &lens, BLOCK).into_iter().zip(&mut tiles) {
                t.push(piece);
            }
        }
        let block_best = split_by(&mut self.block_best, &lens, nb);
        let block_arg = split_by(&mut self.block_arg, &lens, nb);
        let best = split_by(&mut self.best, &lens, 1);
        let best_arg = split_by(&mut self.best_arg, &lens, 1);
        tiles
            .into_iter()
            .zip(block_best)
            .zip(block_arg)
            .zip(best)
            .zip(best_arg)
            .zip(starts)
            .map(|(((((tiles, block_best), block_arg), best), best_arg), &first)| RowChunk {
                first,
                k,
                table_rows: n_rows,
                inv_norms: &self.inv_norms,
                tiles,
                block_best,
                block_arg,
                best,
                best_arg,
            })
            .collect()
    }
}

/// `data` cut into consecutive pieces of `lens[i]·width` elements.
fn split_by<'a, T>(mut data: &'a mut [T], lens: &[usize], width: usize) -> Vec<&'a mut [T]> {
    lens.iter()
        .map(|&len| {
            let (head, tail) = std::mem::take(&mut data).split_at_mut(len * width);
            data = tail;
            head
        })
        .collect()
}

/// What one subtraction does to one row: `amplitude·lags` off columns `columns`.
struct Change<'a> {
    amplitude: f32,
    lags: &'a [f32],
    columns: Range<usize>,
}

crate::avx2_dispatch! {
    /// Applies `change` to chunk row `row`, recomputes the blocks touched and returns the row's
    /// best (value, column), with AVX2 where available.
    fn subtract_row(
        tiles: &mut [&mut [f32]],
        row: usize,
        k: usize,
        inv_norms: &[f32],
        change: Change<'_>,
        block_best: &mut [f32],
        block_arg: &mut [u32],
    ) -> (f32, u32) => subtract_row_portable
}

#[inline(always)]
fn subtract_row_portable(
    tiles: &mut [&mut [f32]],
    row: usize,
    k: usize,
    inv_norms: &[f32],
    change: Change<'_>,
    block_best: &mut [f32],
    block_arg: &mut [u32],
) -> (f32, u32) {
    let Change { amplitude, lags, columns } = change;
    for b in columns.start / BLOCK..(columns.end - 1) / BLOCK + 1 {
        let first = b * BLOCK;
        let tile = &mut tiles[b][row * BLOCK..][..BLOCK];
        let (lo, hi) = (columns.start.max(first), columns.end.min(first + BLOCK));
        let lag = &lags[lo - columns.start..hi - columns.start];
        tile[lo - first..hi - first].iter_mut().zip(lag).for_each(|(s, &c)| *s -= amplitude * c);
        let real = (k - first).min(BLOCK);
        let (v, i) = block_max(&tile[..real], &inv_norms[first..first + real]);
        block_best[b] = v;
        block_arg[b] = (first + i) as u32;
    }
    best_of_blocks(block_best, block_arg)
}

/// The first largest of the block maxima.
#[inline(always)]
fn best_of_blocks(block_best: &[f32], block_arg: &[u32]) -> (f32, u32) {
    let mut best = (0.0, 0);
    for (b, (&v, &i)) in block_best.iter().zip(block_arg).enumerate() {
        // Strictly greater: the first block, hence the first column, wins ties.
        if v > best.0 || b == 0 {
            best = (v, i);
        }
    }
    best
}

/// Consecutive rows of a [`ScoreTable`], borrowed mutably.
pub(crate) struct RowChunk<'a> {
    first: usize,
    k: usize,
    table_rows: usize,
    inv_norms: &'a [f32],
    /// Per block, the chunk's rows (`len·BLOCK`).
    tiles: Vec<&'a mut [f32]>,
    block_best: &'a mut [f32],
    block_arg: &'a mut [u32],
    best: &'a mut [f32],
    best_arg: &'a mut [u32],
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

    /// [`ScoreTable::subtract`] within the chunk: every changed row must lie in it.
    pub fn subtract(&mut self, centre: usize, radius: usize, amplitude: f32, ctc: &[f32], columns: Range<usize>) {
        let nb = self.tiles.len();
        for (tau, lags) in ctc.chunks_exact(columns.len()).enumerate() {
            let Some(r) = (centre + tau).checked_sub(radius).filter(|&r| r < self.table_rows) else { continue };
            assert!((self.first..self.first + self.len()).contains(&r), "row {r} outside the chunk");
            let r = r - self.first;
            (self.best[r], self.best_arg[r]) = subtract_row(
                &mut self.tiles,
                r,
                self.k,
                self.inv_norms,
                Change { amplitude, lags, columns: columns.clone() },
                &mut self.block_best[r * nb..(r + 1) * nb],
                &mut self.block_arg[r * nb..(r + 1) * nb],
            );
        }
    }

    /// Writes the scores of template column `j` for the chunk's rows.
    pub fn set_column(&mut self, j: usize, values: &[f32]) {
        let tile = &mut self.tiles[j / BLOCK];
        for (r, &v) in values.iter().enumerate() {
            tile[r * BLOCK + j % BLOCK] = v;
        }
    }

    /// Computes every summary of every row.
    pub fn refresh_all(&mut self) {
        let nb = self.tiles.len();
        for r in 0..self.len() {
            for (b, tile) in self.tiles.iter().enumerate() {
                let first = b * BLOCK;
                let real = self.k.saturating_sub(first).min(BLOCK);
                let (v, i) = block_max_wide(&tile[r * BLOCK..r * BLOCK + real], &self.inv_norms[first..first + real]);
                self.block_best[r * nb + b] = v;
                self.block_arg[r * nb + b] = (first + i) as u32;
            }
            (self.best[r], self.best_arg[r]) =
                best_of_blocks(&self.block_best[r * nb..(r + 1) * nb], &self.block_arg[r * nb..(r + 1) * nb]);
        }
    }
}

crate::avx2_dispatch! {
    /// [`block_max`] with AVX2 where available.
    fn block_max_wide(scores: &[f32], inv_norms: &[f32]) -> (f32, usize) => block_max
}

/// `relu(score)/‖T‖` for a score and an inverse norm.
#[inline(always)]
pub(crate) fn threshold_amplitude(score: f32, inv_norm: f32) -> f32 {
    (score * inv_norm).max(0.0)
}

/// The largest threshold amplitude in a block of at most [`BLOCK`] columns and the first column
/// reaching it (0 for an empty block).
#[inline(always)]
fn block_max(scores: &[f32], inv_norms: &[f32]) -> (f32, usize) {
    const LANES: usize = 8;
    // Padding with 0 is harmless: every real value is ≥ 0.
    let mut x = [0.0f32; BLOCK];
    for ((x, &s), &w) in x.iter_mut().zip(scores).zip(inv_norms) {
        *x = threshold_amplitude(s, w);
    }
    let mut lanes = [0.0f32; LANES];
    for chunk in x.chunks_exact(LANES) {
        for l in 0..LANES {
            lanes[l] = if chunk[l] > lanes[l] { chunk[l] } else { lanes[l] };
        }
    }
    let top = lanes.iter().copied().fold(0.0, f32::max);
    (top, x[..scores.len()].iter().position(|&v| v == top).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[Vec<f32>], norms: &[f32]) -> ScoreTable {
        let mut t = ScoreTable::new(rows.len(), norms);
        for mut chunk in t.row_chunks(2) {
            let first = chunk.first_row();
            for j in 0..norms.len() {
                let column: Vec<f32> = rows[first..first + chunk.len()].iter().map(|row| row[j]).collect();
                chunk.set_column(j, &column);
            }
            chunk.refresh_all();
        }
        t
    }

    #[test]
    fn best_template_is_the_first_largest_threshold_amplitude() {
        let k = 70; // three blocks, the last one partial
        let mut row = vec![-1.0; k];
        row[5] = 2.0; // 2/1
        row[40] = 4.0; // 4/2 = 2: a tie, the first column wins
        row[66] = 3.0; // 3/2
        let mut norms = vec![1.0; k];
        norms[40] = 4.0;
        norms[66] = 4.0;
        norms[3] = 0.0; // an all-zero template never explains anything
        row[3] = 100.0;
        let t = table(&[row.clone(), vec![-1.0; k]], &norms);
        assert_eq!(t.best(0), (2.0, 5));
        assert_eq!(t.best(1), (0.0, 0), "all scores negative: nothing explained, first column");
    }

    #[test]
    fn subtracting_refreshes_only_what_changed_and_finds_the_new_best() {
        let k = 70;
        let mut rows = vec![vec![0.0; k]; 7];
        rows[3][2] = 5.0;
        rows[3][65] = 4.0;
        let mut t = table(&rows, &vec![1.0; k]);
        assert_eq!(t.best(3), (5.0, 2));
        assert_eq!(t.peaks(2, 1.0), [3]);
        // Remove most of column 2's score around row 3 (lags −1…1 over columns 0…3).
        let ctc = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        t.subtract(3, 1, 1.0, &ctc, 0..4);
        assert_eq!(t.score(3, 2), 1.0);
        assert_eq!(t.best(3), (4.0, 65));
        assert_eq!(t.score(2, 2), -1.0);
        assert_eq!(t.peaks(2, 1.0), [3]);
    }

    #[test]
    fn peaks_are_local_maxima_within_the_radius_and_ties_both_count() {
        let values = [0.0, 3.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 5.0, 0.0, 5.0];
        let rows: Vec<Vec<f32>> = values.iter().map(|&v| vec![v]).collect();
        let t = table(&rows, &[1.0]);
        assert_eq!(t.peaks(2, 1.0), [1, 4, 8, 10]);
        assert_eq!(t.peaks(3, 1.0), [1, 8, 10]);
        assert_eq!(t.peaks(3, 4.0), [8, 10]);
    }
}
