//! Opening a recording from command-line arguments: settings, files, probe, plan.

use std::path::PathBuf;

use anyhow::Result;
use kilosort::io::{BatchReader, BinaryRecording};
use kilosort::{Plan, Probe};

use crate::settings_args::SettingsArgs;

/// A recording opened and checked against its settings and probe.
pub struct Session {
    pub recording: BinaryRecording,
    pub plan: Plan,
    /// How the probe was chosen, for messages.
    pub probe_name: String,
}

impl Session {
    /// Resolves settings (file + flags), the recording files (or the one binary in a folder)
    /// and the probe (all channels in file order when none is given), then builds the plan.
    pub fn open(files: &[PathBuf], probe_arg: Option<&str>, args: &SettingsArgs) -> Result<Self> {
        let mut settings = args.resolve()?;
        settings.filename = match files {
            [one] if one.is_dir() => vec![kilosort::io::find_binary(one)?],
            _ => files.to_vec(),
        };
        settings.validate("command line")?;
        let n_chan_bin = settings.n_chan_bin.expect("validated");
        let recording = BinaryRecording::open(&settings.filename, n_chan_bin, settings.data_dtype)?;
        let (probe, probe_name) = match probe_arg {
            Some(arg) => (Probe::from_name_or_path(arg)?, arg.to_string()),
            None => (every_channel(n_chan_bin), "none given: all channels in file order".to_string()),
        };
        let plan = Plan::new(&settings, &probe, &recording)?;
        Ok(Session { recording, plan, probe_name })
    }

    /// A reader of the plan's batches.
    pub fn reader(&self) -> BatchReader<'_> {
        self.reader_with(self.plan.layout)
    }

    /// A reader over another window/batching of the same recording and channels.
    pub fn reader_with(&self, layout: kilosort::io::BatchLayout) -> BatchReader<'_> {
        let s = &self.plan.settings;
        BatchReader::new(&self.recording, layout, self.plan.probe.channel_map.clone(), s.scale, s.shift)
    }
}

/// A stand-in probe when none is given: every file row, on a vertical line 20 µm apart.
fn every_channel(n: usize) -> Probe {
    let channels = (0..n as u32).collect();
    let y = (0..n).map(|i| 20.0 * i as f32).collect();
    Probe::new("all channels", channels, vec![0.0; n], y, vec![0.0; n], n).expect("a plain list of channels is valid")
}

/// Noise SD estimated robustly (median absolute deviation / 0.6745), so spikes barely count.
pub fn robust_sd(values: &[f32]) -> f64 {
    let mut v: Vec<f32> = values.to_vec();
    let mid = v.len() / 2;
    let (_, &mut median, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    let mut dev: Vec<f32> = values.iter().map(|x| (x - median).abs()).collect();
    let (_, &mut mad, _) = dev.select_nth_unstable_by(mid, f32::total_cmp);
    mad as f64 / 0.6745
}
