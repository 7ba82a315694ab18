//! Running per-batch work in parallel while keeping results in batch order.

use rayon::prelude::*;

/// Runs `work` on batches `0..n` in parallel and hands each result to `sink` in batch order.
///
/// Batches go in windows of a few per thread, so at most one window of results waits while
/// the sink absorbs them: the results of a whole recording are never held twice.
pub(crate) fn for_each_batch_in_order<T: Send, S: Send>(
    n: usize,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, usize) -> T + Sync,
    mut sink: impl FnMut(T),
) {
    /// Batches per thread in a window: enough that threads rarely wait for a slow batch.
    const BATCHES_PER_THREAD: usize = 4;
    let window = BATCHES_PER_THREAD * rayon::current_num_threads();
    for first in (0..n).step_by(window.max(1)) {
        let results: Vec<T> = (first..(first + window).min(n)).into_par_iter().map_init(&init, &work).collect();
        results.into_iter().for_each(&mut sink);
    }
}
