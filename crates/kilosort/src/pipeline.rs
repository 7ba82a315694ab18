//! `sort`: the whole pipeline, one call per stage, in Kilosort4's order (spec §14.1).
//!
//! Every pass reads the recording batch by batch through one reader; what grows with the
//! recording's length is only the per-spike tables.

use ndarray::{Array2, Array3, Axis};

use crate::cluster::{ClusterInput, Clustering, cluster_spikes};
use crate::detect::{self, Features, TemplateGrid, TemporalBasis, UniversalSpikes};
use crate::drift::{DriftCorrector, DriftModel, DriftSpikes, estimate_drift};
use crate::error::{Error, Result};
use crate::io::{BatchReader, Recording};
use crate::matching::{
    LabelledSpikes, MatchedBatch, MatchingOptions, MergeOptions, TemplateMatcher, learned_templates, merge_templates,
};
use crate::parallel::Pool;
use crate::plan::Plan;
use crate::postprocess::{self, SpikeChannels};
use crate::preprocess::{BatchScratch, Preprocessor};
use crate::progress::Progress;
use crate::spill::FeatureSpill;
use crate::timing::Timings;

/// Kilosort4's final merge considers template pairs at least this similar (§8.6).
const FINAL_MERGE_SIMILARITY: f32 = 0.5;

/// Everything a sort produced, ready for export.
#[derive(Debug)]
pub struct SortOutput {
    /// The fitted preprocessing (whitening matrix for Phy).
    pub preprocessor: Preprocessor,
    /// The estimated drift, when drift correction ran.
    pub drift: Option<DriftModel>,
    /// Universal-template detections on uncorrected data that have a depth (the drift scatter
    /// plot's spikes), without their features.
    pub drift_spikes: Option<UniversalSpikes>,
    /// The learned temporal basis (`wPCA`, `wTEMP`).
    pub basis: TemporalBasis,
    /// The universal-template grid.
    pub grid: TemplateGrid,
    /// Number of universal-template detections used for the first clustering.
    pub n_universal_spikes: usize,
    /// Clusters of the first clustering.
    pub n_first_clusters: usize,
    /// The universal detections and their first-clustering labels and templates, without the
    /// features (Kilosort4's `st0`, `clu0`, `Wall0`): for stage-by-stage comparisons.
    pub first_stage: FirstStage,
    /// Learned templates used for matching pursuit `(K, Nchan, nPC)`.
    pub learned_templates: Array3<f32>,
    /// Peak channel of each learned template.
    pub learned_peak_channels: Vec<usize>,
    /// Nearest channels of each channel `(Nchan, nC)` (`iCC`ᵀ), and which are within
    /// `position_limit` (`iCC_mask`ᵀ).
    pub nearest_channels: Array2<usize>,
    /// See `nearest_channels`.
    pub nearest_within_limit: Array2<bool>,
    /// The sorted spikes.
    pub spikes: SortedSpikes,
    /// Final cluster templates in PC space `(K, Nchan, nPC)` (Kilosort4's `Wall`).
    pub cluster_templates: Array3<f32>,
    /// Similarity of every pair of final templates `(K, K)`.
    pub similar_templates: Array2<f32>,
    /// Per final cluster: passes the refractory test ("good").
    pub is_refractory: Vec<bool>,
    /// Per final cluster: estimated contamination (R12).
    pub contamination: Vec<f64>,
    /// Stage timings.
    pub timings: Timings,
}

/// What the universal detection and the first clustering produced (a few bytes a spike).
#[derive(Debug, Clone)]
pub struct FirstStage {
    /// Sample of each universal detection (window centre), relative to the analysed window.
    pub sample: Vec<i64>,
    /// Grid position of each detection's best universal template.
    pub template: Vec<u32>,
    /// Best |projection| of each detection.
    pub amplitude: Vec<f32>,
    /// First-clustering label of each detection (`clu0`).
    pub labels: Vec<u32>,
    /// First-clustering templates `(K, Nchan, nPC)` (`Wall0`).
    pub templates: Array3<f32>,
}

