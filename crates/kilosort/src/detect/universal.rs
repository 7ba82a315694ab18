//! Matching one whitened batch against the universal templates (Kilosort4's `template_match`,
//! spec §6.4–6.6): every grid position × envelope width × temporal template is a unit-norm
//! spatio-temporal template; a spike is a local maximum of the best |projection| over ±`nt0min`
//! samples and the 100 neighbouring positions that exceeds `Th_universal`.
//!
//! Kilosort4 computes all `sizes × templates × positions × samples` projections (≈ 3·10¹⁰
//! multiply-adds per 2 s batch at 384 channels). We compute them only where they can exceed the
//! threshold: the envelope is unit-norm, so by Cauchy–Schwarz no projection at (position, t)
//! exceeds √(Σ_c max_q B[c,q,t]²) over the position's channels. Where that bound is at or below
//! the threshold the position can neither be detected nor beat a detection in the max-pool, so
//! skipping it gives exactly Kilosort4's detections.

use ndarray::ArrayView2;

use super::{TemplateGrid, TemporalBasis};
use crate::correlate::{FilterLayout, LANES, correlate_filters};

/// Output samples per time chunk (bounds the per-thread scratch memory).
const CHUNK: usize = 2048;
/// Columns whose correlations are computed together (a multiple of `LANES`): ≈ 1.2 MB at 384
/// channels, which stays in cache while the columns' projections are computed.
const SUB_CHUNK: usize = 128;
/// Columns per span of the best projections: a multiple of `LANES`, and larger than a max-pool
/// window (2·nt0min + 1 = 41 by default), so that most windows lie in one span.
const SPAN: usize = 64;
/// Most envelope sizes whose projections are accumulated together (one load of a channel's
/// correlations serves them all, and their multiply-add chains overlap).
const SIZE_GROUP: usize = 5;
/// Slack on the Cauchy–Schwarz bound for float rounding in the projections.
const BOUND_SLACK: f32 = 1.0 + 1e-4;
/// Most temporal templates the register-blocked correlation handles at once.
const MAX_TEMPORAL: usize = 8;

/// The spikes found in one batch, batch-local.
#[derive(Debug, Clone, Default)]
pub struct BatchDetections {
    /// Padded column of the detection (the window centre, ≈ 10 samples after the trough).
    pub column: Vec<usize>,
    /// Grid position (universal template) index.
    pub template: Vec<u32>,
    /// `size · n_templates + temporal template` of the best match (Kilosort4's `imax`).
    pub kind: Vec<u16>,
    /// Best |projection| (whitened-noise units).
    pub amplitude: Vec<f32>,
    /// Depth, µm: the positive per-channel amplitudes' weighted mean of contact depths; NaN when
    /// no channel has a positive amplitude.
    pub depth: Vec<f32>,
    /// Features `(n, nearest_chans, n_pcs)` flattened: the data around the detection on the
    /// template's channels projected on the temporal PCs.
    pub features: Vec<f32>,
}

/// Detects spikes in whitened padded batches.
#[derive(Debug, Clone)]
pub struct UniversalMatcher<'a> {
    basis: &'a TemporalBasis,
    grid: &'a TemplateGrid,
    channel_depth: Vec<f32>,
    /// The grid positions grouped by their set of channels.
    sets: ChannelSets,
    /// Per grid position, its envelopes flattened `(channel, size)`.
    envelopes: Vec<Vec<f32>>,
    /// `wPCA` flattened `(pc, sample)`.
    pcs: Vec<f32>,
    /// `wTEMP` transposed and flattened `(sample, template)`.
    templates_by_sample: Vec<f32>,
    /// Padding of each side of a batch (`nt`).
    pad: usize,
    /// Half-width of the temporal max-pool (`nt0min`).
    pool: usize,
    threshold: f32,
    /// Whether [`BatchDetections::features`] is filled.
    features: bool,
}

impl<'a> UniversalMatcher<'a> {
    /// A matcher for batches padded by `nt` on each side, pooling over ±`trough_index` samples.
    pub fn new(
        basis: &'a TemporalBasis,
        grid: &'a TemplateGrid,
        channel_depth: &[f32],
        trough_index: usize,
        threshold: f64,
    ) -> Self {
        assert!(basis.n_templates() <= MAX_TEMPORAL, "at most {MAX_TEMPORAL} temporal templates");
        UniversalMatcher {
            basis,
            grid,
            channel_depth: channel_depth.to_vec(),
            sets: ChannelSets::new(grid),
            envelopes: (0..grid.len())
                .map(|k| grid.envelopes.slice(ndarray::s![.., k, ..]).t().iter().copied().collect())
                .collect(),
            pcs: basis.pcs.iter().copied().collect(),
            templates_by_sample: basis.templates.t().iter().copied().collect(),
            pad: basis.nt(),
            pool: trough_index,
            threshold: threshold as f32,
            features: true,
        }
    }

