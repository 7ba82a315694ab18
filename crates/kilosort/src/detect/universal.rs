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

/// Output samples per time chunk (bounds the per-thread scratch memory).
const CHUNK: usize = 2048;
/// Slack on the Cauchy–Schwarz bound for float rounding in the projections.
const BOUND_SLACK: f32 = 1.0 + 1e-4;
/// Samples computed together in registers when correlating with the temporal templates.
const LANES: usize = 8;
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
    /// Padding of each side of a batch (`nt`).
    pad: usize,
    /// Half-width of the temporal max-pool (`nt0min`).
    pool: usize,
    threshold: f32,
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
            pad: basis.nt(),
            pool: trough_index,
            threshold: threshold as f32,
        }
    }

    /// Detections in one padded whitened batch (`channels × (NT + 2·nt)`), in time order.
    pub fn detect(&self, data: ArrayView2<f32>) -> BatchDetections {
        let len = data.ncols();
        let mut out = BatchDetections::default();
        if len < 2 * self.pad + 1 {
            return out;
        }
        let (first, end) = (self.pad, len - self.pad);
        let mut scratch = Scratch::default();
        let mut t0 = first;
        while t0 < end {
            let t1 = (t0 + CHUNK).min(end);
            self.detect_chunk(data, t0, t1, &mut scratch, &mut out);
            t0 = t1;
        }
        out
    }

    /// Detections with columns in `[t0, t1)`; projections are computed on `[t0 − pool, t1 + pool)`
    /// clipped to the unpadded part, which is all the max-pool looks at.
    fn detect_chunk(&self, data: ArrayView2<f32>, t0: usize, t1: usize, s: &mut Scratch, out: &mut BatchDetections) {
        let (n_chan, len) = data.dim();
        let a = t0.saturating_sub(self.pool).max(self.pad);
        let b = (t1 + self.pool).min(len - self.pad);
        let width = b - a;
        let nk = self.basis.n_templates();
        self.correlate(data, a, width, s);
        // Bound per channel: the largest squared temporal correlation.
        s.bound.clear();
        s.bound.resize(n_chan * width, 0.0);
        for c in 0..n_chan {
            let row = &mut s.bound[c * width..(c + 1) * width];
            for q in 0..nk {
                max_square_assign(row, &s.corr[(c * nk + q) * width..(c * nk + q + 1) * width]);
            }
        }
        let n_pos = self.grid.len();
        s.best.clear();
        s.best.resize(n_pos * width, 0.0);
        s.best_kind.clear();
        s.best_kind.resize(n_pos * width, 0);
        let limit = self.threshold * self.threshold / BOUND_SLACK;
        let mut sum = vec![0.0f32; width];
        let mut rows: Vec<&[f32]> = Vec::with_capacity(self.grid.channels.ncols() * nk);
        for k in 0..n_pos {
            let channels = self.grid.channels.row(k);
            sum.fill(0.0);
            for &c in channels {
                add_assign(&mut sum, &s.bound[c * width..(c + 1) * width]);
            }
            // Blocks of LANES columns holding a candidate are computed whole: the extra
            // columns get their true value, which is below the threshold, so it changes nothing.
            let mut i = 0;
            while i < width {
                let Some(first) = sum[i..].iter().position(|&b| b > limit) else { break };
                let start = (i + first).min(width.saturating_sub(LANES));
                rows.clear();
                for &c in channels {
                    for q in 0..nk {
                        rows.push(&s.corr[(c * nk + q) * width + start..(c * nk + q + 1) * width]);
                    }
                }
                let lanes = LANES.min(width - start);
                let (amp, kind) = block_projection(&rows, nk, &self.envelopes[k], width - start >= LANES);
                s.best[k * width + start..k * width + start + lanes].copy_from_slice(&amp[..lanes]);
                s.best_kind[k * width + start..k * width + start + lanes].copy_from_slice(&kind[..lanes]);
                i = start + lanes;
            }
        }
        self.collect_peaks(data, a, width, t0, t1, s, out);
    }

    /// `corr[(c·nk + q)·width + i] = Σ_s wTEMP[q, s] · data[c, a + i + s − nt/2]`.
    fn correlate(&self, data: ArrayView2<f32>, a: usize, width: usize, s: &mut Scratch) {
        let (n_chan, nk, nt) = (data.nrows(), self.basis.n_templates(), self.basis.nt());
        s.corr.clear();
        s.corr.resize(n_chan * nk * width, 0.0);
        let weights = self.basis.templates.as_standard_layout();
        let weights = weights.as_slice().expect("standard layout");
        for c in 0..n_chan {
            let row = data.row(c);
            let row = row.as_slice().expect("batch rows are contiguous");
            let x = &row[a - nt / 2..a + width + nt / 2];
            temporal_correlation(x, weights, nk, nt, &mut s.corr[c * nk * width..(c + 1) * nk * width]);
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
        s: &Scratch,
        out: &mut BatchDetections,
    ) {
        let nk = self.basis.n_templates();
        let mut found: Vec<(usize, usize)> = Vec::new();
        for k in 0..self.grid.len() {
            let row = &s.best[k * width..(k + 1) * width];
            for (i, &v) in row.iter().enumerate().take(t1 - a).skip(t0 - a) {
                if v > self.threshold && self.is_pool_maximum(k, i, v, width, &s.best) {
                    found.push((a + i, k));
                }
            }
        }
        found.sort_unstable();
        for (t, k) in found {
            let i = t - a;
            let signed = s.best_kind[k * width + i];
            let (r, sign) = ((signed.unsigned_abs() - 1) as usize, signed.signum() as f32);
            let q = r % nk;
            let channels = self.grid.channels.row(k);
            let (mut num, mut den) = (0.0f64, 0.0f64);
            for &c in channels {
                let amp = s.corr[(c * nk + q) * width + i] * sign;
                if amp > 0.0 {
                    num += amp as f64 * self.channel_depth[c] as f64;
                    den += amp as f64;
                }
            }
            out.column.push(t);
            out.template.push(k as u32);
            out.kind.push(r as u16);
            out.amplitude.push(s.best[k * width + i]);
            out.depth.push(if den > 0.0 { (num / den) as f32 } else { f32::NAN });
            self.push_features(data, t, k, &mut out.features);
        }
    }

    fn is_pool_maximum(&self, k: usize, i: usize, v: f32, width: usize, best: &[f32]) -> bool {
        let lo = i.saturating_sub(self.pool);
        let hi = (i + self.pool + 1).min(width);
        self.grid.neighbours.row(k).iter().all(|&n| best[n * width + lo..n * width + hi].iter().all(|&u| u <= v))
    }

    /// `features[c, p] = Σ_s data[channel_c, t + s − nt/2] · wPCA[p, s]` on the template's channels.
    fn push_features(&self, data: ArrayView2<f32>, t: usize, k: usize, features: &mut Vec<f32>) {
        let nt = self.basis.nt();
        for &c in self.grid.channels.row(k) {
            let window = data.row(c);
            let window = &window.as_slice().expect("batch rows are contiguous")[t - nt / 2..t + nt / 2 + 1];
            for pc in self.basis.pcs.rows() {
                features.push(pc.iter().zip(window).map(|(w, x)| w * x).sum());
            }
        }
    }
}

