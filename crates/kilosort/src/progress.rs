//! Progress reporting: the library calls a [`Progress`] sink; front-ends decide how to show it.

/// Receives progress from long-running stages. Methods may be called from worker threads.
pub trait Progress: Sync {
    /// A stage begins; `total` units of work (batches, clusters) are expected.
    fn start(&self, _stage: &str, _total: u64) {}
    /// `done` more units of the current stage have finished.
    fn advance(&self, _done: u64) {}
    /// The current stage is over.
    fn finish(&self) {}
}

/// Ignores all progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

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
    use rayon::prelude::*;
    /// Batches per thread in a window: enough that threads rarely wait for a slow batch.
    const BATCHES_PER_THREAD: usize = 4;
    let window = BATCHES_PER_THREAD * rayon::current_num_threads();
    for first in (0..n).step_by(window.max(1)) {
        let results: Vec<T> = (first..(first + window).min(n)).into_par_iter().map_init(&init, &work).collect();
        results.into_iter().for_each(&mut sink);
    }
}
