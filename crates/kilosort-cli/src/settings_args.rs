//! Settings on the command line: `--settings FILE` plus one flag per row of the parameter table.
//!
//! The flags are generated from `kilosort::settings::PARAMETERS`, so `--help` shows the same
//! text as the settings' doc comments and a new setting needs no CLI change.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use kilosort::settings::{Kind, PARAMETERS, Settings, Value};

/// Settings given on the command line.
#[derive(Debug, Clone, Default)]
pub struct SettingsArgs {
    /// A settings file (.json as Kilosort4 saves it, or .toml).
    pub file: Option<PathBuf>,
    /// Individual settings, in table order: (name, text as typed).
    pub overrides: Vec<(&'static str, String)>,
}

const FILE_ID: &str = "settings_file";

impl SettingsArgs {
    /// Defaults, then the file, then the individual flags.
    pub fn resolve(&self) -> Result<Settings> {
        let mut settings = Settings::default();
        if let Some(file) = &self.file {
            settings.apply_file(file)?;
        }
        let entries: Vec<(String, Value)> =
            self.overrides.iter().map(|(name, text)| (name.to_string(), Value::parse_cli(text))).collect();
        settings.apply(&entries, "command line")?;
        Ok(settings)
    }
}

fn flag_for(p: &kilosort::settings::Parameter) -> Option<Arg> {
    if p.kind == Kind::Table {
        return None;
    }
    let value_name = match p.kind {
        Kind::Int => "INT",
        Kind::Float => "NUMBER",
        Kind::Bool => "BOOL",
        Kind::NumberList => "LIST",
        Kind::Text => "TEXT",
        Kind::Paths => "PATH",
        Kind::Table => unreachable!(),
    };
    let kebab = p.name.to_ascii_lowercase().replace('_', "-");
    let mut arg = Arg::new(p.name)
        .long(p.name)
        .value_name(value_name)
        .num_args(1)
        .help(p.help_line())
        .help_heading(format!("Settings: {}", p.stage.name()));
    if kebab != p.name {
        arg = arg.visible_alias(kebab);
    }
    if p.name == "data_dtype" {
        arg = arg.visible_alias("dtype");
    }
    Some(arg)
}

impl Args for SettingsArgs {
    fn augment_args(cmd: Command) -> Command {
        let cmd = cmd.arg(
            Arg::new(FILE_ID)
                .long("settings")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .help("Settings file (.json as Kilosort4 saves it, or .toml); flags given as well override it"),
        );
        PARAMETERS.iter().filter_map(flag_for).fold(cmd, Command::arg)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = SettingsArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(file) = matches.get_one::<PathBuf>(FILE_ID) {
            self.file = Some(file.clone());
        }
        for p in PARAMETERS.iter().filter(|p| p.kind != Kind::Table) {
            if let Some(text) = matches.get_one::<String>(p.name) {
                self.overrides.push((p.name, text.clone()));
            }
        }
        Ok(())
    }
}
