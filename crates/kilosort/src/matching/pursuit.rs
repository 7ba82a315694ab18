//! Matching pursuit with the learned templates (Kilosort4's `run_matching` and `extract`,
//! spec §8.3–8.4): every batch is explained greedily by scaled templates, and each spike found
//! gets a time, a template, an amplitude and PC features.

use std::sync::Mutex;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::prepare::{
    PartnerLags, depth_order, nearest_channels, neighbourhood_coefficients, partner_lags, peak_channels,
    support_waveforms, truncate_to_support,
};
use super::scores::ScoreKernel;
use super::table::{RowChunk, ScoreTable};
use crate::Plan;
use crate::detect::TemporalBasis;
use crate::probe::Probe;

/// The sizes and thresholds matching pursuit needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchingOptions {
    /// Samples per batch, without padding (`batch_size`, Kilosort4's `NT`).
    pub batch_size: usize,
    /// Trough sample inside a waveform window (`nt0min`).
    pub nt0min: usize,
    /// Only every k-th batch is read (`batch_downsampling`); batch i starts at sample i·k·NT.
    pub batch_downsampling: usize,
    /// A spike must explain more than `Th_learned²` of variance (`Th_learned`).
    pub th_learned: f32,
    /// At most this many rounds of peeling per batch (`max_peels`).
    pub max_peels: usize,
    /// Channels closer than this to a template's peak channel are used for spike positions, µm
    /// (`position_limit`).
    pub position_limit: f32,
    /// Channels per feature neighbourhood (`nearest_chans`).
    pub nearest_chans: usize,
}

impl MatchingOptions {
    /// The options of a validated run.
    pub fn from_plan(plan: &Plan) -> Self {
        let s = &plan.settings;
        MatchingOptions {
            batch_size: plan.layout.batch_size,
            nt0min: plan.trough_index,
            batch_downsampling: plan.layout.downsampling,
            th_learned: s.th_learned as f32,
            max_peels: s.max_peels,
            position_limit: s.position_limit as f32,
            nearest_chans: plan.nearest_chans,
        }
    }
}

/// The spikes found in one batch, sorted by time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatchedBatch {
    /// Trough time, samples relative to the first analysed sample.
    pub sample: Vec<i64>,
    /// Learned template of each spike.
    pub template: Vec<u32>,
    /// Template scale that best fits the data (`B/‖T‖²`).
    pub amplitude: Vec<f32>,
    /// Projection of the data on the unit-norm template, `relu(B)/‖T‖` (Kilosort4's `th_amps`,
    /// the third column of `st`): compare with `Th_learned`.
    #[doc(alias = "th_amps")]
    pub threshold_amp: Vec<f32>,
    /// PC features on the template's peak-channel neighbourhood, `(n_spikes, nearest_chans,
    /// n_pcs)`: the residual after all subtractions plus the spike's own template (`tF`).
    #[doc(alias = "tF")]
    pub features: Array3<f32>,
}

impl MatchedBatch {
    /// Number of spikes.
    pub fn len(&self) -> usize {
        self.sample.len()
    }

    /// True when no spike was found.
    pub fn is_empty(&self) -> bool {
        self.sample.is_empty()
    }
}

/// One spike found by peeling: table row (padded column − nt), template column, amplitude, th.
#[derive(Debug, Clone, Copy)]
struct Peak {
    row: usize,
    column: usize,
    amplitude: f32,
    threshold_amp: f32,
}

/// Memory kept between batches.
#[derive(Debug, Default)]
struct Scratch {
    table: Option<ScoreTable>,
    residual: Option<Array2<f32>>,
}

/// Learned templates prepared for matching pursuit on whitened batches.
///
/// `match_batch` may be called from several threads at once. The score table of the last batch
/// (4·K·NT bytes: 240 MB for 1000 templates and 2 s batches, as Kilosort4's `B`) and the residual
/// are kept for the next call, so their memory is not allocated and zeroed again every batch.
#[derive(Debug)]
pub struct TemplateMatcher {
    options: MatchingOptions,
    pcs: Array2<f32>,
    templates: Array3<f32>,
    nearest: Array2<usize>,
    nearest_mask: Array2<bool>,
    peaks: Vec<usize>,
    own_features: Array3<f32>,
    /// Table column j holds template `order[j]` (templates in depth order).
    order: Vec<usize>,
    /// Squared norms in column order.
    norms: Vec<f32>,
    kernel: ScoreKernel,
    /// Per column: support channels and waveform there, and the partners' cross-correlations.
    supports: Vec<Vec<usize>>,
    waveforms: Vec<Array2<f32>>,
    partners: Vec<PartnerLags>,
    scratch: Mutex<Option<Scratch>>,
}