/// The final spike table, time-sorted, after duplicate removal.
#[derive(Debug, Clone)]
pub struct SortedSpikes {
    /// Trough sample relative to the analysed window's start.
    pub sample: Vec<i64>,
    /// Final cluster.
    pub cluster: Vec<u32>,
    /// Learned template that detected the spike.
    pub detection_template: Vec<u32>,
    /// Matching-pursuit features `(n, nC, nPC)` on the detection template's peak-channel
    /// neighbourhood.
    pub features: Array3<f32>,
    /// Over all spikes before duplicate removal: kept or not (`kept_spikes.npy`).
    pub kept: Vec<bool>,
}

impl SortedSpikes {
    /// Number of kept spikes.
    pub fn len(&self) -> usize {
        self.sample.len()
    }

    /// True when no spike was kept.
    pub fn is_empty(&self) -> bool {
        self.sample.is_empty()
    }
}

/// Whitened padded batch `b`: read, filtered, whitened, and drift-corrected when `drift` is set.
pub fn prepared_batch(
    reader: &BatchReader,
    pre: &Preprocessor,
    drift: Option<&DriftCorrector>,
    b: usize,
) -> Array2<f32> {
    let mut out = Array2::zeros((reader.n_channels(), reader.layout().padded_len()));
    PreparedBatches::new(reader, pre, drift).fill(b, &mut out);
    out
}

/// Where a pass gets its whitened batches (channels × padded length).
pub trait BatchSource: Sync {
    /// Runs `work` on batch `b`. The batch is the caller's to change (matching peels spikes off
    /// it); it is not kept.
    fn with_batch(&self, b: usize, work: &mut dyn FnMut(&mut Array2<f32>));

    /// Frees what the source keeps between batches; called when a pass is done with it.
    fn release(&self) {}
}

/// Any function from a batch index to a batch is a source.
impl<F: Fn(usize) -> Array2<f32> + Sync> BatchSource for F {
    fn with_batch(&self, b: usize, work: &mut dyn FnMut(&mut Array2<f32>)) {
        work(&mut self(b));
    }
}

/// The preprocessed batches of one pass over a recording, made on demand from any thread.
/// Their buffers are reused from batch to batch (one set per worker) and freed with this.
pub struct PreparedBatches<'a> {
    reader: &'a BatchReader<'a>,
    pre: &'a Preprocessor,
    drift: Option<&'a DriftCorrector>,
    scratch: Pool<BatchScratch>,
    outputs: Pool<Array2<f32>>,
}

impl<'a> PreparedBatches<'a> {
    /// Batches of `reader`, preprocessed by `pre` and drift-corrected by `drift` when given.
    pub fn new(reader: &'a BatchReader<'a>, pre: &'a Preprocessor, drift: Option<&'a DriftCorrector>) -> Self {
        PreparedBatches { reader, pre, drift, scratch: Pool::default(), outputs: Pool::default() }
    }

    /// Writes whitened (and drift-corrected) padded batch `b` into `out`, resizing it if needed.
    pub fn fill(&self, b: usize, out: &mut Array2<f32>) {
        let dim = (self.reader.n_channels(), self.reader.layout().padded_len());
        if out.dim() != dim {
            *out = Array2::zeros(dim);
        }
        let correction = self.drift.map(|d| d.sparse_rows(b));
        self.scratch.with(|scratch| self.pre.prepare(self.reader, b, correction.as_ref(), scratch, out));
    }
}

impl BatchSource for PreparedBatches<'_> {
    fn with_batch(&self, b: usize, work: &mut dyn FnMut(&mut Array2<f32>)) {
        self.outputs.with(|out| {
            self.fill(b, out);
            work(out);
        });
    }

    fn release(&self) {
        self.outputs.clear();
        self.scratch.clear();
    }
}