/// Per-thread buffers reused across chunks.
#[derive(Debug, Default)]
struct Scratch {
    corr: Vec<f32>,
    bound: Vec<f32>,
    best: Vec<f32>,
    best_kind: Vec<i16>,
}

crate::avx2_dispatch! {
    /// `acc[i] += x[i]`.
    fn add_assign(acc: &mut [f32], x: &[f32]) => add_assign_portable
}

#[inline(always)]
fn add_assign_portable(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, &v)| *a += v);
}

crate::avx2_dispatch! {
    /// `acc[i] = max(acc[i], x[i]²)`.
    fn max_square_assign(acc: &mut [f32], x: &[f32]) => max_square_assign_portable
}

#[inline(always)]
fn max_square_assign_portable(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(m, &v)| *m = m.max(v * v));
}

/// The best |projection| over envelope sizes and temporal templates for `LANES` consecutive
/// columns: `rows[j·nk + q]` is channel j's correlation with temporal template q from the
/// block's first column, `envelopes` is `(size, channel)`. Returns the amplitudes and
/// `±(size·nk + q + 1)` signed like the projection (first maximum on ties, as torch.max).
fn block_projection(rows: &[&[f32]], nk: usize, envelopes: &[f32], full: bool) -> ([f32; LANES], [i16; LANES]) {
    let mut amp = [0.0f32; LANES];
    let mut kind = [0i16; LANES];
    if full {
        block_projection_full(rows, nk, envelopes, &mut amp, &mut kind);
    } else {
        let n_chan = rows.len() / nk;
        let lanes = rows[0].len();
        for m in 0..envelopes.len() / n_chan {
            for q in 0..nk {
                let r = (m * nk + q) as i16 + 1;
                for l in 0..lanes {
                    let acc: f32 = (0..n_chan).map(|j| envelopes[m * n_chan + j] * rows[j * nk + q][l]).sum();
                    if acc.abs() > amp[l] {
                        amp[l] = acc.abs();
                        kind[l] = if acc < 0.0 { -r } else { r };
                    }
                }
            }
        }
    }
    (amp, kind)
}