impl TemplateMatcher {
    /// Prepares `templates` (`(K, n_channels, n_pcs)`, the learned templates) for `probe`.
    ///
    /// Each template is truncated to the channels holding more than
    /// [`SUPPORT_ENERGY_FRACTION`](super::SUPPORT_ENERGY_FRACTION) of its peak channel's energy.
    pub fn new(templates: ArrayView3<f32>, basis: &TemporalBasis, probe: &Probe, options: MatchingOptions) -> Self {
        assert_eq!(templates.len_of(Axis(1)), probe.len(), "one template row per probe channel");
        assert_eq!(templates.len_of(Axis(2)), basis.n_pcs(), "one coefficient per PC");
        let (templates, supports) = truncate_to_support(templates);
        let peaks = peak_channels(templates.view());
        let (nearest, nearest_mask) = nearest_channels(probe, options.nearest_chans, options.position_limit);
        let own_features = neighbourhood_coefficients(templates.view(), &peaks, &nearest);
        let order = depth_order(&peaks, probe);
        let sorted = templates.select(Axis(0), &order);
        let supports: Vec<Vec<usize>> = order.iter().map(|&k| supports[k].clone()).collect();
        let norms = sorted.outer_iter().map(|w| w.iter().map(|v| v * v).sum()).collect();
        TemplateMatcher {
            kernel: ScoreKernel::new(sorted.view(), &supports, basis.pcs.view()),
            waveforms: support_waveforms(sorted.view(), &supports, basis.pcs.view()),
            partners: partner_lags(sorted.view(), &supports, basis.pcs.view()),
            scratch: Mutex::new(None),
            supports,
            norms,
            order,
            options,
            pcs: basis.pcs.clone(),
            templates,
            nearest,
            nearest_mask,
            peaks,
            own_features,
        }
    }

