//! Greedy merging of templates whose waveforms are alike (Kilosort4's `merging_function`,
//! spec §8.5).
//!
//! Clusters are visited from the most to the least populous. Each one looks for the most similar
//! other template (best normalised cross-correlation over lags −nt…nt); while that similarity is
//! at least `r_thresh`, a rule decides whether to absorb it. Kilosort4 has two rules: 'mu'
//! (similar template norms, [`similar_norms`]) and 'ccg' (a cross-refractory correlogram, built by
//! the caller from the correlogram module). An absorbed cluster's spikes can be moved in time by
//! the lag that best aligns the two templates.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, Axis, s};

use super::xcorr::{Support, best_lags_against, lag_matrix, normalised};

/// Kilosort4's 'mu' rule: norms differing by less than this fraction of their mean merge.
const NORM_DIFFERENCE_LIMIT: f32 = 0.2;

/// Similarity threshold and time realignment of one merging pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeOptions {
    /// Only templates at least this similar are considered (0.9 for the duplicate merge of
    /// learned templates, 0.5 for the final merge). Must be positive.
    pub r_thresh: f32,
    /// Shift an absorbed cluster's spikes and template by the lag that aligns it.
    pub check_dt: bool,
}

/// A pair the merging rule is asked about. Labels are those of the input.
#[derive(Debug, Clone, Copy)]
pub struct MergeCandidate<'a> {
    /// The cluster that would absorb (visited now).
    pub absorber: usize,
    /// The cluster that would be absorbed.
    pub candidate: usize,
    /// Best normalised cross-correlation of the two templates.
    pub similarity: f32,
    /// Samples the candidate's spikes would move by when `check_dt` (Kilosort4's `−dt`).
    pub shift: i64,
    /// L2 norm of the absorber's template (Kilosort4's `mu`).
    pub absorber_norm: f32,
    /// L2 norm of the candidate's template.
    pub candidate_norm: f32,
    spikes: Option<(&'a [i64], &'a [Vec<usize>])>,
}

impl MergeCandidate<'_> {
    /// The absorber's current spike times (samples, ascending), including spikes it absorbed
    /// earlier in this pass. Empty when merging from counts only ([`super::learned_templates`]).
    pub fn absorber_times(&self) -> Vec<i64> {
        self.times(self.absorber)
    }

    /// The candidate's current spike times (samples, ascending), before any shift.
    pub fn candidate_times(&self) -> Vec<i64> {
        self.times(self.candidate)
    }

    fn times(&self, label: usize) -> Vec<i64> {
        let Some((sample, members)) = self.spikes else { return Vec::new() };
        let mut t: Vec<i64> = members[label].iter().map(|&i| sample[i]).collect();
        t.sort_unstable();
        t
    }
}

/// Kilosort4's 'mu' rule: merge when `|2(μa − μb)/(μa + μb)| < 0.2` for the template norms μ.
pub fn similar_norms(candidate: &MergeCandidate) -> bool {
    let (a, b) = (candidate.absorber_norm, candidate.candidate_norm);
    (2.0 * (a - b) / (a + b)).abs() < NORM_DIFFERENCE_LIMIT
}

/// Spikes with a cluster label and their features.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSpikes {
    /// Spike times, samples relative to the first analysed sample.
    pub sample: Vec<i64>,
    /// Cluster of each spike, `0…K−1`.
    pub label: Vec<u32>,
    /// PC features `(n_spikes, nearest_chans, n_pcs)` (Kilosort4's `tF`).
    pub features: Array3<f32>,
}

/// One accepted merge, in the order it happened (input labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Merge {
    /// The absorbing cluster.
    pub into: usize,
    /// The absorbed cluster.
    pub from: usize,
    /// Samples its spikes moved by (0 without `check_dt`).
    pub shift: i64,
}

/// The result of [`merge_templates`].
#[derive(Debug, Clone)]
pub struct Merged {
    /// Surviving templates `(K', n_channels, n_pcs)`, in input order.
    pub templates: Array3<f32>,
    /// Input label of each surviving cluster (new label `i` was `kept[i]`).
    pub kept: Vec<usize>,
    /// The spikes relabelled `0…K'−1`, times shifted where merges realigned them, sorted by time.
    pub spikes: LabelledSpikes,
    /// Input index of each output spike (output spike i was input spike `order[i]`).
    pub order: Vec<usize>,
    /// Every merge, in order.
    pub merges: Vec<Merge>,
}