/// Sorts `recording` as `plan` says.
pub fn sort(recording: &dyn Recording, plan: &Plan, progress: &dyn Progress) -> Result<SortOutput> {
    let s = &plan.settings;
    let mut timings = Timings::default();
    let reader = BatchReader::new(recording, plan.layout, plan.probe.channel_map.clone(), s.scale, s.shift);
    let pre = timings.stage("preprocessing", || Preprocessor::fit(&reader, plan, progress));
    let grid = TemplateGrid::new(&plan.probe, s);
    let (drift, drift_spikes) =
        timings.stage("drift correction", || estimate_motion(&reader, &pre, &grid, plan, progress))?;
    let corrector = drift.as_ref().map(|m| DriftCorrector::new(m, &plan.probe, s.sig_interp));
    // Each pass makes its own batches, so their buffers are freed when the pass ends.
    let corrected = || PreparedBatches::new(&reader, &pre, corrector.as_ref());
    let (basis, universal) = timings.stage("spike detection", || {
        let batches = corrected();
        detect_all(&batches, &grid, plan, Features::Keep, progress)
    })?;
    let first = timings.stage("first clustering", || first_clustering(&universal, &grid, plan, progress))?;
    // The universal features (240 bytes a spike) are not needed after the first clustering.
    let n_universal_spikes = universal.len();
    let first_stage = FirstStage {
        sample: universal.sample.clone(),
        template: universal.template.clone(),
        amplitude: universal.amplitude.clone(),
        labels: first.labels.clone(),
        templates: first.templates.clone(),
    };
    drop(universal);
    let learned = timings.stage("learned templates", || {
        learned_templates(first.templates.view(), &cluster_sizes(&first.labels, first.n_clusters()), &basis)
    });
    let matcher = TemplateMatcher::new(learned.view(), &basis, &plan.probe, MatchingOptions::from_plan(plan));
    let matched = timings.stage("template matching", || {
        let batches = corrected();
        match_all(&batches, &matcher, plan, progress)
    })?;
    let final_clusters =
        timings.stage("final clustering", || final_clustering(&matched, &matcher, &grid, plan, progress))?;
    let merged = timings.stage("merging", || merge_final(final_clusters, matched, &basis, plan));
    let (spikes, cluster_templates) = merged;
    let post = timings.stage("postprocessing", || postprocess(&spikes, &cluster_templates, &basis, plan));
    Ok(SortOutput {
        preprocessor: pre,
        drift,
        drift_spikes,
        grid,
        n_universal_spikes,
        n_first_clusters: first.n_clusters(),
        first_stage,
        learned_peak_channels: matcher.peak_channels().to_vec(),
        nearest_channels: matcher.nearest_channels().to_owned(),
        nearest_within_limit: matcher.nearest_channel_mask().to_owned(),
        learned_templates: learned,
        basis,
        spikes,
        cluster_templates,
        similar_templates: post.similar,
        is_refractory: post.is_refractory,
        contamination: post.contamination,
        timings,
    })
}

