//! Spike detection with universal templates (spec §6): the temporal basis (`wPCA`, `wTEMP`)
//! learned from the data, the template-position grid with its channel neighbourhoods and
//! spatial envelopes, and the matching of every batch against them.
//!
//! Batches come from a caller-supplied source (a closure returning the whitened — and, after
//! drift estimation, drift-corrected — padded batch), so detection does not care how the data
//! were prepared.

mod basis;
mod builtin_templates;
mod grid;
mod learn;
mod universal;

use ndarray::Array3;
use rayon::prelude::*;

pub use basis::{BUILTIN_N_PCS, BUILTIN_N_TEMPLATES, BUILTIN_NT, TemporalBasis};
pub use grid::{TemplateGrid, grid_axes, grid_position_count, vertical_spacing};
pub use learn::{MAX_SNIPPETS, SNIPPET_BATCH_STRIDE, isolated_snippets, learn_basis};
pub use universal::{BatchDetections, DetectionScratch, UniversalMatcher};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::spill::FeatureSpill;

/// The temporal basis: learned from isolated peaks of every 25th batch (spec §6.1), or the
/// built-in universal set ([`TemporalBasis::builtin`]) when `templates_from_data` is false.
///
/// `batch(b)` returns whitened padded batch `b`. Like Kilosort4, collection stops before the
/// batch whose snippets would overflow [`MAX_SNIPPETS`].
///
/// With the built-in set, `nt` and `n_pcs` must match it (61 and 6; [`Settings::validate`]
/// checks this, so `Plan::new` fails before any data is read) and, as in Kilosort4,
/// `n_templates` is ignored: the set always has 6 templates, and detection uses all of them.
///
/// [`Settings::validate`]: crate::Settings::validate
pub fn learn_temporal_basis(
    batch: &dyn crate::pipeline::BatchSource,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<TemporalBasis> {
    let s = &plan.settings;
    if !s.templates_from_data {
        return builtin_basis(plan);
    }
    let used: Vec<usize> = (0..plan.layout.n_batches).step_by(SNIPPET_BATCH_STRIDE).collect();
    progress.start("learning temporal templates", used.len() as u64);
    let per_batch: Vec<Vec<Vec<f32>>> = used
        .par_iter()
        .map(|&b| {
            let mut snippets = Vec::new();
            batch.with_batch(b, &mut |data| {
                snippets = isolated_snippets(data.view(), s.nt, plan.trough_index, s.th_single_ch as f32)
            });
            progress.advance(1);
            snippets
        })
        .collect();
    progress.finish();
    let mut snippets = Vec::new();
    for batch_snippets in per_batch {
        if snippets.len() + batch_snippets.len() > MAX_SNIPPETS {
            break;
        }
        snippets.extend(batch_snippets);
    }
    learn_basis(&snippets, s.nt, s.n_pcs, s.n_templates).ok_or_else(|| Error::NoSpikes {
        stage: "learning temporal templates",
        detail: format!(
            "found {} isolated peaks above Th_single_ch = {} in batches {:?}, fewer than n_pcs = {} / \
             n_templates = {}",
            snippets.len(),
            s.th_single_ch,
            used,
            s.n_pcs,
            s.n_templates
        ),
        fix: "check that the recording holds spikes and that n_chan_bin, the probe and the dtype are right; \
              lowering Th_single_ch finds smaller peaks"
            .into(),
    })
}

/// The built-in set, after checking that `plan` fits it (a `Plan` made from settings that
/// skipped validation could still disagree).
fn builtin_basis(plan: &Plan) -> Result<TemporalBasis> {
    let s = &plan.settings;
    let mismatch = |name: &str, value: usize, needed: usize| Error::InvalidSetting {
        origin: "settings".into(),
        name: name.into(),
        value: value.to_string(),
        reason: format!(
            "the built-in universal templates (templates_from_data = false) need {name} = {needed}: use \
             {name} = {needed} or set templates_from_data = true"
        ),
    };
    if s.nt != BUILTIN_NT {
        return Err(mismatch("nt", s.nt, BUILTIN_NT));
    }
    if s.n_pcs != BUILTIN_N_PCS {
        return Err(mismatch("n_pcs", s.n_pcs, BUILTIN_N_PCS));
    }
    Ok(TemporalBasis::builtin())
}

/// Every spike found by universal-template matching, over all batches, in time order.
#[derive(Debug, Clone)]
pub struct UniversalSpikes {
    /// Sample of the detection (window centre), relative to the analysed window's start.
    pub sample: Vec<i64>,
    /// Batch index (among used batches).
    pub batch: Vec<u32>,
    /// Grid position (universal template) index.
    pub template: Vec<u32>,
    /// `size · n_templates + temporal template` of the best match.
    pub kind: Vec<u16>,
    /// Best |projection|, whitened-noise units.
    pub amplitude: Vec<f32>,
    /// Depth, µm (NaN when undefined, see [`BatchDetections::depth`]).
    pub depth: Vec<f32>,
    /// `(n, nearest_chans, n_pcs)` PC features on each template's channels (Kilosort4's `tF`).
    #[doc(alias = "tF")]
    pub features: Array3<f32>,
}

impl UniversalSpikes {
    /// Number of spikes.
    pub fn len(&self) -> usize {
        self.sample.len()
    }

    /// True when nothing was detected.
    pub fn is_empty(&self) -> bool {
        self.sample.is_empty()
    }

    /// The spikes at `keep` (indices, in order), with their features if they have any.
    pub fn select(&self, keep: &[usize]) -> UniversalSpikes {
        UniversalSpikes {
            sample: keep.iter().map(|&i| self.sample[i]).collect(),
            batch: keep.iter().map(|&i| self.batch[i]).collect(),
            template: keep.iter().map(|&i| self.template[i]).collect(),
            kind: keep.iter().map(|&i| self.kind[i]).collect(),
            amplitude: keep.iter().map(|&i| self.amplitude[i]).collect(),
            depth: keep.iter().map(|&i| self.depth[i]).collect(),
            // Detected without features (Features::Skip): there are none to select.
            features: if self.features.is_empty() {
                self.features.clone()
            } else {
                self.features.select(ndarray::Axis(0), keep)
            },
        }
    }
}

/// Whether detection computes each spike's PC features (`tF`); drift estimation needs only
/// times, depths and amplitudes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Features {
    /// Compute and keep them (240 bytes a spike at the defaults).
    Keep,
    /// Leave [`UniversalSpikes::features`] empty.
    Skip,
}