    /// Whether detections carry their PC features (by default they do); without them
    /// [`BatchDetections::features`] stays empty.
    pub fn with_features(self, features: bool) -> Self {
        UniversalMatcher { features, ..self }
    }

    /// Detections in one padded whitened batch (`channels × (NT + 2·nt)`), in time order.
    pub fn detect(&self, data: ArrayView2<f32>) -> BatchDetections {
        self.detect_with(data, &mut DetectionScratch::default())
    }

    /// [`detect`](Self::detect) with working buffers reused from an earlier call (they are
    /// tens of MB at 384 channels; allocating them per batch costs page faults).
    pub fn detect_with(&self, data: ArrayView2<f32>, scratch: &mut DetectionScratch) -> BatchDetections {
        let len = data.ncols();
        let mut out = BatchDetections::default();
        if len < 2 * self.pad + 1 {
            return out;
        }
        let (first, end) = (self.pad, len - self.pad);
        let mut t0 = first;
        while t0 < end {
            let t1 = (t0 + CHUNK).min(end);
            self.detect_chunk(data, t0, t1, scratch, &mut out);
            t0 = t1;
        }
        out
    }

    /// Detections with columns in `[t0, t1)`; projections are computed on `[t0 − pool, t1 + pool)`
    /// clipped to the unpadded part, which is all the max-pool looks at.
    fn detect_chunk(
        &self,
        data: ArrayView2<f32>,
        t0: usize,
        t1: usize,
        s: &mut DetectionScratch,
        out: &mut BatchDetections,
    ) {
        let (n_chan, len) = data.dim();
        let a = t0.saturating_sub(self.pool).max(self.pad);
        let b = (t1 + self.pool).min(len - self.pad);
        let width = b - a;
        let nk = self.basis.n_templates();
        let n_pos = self.grid.len();
        // Only stored blocks are ever non-zero, and they are zeroed again after use, so a
        // buffer left longer by a wider chunk (or another grid) needs no clearing.
        let best_len = width.div_ceil(SPAN) * n_pos * SPAN;
        if s.best.len() < best_len {
            s.best.resize(best_len, 0.0);
            s.best_kind.resize(best_len, 0);
        }
        s.blocks.clear();
        let limit = self.threshold * self.threshold / BOUND_SLACK;
        let channels = self.grid.channels.as_slice().expect("grid channels are contiguous");
        let n_near = self.grid.channels.ncols();
        let positions = Positions { channels, n_near, envelopes: &self.envelopes };
        // A few blocks at a time, so that their correlations (all channels) stay in cache from
        // being computed until every candidate position there is projected.
        for first in (0..width).step_by(SUB_CHUNK) {
            let sub_width = SUB_CHUNK.min(width - first);
            self.correlate(data, a + first, sub_width, s);
            let n_blocks = sub_width.div_ceil(LANES);
            // Bound per channel: the largest squared temporal correlation.
            s.bound.resize(n_blocks * n_chan * LANES, 0.0);
            channel_bounds(&s.corr, nk, &mut s.bound);
            for blk in 0..n_blocks {
                let bound = &s.bound[blk * n_chan * LANES..(blk + 1) * n_chan * LANES];
                candidate_positions(bound, &self.sets.channels, n_near, limit, &mut s.candidate_sets);
                self.sets.members_of(&s.candidate_sets, &mut s.candidates);
                let block = Block { corr: &s.corr[blk * n_chan * nk * LANES..(blk + 1) * n_chan * nk * LANES], nk };
                let start = first + blk * LANES;
                let mut output = BlockOutput {
                    best: &mut s.best,
                    kind: &mut s.best_kind,
                    n_pos,
                    start,
                    threshold: self.threshold,
                    stored: &mut s.blocks,
                };
                project_candidates(&block, &positions, &s.candidates, limit, &mut output);
            }
        }
        self.collect_peaks(data, a, width, t0, t1, s, out);
        for &(k, start) in &s.blocks {
            let at = best_index(n_pos, k, start);
            s.best[at..at + LANES].fill(0.0);
        }
    }