/// Merges similar templates (Kilosort4's `merging_function`).
///
/// `templates` is `(K, n_channels, n_pcs)`; spike labels must be below K. Only clusters for
/// which `can_absorb` is true absorb others (Kilosort4's 'ccg' mode: refractory clusters only);
/// `accept` decides each candidate pair ([`similar_norms`] for 'mu' mode).
pub fn merge_templates(
    templates: ArrayView3<f32>,
    mut spikes: LabelledSpikes,
    pcs: ArrayView2<f32>,
    options: MergeOptions,
    can_absorb: impl Fn(usize) -> bool,
    mut accept: impl FnMut(&MergeCandidate) -> bool,
) -> Merged {
    let k = templates.len_of(Axis(0));
    let mut members = vec![Vec::new(); k];
    for (i, &l) in spikes.label.iter().enumerate() {
        assert!((l as usize) < k, "spike label {l} has no template (K = {k})");
        members[l as usize].push(i);
    }
    let counts: Vec<usize> = members.iter().map(Vec::len).collect();
    let mut state = MergeState::new(templates, counts, pcs);
    let mut target = SpikeTarget { spikes: &mut spikes, members };
    state.run(options, &can_absorb, &mut accept, Some(&mut target));
    let members = target.members;
    let kept: Vec<usize> = (0..k).filter(|&j| !state.merged[j]).collect();
    for (new, &old) in kept.iter().enumerate() {
        for &i in &members[old] {
            spikes.label[i] = new as u32;
        }
    }
    let (spikes, order) = sorted_by_time(spikes);
    Merged { templates: state.templates.select(Axis(0), &kept), kept, spikes, order, merges: state.merges }
}

/// Merging with cluster sizes only and no spikes (the duplicate merge of learned templates):
/// returns the surviving templates and their input indices.
pub(crate) fn merge_by_counts(
    templates: ArrayView3<f32>,
    counts: Vec<usize>,
    pcs: ArrayView2<f32>,
    options: MergeOptions,
    mut accept: impl FnMut(&MergeCandidate) -> bool,
) -> (Array3<f32>, Vec<usize>) {
    let mut state = MergeState::new(templates, counts, pcs);
    state.run(options, &|_| true, &mut accept, None);
    let kept: Vec<usize> = (0..state.merged.len()).filter(|&j| !state.merged[j]).collect();
    (state.templates.select(Axis(0), &kept), kept)
}

/// The spikes a merge pass moves and relabels.
struct SpikeTarget<'a> {
    spikes: &'a mut LabelledSpikes,
    /// Spike indices of each input cluster (absorbed lists are moved to the absorber).
    members: Vec<Vec<usize>>,
}

/// Templates, their normalised copies and sizes as merging proceeds.
struct MergeState<'p> {
    templates: Array3<f32>,
    unit: Array3<f32>,
    norms: Vec<f32>,
    supports: Vec<Support>,
    counts: Vec<usize>,
    merged: Vec<bool>,
    merges: Vec<Merge>,
    pcs: ArrayView2<'p, f32>,
    wtw: Array2<f32>,
}

impl<'p> MergeState<'p> {
    fn new(templates: ArrayView3<f32>, counts: Vec<usize>, pcs: ArrayView2<'p, f32>) -> Self {
        let (unit, norms) = normalised(templates);
        let k = templates.len_of(Axis(0));
        assert_eq!(counts.len(), k, "one count per template");
        MergeState {
            templates: templates.to_owned(),
            supports: unit.outer_iter().map(Support::nonzero).collect(),
            unit,
            norms,
            counts,
            merged: vec![false; k],
            merges: Vec::new(),
            pcs,
            wtw: lag_matrix(pcs),
        }
    }