/// Drift estimation on filtered, whitened, uncorrected data (spec §5): detect, then register.
fn estimate_motion(
    reader: &BatchReader,
    pre: &Preprocessor,
    grid: &TemplateGrid,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<(Option<DriftModel>, Option<UniversalSpikes>)> {
    if plan.settings.nblocks == 0 {
        return Ok((None, None));
    }
    let batches = PreparedBatches::new(reader, pre, None);
    // Only times, depths and amplitudes are used from here on (and kept for the scatter plot).
    let (_, detected) = detect_all(&batches, grid, plan, Features::Skip, progress)?;
    // Spikes without a positive channel have no depth; they carry no position information.
    let located: Vec<usize> = (0..detected.len()).filter(|&i| detected.depth[i].is_finite()).collect();
    let spikes = detected.select(&located);
    drop(detected);
    let table = DriftSpikes { batch: &spikes.batch, depth_um: &spikes.depth, amplitude: &spikes.amplitude };
    let model = estimate_drift(&table, plan.layout.n_batches, &plan.probe, &plan.settings)?;
    Ok((model, Some(spikes)))
}

/// Learns the temporal basis and runs universal-template detection on every batch.
pub fn detect_all(
    source: &dyn BatchSource,
    grid: &TemplateGrid,
    plan: &Plan,
    features: Features,
    progress: &dyn Progress,
) -> Result<(TemporalBasis, UniversalSpikes)> {
    let basis = detect::learn_temporal_basis(source, plan, progress)?;
    let spikes = detect::detect_spikes(source, &basis, grid, plan, features, progress)?;
    if spikes.is_empty() {
        return Err(Error::NoSpikes {
            stage: "spike detection",
            detail: format!("no spike reached Th_universal = {}", plan.settings.th_universal),
            fix: "check the probe and n_chan_bin, or lower Th_universal".into(),
        });
    }
    Ok((basis, spikes))
}

/// Graph clustering of the universal detections, a spike's template being its grid position.
pub fn first_clustering(
    spikes: &UniversalSpikes,
    grid: &TemplateGrid,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<Clustering> {
    let input = ClusterInput {
        features: spikes.features.view(),
        spike_template: &spikes.template,
        template_channels: grid.channels.view(),
        template_x: &grid.x,
        template_y: &grid.y,
        grid_y: &grid.y,
        dmin: grid.dmin,
        probe: &plan.probe,
        spike_times_s: None,
        ccg_veto: None,
    };
    cluster_spikes(&input, &plan.settings, progress)
}

fn cluster_sizes(labels: &[u32], n: usize) -> Vec<usize> {
    let mut counts = vec![0; n];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    counts
}

/// Matching pursuit over every batch, batches in parallel, concatenated in time order.
///
/// The features wait in a temporary file until the pass ends (see `spill.rs`); the error is
/// that file's.
pub fn match_all(
    source: &dyn BatchSource,
    matcher: &TemplateMatcher,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<MatchedBatch> {
    let n = plan.layout.n_batches;
    progress.start("matching learned templates", n as u64);
    let (n_near, n_pcs) = (plan.nearest_chans, plan.settings.n_pcs);
    let mut all = MatchedBatch::default();
    let mut spill = FeatureSpill::new()?;
    let mut spilled = Ok(());
    crate::parallel::for_each_batch_in_order(
        n,
        || (),
        |_, b| {
            let mut found = MatchedBatch::default();
            source.with_batch(b, &mut |batch| found = matcher.match_in_place(batch, b));
            progress.advance(1);
            found
        },
        |b| {
            all.sample.extend(b.sample);
            all.template.extend(b.template);
            all.amplitude.extend(b.amplitude);
            all.threshold_amp.extend(b.threshold_amp);
            if spilled.is_ok() {
                let features = b.features.as_standard_layout();
                spilled = spill.extend(features.as_slice().expect("standard layout"));
            }
        },
    );
    progress.finish();
    // The batch buffers go before the spilled features come back.
    matcher.release_scratch();
    source.release();
    spilled?;
    let features = spill.finish()?;
    let total = all.len();
    all.features = Array3::from_shape_vec((total, n_near, n_pcs), features).expect("features of every spike");
    Ok(all)
}

/// Graph clustering of the matched spikes, a spike's template being its learned template.
pub fn final_clustering(
    matched: &MatchedBatch,
    matcher: &TemplateMatcher,
    grid: &TemplateGrid,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<Clustering> {
    if matched.is_empty() {
        return Err(Error::NoSpikes {
            stage: "template matching",
            detail: format!("no spike reached Th_learned = {}", plan.settings.th_learned),
            fix: "lower Th_learned, or check the recording".into(),
        });
    }
    let peaks = matcher.peak_channels();
    let near = matcher.nearest_channels();
    let template_channels = Array2::from_shape_fn((peaks.len(), near.ncols()), |(k, j)| near[[peaks[k], j]]);
    let template_x: Vec<f64> = peaks.iter().map(|&c| plan.probe.x[c] as f64).collect();
    let template_y: Vec<f64> = peaks.iter().map(|&c| plan.probe.y[c] as f64).collect();
    let times_s: Vec<f64> = matched.sample.iter().map(|&t| t as f64 / plan.settings.fs).collect();
    let veto = |a: &[f64], b: &[f64]| split_refractory_veto(a, b);
    let input = ClusterInput {
        features: matched.features.view(),
        spike_template: &matched.template,
        template_channels: template_channels.view(),
        template_x: &template_x,
        template_y: &template_y,
        grid_y: &grid.y,
        dmin: grid.dmin,
        probe: &plan.probe,
        spike_times_s: Some(&times_s),
        ccg_veto: Some(&veto),
    };
    cluster_spikes(&input, &plan.settings, progress)
}

/// The splitter's refractory test (Kilosort4's private `check_CCG` in `swarmsplitter`, as meant
/// before 4.1.5): keep A and B together when their cross-correlogram has a refractory dip
/// (R12 < 0.25) that is significant or sits on an empty baseline (Q12 < 0.05 or Q00 < 0.25).
fn split_refractory_veto(a: &[f64], b: &[f64]) -> bool {
    const R12_LIMIT: f64 = 0.25;
    const Q12_LIMIT: f64 = 0.05;
    const Q00_LIMIT: f64 = 0.25;
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let ccg = postprocess::correlogram(a, b, postprocess::CCG_BIN_S, postprocess::CCG_HALF_BINS);
    let m = postprocess::ccg_metrics(&ccg, postprocess::CCG_BIN_S);
    m.r12 < R12_LIMIT && (m.q12 < Q12_LIMIT || m.q00 < Q00_LIMIT)
}

/// Merges refractory clusters with cross-refractory similar ones (spec §8.5–8.6), then removes
/// duplicate spikes (§9.3). Returns the spikes and the final templates.
fn merge_final(
    clusters: Clustering,
    matched: MatchedBatch,
    basis: &TemporalBasis,
    plan: &Plan,
) -> (SortedSpikes, Array3<f32>) {
    let s = &plan.settings;
    let fs = s.fs;
    let seconds = |t: &[i64]| -> Vec<f64> { t.iter().map(|&v| v as f64 / fs).collect() };
    let times_s = seconds(&matched.sample);
    let refractory = postprocess::refractoriness(&clusters.labels, &times_s, s.acg_threshold, s.ccg_threshold);
    let spikes = LabelledSpikes { sample: matched.sample, label: clusters.labels, features: matched.features };
    let options = MergeOptions { r_thresh: FINAL_MERGE_SIMILARITY, check_dt: true };
    let merged = merge_templates(
        clusters.templates.view(),
        spikes,
        basis.pcs.view(),
        options,
        |k| refractory.is_refractory.get(k).copied().unwrap_or(false),
        |c| {
            postprocess::cross_refractory(
                &seconds(&c.absorber_times()),
                &seconds(&c.candidate_times()),
                s.ccg_threshold,
            )
        },
    );
    let detection_template: Vec<u32> = merged.order.iter().map(|&i| matched.template[i]).collect();
    let spikes = merged.spikes;
    let kept = postprocess::remove_duplicates(&spikes.sample, &spikes.label, plan.duplicate_spike_bins as i64);
    let keep: Vec<usize> = (0..kept.len()).filter(|&i| kept[i]).collect();
    let sorted = SortedSpikes {
        sample: keep.iter().map(|&i| spikes.sample[i]).collect(),
        cluster: keep.iter().map(|&i| spikes.label[i]).collect(),
        detection_template: keep.iter().map(|&i| detection_template[i]).collect(),
        features: crate::rows::keep_rows(spikes.features, &keep),
        kept,
    };
    (sorted, merged.templates)
}

struct PostMetrics {
    similar: Array2<f32>,
    is_refractory: Vec<bool>,
    contamination: Vec<f64>,
}

/// Similar templates and refractoriness of the final clusters (spec §9.2, §9.6).
fn postprocess(spikes: &SortedSpikes, templates: &Array3<f32>, basis: &TemporalBasis, plan: &Plan) -> PostMetrics {
    let s = &plan.settings;
    let times_s: Vec<f64> = spikes.sample.iter().map(|&t| t as f64 / s.fs).collect();
    let mut refractory = postprocess::refractoriness(&spikes.cluster, &times_s, s.acg_threshold, s.ccg_threshold);
    // Clusters whose spikes were all duplicates still get a row.
    let k = templates.len_of(Axis(0));
    refractory.is_refractory.resize(k, false);
    refractory.contamination.resize(k, 0.0);
    PostMetrics {
        similar: crate::matching::similar_templates(templates.view(), basis.pcs.view()),
        is_refractory: refractory.is_refractory,
        contamination: refractory.contamination,
    }
}

impl SortOutput {
    /// Which channels each kept spike's features are on.
    pub fn spike_channels(&self) -> SpikeChannels<'_> {
        SpikeChannels {
            nearest: self.nearest_channels.view(),
            within_limit: self.nearest_within_limit.view(),
            template_peak: &self.learned_peak_channels,
            spike_template: &self.spikes.detection_template,
        }
    }
}