    /// `corr` in blocks of `LANES` columns, `(block, channel, template, lane)`:
    /// `Σ_s wTEMP[q, s] · data[c, a + i + s − nt/2]` at column i, zero past `width`.
    fn correlate(&self, data: ArrayView2<f32>, a: usize, width: usize, s: &mut DetectionScratch) {
        let (n_chan, nk, nt) = (data.nrows(), self.basis.n_templates(), self.basis.nt());
        // Every element is overwritten below, so a same-size buffer needs no clearing.
        s.corr.resize(width.div_ceil(LANES) * n_chan * nk * LANES, 0.0);
        for c in 0..n_chan {
            let row = data.row(c);
            let row = row.as_slice().expect("batch rows are contiguous");
            let x = &row[a - nt / 2..a + width + nt / 2];
            let layout =
                FilterLayout { first: c * nk * LANES, block_stride: n_chan * nk * LANES, filter_stride: LANES };
            correlate_filters(x, &self.templates_by_sample, nt, &mut s.corr, layout);
        }
    }

    /// Keeps the projections that are the maximum of their ±pool samples × neighbouring
    /// positions and above the threshold, and records each one's amplitude, depth and features.
    #[allow(clippy::too_many_arguments)]
    fn collect_peaks(
        &self,
        data: ArrayView2<f32>,
        a: usize,
        width: usize,
        t0: usize,
        t1: usize,
        s: &DetectionScratch,
        out: &mut BatchDetections,
    ) {
        let (nk, n_pos) = (self.basis.n_templates(), self.grid.len());
        let mut found: Vec<(usize, usize)> = Vec::new();
        // Only stored blocks exceed the threshold.
        for &(k, start) in &s.blocks {
            for i in start.max(t0 - a)..(start + LANES).min(t1 - a) {
                let v = s.best[best_index(n_pos, k, i)];
                if v > self.threshold && self.is_pool_maximum(k, i, v, width, &s.best) {
                    found.push((a + i, k));
                }
            }
        }
        found.sort_unstable();
        for (t, k) in found {
            let i = t - a;
            let signed = s.best_kind[best_index(n_pos, k, i)];
            let (r, sign) = ((signed.unsigned_abs() - 1) as usize, signed.signum() as f32);
            let q = r % nk;
            let channels = self.grid.channels.row(k);
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for &c in channels {
                let amp = self.correlation_at(data, c, t, q) * sign;
                if amp > 0.0 {
                    num += amp as f64 * self.channel_depth[c] as f64;
                    den += amp as f64;
                }
            }
            out.column.push(t);
            out.template.push(k as u32);
            out.kind.push(r as u16);
            out.amplitude.push(s.best[best_index(n_pos, k, i)]);
            out.depth.push(if den > 0.0 { (num / den) as f32 } else { f32::NAN });
            if self.features {
                self.push_features(data, t, k, &mut out.features);
            }
        }
    }

    /// Channel c's correlation with temporal template q at column t, the same bits as the
    /// correlation kernel's (taps summed in order by fused multiply-adds from zero).
    fn correlation_at(&self, data: ArrayView2<f32>, c: usize, t: usize, q: usize) -> f32 {
        let (nk, nt) = (self.basis.n_templates(), self.basis.nt());
        let row = data.row(c);
        let window = &row.as_slice().expect("batch rows are contiguous")[t - nt / 2..t + nt / 2 + 1];
        window_correlation(window, &self.templates_by_sample, nk, q)
    }

    /// Whether `v` at (position k, column i) is the largest over ±pool columns × the
    /// neighbouring positions (`best` laid out as [`best_index`] says, its first `width`
    /// columns real).
    fn is_pool_maximum(&self, k: usize, i: usize, v: f32, width: usize, best: &[f32]) -> bool {
        let lo = i.saturating_sub(self.pool);
        let hi = (i + self.pool + 1).min(width);
        let neighbours = self.grid.neighbours.row(k);
        let neighbours = neighbours.as_slice().expect("grid neighbours are contiguous");
        !any_exceeds(best, self.grid.len(), lo..hi, neighbours, v)
    }