    /// Visits clusters by decreasing size; a cluster that absorbed one is visited again.
    fn run(
        &mut self,
        options: MergeOptions,
        can_absorb: &dyn Fn(usize) -> bool,
        accept: &mut dyn FnMut(&MergeCandidate) -> bool,
        mut target: Option<&mut SpikeTarget>,
    ) {
        assert!(options.r_thresh > 0.0, "r_thresh must be positive");
        let k = self.counts.len();
        // Kilosort4 reverses an ascending argsort: ties go to the larger label first.
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| self.counts[b].cmp(&self.counts[a]).then(b.cmp(&a)));
        let mut t = 0;
        while t < k {
            let a = order[t];
            if self.merged[a] || !can_absorb(a) {
                t += 1;
                continue;
            }
            let spikes = target.as_deref().map(|s| (s.spikes.sample.as_slice(), s.members.as_slice()));
            match self.find_partner(a, options.r_thresh, accept, spikes) {
                Some((b, shift)) => self.absorb(a, b, if options.check_dt { shift } else { 0 }, target.as_deref_mut()),
                None => t += 1,
            }
        }
    }

    /// The first candidate, by decreasing similarity above `r_thresh`, that `accept` takes, with
    /// the shift that aligns it to `a`.
    fn find_partner(
        &self,
        a: usize,
        r_thresh: f32,
        accept: &mut dyn FnMut(&MergeCandidate) -> bool,
        spikes: Option<(&[i64], &[Vec<usize>])>,
    ) -> Option<(usize, i64)> {
        let lags = best_lags_against(a, self.unit.view(), &self.supports, &self.wtw);
        let own_lag = lags[a].1 as i64;
        let mut candidates: Vec<usize> =
            (0..lags.len()).filter(|&b| b != a && !self.merged[b] && lags[b].0 >= r_thresh).collect();
        candidates.sort_by(|&x, &y| lags[y].0.total_cmp(&lags[x].0).then(y.cmp(&x)));
        candidates.into_iter().find_map(|b| {
            let candidate = MergeCandidate {
                absorber: a,
                candidate: b,
                similarity: lags[b].0,
                // Kilosort4's dt = τ*_a − τ*_b; b's spikes move by −dt.
                shift: lags[b].1 as i64 - own_lag,
                absorber_norm: self.norms[a],
                candidate_norm: self.norms[b],
                spikes,
            };
            accept(&candidate).then_some((b, candidate.shift))
        })
    }

    /// `a` absorbs `b`: b's template (and spikes) shifted by `shift` samples, then the
    /// count-weighted mean template.
    fn absorb(&mut self, a: usize, b: usize, shift: i64, target: Option<&mut SpikeTarget>) {
        // Spikes move later by `shift`, so the waveform in their window moves earlier.
        if shift != 0 {
            roll_waveforms(self.templates.index_axis_mut(Axis(0), b), self.pcs, -shift);
        }
        let (na, nb) = (self.counts[a], self.counts[b]);
        let total = (na + nb).max(1) as f64;
        let (wa, wb) = ((na as f64 / total) as f32, (nb as f64 / total) as f32);
        let from = self.templates.index_axis(Axis(0), b).to_owned();
        self.templates.index_axis_mut(Axis(0), a).zip_mut_with(&from, |x, &y| *x = wa * *x + wb * y);
        self.templates.index_axis_mut(Axis(0), b).fill(0.0);
        self.counts[a] += nb;
        self.counts[b] = 0;
        self.merged[b] = true;
        self.merges.push(Merge { into: a, from: b, shift });
        for j in [a, b] {
            let (unit, norms) = normalised(self.templates.slice(s![j..j + 1, .., ..]));
            self.unit.index_axis_mut(Axis(0), j).assign(&unit.index_axis(Axis(0), 0));
            self.norms[j] = norms[0];
            self.supports[j] = Support::nonzero(unit.index_axis(Axis(0), 0));
        }
        if let Some(target) = target {
            let moved = std::mem::take(&mut target.members[b]);
            if shift != 0 {
                for &i in &moved {
                    target.spikes.sample[i] += shift;
                    roll_waveforms(target.spikes.features.index_axis_mut(Axis(0), i), self.pcs, -shift);
                }
            }
            target.members[a].extend(moved);
        }
    }
}

