//! `sort`: the whole pipeline, one call per stage, in Kilosort4's order (spec §14.1).
//!
//! Every pass reads the recording batch by batch through one reader; what grows with the
//! recording's length is only the per-spike tables.

use ndarray::Array2;

use crate::detect::{self, TemplateGrid, TemporalBasis, UniversalSpikes};
use crate::error::Result;
use crate::io::{BatchReader, BinaryRecording};
use crate::plan::Plan;
use crate::preprocess::Preprocessor;
use crate::progress::Progress;
use crate::timing::Timings;

/// Everything a sort produced before export, plus the time each stage took.
#[derive(Debug)]
pub struct SortOutput {
    /// The fitted preprocessing (whitening matrix for Phy).
    pub preprocessor: Preprocessor,
    /// The learned temporal basis (`wPCA`, `wTEMP`).
    pub basis: TemporalBasis,
    /// The universal-template grid.
    pub grid: TemplateGrid,
    /// Universal-template detections (drift-corrected data).
    pub universal: UniversalSpikes,
    /// Stage timings.
    pub timings: Timings,
}

/// Whitened padded batch `b`: read, filtered, whitened.
pub fn whitened_batch(reader: &BatchReader, pre: &Preprocessor, b: usize) -> Array2<f32> {
    let mut raw = reader.read(b).data;
    let mut out = Array2::zeros(raw.dim());
    pre.apply(&mut raw, &mut out);
    out
}

/// Sorts `recording` as `plan` says.
pub fn sort(recording: &BinaryRecording, plan: &Plan, progress: &dyn Progress) -> Result<SortOutput> {
    let s = &plan.settings;
    let mut timings = Timings::default();
    let reader = BatchReader::new(recording, plan.layout, plan.probe.channel_map.clone(), s.scale, s.shift);
    let pre = timings.stage("preprocessing", || Preprocessor::fit(&reader, plan, progress));
    let source = |b: usize| whitened_batch(&reader, &pre, b);
    let grid = TemplateGrid::new(&plan.probe, s);
    let (basis, universal) = timings.stage("spike detection", || -> Result<_> {
        let basis = detect::learn_temporal_basis(&source, plan, progress)?;
        let spikes = detect::detect_spikes(&source, &basis, &grid, plan, progress);
        Ok((basis, spikes))
    })?;
    Ok(SortOutput { preprocessor: pre, basis, grid, universal, timings })
}