    /// `features[c, p] = Σ_s data[channel_c, t + s − nt/2] · wPCA[p, s]` on the template's channels.
    fn push_features(&self, data: ArrayView2<f32>, t: usize, k: usize, features: &mut Vec<f32>) {
        let (n_pcs, nt) = (self.basis.n_pcs(), self.basis.nt());
        for &c in self.grid.channels.row(k) {
            let window = data.row(c);
            let window = &window.as_slice().expect("batch rows are contiguous")[t - nt / 2..t + nt / 2 + 1];
            let at = features.len();
            features.resize(at + n_pcs, 0.0);
            project_window(window, &self.pcs, &mut features[at..]);
        }
    }
}

/// Grid positions grouped by channel set: neighbouring positions often share their nearest
/// channels (1532 positions have 936 sets on Neuropixels 1.0), and the bound depends only on
/// the set, so it is summed once per set.
#[derive(Debug, Clone)]
struct ChannelSets {
    /// Each set's channels flattened, in its first position's order (so another member's bound
    /// may round differently from its own order's, by far less than `BOUND_SLACK`).
    channels: Vec<usize>,
    /// Set i's positions are `members[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
    /// The positions, set by set, each set's in increasing order.
    members: Vec<u32>,
}

impl ChannelSets {
    /// The grid's positions grouped by their nearest channels, as an unordered set.
    fn new(grid: &TemplateGrid) -> Self {
        let mut index_of = std::collections::HashMap::new();
        let (mut channels, mut members_of_set): (Vec<usize>, Vec<Vec<u32>>) = (Vec::new(), Vec::new());
        for (k, near) in grid.channels.outer_iter().enumerate() {
            let mut key = near.to_vec();
            key.sort_unstable();
            let set = *index_of.entry(key).or_insert_with(|| {
                channels.extend(near.iter().copied());
                members_of_set.push(Vec::new());
                members_of_set.len() - 1
            });
            members_of_set[set].push(k as u32);
        }
        let mut starts = vec![0];
        starts.extend(members_of_set.iter().scan(0, |end, m| {
            *end += m.len();
            Some(*end)
        }));
        ChannelSets { channels, starts, members: members_of_set.concat() }
    }

    /// The positions of `sets`, into `out`.
    fn members_of(&self, sets: &[u32], out: &mut Vec<u32>) {
        out.clear();
        for &set in sets {
            out.extend_from_slice(&self.members[self.starts[set as usize]..self.starts[set as usize + 1]]);
        }
    }
}

/// Working buffers of [`UniversalMatcher::detect_with`], reused across chunks and batches.
#[derive(Debug, Default)]
pub struct DetectionScratch {
    corr: Vec<f32>,
    bound: Vec<f32>,
    /// Best |projection| per (position, column) at [`best_index`]; zero outside the stored
    /// blocks.
    best: Vec<f32>,
    best_kind: Vec<i16>,
    /// Stored blocks (some column above the threshold): (position, first column).
    blocks: Vec<(usize, usize)>,
    /// One block's candidate channel sets, and their positions.
    candidate_sets: Vec<u32>,
    candidates: Vec<u32>,
}

/// Where column i of position k is in the best projections: span 0 of every position, then
/// span 1 of every position, and so on. The candidates of one block (written
/// together) and the windows of a max-pool then lie in a few hundred kB, not spread over a
/// chunk's `n_pos × width` columns (a page per position: TLB misses).
#[inline(always)]
fn best_index(n_pos: usize, k: usize, i: usize) -> usize {
    (i / SPAN * n_pos + k) * SPAN + i % SPAN
}

crate::avx2_dispatch! {
    /// `bound[g·LANES + l] = max_q corr[(g·nk + q)·LANES + l]²` for every (block, channel) g.
    fn channel_bounds(corr: &[f32], nk: usize, bound: &mut [f32]) => channel_bounds_portable
}

#[inline(always)]
fn channel_bounds_portable(corr: &[f32], nk: usize, bound: &mut [f32]) {
    for (templates, out) in corr.chunks_exact(nk * LANES).zip(bound.chunks_exact_mut(LANES)) {
        let mut max = [0.0f32; LANES];
        for x in templates.chunks_exact(LANES) {
            for l in 0..LANES {
                let square = x[l] * x[l];
                max[l] = if square > max[l] { square } else { max[l] };
            }
        }
        out.copy_from_slice(&max);
    }
}

crate::avx2_dispatch! {
    /// The channel sets (or positions) whose Cauchy–Schwarz bound (Σ over its `n_near`
    /// channels `channels[k·n_near..]` of `bound[c·LANES + l]`, one block's bounds) exceeds
    /// `limit` in some column of the block.
    fn candidate_positions(bound: &[f32], channels: &[usize], n_near: usize, limit: f32, out: &mut Vec<u32>) => candidate_positions_portable
}

