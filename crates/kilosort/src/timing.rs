//! Wall time and peak memory of each pipeline stage, as Kilosort4's log reports them.

use std::time::Instant;

/// One finished stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageTime {
    /// Stage name ("preprocessing", "drift correction", …).
    pub name: &'static str,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Peak resident memory of the process so far, bytes (Linux only).
    pub peak_rss_bytes: Option<u64>,
}

/// The stages of a run, in order.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    /// Each stage as it finished.
    pub stages: Vec<StageTime>,
}

impl Timings {
    /// Runs `f` as stage `name` and records its time and the peak memory after it.
    pub fn stage<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.stages.push(StageTime { name, seconds: start.elapsed().as_secs_f64(), peak_rss_bytes: peak_rss_bytes() });
        out
    }

    /// Total seconds over all stages.
    pub fn total_seconds(&self) -> f64 {
        self.stages.iter().map(|s| s.seconds).sum()
    }
}

/// Peak resident set size of this process (`VmHWM`), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Memory the system can give without swapping (`MemAvailable`), if known.
pub fn available_memory_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_recorded_in_order_with_their_results() {
        let mut t = Timings::default();
        let a = t.stage("first", || 2 + 2);
        let b = t.stage("second", || "x");
        assert_eq!((a, b), (4, "x"));
        let names: Vec<_> = t.stages.iter().map(|s| s.name).collect();
        assert_eq!(names, ["first", "second"]);
        assert!(t.total_seconds() >= 0.0);
        if cfg!(target_os = "linux") {
            assert!(t.stages[0].peak_rss_bytes.unwrap() > 0);
        }
    }
}
