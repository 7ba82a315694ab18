//! Rectangular linear sum assignment with the semantics of `scipy.optimize.linear_sum_assignment`.
//!
//! The method is the shortest augmenting path algorithm (Jonker–Volgenant family) as laid out in
//! D. F. Crouse, "On implementing 2D rectangular assignment algorithms", IEEE TAES 52(4), 2016.
//! Rows are added one at a time; for each, a Dijkstra-like search over reduced costs finds the
//! cheapest path to a free column, the dual variables are updated and the path is flipped.
//!
//! Among equally cheap solutions the result is the one scipy returns, because the search visits
//! columns in the same order and breaks ties the same way: candidate columns are kept in a list
//! that starts in *descending* order and shrinks by swap-removal; the cheapest column wins, and on
//! an exact tie a free column is preferred. A matrix with more rows than columns is transposed
//! first, as scipy does. SpikeInterface's matching depends on this choice when agreement scores
//! tie, so the tie rule is part of the contract (tested against scipy in `tests/compare_si.rs`).

use std::borrow::Cow;

/// Why [`linear_sum_assignment`] could not solve a cost matrix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    /// The slice length is not `n_rows * n_cols`.
    #[error("cost matrix has {len} entries, expected {n_rows} x {n_cols}")]
    Shape {
        /// Entries given.
        len: usize,
        /// Rows declared.
        n_rows: usize,
        /// Columns declared.
        n_cols: usize,
    },
    /// A cost is NaN or −∞ (scipy: "matrix contains invalid numeric entries").
    #[error("cost matrix contains NaN or -inf entries")]
    Invalid,
    /// No complete assignment has finite cost (too many +∞ entries).
    #[error("cost matrix is infeasible")]
    Infeasible,
}

const NONE: usize = usize::MAX;

/// Minimum-cost assignment of rows to columns for a row-major `n_rows × n_cols` cost matrix.
///
/// Returns `min(n_rows, n_cols)` pairs `(row, col)`, sorted by row, each row and column used at
/// most once, minimising the summed cost; ties are resolved exactly as scipy resolves them. To
/// maximise (as SpikeInterface does with agreement scores) pass negated scores.
///
/// ```
/// use groundtruth::compare::linear_sum_assignment;
/// // 3 workers, 2 jobs: the best pair of rows is 0 and 2.
/// let cost = [4.0, 1.0, 2.0, 3.0, 1.0, 5.0];
/// assert_eq!(linear_sum_assignment(&cost, 3, 2).unwrap(), vec![(0, 1), (2, 0)]);
/// ```
pub fn linear_sum_assignment(
    cost: &[f64],
    n_rows: usize,
    n_cols: usize,
) -> Result<Vec<(usize, usize)>, AssignmentError> {
    if cost.len() != n_rows.saturating_mul(n_cols) {
        return Err(AssignmentError::Shape { len: cost.len(), n_rows, n_cols });
    }
    if n_rows == 0 || n_cols == 0 {
        return Ok(Vec::new());
    }
    let transpose = n_cols < n_rows;
    let (nr, nc, c): (usize, usize, Cow<[f64]>) = if transpose {
        let mut t = vec![0.0; cost.len()];
        for i in 0..n_rows {
            for j in 0..n_cols {
                t[j * n_rows + i] = cost[i * n_cols + j];
            }
        }
        (n_cols, n_rows, Cow::Owned(t))
    } else {
        (n_rows, n_cols, Cow::Borrowed(cost))
    };
    if c.iter().any(|x| x.is_nan() || *x == f64::NEG_INFINITY) {
        return Err(AssignmentError::Invalid);
    }

    let mut s = Solver {
        nc,
        cost: &c,
        u: vec![0.0; nr],
        v: vec![0.0; nc],
        spc: vec![0.0; nc],
        path: vec![NONE; nc],
        col4row: vec![NONE; nr],
        row4col: vec![NONE; nc],
        sr: vec![false; nr],
        sc: vec![false; nc],
        remaining: Vec::with_capacity(nc),
    };
    for cur in 0..nr {
        let (sink, min_val) = s.augmenting_path(cur)?;
        // Dual update.
        s.u[cur] += min_val;
        for i in 0..nr {
            if s.sr[i] && i != cur {
                s.u[i] += min_val - s.spc[s.col4row[i]];
            }
        }
        for j in 0..nc {
            if s.sc[j] {
                s.v[j] -= min_val - s.spc[j];
            }
        }
        // Flip the alternating path ending at `sink`.
        let mut j = sink;
        loop {
            let i = s.path[j];
            s.row4col[j] = i;
            std::mem::swap(&mut s.col4row[i], &mut j);
            if i == cur {
                break;
            }
        }
    }

    let mut pairs: Vec<(usize, usize)> = if transpose {
        s.col4row.iter().enumerate().map(|(col, &row)| (row, col)).collect()
    } else {
        s.col4row.iter().enumerate().map(|(row, &col)| (row, col)).collect()
    };
    pairs.sort_unstable();
    Ok(pairs)
}

struct Solver<'a> {
    nc: usize,
    cost: &'a [f64],
    u: Vec<f64>,
    v: Vec<f64>,
    /// Shortest reduced path cost found so far to each column.
    spc: Vec<f64>,
    /// Row from which each column was reached.
    path: Vec<usize>,
    col4row: Vec<usize>,
    row4col: Vec<usize>,
    /// Rows / columns scanned in the current search.
    sr: Vec<bool>,
    sc: Vec<bool>,
    /// Columns not yet scanned, in scipy's order.
    remaining: Vec<usize>,
}