crate::avx2_dispatch! {
    /// [`block_projection`] for a full block of `LANES` columns.
    fn block_projection_full(rows: &[&[f32]], nk: usize, envelopes: &[f32], amp: &mut [f32; LANES], kind: &mut [i16; LANES]) => block_projection_portable
}

#[inline(always)]
fn block_projection_portable(
    rows: &[&[f32]],
    nk: usize,
    envelopes: &[f32],
    amp: &mut [f32; LANES],
    kind: &mut [i16; LANES],
) {
    let n_chan = rows.len() / nk;
    for m in 0..envelopes.len() / n_chan {
        let env = &envelopes[m * n_chan..(m + 1) * n_chan];
        for q in 0..nk {
            let mut acc = [0.0f32; LANES];
            for (j, &w) in env.iter().enumerate() {
                let x: &[f32; LANES] = rows[j * nk + q][..LANES].try_into().expect("a full block");
                for l in 0..LANES {
                    acc[l] += w * x[l];
                }
            }
            let r = (m * nk + q) as i16 + 1;
            for l in 0..LANES {
                let a = acc[l].abs();
                if a > amp[l] {
                    amp[l] = a;
                    kind[l] = if acc[l] < 0.0 { -r } else { r };
                }
            }
        }
    }
}

crate::avx2_dispatch! {
    /// `out[q·width + i] = Σ_s w[q·nt + s] · x[i + s]` for `width = x.len() − nt + 1`.
    fn temporal_correlation(x: &[f32], w: &[f32], nk: usize, nt: usize, out: &mut [f32]) => temporal_correlation_portable
}

/// Register-blocked: `LANES` consecutive outputs of every temporal template accumulate together,
/// so each input vector is loaded once per tap for all templates.
#[inline(always)]
fn temporal_correlation_portable(x: &[f32], w: &[f32], nk: usize, nt: usize, out: &mut [f32]) {
    let width = x.len() + 1 - nt;
    let mut i = 0;
    while i + LANES <= width {
        let mut acc = [[0.0f32; LANES]; MAX_TEMPORAL];
        for s in 0..nt {
            let xs: &[f32; LANES] = x[i + s..i + s + LANES].try_into().expect("LANES samples");
            for q in 0..nk {
                let wq = w[q * nt + s];
                for l in 0..LANES {
                    acc[q][l] += wq * xs[l];
                }
            }
        }
        for q in 0..nk {
            out[q * width + i..q * width + i + LANES].copy_from_slice(&acc[q]);
        }
        i += LANES;
    }
    for i in i..width {
        for q in 0..nk {
            out[q * width + i] = (0..nt).map(|s| w[q * nt + s] * x[i + s]).sum();
        }
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
