//! Progress of library stages on stderr: one line per stage, updated in place on a terminal,
//! and a plain line per finished stage otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kilosort::progress::Progress;

/// Prints stage progress to stderr.
pub struct StderrProgress {
    stage: Mutex<(String, u64, Instant)>,
    done: AtomicU64,
    terminal: bool,
    quiet: bool,
}

impl StderrProgress {
    pub fn new(quiet: bool) -> Self {
        StderrProgress {
            stage: Mutex::new((String::new(), 0, Instant::now())),
            done: AtomicU64::new(0),
            terminal: std::io::stderr().is_terminal(),
            quiet,
        }
    }

    fn draw(&self, done: u64) {
        let stage = self.stage.lock().expect("progress lock");
        let (name, total, _) = &*stage;
        let width = 30usize;
        let filled = if *total == 0 { width } else { (done.min(*total) as usize * width) / *total as usize };
        eprint!("\r{name:<34} [{}{}] {done}/{total}", "#".repeat(filled), " ".repeat(width - filled));
        let _ = std::io::stderr().flush();
    }
}

impl Progress for StderrProgress {
    fn start(&self, stage: &str, total: u64) {
        *self.stage.lock().expect("progress lock") = (stage.to_string(), total, Instant::now());
        self.done.store(0, Ordering::SeqCst);
        if self.terminal && !self.quiet {
            self.draw(0);
        }
    }

    fn advance(&self, done: u64) {
        let now = self.done.fetch_add(done, Ordering::SeqCst) + done;
        if self.terminal && !self.quiet {
            self.draw(now);
        }
    }

    fn finish(&self) {
        if self.quiet {
            return;
        }
        let stage = self.stage.lock().expect("progress lock");
        let (name, _, start) = &*stage;
        let secs = start.elapsed().as_secs_f64();
        if self.terminal {
            eprintln!("\r{name:<34} done in {secs:.1} s{}", " ".repeat(30));
        } else {
            eprintln!("{name}: done in {secs:.1} s");
        }
    }
}