impl Solver<'_> {
    /// Shortest augmenting path from free row `start`; returns the free column reached and the
    /// path length.
    fn augmenting_path(&mut self, start: usize) -> Result<(usize, f64), AssignmentError> {
        let nc = self.nc;
        self.remaining.clear();
        self.remaining.extend((0..nc).rev());
        self.sr.fill(false);
        self.sc.fill(false);
        self.spc.fill(f64::INFINITY);

        let mut min_val = 0.0f64;
        let mut i = start;
        loop {
            self.sr[i] = true;
            let mut index = NONE;
            let mut lowest = f64::INFINITY;
            for (it, &j) in self.remaining.iter().enumerate() {
                // Same evaluation order as scipy: ((min_val + c) - u_i) - v_j.
                let r = min_val + self.cost[i * nc + j] - self.u[i] - self.v[j];
                if r < self.spc[j] {
                    self.path[j] = i;
                    self.spc[j] = r;
                }
                if self.spc[j] < lowest || (self.spc[j] == lowest && self.row4col[j] == NONE) {
                    lowest = self.spc[j];
                    index = it;
                }
            }
            min_val = lowest;
            if min_val == f64::INFINITY || index == NONE {
                return Err(AssignmentError::Infeasible);
            }
            let j = self.remaining[index];
            self.sc[j] = true;
            self.remaining.swap_remove(index);
            if self.row4col[j] == NONE {
                return Ok((j, min_val));
            }
            i = self.row4col[j];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(cost: &[f64], nc: usize, pairs: &[(usize, usize)]) -> f64 {
        pairs.iter().map(|&(i, j)| cost[i * nc + j]).sum()
    }

    /// Brute force over all injective maps of the smaller side.
    fn brute(cost: &[f64], nr: usize, nc: usize) -> f64 {
        fn rec(cost: &[f64], nr: usize, nc: usize, row: usize, used: &mut Vec<bool>, acc: f64, best: &mut f64) {
            if row == nr {
                *best = best.min(acc);
                return;
            }
            for j in 0..nc {
                if !used[j] {
                    used[j] = true;
                    rec(cost, nr, nc, row + 1, used, acc + cost[row * nc + j], best);
                    used[j] = false;
                }
            }
        }
        let (c, r, k): (Vec<f64>, usize, usize) = if nr <= nc {
            (cost.to_vec(), nr, nc)
        } else {
            let mut t = vec![0.0; cost.len()];
            for i in 0..nr {
                for j in 0..nc {
                    t[j * nr + i] = cost[i * nc + j];
                }
            }
            (t, nc, nr)
        };
        let mut best = f64::INFINITY;
        rec(&c, r, k, 0, &mut vec![false; k], 0.0, &mut best);
        best
    }

    #[test]
    fn square_known_optimum() {
        let cost = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        let p = linear_sum_assignment(&cost, 3, 3).unwrap();
        assert_eq!(p, vec![(0, 1), (1, 0), (2, 2)]);
        assert_eq!(total(&cost, 3, &p), 5.0);
    }

    #[test]
    fn wide_and_tall() {
        let wide = [10.0, 2.0, 8.0, 1.0, 7.0, 3.0, 9.0, 4.0];
        let p = linear_sum_assignment(&wide, 2, 4).unwrap();
        assert_eq!(p, vec![(0, 3), (1, 1)]);
        let tall = [10.0, 7.0, 2.0, 3.0, 8.0, 9.0, 1.0, 4.0];
        let p = linear_sum_assignment(&tall, 4, 2).unwrap();
        assert_eq!(p, vec![(1, 1), (3, 0)]);
    }

    #[test]
    fn constant_matrix_gives_identity_like_scipy() {
        let p = linear_sum_assignment(&[0.0; 9], 3, 3).unwrap();
        assert_eq!(p, vec![(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn empty_and_errors() {
        assert!(linear_sum_assignment(&[], 0, 5).unwrap().is_empty());
        assert_eq!(linear_sum_assignment(&[1.0], 2, 2), Err(AssignmentError::Shape { len: 1, n_rows: 2, n_cols: 2 }));
        assert_eq!(linear_sum_assignment(&[f64::NAN, 1.0], 1, 2), Err(AssignmentError::Invalid));
        let inf = f64::INFINITY;
        assert_eq!(linear_sum_assignment(&[inf, inf, 1.0, inf], 2, 2), Err(AssignmentError::Infeasible));
    }

    #[test]
    fn random_matrices_reach_brute_force_optimum() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let nr = (next() % 6 + 1) as usize;
            let nc = (next() % 6 + 1) as usize;
            let cost: Vec<f64> = (0..nr * nc).map(|_| (next() % 7) as f64 * 0.25 - 0.5).collect();
            let p = linear_sum_assignment(&cost, nr, nc).unwrap();
            assert_eq!(p.len(), nr.min(nc));
            let mut rows: Vec<_> = p.iter().map(|x| x.0).collect();
            let mut cols: Vec<_> = p.iter().map(|x| x.1).collect();
            rows.dedup();
            cols.sort_unstable();
            cols.dedup();
            assert_eq!((rows.len(), cols.len()), (p.len(), p.len()));
            assert!((total(&cost, nc, &p) - brute(&cost, nr, nc)).abs() < 1e-12);
        }
    }
}
