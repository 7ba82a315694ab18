//! Simulator speed: wall time, CPU time and × real time of `simulate` for a preset, at 1 thread
//! and at 2 threads (the target: 384 channels at ≥ 20× real time on 2 cores), and the
//! peak RSS of the whole run.
//!
//!     cargo bench -p groundtruth --bench simulate                 # np1-384, 60 s
//!     SIM_BENCH_PRESET=np1-384-drift SIM_BENCH_SECONDS=600 cargo bench -p groundtruth --bench simulate
//!
//! The recording is written under `$SIM_BENCH_DIR` (default: the system's temporary folder)
//! and deleted afterwards; 60 s of 384 channels is 1.4 GB.

use std::time::Instant;

use groundtruth::sim::{SimulationConfig, simulate};

fn main() {
    let preset = std::env::var("SIM_BENCH_PRESET").unwrap_or_else(|_| "np1-384".into());
    let seconds: f64 =
        std::env::var("SIM_BENCH_SECONDS").map_or(60.0, |s| s.parse().expect("SIM_BENCH_SECONDS: seconds"));
    let config = SimulationConfig { duration_s: seconds, ..SimulationConfig::preset(&preset).expect("a known preset") };
    let parent = std::env::var("SIM_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), Into::into);
    let dir = tempfile::tempdir_in(parent).expect("a temporary folder");
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool");
        let out = dir.path().join(format!("threads-{threads}"));
        let (cpu0, wall) = (cpu_seconds(), Instant::now());
        let summary = pool.install(|| simulate(&config, &out, false, &mut |_| {})).expect("simulate");
        let wall = wall.elapsed().as_secs_f64();
        let cpu = cpu_seconds().zip(cpu0).map_or("-".into(), |(b, a)| format!("{:.2} s", b - a));
        println!(
            "{preset}, {seconds} s, {} channels, {threads} thread(s): {wall:.2} s wall ({:.1}× real time), CPU {cpu}",
            summary.n_chan_bin,
            seconds / wall
        );
        std::fs::remove_dir_all(&out).expect("clean up");
    }
    let rss = kilosort::timing::peak_rss_bytes().map_or("-".into(), |b| format!("{:.0} MB", b as f64 / 1e6));
    println!("peak RSS {rss}");
}

/// CPU time (user + system) of this process so far, where `/proc` reports it.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses): utime and stime are the 12th
    // and 13th, in clock ticks (100 per second on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}
