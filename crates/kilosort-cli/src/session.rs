//! Opening a recording from command-line arguments: settings, files, probe, plan.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use kilosort::io::{BatchReader, OpenOptions, Recording, open_recording, settings_for_recording};
use kilosort::output_guard::is_within;
use kilosort::plan::resolve_probe;
use kilosort::{Plan, Probe, Settings};

use crate::settings_args::SettingsArgs;

/// A recording opened and checked against its settings and probe.
pub struct Session {
    pub recording: Box<dyn Recording>,
    pub plan: Plan,
    /// How the probe was chosen, for messages.
    pub probe_name: String,
    /// The settings file, if one was given.
    pub settings_file: Option<PathBuf>,
}

impl Session {
    /// Resolves settings (file + flags), the recording files (or the one binary in a folder)
    /// and the probe (all channels in file order when none is given), then builds the plan.
    /// A recording or probe given both as an argument and as a setting must be the same one.
    pub fn open(files: &[PathBuf], probe_arg: Option<&str>, args: &SettingsArgs) -> Result<Self> {
        let mut settings = args.resolve()?;
        settings.filename = recording_files(files, &settings)?;
        settings.data_file_path.clear();
        if let Some(arg) = probe_arg {
            use_probe_argument(&mut settings, arg)?;
        }
        let recording = open_recording(&settings.filename, &OpenOptions::from_settings(&settings))?;
        let settings = settings_for_recording(&settings, recording.as_ref())?;
        settings.validate("command line")?;
        let (probe, probe_name) = match (resolve_probe(&settings)?, recording.probe()) {
            (Some(probe), _) => (probe, probe_arg.map_or_else(|| probe_setting_name(&settings), str::to_string)),
            (None, Some(probe)) => (probe, recording.probe_source().unwrap_or_else(|| "from the recording".into())),
            (None, None) => {
                (every_channel(recording.n_chan_bin()), "none given: all channels in file order".to_string())
            }
        };
        let plan = Plan::new(&settings, &probe, recording.as_ref())?;
        Ok(Session { recording, plan, probe_name, settings_file: args.file.clone() })
    }

    /// The files this run reads (recording, probe, settings), which no output may replace.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let s = &self.plan.settings;
        s.filename.iter().chain(&s.probe_path).chain(&self.settings_file).cloned().collect()
    }

    /// A reader of the plan's batches.
    pub fn reader(&self) -> BatchReader<'_> {
        self.reader_with(self.plan.layout)
    }

    /// A reader over another window/batching of the same recording and channels.
    pub fn reader_with(&self, layout: kilosort::io::BatchLayout) -> BatchReader<'_> {
        let s = &self.plan.settings;
        BatchReader::new(self.recording.as_ref(), layout, self.plan.probe.channel_map.clone(), s.scale, s.shift)
    }
}

/// The recording files: the arguments (the one binary of a folder), which must agree with a
/// `filename` or `data_file_path` that the settings name as well.
fn recording_files(files: &[PathBuf], settings: &Settings) -> Result<Vec<PathBuf>> {
    let from_args = match files {
        [one] if one.is_dir() => vec![kilosort::io::find_binary(one)?],
        _ => files.to_vec(),
    };
    let from_settings = if settings.filename.is_empty() { &settings.data_file_path } else { &settings.filename };
    let same = |a: &Vec<PathBuf>, b: &Vec<PathBuf>| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_file(x, y));
    if !from_settings.is_empty() && !same(&from_args, from_settings) {
        bail!(
            "the recording is given twice, differently: {} as the argument and {} in the settings (filename); \
             give it once",
            list(&from_args),
            list(from_settings)
        );
    }
    Ok(from_args)
}

/// `--probe ARG` as the settings would name it (`probe_path` for a file, else `probe_name`),
/// refused when the settings name another probe.
fn use_probe_argument(settings: &mut Settings, arg: &str) -> Result<()> {
    let path = Path::new(arg);
    let is_file = path.is_file();
    let agrees = match (&settings.probe_path, &settings.probe_name) {
        (Some(p), _) => is_file && same_file(p, path),
        (None, Some(name)) => name == arg,
        (None, None) => matches!(settings.probe, kilosort::settings::Value::Null),
    };
    if !agrees {
        bail!(
            "the probe is given twice, differently: --probe {arg} and {} in the settings; give it once",
            probe_setting_name(settings)
        );
    }
    if is_file {
        settings.probe_path = Some(path.to_path_buf());
    } else {
        settings.probe_name = Some(arg.to_string());
    }
    Ok(())
}

/// How the settings name their probe, for messages.
fn probe_setting_name(settings: &Settings) -> String {
    match (&settings.probe_path, &settings.probe_name) {
        (_, Some(name)) => format!("probe_name = {name}"),
        (Some(path), None) => format!("probe_path = {}", path.display()),
        (None, None) => "an embedded probe dictionary (probe)".to_string(),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    is_within(a, b) && is_within(b, a)
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
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
