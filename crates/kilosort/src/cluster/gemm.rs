//! Row-major matrix products on faer, the one dense kernel clustering needs.

use faer::traits::ComplexField;
use faer::{Accum, MatMut, MatRef, Par};

/// `out = a · bᵀ` (or `out += a · bᵀ` when `accumulate`), all row-major: `a` is `rows × depth`,
/// `b` is `cols × depth`, `out` is `rows × cols`. Sequential: callers parallelise over blocks,
/// so results never depend on the thread count.
pub(super) fn product_transposed<T: ComplexField + Copy>(
    a: &[T],
    b: &[T],
    depth: usize,
    out: &mut [T],
    accumulate: bool,
) {
    assert!(depth > 0, "empty inner dimension");
    let (rows, cols) = (a.len() / depth, b.len() / depth);
    assert_eq!(out.len(), rows * cols, "output size");
    let lhs = MatRef::from_row_major_slice(a, rows, depth);
    let rhs = MatRef::from_row_major_slice(b, cols, depth).transpose();
    let dst = MatMut::from_row_major_slice_mut(out, rows, cols);
    let beta = if accumulate { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, beta, lhs, rhs, T::one_impl(), Par::Seq);
}

/// `out = aᵀ · b` (or `+=`), row-major: `a` is `n × p`, `b` is `n × q`, `out` is `p × q`.
pub(super) fn transposed_product<T: ComplexField + Copy>(
    a: &[T],
    p: usize,
    b: &[T],
    q: usize,
    out: &mut [T],
    accumulate: bool,
) {
    assert!(p > 0, "empty output dimension");
    let n = a.len() / p;
    assert_eq!(out.len(), p * q, "output size");
    let lhs = MatRef::from_row_major_slice(a, n, p).transpose();
    let rhs = MatRef::from_row_major_slice(b, n, q);
    let dst = MatMut::from_row_major_slice_mut(out, p, q);
    let beta = if accumulate { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(dst, beta, lhs, rhs, T::one_impl(), Par::Seq);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_match_hand_computation() {
        // a = [[1, 2], [3, 4], [5, 6]], b = [[1, 0], [1, 1]]
        let a = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0f32, 0.0, 1.0, 1.0];
        let mut out = [0.0f32; 6];
        product_transposed(&a, &b, 2, &mut out, false);
        assert_eq!(out, [1.0, 3.0, 3.0, 7.0, 5.0, 11.0]);
        product_transposed(&a, &b, 2, &mut out, true);
        assert_eq!(out, [2.0, 6.0, 6.0, 14.0, 10.0, 22.0]);
        // aᵀ·a = [[35, 44], [44, 56]]
        let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
        let mut gram = [0.0f64; 4];
        transposed_product(&a64, 2, &a64, 2, &mut gram, false);
        assert_eq!(gram, [35.0, 44.0, 44.0, 56.0]);
    }
}
