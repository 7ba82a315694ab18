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