    /// The templates as matched (after truncation), `(K, n_channels, n_pcs)`.
    pub fn templates(&self) -> ArrayView3<'_, f32> {
        self.templates.view()
    }

    /// Each channel's nearest channels, itself first, `(n_channels, nearest_chans)` (`iCC`ᵀ).
    #[doc(alias = "iCC")]
    pub fn nearest_channels(&self) -> ArrayView2<'_, usize> {
        self.nearest.view()
    }

    /// Whether each of those lies within `position_limit` (`iCC_mask`ᵀ).
    #[doc(alias = "iCC_mask")]
    pub fn nearest_channel_mask(&self) -> ArrayView2<'_, bool> {
        self.nearest_mask.view()
    }

    /// The channel of largest energy of each template (`iU`).
    #[doc(alias = "iU")]
    pub fn peak_channels(&self) -> &[usize] {
        &self.peaks
    }

    /// Finds the spikes of one whitened, padded batch (`n_channels × (NT + 2nt)`, column p is
    /// sample `batch_index·batch_downsampling·NT + p − nt`).
    pub fn match_batch(&self, data: ArrayView2<f32>, batch_index: usize) -> MatchedBatch {
        let (mut scratch, mut table) = self.filled_table(data);
        let mut residual = match scratch.residual.take() {
            Some(mut r) if r.dim() == data.dim() => {
                r.assign(&data);
                r
            }
            _ => data.as_standard_layout().into_owned(),
        };
        let peaks = self.peel(&mut table, &mut residual);
        let found = self.extract(&peaks, residual.view(), batch_index);
        self.keep_scratch(scratch, table, Some(residual));
        found
    }

    /// [`Self::match_batch`] peeling the spikes off `data` itself, which is left as the
    /// residual: no copy of the batch is made or kept.
    pub fn match_in_place(&self, data: &mut Array2<f32>, batch_index: usize) -> MatchedBatch {
        let (scratch, mut table) = self.filled_table(data.view());
        let peaks = self.peel(&mut table, data);
        let found = self.extract(&peaks, data.view(), batch_index);
        self.keep_scratch(scratch, table, None);
        found
    }

    /// The scratch memory left by the previous batch and the score table of `data`.
    fn filled_table(&self, data: ArrayView2<f32>) -> (Scratch, ScoreTable) {
        let nt = self.pcs.ncols();
        assert_eq!(data.nrows(), self.templates.len_of(Axis(1)), "one data row per channel");
        assert!(data.ncols() > 2 * nt, "a padded batch is longer than twice the padding");
        let n_rows = data.ncols() - 2 * nt;
        // Reuse the previous batch's table and residual memory (hundreds of MB at K = 1000):
        // filling overwrites every entry that is read.
        let mut scratch = self.scratch.lock().map(|mut s| s.take()).unwrap_or(None).unwrap_or_default();
        let mut table = match scratch.table.take() {
            Some(t) if t.n_rows() == n_rows => t,
            _ => ScoreTable::new(n_rows, &self.norms),
        };
        self.kernel.fill(data, &mut table);
        (scratch, table)
    }

    /// Keeps the score table (and a residual buffer) for the next batch.
    fn keep_scratch(&self, mut scratch: Scratch, table: ScoreTable, residual: Option<Array2<f32>>) {
        scratch.table = Some(table);
        scratch.residual = residual;
        if let Ok(mut s) = self.scratch.lock() {
            *s = Some(scratch);
        }
    }

    /// Frees the memory kept for the next batch (the score table, tens to hundreds of MB),
    /// once no batch is left to match.
    pub fn release_scratch(&self) {
        if let Ok(mut s) = self.scratch.lock() {
            *s = None;
        }
    }

    /// Repeatedly takes every sample whose best template explains the most variance within ±nt
    /// samples (above `Th_learned²`, i.e. threshold amplitude above `Th_learned`), and subtracts
    /// those spikes from the residual and scores.
    fn peel(&self, table: &mut ScoreTable, residual: &mut Array2<f32>) -> Vec<Peak> {
        let nt = self.pcs.ncols();
        let threshold = self.options.th_learned;
        let mut found = Vec::new();
        for _ in 0..self.options.max_peels {
            let rows = table.peaks(nt, threshold);
            if rows.is_empty() {
                break;
            }
            let round: Vec<Peak> = rows
                .iter()
                .map(|&row| {
                    let (threshold_amp, column) = table.best(row);
                    let amplitude = table.score(row, column) / self.norms[column];
                    Peak { row, column, amplitude, threshold_amp }
                })
                .collect();
            // Kilosort4 subtracts the even-numbered spikes, then the odd ones.
            for half in 0..2 {
                let part: Vec<Peak> = round.iter().skip(half).step_by(2).copied().collect();
                self.subtract_all(&part, table, residual.view_mut());
            }
            found.extend(round);
        }
        found
    }

    /// Subtracts every spike of one half-round. Their windows of ±nt samples do not overlap
    /// (every other peak of a round is more than 2nt samples from the next), so the table and
    /// the residual are cut between them and the spikes are subtracted in parallel; the result
    /// does not depend on the number of threads.
    fn subtract_all(&self, peaks: &[Peak], table: &mut ScoreTable, residual: ArrayViewMut2<f32>) {
        let nt = self.pcs.ncols();
        if peaks.windows(2).all(|w| w[1].row - w[0].row > 2 * nt) {
            self.subtract_in_parallel(peaks, table, residual);
        } else {
            // Only exactly tied maxima closer than nt get here.
            self.subtract_in_turn(peaks, table, residual);
        }
    }

    /// Subtracts the spikes one after the other.
    fn subtract_in_turn(&self, peaks: &[Peak], table: &mut ScoreTable, mut residual: ArrayViewMut2<f32>) {
        let mut whole = table.row_chunks_at(&[0]);
        for p in peaks {
            self.subtract(p, &mut whole[0], residual.view_mut(), 0);
        }
    }

    /// Subtracts spikes more than 2nt samples apart, each in its own slice of the table and
    /// residual.
    fn subtract_in_parallel(&self, peaks: &[Peak], table: &mut ScoreTable, residual: ArrayViewMut2<f32>) {
        let nt = self.pcs.ncols();
        let starts: Vec<usize> =
            std::iter::once(0).chain(peaks.windows(2).map(|w| (w[0].row + w[1].row) / 2 + 1)).collect();
        // Residual piece i starts at padded column starts[i] + nt (table row r is column r + nt),
        // except the first, which starts at column 0.
        let offsets: Vec<usize> = starts.iter().map(|&s| if s == 0 { 0 } else { s + nt }).collect();
        let mut pieces = Vec::with_capacity(peaks.len());
        let mut rest = residual;
        for w in offsets.windows(2) {
            let (piece, tail) = rest.split_at(Axis(1), w[1] - w[0]);
            pieces.push(piece);
            rest = tail;
        }
        pieces.push(rest);
        table
            .row_chunks_at(&starts)
            .into_par_iter()
            .zip(pieces)
            .zip(peaks)
            .zip(offsets)
            .for_each(|(((mut chunk, piece), p), offset)| self.subtract(p, &mut chunk, piece, offset));
    }

    /// Removes one spike's template from the residual (whose first column is padded column
    /// `offset`) and its effect from the scores.
    fn subtract(&self, peak: &Peak, chunk: &mut RowChunk, mut residual: ArrayViewMut2<f32>, offset: usize) {
        let nt = self.pcs.ncols();
        let start = peak.row + nt - nt / 2 - offset;
        for (&c, wave) in self.supports[peak.column].iter().zip(self.waveforms[peak.column].outer_iter()) {
            let mut row = residual.row_mut(c);
            let window = &mut row.as_slice_mut().expect("rows are contiguous")[start..start + nt];
            window.iter_mut().zip(wave).for_each(|(x, &w)| *x -= peak.amplitude * w);
        }
        let partners = &self.partners[peak.column];
        if partners.width > 0 {
            let columns = partners.start..partners.start + partners.width;
            chunk.subtract(peak.row, nt, peak.amplitude, &partners.lags, columns);
        }
    }

    /// Times, template ids and features of the peeled spikes, sorted by time; in batch 0 the
    /// spikes whose trough would fall before the first sample are dropped.
    fn extract(&self, peaks: &[Peak], residual: ArrayView2<f32>, batch_index: usize) -> MatchedBatch {
        let o = &self.options;
        let nt = self.pcs.ncols();
        let offset = (batch_index * o.batch_downsampling * o.batch_size) as i64 + o.nt0min as i64 - (nt / 2) as i64;
        let mut kept: Vec<(i64, &Peak)> =
            peaks.iter().map(|p| (p.row as i64 + offset, p)).filter(|&(t, _)| batch_index > 0 || t >= 0).collect();
        kept.sort_by_key(|&(t, _)| t);
        let n_near = self.nearest.ncols();
        let n_pcs = self.pcs.nrows();
        let mut features = Array3::zeros((kept.len(), n_near, n_pcs));
        features.outer_iter_mut().into_par_iter().zip(&kept).for_each(|(mut f, &(_, p))| {
            let k = self.order[p.column];
            let start = p.row + nt - nt / 2;
            for (i, mut fi) in f.outer_iter_mut().enumerate() {
                let x = residual.row(self.nearest[[self.peaks[k], i]]);
                let window = x.slice(ndarray::s![start..start + nt]);
                for (q, v) in fi.iter_mut().enumerate() {
                    *v = self.pcs.row(q).dot(&window) + p.amplitude * self.own_features[[k, i, q]];
                }
            }
        });
        MatchedBatch {
            sample: kept.iter().map(|&(t, _)| t).collect(),
            template: kept.iter().map(|&(_, p)| self.order[p.column] as u32).collect(),
            amplitude: kept.iter().map(|&(_, p)| p.amplitude).collect(),
            threshold_amp: kept.iter().map(|&(_, p)| p.threshold_amp).collect(),
            features,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::templates::test_basis;

    /// Splitting the table and residual between spikes gives exactly what subtracting them one
    /// after the other gives.
    #[test]
    fn parallel_subtraction_equals_subtraction_in_turn() {
        let n = 12;
        let probe = Probe::new(
            "line",
            (0..n as u32).collect(),
            vec![0.0; n],
            (0..n).map(|i| 20.0 * i as f32).collect(),
            vec![0.0; n],
            n,
        )
        .unwrap();
        let basis = test_basis(3, 21);
        let templates = Array3::from_shape_fn((5, n, 3), |(k, c, p)| {
            let d = c as f32 - 2.5 * k as f32;
            if d.abs() > 3.0 { 0.0 } else { (1.0 - d.abs() / 4.0) * [1.0, -0.5, 0.3][p] * (1.0 + 0.1 * k as f32) }
        });
        let options = MatchingOptions {
            batch_size: 400,
            nt0min: 7,
            batch_downsampling: 1,
            th_learned: 8.0,
            max_peels: 10,
            position_limit: 100.0,
            nearest_chans: 4,
        };
        let m = TemplateMatcher::new(templates.view(), &basis, &probe, options);
        let data = Array2::from_shape_fn((n, 400 + 42), |(c, t)| ((c * 31 + t * 17) % 23) as f32 - 11.0);
        let peaks: Vec<Peak> = [(0, 1), (43, 4), (90, 0), (200, 2), (399, 3)]
            .map(|(row, column)| Peak { row, column, amplitude: 0.5 + 0.1 * column as f32, threshold_amp: 0.0 })
            .to_vec();
        let run = |parallel: bool| {
            let mut table = ScoreTable::new(400, &m.norms);
            m.kernel.fill(data.view(), &mut table);
            let mut residual = data.clone();
            if parallel {
                m.subtract_in_parallel(&peaks, &mut table, residual.view_mut());
            } else {
                m.subtract_in_turn(&peaks, &mut table, residual.view_mut());
            }
            let scores: Vec<(f32, usize)> = (0..400).map(|r| table.best(r)).collect();
            let all: Vec<f32> =
                (0..400).flat_map(|r| (0..5).map(move |j| (r, j))).map(|(r, j)| table.score(r, j)).collect();
            (residual, scores, all)
        };
        assert_eq!(run(true), run(false));
    }
}