#[inline(always)]
fn candidate_positions_portable(bound: &[f32], channels: &[usize], n_near: usize, limit: f32, out: &mut Vec<u32>) {
    out.clear();
    for (k, near) in channels.chunks_exact(n_near).enumerate() {
        let mut sum = [0.0f32; LANES];
        for &c in near {
            let row: &[f32; LANES] = bound[c * LANES..(c + 1) * LANES].try_into().expect("a block");
            for l in 0..LANES {
                sum[l] += row[l];
            }
        }
        if sum.iter().fold(false, |any, &v| any | (v > limit)) {
            out.push(k as u32);
        }
    }
}

/// One block of `LANES` columns of correlations, every channel: channel c's correlation with
/// temporal template q at the block's column l is `corr[(c·nk + q)·LANES + l]`.
struct Block<'a> {
    corr: &'a [f32],
    nk: usize,
}

impl Block<'_> {
    /// Channel `channel`'s correlations with template `q`, the block's `LANES` columns.
    #[inline(always)]
    fn row(&self, channel: usize, q: usize) -> &[f32; LANES] {
        let at = (channel * self.nk + q) * LANES;
        self.corr[at..at + LANES].try_into().expect("a block")
    }
}

/// The grid positions as the projection reads them.
struct Positions<'a> {
    /// Each position's `n_near` channels, flattened.
    channels: &'a [usize],
    /// Channels per position.
    n_near: usize,
    /// Each position's envelopes flattened `(channel, size)`.
    envelopes: &'a [Vec<f32>],
}

/// Where a block's projections go: position k's `LANES` columns from column `start` are at
/// [`best_index`]`(n_pos, k, start)`, stored only when one exceeds `threshold`, and then listed
/// in `stored`. Projections at or below the threshold can neither be detections nor beat one in
/// the max-pool, so they may as well be zero.
struct BlockOutput<'a> {
    best: &'a mut [f32],
    kind: &'a mut [i16],
    n_pos: usize,
    start: usize,
    threshold: f32,
    stored: &'a mut Vec<(usize, usize)>,
}

crate::fma_dispatch! {
    /// [`position_projection`] of every candidate position in one block (one dispatch per
    /// block, so the whole loop is compiled for the wide instructions).
    fn project_candidates(block: &Block, positions: &Positions, candidates: &[u32], limit: f32, out: &mut BlockOutput) => project_candidates_portable
}

#[inline(always)]
fn project_candidates_portable(
    block: &Block,
    positions: &Positions,
    candidates: &[u32],
    limit: f32,
    out: &mut BlockOutput,
) {
    let n_near = positions.n_near;
    for &k in candidates {
        let k = k as usize;
        let (mut amp, mut kind) = ([0.0f32; LANES], [0i16; LANES]);
        let channels = &positions.channels[k * n_near..(k + 1) * n_near];
        position_projection(block, channels, &positions.envelopes[k], limit, &mut amp, &mut kind);
        if amp.iter().fold(false, |any, &a| any | (a > out.threshold)) {
            let at = best_index(out.n_pos, k, out.start);
            out.best[at..at + LANES].copy_from_slice(&amp);
            out.kind[at..at + LANES].copy_from_slice(&kind);
            out.stored.push((k, out.start));
        }
    }
}

