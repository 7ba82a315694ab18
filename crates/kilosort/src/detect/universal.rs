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
    /// Per grid position, its envelopes flattened `(size, channel)`.
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
            envelopes: (0..grid.len())
                .map(|k| grid.envelopes.outer_iter().flat_map(|env| env.row(k).to_vec()).collect())
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
        let n_blocks = width.div_ceil(LANES);
        let nk = self.basis.n_templates();
        self.correlate(data, a, width, s);
        // Bound per channel: the largest squared temporal correlation.
        s.bound.resize(n_blocks * n_chan * LANES, 0.0);
        channel_bounds(&s.corr, nk, &mut s.bound);
        let n_pos = self.grid.len();
        let stride = n_blocks * LANES;
        // Only computed blocks are ever non-zero, and they are zeroed again after use.
        if s.best.len() != n_pos * stride {
            s.best.clear();
            s.best.resize(n_pos * stride, 0.0);
            s.best_kind.clear();
            s.best_kind.resize(n_pos * stride, 0);
        }
        s.blocks.clear();
        let limit = self.threshold * self.threshold / BOUND_SLACK;
        let channels = self.grid.channels.as_slice().expect("grid channels are contiguous");
        let n_near = self.grid.channels.ncols();
        let mut candidates = Vec::new();
        // Block by block, so that the block's correlations (all channels) stay in cache while
        // every position that may exceed the threshold there is computed.
        for blk in 0..n_blocks {
            let bound = &s.bound[blk * n_chan * LANES..(blk + 1) * n_chan * LANES];
            candidate_positions(bound, channels, n_near, limit, &mut candidates);
            let corr = &s.corr[blk * n_chan * nk * LANES..(blk + 1) * n_chan * nk * LANES];
            let start = blk * LANES;
            for &k in &candidates {
                let k = k as usize;
                let block = Block { corr, channels: &channels[k * n_near..(k + 1) * n_near], nk };
                let at = k * stride + start;
                block_projection(
                    &block,
                    &self.envelopes[k],
                    limit,
                    (&mut s.best[at..at + LANES]).try_into().expect("a block"),
                    (&mut s.best_kind[at..at + LANES]).try_into().expect("a block"),
                );
                s.blocks.push((k, start));
            }
        }
        self.collect_peaks(data, a, width, t0, t1, s, out);
        for &(k, start) in &s.blocks {
            s.best[k * stride + start..k * stride + start + LANES].fill(0.0);
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
        let (n_chan, nk) = (data.nrows(), self.basis.n_templates());
        let stride = width.div_ceil(LANES) * LANES;
        let mut found: Vec<(usize, usize)> = Vec::new();
        // Only computed blocks can exceed the threshold.
        for &(k, start) in &s.blocks {
            for i in start.max(t0 - a)..(start + LANES).min(t1 - a) {
                let v = s.best[k * stride + i];
                if v > self.threshold && self.is_pool_maximum(k, i, v, width, stride, &s.best) {
                    found.push((a + i, k));
                }
            }
        }
        found.sort_unstable();
        for (t, k) in found {
            let i = t - a;
            let signed = s.best_kind[k * stride + i];
            let (r, sign) = ((signed.unsigned_abs() - 1) as usize, signed.signum() as f32);
            let q = r % nk;
            let channels = self.grid.channels.row(k);
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for &c in channels {
                let amp = s.corr[((i / LANES * n_chan + c) * nk + q) * LANES + i % LANES] * sign;
                if amp > 0.0 {
                    num += amp as f64 * self.channel_depth[c] as f64;
                    den += amp as f64;
                }
            }
            out.column.push(t);
            out.template.push(k as u32);
            out.kind.push(r as u16);
            out.amplitude.push(s.best[k * stride + i]);
            out.depth.push(if den > 0.0 { (num / den) as f32 } else { f32::NAN });
            if self.features {
                self.push_features(data, t, k, &mut out.features);
            }
        }
    }

    /// `best` holds `stride` columns per position, the first `width` of them real.
    fn is_pool_maximum(&self, k: usize, i: usize, v: f32, width: usize, stride: usize, best: &[f32]) -> bool {
        let lo = i.saturating_sub(self.pool);
        let hi = (i + self.pool + 1).min(width);
        let neighbours = self.grid.neighbours.row(k);
        let neighbours = neighbours.as_slice().expect("grid neighbours are contiguous");
        !any_exceeds(best, stride, lo..hi, neighbours, v)
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

/// Working buffers of [`UniversalMatcher::detect_with`], reused across chunks and batches.
#[derive(Debug, Default)]
pub struct DetectionScratch {
    corr: Vec<f32>,
    bound: Vec<f32>,
    /// Best |projection| per (position, column); zero outside the computed blocks.
    best: Vec<f32>,
    best_kind: Vec<i16>,
    /// Computed blocks: (position, first column).
    blocks: Vec<(usize, usize)>,
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
    /// The positions whose Cauchy–Schwarz bound (Σ over its `n_near` channels
    /// `channels[k·n_near..]` of `bound[c·LANES + l]`, one block's bounds) exceeds `limit` in
    /// some column of the block.
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

/// One block of `LANES` columns of one position's correlations: channel `channels[j]`'s
/// correlation with temporal template q at the block's column l is
/// `corr[(channels[j]·nk + q)·LANES + l]`.
struct Block<'a> {
    corr: &'a [f32],
    channels: &'a [usize],
    nk: usize,
}

crate::fma_dispatch! {
    /// The best |projection| over envelope sizes and temporal templates for the block's
    /// columns (`envelopes` is `(size, channel)`), into `amp`, and `±(size·nk + q + 1)` signed
    /// like the projection into `kind` (first maximum on ties, as torch.max).
    ///
    /// A temporal template whose correlations have squared norm (over the channels) at most
    /// `limit` in every column is skipped: no unit-norm envelope projects it above the
    /// threshold, so it can neither be a detection nor beat one (its columns keep a smaller,
    /// sub-threshold value).
    fn block_projection(block: &Block, envelopes: &[f32], limit: f32, amp: &mut [f32; LANES], kind: &mut [i16; LANES]) => block_projection_portable
}

/// Each sum is a local array of one vector register: kept in registers, never spilled and
/// reloaded lane by lane (which stalls on store forwarding).
#[inline(always)]
fn block_projection_portable(
    block: &Block,
    envelopes: &[f32],
    limit: f32,
    amp: &mut [f32; LANES],
    kind: &mut [i16; LANES],
) {
    let n_chan = block.channels.len();
    let live = match block.nk {
        1 => live_templates::<1>(block, limit),
        2 => live_templates::<2>(block, limit),
        3 => live_templates::<3>(block, limit),
        4 => live_templates::<4>(block, limit),
        5 => live_templates::<5>(block, limit),
        6 => live_templates::<6>(block, limit),
        7 => live_templates::<7>(block, limit),
        _ => live_templates::<MAX_TEMPORAL>(block, limit),
    };
    let nk = block.nk;
    let row = |j: usize, q: usize| -> &[f32; LANES] {
        let at = (block.channels[j] * nk + q) * LANES;
        block.corr[at..at + LANES].try_into().expect("a block")
    };
    let mut best = [0.0f32; LANES];
    // 32-bit codes, as wide as the amplitudes, so the selects stay vector operations.
    let mut code = [0i32; LANES];
    for m in 0..envelopes.len() / n_chan {
        let env = &envelopes[m * n_chan..(m + 1) * n_chan];
        for q in (0..nk).filter(|&q| live[q]) {
            let mut acc = [0.0f32; LANES];
            for (j, &w) in env.iter().enumerate() {
                let x = row(j, q);
                for l in 0..LANES {
                    acc[l] = w.mul_add(x[l], acc[l]);
                }
            }
            let r = (m * nk + q) as i32 + 1;
            // Branch-free (mask arithmetic), so the lanes stay one vector.
            for l in 0..LANES {
                let a = acc[l].abs();
                let better = (a > best[l]) as i32;
                let signed = r - 2 * r * (acc[l] < 0.0) as i32;
                best[l] = if a > best[l] { a } else { best[l] };
                code[l] += better * (signed - code[l]);
            }
        }
    }
    *amp = best;
    for (kind, &code) in kind.iter_mut().zip(&code) {
        *kind = code as i16;
    }
}

/// Which of the block's `NK` temporal templates have a squared norm over the channels above
/// `limit` in some column. The templates' sums advance together, channel by channel (each
/// channel's `NK` rows are contiguous), so their multiply-add chains overlap.
#[inline(always)]
fn live_templates<const NK: usize>(block: &Block, limit: f32) -> [bool; MAX_TEMPORAL] {
    let mut norms = [[0.0f32; LANES]; NK];
    for &c in block.channels {
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
    /// True when some `best[n·width + i]` for a neighbour n and i in `columns` exceeds `v`.
    fn any_exceeds(best: &[f32], width: usize, columns: std::ops::Range<usize>, neighbours: &[usize], v: f32) -> bool => any_exceeds_portable
}

#[inline(always)]
fn any_exceeds_portable(
    best: &[f32],
    width: usize,
    columns: std::ops::Range<usize>,
    neighbours: &[usize],
    v: f32,
) -> bool {
    // A branch-free test per row vectorises; rows are short (2·pool + 1 columns).
    neighbours
        .iter()
        .any(|&n| best[n * width + columns.start..n * width + columns.end].iter().fold(false, |e, &u| e | (u > v)))
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

    #[test]
    fn vector_block_projection_gives_the_bits_of_the_plain_one() {
        let (n_chan, nk, n_sizes) = (12, 6, 5);
        let corr: Vec<f32> = (0..n_chan * nk * LANES).map(|j| ((j * 37 % 101) as f32 - 50.0) / 9.0).collect();
        let envelopes: Vec<f32> = (0..n_sizes * 10).map(|j| ((j * 13 % 7) as f32 + 1.0) / 10.0).collect();
        let channels: Vec<usize> = (0..10).map(|j| (j * 5) % n_chan).collect();
        let block = Block { corr: &corr, channels: &channels, nk };
        for limit in [0.0, 50.0, 400.0] {
            let (mut amp, mut kind) = ([0.0; LANES], [0; LANES]);
            block_projection(&block, &envelopes, limit, &mut amp, &mut kind);
            let (mut plain_amp, mut plain_kind) = ([0.0; LANES], [0; LANES]);
            block_projection_portable(&block, &envelopes, limit, &mut plain_amp, &mut plain_kind);
            assert_eq!(amp.map(f32::to_bits), plain_amp.map(f32::to_bits), "limit {limit}");
            assert_eq!(kind, plain_kind, "limit {limit}");
            assert!(limit > 0.0 || amp.iter().all(|&a| a > 0.0));
        }
    }
}
