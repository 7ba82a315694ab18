//! # kilosort
//!
//! Spike sorting for silicon-probe recordings: a Rust reimplementation of Kilosort4 (4.1.7).
//!
//! The library holds every algorithm and all I/O; the `kilosort-rs` binary, and later the GUI
//! and Python bindings, are thin layers over it. Each pipeline stage lives in its own module and
//! is a function from typed inputs to typed outputs.
//!
//! ```
//! use kilosort::{probe::builtin, settings::Settings};
//!
//! let probe = builtin::by_name("NeuroPix1_default").unwrap();
//! assert_eq!(probe.len(), 383);
//! let mut settings = Settings::default();
//! settings.n_chan_bin = Some(385);
//! assert_eq!(settings.nt, 61);
//! ```
#![deny(missing_docs)]

pub mod cluster;
mod correlate;
pub mod detect;
pub mod drift;
pub mod error;
pub mod io;
pub mod matching;
pub mod output_guard;
mod parallel;
pub mod phy;
pub mod pipeline;
pub mod plan;
pub mod postprocess;
pub mod preprocess;
pub mod probe;
pub mod progress;
mod rows;
pub mod settings;
pub mod simd;
mod spill;
pub mod timing;

pub use error::{Error, Result};
pub use plan::Plan;
pub use probe::Probe;
pub use settings::Settings;