/// The best |projection| over envelope sizes and temporal templates for the block's columns at
/// one position (`envelopes` is `(channel, size)`), into `amp`, and `±(size·nk + q + 1)` signed
/// like the projection into `kind`; among equal maxima the smallest `size·nk + q` (torch.max's
/// first maximum in Kilosort4's order), whatever order they are computed in.
///
/// A temporal template whose correlations have squared norm (over the channels) at most
/// `limit` in every column is skipped: no unit-norm envelope projects it above the threshold,
/// so it can neither be a detection nor beat one (its columns keep a smaller, sub-threshold
/// value).
#[inline(always)]
fn position_projection(
    block: &Block,
    channels: &[usize],
    envelopes: &[f32],
    limit: f32,
    amp: &mut [f32; LANES],
    kind: &mut [i16; LANES],
) {
    let nk = block.nk;
    let live = match nk {
        1 => live_templates::<1>(block, channels, limit),
        2 => live_templates::<2>(block, channels, limit),
        3 => live_templates::<3>(block, channels, limit),
        4 => live_templates::<4>(block, channels, limit),
        5 => live_templates::<5>(block, channels, limit),
        6 => live_templates::<6>(block, channels, limit),
        7 => live_templates::<7>(block, channels, limit),
        _ => live_templates::<MAX_TEMPORAL>(block, channels, limit),
    };
    let n_sizes = envelopes.len() / channels.len();
    // Each sum is a local array of one vector register: kept in registers, never spilled and
    // reloaded lane by lane (which stalls on store forwarding).
    let mut best = [0.0f32; LANES];
    // 32-bit codes, as wide as the amplitudes, so the selects stay vector operations.
    let mut code = [0i32; LANES];
    for q in (0..nk).filter(|&q| live[q]) {
        let mut first = 0;
        while first < n_sizes {
            let sizes = (n_sizes - first).min(SIZE_GROUP);
            let group = SizeGroup { block, channels, envelopes, n_sizes, first, q };
            match sizes {
                1 => group.select(&group.sums::<1>(), &mut best, &mut code),
                2 => group.select(&group.sums::<2>(), &mut best, &mut code),
                3 => group.select(&group.sums::<3>(), &mut best, &mut code),
                4 => group.select(&group.sums::<4>(), &mut best, &mut code),
                _ => group.select(&group.sums::<SIZE_GROUP>(), &mut best, &mut code),
            }
            first += sizes;
        }
    }
    *amp = best;
    for (kind, &code) in kind.iter_mut().zip(&code) {
        *kind = code as i16;
    }
}

/// Envelope sizes `first..` projected on temporal template `q` at one position.
struct SizeGroup<'a> {
    block: &'a Block<'a>,
    /// The position's channels.
    channels: &'a [usize],
    /// The position's envelopes, `(channel, size)`.
    envelopes: &'a [f32],
    /// Envelope sizes in all.
    n_sizes: usize,
    /// The group's first size.
    first: usize,
    /// The temporal template.
    q: usize,
}

impl SizeGroup<'_> {
    /// `Σ_j envelope[j, first + g] · corr[channel_j, q]` for g < G, each summed over j in order.
    #[inline(always)]
    fn sums<const G: usize>(&self) -> [[f32; LANES]; G] {
        let mut acc = [[0.0f32; LANES]; G];
        for (j, &c) in self.channels.iter().enumerate() {
            let x = self.block.row(c, self.q);
            let weights = &self.envelopes[j * self.n_sizes + self.first..][..G];
            for (acc, &w) in acc.iter_mut().zip(weights) {
                for l in 0..LANES {
                    acc[l] = w.mul_add(x[l], acc[l]);
                }
            }
        }
        acc
    }

    /// Keeps the larger |sum| per column, the smaller code on ties (branch-free mask
    /// arithmetic, so the lanes stay one vector).
    #[inline(always)]
    fn select(&self, sums: &[[f32; LANES]], best: &mut [f32; LANES], code: &mut [i32; LANES]) {
        for (g, acc) in sums.iter().enumerate() {
            let r = ((self.first + g) * self.block.nk + self.q) as i32 + 1;
            for l in 0..LANES {
                let a = acc[l].abs();
                let better = ((a > best[l]) | ((a == best[l]) & (r < code[l].abs()))) as i32;
                let signed = r - 2 * r * (acc[l] < 0.0) as i32;
                best[l] = if better != 0 { a } else { best[l] };
                code[l] += better * (signed - code[l]);
            }
        }
    }
}

/// Which of the block's `NK` temporal templates have a squared norm over `channels` above
/// `limit` in some column. The templates' sums advance together, channel by channel (each
/// channel's `NK` rows are contiguous), so their multiply-add chains overlap.
#[inline(always)]
fn live_templates<const NK: usize>(block: &Block, channels: &[usize], limit: f32) -> [bool; MAX_TEMPORAL] {
    let mut norms = [[0.0f32; LANES]; NK];
    for &c in channels {
        let rows = &block.corr[c * NK * LANES..(c + 1) * NK * LANES];
        for (norm, x) in norms.iter_mut().zip(rows.chunks_exact(LANES)) {
            for l in 0..LANES {
                norm[l] = x[l].mul_add(x[l], norm[l]);
            }
        }
    }
    let mut live = [false; MAX_TEMPORAL];
    for (live, norm) in live.iter_mut().zip(&norms) {
        *live = norm.iter().fold(false, |any, &n| any | (n > limit));
    }
    live
}