/// Runs universal-template detection over every batch (spec §6.4–6.6), batches in parallel.
///
/// Kept features wait in a temporary file until the pass ends (see `spill.rs`); the error is
/// that file's.
pub fn detect_spikes(
    batch: &dyn crate::pipeline::BatchSource,
    basis: &TemporalBasis,
    grid: &TemplateGrid,
    plan: &Plan,
    features: Features,
    progress: &dyn Progress,
) -> crate::Result<UniversalSpikes> {
    let s = &plan.settings;
    let matcher = UniversalMatcher::new(basis, grid, &plan.probe.y, plan.trough_index, s.th_universal)
        .with_features(features == Features::Keep);
    let n_batches = plan.layout.n_batches;
    let (n_chan, n_pcs) = (grid.channels.ncols(), basis.n_pcs());
    let mut out = UniversalSpikes {
        sample: Vec::new(),
        batch: Vec::new(),
        template: Vec::new(),
        kind: Vec::new(),
        amplitude: Vec::new(),
        depth: Vec::new(),
        features: Array3::zeros((0, n_chan, n_pcs)),
    };
    let mut spill = if features == Features::Keep { Some(FeatureSpill::new()?) } else { None };
    let mut spill_result = Ok(());
    let stride = (plan.layout.batch_size * s.batch_downsampling) as i64;
    progress.start("detecting spikes", n_batches as u64);
    let mut b = 0;
    let scratch: crate::parallel::Pool<DetectionScratch> = Default::default();
    crate::parallel::for_each_batch_in_order(
        n_batches,
        || (),
        |_, b| {
            let mut d = BatchDetections::default();
            batch.with_batch(b, &mut |data| d = scratch.with(|scratch| matcher.detect_with(data.view(), scratch)));
            progress.advance(1);
            d
        },
        |d| {
            let offset = b as i64 * stride - plan.layout.pad as i64;
            out.sample.extend(d.column.iter().map(|&t| t as i64 + offset));
            out.batch.extend(std::iter::repeat_n(b as u32, d.column.len()));
            out.template.extend(d.template);
            out.kind.extend(d.kind);
            out.amplitude.extend(d.amplitude);
            out.depth.extend(d.depth);
            if let (Some(spill), true) = (&mut spill, spill_result.is_ok()) {
                spill_result = spill.extend(&d.features);
            }
            b += 1;
        },
    );
    progress.finish();
    // The batch buffers go before the spilled features come back.
    drop(scratch);
    batch.release();
    spill_result?;
    let all_features = spill.map_or(Ok(Vec::new()), FeatureSpill::finish)?;
    let n_with_features = if features == Features::Keep { out.len() } else { 0 };
    out.features =
        Array3::from_shape_vec((n_with_features, n_chan, n_pcs), all_features).expect("features of every spike");
    Ok(out)
}

#[cfg(test)]
mod tests;