/// Moves each row's waveform (`coefficients · pcs`) later by `by` samples (earlier if
/// negative), repeating the edge sample into the vacated places, and projects it back onto the
/// PCs (Kilosort4's `roll_features` with `dt = by`).
pub(crate) fn roll_waveforms(mut coefficients: ArrayViewMut2<f32>, pcs: ArrayView2<f32>, by: i64) {
    let nt = pcs.ncols() as i64;
    for mut row in coefficients.outer_iter_mut() {
        let wave = row.dot(&pcs);
        let moved: Vec<f32> = (0..nt).map(|s| wave[(s - by).clamp(0, nt - 1) as usize]).collect();
        for (p, r) in row.iter_mut().enumerate() {
            *r = pcs.row(p).iter().zip(&moved).map(|(w, x)| w * x).sum();
        }
    }
}

/// The spikes in time order (stable), and the input index of each.
fn sorted_by_time(spikes: LabelledSpikes) -> (LabelledSpikes, Vec<usize>) {
    let mut order: Vec<usize> = (0..spikes.sample.len()).collect();
    order.sort_by_key(|&i| spikes.sample[i]);
    let sorted = LabelledSpikes {
        sample: order.iter().map(|&i| spikes.sample[i]).collect(),
        label: order.iter().map(|&i| spikes.label[i]).collect(),
        features: crate::rows::permute_rows(spikes.features, &order),
    };
    (sorted, order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::xcorr::tests::smooth_basis;
    use ndarray::Array1;

    const NT: usize = 31;

    /// A template on 6 channels whose waveform is a smooth bump at `centre` with the given
    /// spatial profile; expressed in PC space (projection onto `pcs`).
    fn template(pcs: &Array2<f32>, centre: f64, width: f64, profile: &[f32]) -> Array2<f32> {
        let wave = Array1::from_shape_fn(NT, |s| {
            let x = (s as f64 - centre) / width;
            (-(x * x) / 2.0).exp() as f32 * (1.0 - x as f32 * 0.3)
        });
        let coeffs = pcs.dot(&wave);
        Array2::from_shape_fn((profile.len(), pcs.nrows()), |(c, p)| profile[c] * coeffs[p])
    }

    fn stack(ts: &[Array2<f32>]) -> Array3<f32> {
        let views: Vec<_> = ts.iter().map(|t| t.view()).collect();
        ndarray::stack(Axis(0), &views).unwrap()
    }

    fn spikes(labels: &[u32], n_chan: usize, n_pcs: usize) -> LabelledSpikes {
        LabelledSpikes {
            sample: (0..labels.len() as i64).map(|i| 100 * i).collect(),
            label: labels.to_vec(),
            features: Array3::from_shape_fn((labels.len(), n_chan, n_pcs), |(i, c, p)| (i + c + p) as f32),
        }
    }

    #[test]
    fn scaled_copies_merge_in_mu_mode_and_different_templates_do_not() {
        let pcs = smooth_basis(8, NT);
        let profile = [0.2, 1.0, 0.6, 0.1, 0.0, 0.0];
        let a = template(&pcs, 10.0, 2.0, &profile);
        let copy = &a * 1.1;
        let far = template(&pcs, 10.0, 2.0, &[0.0, 0.0, 0.0, 0.1, 1.0, 0.5]);
        let big = &a * 2.0; // same shape, norm too different for 'mu'
        let t = stack(&[a.clone(), copy, far, big]);
        let options = MergeOptions { r_thresh: 0.9, check_dt: false };
        let input = spikes(&[0, 0, 0, 1, 1, 2, 3], 6, 8);
        let out = merge_templates(t.view(), input, pcs.view(), options, |_| true, similar_norms);
        assert_eq!(out.merges, [Merge { into: 0, from: 1, shift: 0 }]);
        assert_eq!(out.kept, [0, 2, 3]);
        assert_eq!(out.spikes.label, [0, 0, 0, 0, 0, 1, 2]);
        // Count-weighted mean: (3·a + 2·1.1a)/5 = 1.04a.
        let expected = &a * 1.04;
        assert!(out.templates.index_axis(Axis(0), 0).iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-5));
        let (kept_t, kept) = merge_by_counts(t.view(), vec![3, 2, 1, 1], pcs.view(), options, similar_norms);
        assert_eq!((kept, kept_t.dim()), (vec![0, 2, 3], (3, 6, 8)));
    }

    #[test]
    fn a_time_shifted_copy_merges_with_check_dt_and_its_spikes_move() {
        let pcs = smooth_basis(8, NT);
        let profile = [0.3, 1.0, 0.5, 0.0, 0.0, 0.0];
        let a = template(&pcs, 10.0, 2.5, &profile);
        // b is a's waveform 3 samples later: its spikes sit 3 samples too early.
        let b = template(&pcs, 13.0, 2.5, &profile);
        let t = stack(&[a.clone(), b.clone()]);
        let input = spikes(&[0, 0, 0, 1, 1], 6, 8);
        let features_b = input.features.slice(s![3..5, .., ..]).to_owned();
        let options = MergeOptions { r_thresh: 0.5, check_dt: true };
        let out = merge_templates(t.view(), input, pcs.view(), options, |_| true, |_| true);
        assert_eq!(out.merges, [Merge { into: 0, from: 1, shift: 3 }]);
        assert_eq!(out.spikes.sample, [0, 100, 200, 303, 403]);
        assert_eq!(out.spikes.label, [0; 5]);
        // b's template moved 3 samples earlier now matches a, so the mean is ≈ a.
        let merged = out.templates.index_axis(Axis(0), 0);
        let err = (&merged - &a).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(err < 0.05 * a.iter().map(|v| v * v).sum::<f32>().sqrt(), "{err}");
        // Features of b's spikes were shifted the same way.
        let mut expected = features_b.clone();
        for mut f in expected.outer_iter_mut() {
            roll_waveforms(f.view_mut(), pcs.view(), -3);
        }
        assert_eq!(out.spikes.features.slice(s![3..5, .., ..]), expected);
        // Without check_dt nothing moves.
        let input = spikes(&[0, 0, 0, 1, 1], 6, 8);
        let options = MergeOptions { check_dt: false, ..options };
        let out = merge_templates(t.view(), input, pcs.view(), options, |_| true, |_| true);
        assert_eq!((out.merges[0].shift, out.spikes.sample[3]), (0, 300));
    }

    #[test]
    fn only_allowed_absorbers_absorb_and_the_rule_sees_spike_times() {
        let pcs = smooth_basis(6, NT);
        let profile = |second: f32| [1.0, second, 0.0, 0.0, 0.0, 0.0];
        let [a, b, c] = [0.5, 0.6, 0.62].map(|v| template(&pcs, 10.0, 2.0, &profile(v)));
        let t = stack(&[a, b, c]);
        let input = spikes(&[0, 0, 0, 1, 1, 2], 6, 6);
        let options = MergeOptions { r_thresh: 0.5, check_dt: true };
        let mut seen = Vec::new();
        let out = merge_templates(
            t.view(),
            input,
            pcs.view(),
            options,
            |k| k != 0,
            |c| {
                seen.push((c.absorber, c.candidate, c.absorber_times(), c.candidate_times()));
                true
            },
        );
        // 0 (largest) may not absorb; 1 absorbs its closest match 2, then 0.
        assert_eq!(seen[0], (1, 2, vec![300, 400], vec![500]));
        assert_eq!(seen[1], (1, 0, vec![300, 400, 500], vec![0, 100, 200]));
        assert_eq!(out.kept, [1]);
        assert_eq!(out.spikes.label, [0; 6]);
    }

    #[test]
    fn shifting_moves_the_waveform_and_repeats_the_edge() {
        let pcs = Array2::from_shape_fn((5, 5), |(p, s)| if p == s { 1.0 } else { 0.0 });
        let mut w = Array2::from_shape_vec((1, 5), vec![1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        roll_waveforms(w.view_mut(), pcs.view(), 2);
        assert_eq!(w.row(0).to_vec(), [1.0, 1.0, 1.0, 2.0, 3.0]);
        roll_waveforms(w.view_mut(), pcs.view(), -1);
        assert_eq!(w.row(0).to_vec(), [1.0, 1.0, 2.0, 3.0, 3.0]);
    }
}