crate::avx2_dispatch! {
    /// True when some column in `columns` of a neighbour position exceeds `v` (`best` laid out
    /// as [`best_index`] says for `n_pos` positions).
    fn any_exceeds(best: &[f32], n_pos: usize, columns: std::ops::Range<usize>, neighbours: &[usize], v: f32) -> bool => any_exceeds_portable
}

#[inline(always)]
fn any_exceeds_portable(
    best: &[f32],
    n_pos: usize,
    columns: std::ops::Range<usize>,
    neighbours: &[usize],
    v: f32,
) -> bool {
    // Nearest neighbours first, which exceed most often: stop at the first that does.
    neighbours.iter().any(|&n| {
        let mut exceeds = false;
        let mut i = columns.start;
        while i < columns.end {
            let end = ((i / SPAN + 1) * SPAN).min(columns.end);
            let at = best_index(n_pos, n, i);
            // A branch-free test per run vectorises; runs are short (2·pool + 1 columns).
            exceeds |= best[at..at + end - i].iter().fold(false, |e, &u| e | (u > v));
            i = end;
        }
        exceeds
    })
}

crate::fma_dispatch! {
    /// `Σ_s taps[s·nk + q] · window[s]`, summed in order by fused multiply-adds from zero: the
    /// correlation kernel's bits for one column.
    fn window_correlation(window: &[f32], taps: &[f32], nk: usize, q: usize) -> f32 => window_correlation_portable
}

#[inline(always)]
fn window_correlation_portable(window: &[f32], taps: &[f32], nk: usize, q: usize) -> f32 {
    window.iter().enumerate().fold(0.0f32, |acc, (s, &x)| taps[s * nk + q].mul_add(x, acc))
}

crate::fma_dispatch! {
    /// `out[p] = Σ_s pcs[p·nt + s] · window[s]` for `nt = window.len()` and each PC p.
    fn project_window(window: &[f32], pcs: &[f32], out: &mut [f32]) => project_window_portable
}

#[inline(always)]
fn project_window_portable(window: &[f32], pcs: &[f32], out: &mut [f32]) {
    let nt = window.len();
    let whole = nt - nt % LANES;
    for (p, o) in out.iter_mut().enumerate() {
        let pc = &pcs[p * nt..(p + 1) * nt];
        let mut acc = [0.0f32; LANES];
        for (x, w) in window[..whole].chunks_exact(LANES).zip(pc[..whole].chunks_exact(LANES)) {
            for l in 0..LANES {
                acc[l] = w[l].mul_add(x[l], acc[l]);
            }
        }
        let lanes_sum = acc.iter().fold(0.0f32, |sum, &a| sum + a);
        *o = (whole..nt).fold(lanes_sum, |sum, s| pc[s].mul_add(window[s], sum));
    }
}

/// The dense reference: every projection, as Kilosort4 computes it (tests only).
#[cfg(test)]
pub(crate) fn dense_best_projection(
    basis: &TemporalBasis,
    grid: &TemplateGrid,
    data: ArrayView2<f32>,
) -> ndarray::Array2<f32> {
    let (n_chan, len) = data.dim();
    let (nk, nt) = (basis.n_templates(), basis.nt());
    let mut corr = ndarray::Array2::<f32>::zeros((n_chan * nk, len));
    for c in 0..n_chan {
        for q in 0..nk {
            for t in nt / 2..len - nt / 2 {
                corr[[c * nk + q, t]] = (0..nt).map(|s| basis.templates[[q, s]] * data[[c, t + s - nt / 2]]).sum();
            }
        }
    }
    ndarray::Array2::from_shape_fn((grid.len(), len), |(k, t)| {
        let mut best = 0.0f32;
        for env in grid.envelopes.outer_iter() {
            for q in 0..nk {
                let acc: f32 =
                    grid.channels.row(k).iter().enumerate().map(|(j, &c)| env[[k, j]] * corr[[c * nk + q, t]]).sum();
                best = best.max(acc.abs());
            }
        }
        best
    })
}

#[cfg(test)]
mod kernel_tests {
    use super::*;

