//! `kilosort-rs probe …`: list, show, picture and convert probes.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use kilosort::probe::{Probe, builtin, write_kilosort_json};

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// List the built-in probes.
    List,
    /// Print a probe's geometry, and optionally draw its contacts as a PNG.
    Show {
        /// Probe file (.json/.mat/.prb) or built-in name.
        probe: String,
        /// Write a picture of the contacts here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Print every channel, not only the summary.
        #[arg(long)]
        all: bool,
    },
    /// Convert a probe (.mat/.prb/probeinterface .json/built-in) to Kilosort4 .json.
    Convert {
        /// Probe file or built-in name.
        input: String,
        /// Output path ending in .json.
        output: PathBuf,
    },
}

pub fn run(cmd: ProbeCommand) -> Result<()> {
    match cmd {
        ProbeCommand::List => {
            for name in builtin::NAMES {
                println!("{name:<20} {}", builtin::description(name));
            }
        }
        ProbeCommand::Show { probe, png, all } => {
            let p = Probe::from_name_or_path(&probe)?;
            println!("{probe}: {}", describe_probe(&p));
            if all {
                println!("{:>6} {:>8} {:>9} {:>9} {:>6}", "index", "chanMap", "x (µm)", "y (µm)", "shank");
                for i in 0..p.len() {
                    println!("{i:>6} {:>8} {:>9.1} {:>9.1} {:>6}", p.channel_map[i], p.x[i], p.y[i], p.shank[i]);
                }
            }
            if let Some(path) = png {
                crate::probe_plot::draw(&p, &probe, &path)?;
                println!("wrote {}", path.display());
            }
        }
        ProbeCommand::Convert { input, output } => {
            let p = Probe::from_name_or_path(&input)?;
            write_kilosort_json(&p, &output)?;
            println!("wrote {} ({} channels)", output.display(), p.len());
        }
    }
    Ok(())
}

/// One line: channel counts, shanks, extent and spacing.
pub fn describe_probe(p: &Probe) -> String {
    let range = |v: &[f32]| {
        let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (lo, hi)
    };
    let ((x0, x1), (y0, y1)) = (range(&p.x), range(&p.y));
    let shanks = p.shank_ids();
    format!(
        "{} sorted channels of {} sites, {} shank{}, x {x0}–{x1} µm, y {y0}–{y1} µm, file rows {}–{}",
        p.len(),
        p.n_chan,
        shanks.len(),
        if shanks.len() == 1 { "" } else { "s" },
        p.channel_map.iter().min().unwrap_or(&0),
        p.channel_map.iter().max().unwrap_or(&0),
    )
}
