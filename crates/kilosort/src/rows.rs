//! Reordering and filtering the rows of per-spike tables in place: the feature tables are the
//! largest allocations of a sort (240 bytes a spike), and `select` would hold them twice.

use ndarray::Array3;

/// `table[i] = old table[order[i]]` for a permutation `order` of the rows.
pub(crate) fn permute_rows(table: Array3<f32>, order: &[usize]) -> Array3<f32> {
    let (n, a, b) = table.dim();
    assert_eq!(order.len(), n, "a permutation of every row");
    let row = a * b;
    let mut values = into_standard_vec(table);
    let mut done = vec![false; n];
    let mut saved = vec![0.0f32; row];
    // Follow each cycle of the permutation, holding only its first row aside.
    for start in 0..n {
        if done[start] {
            continue;
        }
        saved.copy_from_slice(&values[start * row..(start + 1) * row]);
        let mut i = start;
        loop {
            done[i] = true;
            let from = order[i];
            if from == start {
                values[i * row..(i + 1) * row].copy_from_slice(&saved);
                break;
            }
            assert!(!done[from], "order is not a permutation");
            values.copy_within(from * row..(from + 1) * row, i * row);
            i = from;
        }
    }
    Array3::from_shape_vec((n, a, b), values).expect("same shape")
}

/// The rows at `keep` (strictly increasing indices), in order.
pub(crate) fn keep_rows(table: Array3<f32>, keep: &[usize]) -> Array3<f32> {
    let (_, a, b) = table.dim();
    let row = a * b;
    let mut values = into_standard_vec(table);
    for (to, &from) in keep.iter().enumerate() {
        assert!(from >= to, "kept rows must be increasing");
        if from != to {
            values.copy_within(from * row..(from + 1) * row, to * row);
        }
    }
    values.truncate(keep.len() * row);
    values.shrink_to_fit();
    Array3::from_shape_vec((keep.len(), a, b), values).expect("kept rows")
}

fn into_standard_vec(table: Array3<f32>) -> Vec<f32> {
    let table = if table.is_standard_layout() { table } else { table.as_standard_layout().into_owned() };
    let (values, offset) = table.into_raw_vec_and_offset();
    assert!(offset.unwrap_or(0) == 0, "an owned standard-layout array starts at its buffer");
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Axis;

    fn table(n: usize) -> Array3<f32> {
        Array3::from_shape_fn((n, 3, 2), |(i, j, k)| (i * 100 + j * 10 + k) as f32)
    }

    #[test]
    fn permuting_equals_select() {
        for order in [vec![0, 1, 2, 3, 4, 5], vec![5, 4, 3, 2, 1, 0], vec![2, 0, 1, 5, 3, 4], vec![1, 0, 3, 2, 5, 4]] {
            let expected = table(6).select(Axis(0), &order);
            assert_eq!(permute_rows(table(6), &order), expected, "{order:?}");
        }
    }

    #[test]
    fn keeping_equals_select() {
        for keep in [vec![], vec![0, 1, 2, 3, 4, 5], vec![1, 3, 5], vec![0, 4]] {
            let expected = table(6).select(Axis(0), &keep);
            assert_eq!(keep_rows(table(6), &keep), expected, "{keep:?}");
        }
    }

    #[test]
    #[should_panic(expected = "not a permutation")]
    fn a_repeated_index_is_refused() {
        permute_rows(table(3), &[0, 0, 1]);
    }
}