    /// Kilosort4's order: sizes outer, templates inner, the first maximum kept.
    fn reference_projection(
        block: &Block,
        channels: &[usize],
        envelopes: &[f32],
        limit: f32,
    ) -> ([f32; LANES], [i16; LANES]) {
        let (nk, n_sizes) = (block.nk, envelopes.len() / channels.len());
        let (mut best, mut kind) = ([0.0f32; LANES], [0i16; LANES]);
        for m in 0..n_sizes {
            for q in 0..nk {
                let norm = |l: usize| channels.iter().map(|&c| block.row(c, q)[l].powi(2)).sum::<f32>();
                if (0..LANES).all(|l| norm(l) <= limit) {
                    continue;
                }
                for l in 0..LANES {
                    let acc = channels
                        .iter()
                        .enumerate()
                        .fold(0.0f32, |acc, (j, &c)| envelopes[j * n_sizes + m].mul_add(block.row(c, q)[l], acc));
                    if acc.abs() > best[l] {
                        best[l] = acc.abs();
                        let r = (m * nk + q + 1) as i16;
                        kind[l] = if acc < 0.0 { -r } else { r };
                    }
                }
            }
        }
        (best, kind)
    }

    #[test]
    fn grouped_projection_gives_the_bits_and_codes_of_kilosort4s_order() {
        let (n_chan, nk) = (12, 6);
        // Coarse values, so that equal maxima (ties between sizes and templates) occur.
        let corr: Vec<f32> = (0..n_chan * nk * LANES).map(|j| ((j * 37 % 101) as f32 - 50.0) / 8.0).collect();
        let channels: Vec<usize> = (0..10).map(|j| (j * 5) % n_chan).collect();
        let block = Block { corr: &corr, nk };
        for n_sizes in [1, 3, 5, 7] {
            let mut envelopes: Vec<f32> = (0..n_sizes * 10).map(|j| ((j * 13 % 7) as f32 + 1.0) / 8.0).collect();
            if n_sizes > 1 {
                // Two identical sizes: every projection ties with the other size's.
                for j in 0..10 {
                    envelopes[j * n_sizes + 1] = envelopes[j * n_sizes];
                }
            }
            let positions = Positions { channels: &channels, n_near: 10, envelopes: std::slice::from_ref(&envelopes) };
            for limit in [0.0, 50.0, 400.0] {
                let (want_amp, want_kind) = reference_projection(&block, &channels, &envelopes, limit);
                // Stored when some column exceeds the threshold, else left alone.
                let largest = want_amp.iter().fold(0.0f32, |m, &a| m.max(a));
                for threshold in [-1.0, largest * 0.999, largest] {
                    let (mut best, mut kind) = ([0.0; LANES], [0; LANES]);
                    let mut stored = Vec::new();
                    let mut out = BlockOutput {
                        best: &mut best,
                        kind: &mut kind,
                        n_pos: 1,
                        start: 0,
                        threshold,
                        stored: &mut stored,
                    };
                    project_candidates(&block, &positions, &[0], limit, &mut out);
                    if threshold == largest {
                        assert!(stored.is_empty() && best == [0.0; LANES] && kind == [0; LANES]);
                        continue;
                    }
                    assert_eq!(stored, [(0, 0)]);
                    assert_eq!(best.map(f32::to_bits), want_amp.map(f32::to_bits), "sizes {n_sizes} limit {limit}");
                    assert_eq!(kind, want_kind, "sizes {n_sizes} limit {limit}");
                }
                let (mut best, mut kind) = ([0.0; LANES], [0; LANES]);
                position_projection(&block, &channels, &envelopes, limit, &mut best, &mut kind);
                assert_eq!((best.map(f32::to_bits), kind), (want_amp.map(f32::to_bits), want_kind));
                assert!(limit > 0.0 || best.iter().all(|&a| a > 0.0));
            }
        }
    }

    #[test]
    fn channel_sets_hold_every_position_once_with_its_channels() {
        let probe = crate::probe::builtin::by_name("np1").unwrap();
        let grid = TemplateGrid::new(&probe, &crate::Settings::default());
        let sets = ChannelSets::new(&grid);
        let n_near = grid.channels.ncols();
        let n_sets = sets.starts.len() - 1;
        assert!(n_sets < grid.len() * 2 / 3, "{n_sets} sets for {} positions", grid.len());
        let mut seen = vec![0; grid.len()];
        let sorted = |v: &[usize]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v
        };
        for set in 0..n_sets {
            let mut members = Vec::new();
            sets.members_of(&[set as u32], &mut members);
            assert!(!members.is_empty());
            for k in members {
                seen[k as usize] += 1;
                let own = grid.channels.row(k as usize).to_vec();
                assert_eq!(sorted(&own), sorted(&sets.channels[set * n_near..(set + 1) * n_near]));
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
