//! `kilosort-rs`: the command-line interface of kilosort-rs, a thin layer over the `kilosort`
//! library. Errors are printed with their context and give a non-zero exit code.

mod compare;
mod demo;
mod info;
mod probe_cmd;
mod probe_plot;
mod progress_bar;
mod session;
mod settings_args;
mod simulate;
mod sort;
mod view;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use settings_args::SettingsArgs;

/// Spike sorting for silicon-probe recordings (a Rust reimplementation of Kilosort4).
#[derive(Debug, Parser)]
#[command(name = "kilosort-rs", version, about, max_term_width = 110)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a small recording, sort it and score the result against its ground truth.
    Demo(demo::DemoArgs),
    /// Sort a recording into a Phy results folder.
    Sort(Box<sort::SortArgs>),
    /// Describe a recording: duration, channels, batches, per-channel RMS, and the probe.
    Info {
        /// The binary recording(s), concatenated in time, or a folder holding one.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Probe file (.json/.mat/.prb) or built-in name (see `kilosort-rs probe list`).
        #[arg(long)]
        probe: Option<String>,
        /// Also fit the preprocessing and report each channel's noise after whitening.
        #[arg(long)]
        preprocessed: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Draw a time window of the data, raw or preprocessed, as a PNG heatmap.
    View(view::ViewArgs),
    /// Inspect and convert probe files.
    #[command(subcommand)]
    Probe(probe_cmd::ProbeCommand),
    /// List every setting with its default, range and help.
    Settings,
    /// Simulate a recording with known spikes (ground truth) into a folder.
    Simulate(simulate::SimulateArgs),
    /// Score a sorting against ground truth (SpikeInterface's comparison, and Kilosort's score).
    Compare(compare::CompareArgs),
}

fn main() -> ExitCode {
    return_large_blocks_to_the_system();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { files, probe, preprocessed, settings } => {
            info::run(&files, probe.as_deref(), &settings, preprocessed)
        }
        Command::Sort(args) => sort::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Probe(cmd) => probe_cmd::run(cmd),
        Command::View(args) => view::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Settings => {
            print_settings_table();
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_settings_table() {
    let defaults = kilosort::Settings::default().to_values();
    for (p, (_, default)) in kilosort::settings::PARAMETERS.iter().zip(defaults) {
        println!("{:<24} {:<16} default {:<14} {}", p.name, p.stage.name(), default.to_string(), p.help_line());
    }
}

/// Every allocation of 1 MiB or more gets its own mapping, returned to the system when freed
/// and grown in place by `realloc`. glibc's default raises that threshold up to 32 MiB after
/// the first large frees (batch buffers), and then the doubling per-spike tables leave their
/// old copies in the heap: peak RSS at 384 channels × 180 s went from 650 to 755 MB.
fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Bytes from which an allocation is its own mapping.
        const MMAP_THRESHOLD: libc::c_int = 1 << 20;
        // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}
