//! The parameter table: one row per setting, shared by validation, CLI help, the GUI and docs.

use super::types::Kind;
use super::value::Value;

/// The pipeline step a setting belongs to (Kilosort4's grouping in its GUI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the binary file.
    Data,
    /// Filtering, whitening, drift correction.
    Preprocessing,
    /// Universal-template detection and matching pursuit.
    SpikeDetection,
    /// Graph clustering and merges.
    Clustering,
    /// Export and labels.
    Postprocessing,
    /// How the run is set up (files, probe, switches) rather than an algorithm parameter.
    Run,
}

impl Stage {
    /// A human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Data => "data",
            Stage::Preprocessing => "preprocessing",
            Stage::SpikeDetection => "spike detection",
            Stage::Clustering => "clustering",
            Stage::Postprocessing => "postprocessing",
            Stage::Run => "run",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Parameter {
    /// Name as Kilosort4 spells it (the settings-file key and the CLI flag).
    pub name: &'static str,
    /// The step it belongs to.
    pub stage: Stage,
    /// What kind of value it holds.
    pub kind: Kind,
    /// Whether None/null is allowed.
    pub nullable: bool,
    /// Smallest allowed value (numbers only, inclusive).
    pub min: f64,
    /// Largest allowed value (numbers only, inclusive).
    pub max: f64,
    /// Values that are not allowed even inside the range.
    pub exclude: &'static [f64],
    /// Short label for forms.
    pub label: &'static str,
    /// Help text: the field's doc comment.
    pub help: &'static str,
}

impl Parameter {
    /// Checks a value against the range and the excluded values; returns why it is invalid.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        match (self.kind, value) {
            (_, Value::Null) if self.nullable => Ok(()),
            (Kind::Int | Kind::Float, v) => self.check_number(v.as_f64().unwrap_or(f64::NAN)),
            (Kind::NumberList, Value::List(items)) => {
                items.iter().try_for_each(|v| self.check_number(v.as_f64().unwrap_or(f64::NAN)))
            }
            _ => Ok(()),
        }
    }

    fn check_number(&self, x: f64) -> Result<(), String> {
        if x.is_nan() || x < self.min || x > self.max {
            return Err(format!("allowed range is {} to {} ({})", show(self.min), show(self.max), self.help.trim()));
        }
        if self.exclude.contains(&x) {
            return Err(format!("{} is not allowed ({})", show(x), self.help.trim()));
        }
        Ok(())
    }

    /// The help text on one line.
    pub fn help_line(&self) -> String {
        self.help.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

fn show(x: f64) -> String {
    if x.is_infinite() { if x > 0.0 { "inf".into() } else { "-inf".into() } } else { x.to_string() }
}

/// The row for `name`; every field of `Settings` has one by construction.
pub(super) fn row(name: &str) -> &'static Parameter {
    super::PARAMETERS.iter().find(|p| p.name == name).expect("PARAMETERS is generated from the Settings fields")
}
