#!/usr/bin/env python
"""Reference values for the post-processing stage (spec §9), made by Kilosort4 4.1.7 itself.

Run from the repository root with the benchmark venv (kilosort 4.1.7, torch CPU, numpy, numba):

    ~/ks-bench/.venv/bin/python tests/data/postprocess/make_postprocess_fixtures.py

Inputs are drawn from numpy's PCG64 with fixed seeds and saved beside the outputs, so the Rust
tests read the very same inputs (no random generator has to be reproduced). Only small Kilosort4
functions are called: `CCG.compute_CCG`, `CCG.CCG_metrics`, `CCG.check_CCG`, `CCG.refract`,
`postprocessing.remove_duplicates`, `postprocessing.compute_spike_positions`,
`postprocessing.make_pc_features` and `template_matching.prepare_extract`.

Files (all little-endian .npy):
  trains_times.npy (n,) f64 s, trains_labels.npy (n,) i32 — spike trains, time-sorted:
      0 Poisson 20 Hz with 2 ms dead time plus 3 % uniform contamination; 1 two independent 10 Hz trains merged;
      2 one train split at random with cluster 3 (halves of one neuron); 3 the other half;
      4 an independent 12 Hz train; 5 eight spikes (too few); 6 twelve spikes at one instant.
  ccg_pairs.npy (P, 2) i32 — (label a, label b) pairs, b = -1 for an auto-correlogram;
  ccg_counts.npy (P, 1001) f64 compute_CCG histograms; ccg_span.npy (P,) f64 its T;
  ccg_metrics.npy (P, 3) f64 (R12, Q12, Q00); ccg_check.npy (P, 3) f64 (is_ref, cross_ref, R12)
      with acg_threshold 0.2, ccg_threshold 0.25.
  refract_is_ref.npy, refract_r12.npy (7,) f64 — CCG.refract(labels, times, 0.2, 0.25).
  dup_times.npy (m,) i64, dup_labels.npy (m,) i32, dup_kept.npy (m,) bool — remove_duplicates dt=7.
  pos_xc.npy, pos_yc.npy (Nchan,) f32 probe; pos_icc.npy (nC, Nchan) i64; pos_icc_mask.npy bool;
  pos_iu.npy (T,) i64 peak channel of each learned template; pos_templates.npy (n,) i64 learned
  template of each spike; pos_tf.npy (n, nC, nPC) f32 features; pos_xy.npy (n, 2) f32 positions;
  pos_amplitudes.npy (n,) f32 = |tF[spike]|.
  pcf_clusters_a.npy (n,) i32: clusters that never share a learned template;
  pcf_features_a.npy (n, nPC, nC) f32, pcf_ind_a.npy (K, nC) u32 — make_pc_features on them;
  pcf_clusters_b.npy (n,) i32: clusters that share learned templates; pcf_features_b.npy,
  pcf_ind_b.npy — the intended result (each spike on its own cluster's channels), made by calling
  make_pc_features once per cluster on that cluster's spikes alone.
"""
from pathlib import Path

import numpy as np
import torch

from kilosort import CCG, postprocessing
from kilosort.template_matching import prepare_extract

OUT = Path(__file__).resolve().parent
FS = 30000.0


def save(name, arr):
    np.save(OUT / f"{name}.npy", arr)


def poisson_samples(rng, rate, duration_s, dead_s):
    """Spike samples of a Poisson train with a dead time after each spike."""
    n = int(rate * duration_s * 1.5) + 10
    isi = dead_s + rng.exponential(1.0 / rate, n)
    t = np.cumsum(isi)
    t = t[t < duration_s]
    return np.round(t * FS).astype(np.int64)


def make_trains():
    rng = np.random.default_rng(20240601)
    dur = 120.0
    clean = poisson_samples(rng, 20.0, dur, 0.002)
    # 3 % of uniformly placed extra spikes: a few refractory violations, so R12 is small but not 0.
    clean = np.sort(np.concatenate([clean, rng.integers(0, int(dur * FS), clean.size * 3 // 100)]))
    merged = np.concatenate([poisson_samples(rng, 10.0, dur, 0.002), poisson_samples(rng, 10.0, dur, 0.002)])
    neuron = poisson_samples(rng, 24.0, dur, 0.002)
    half = rng.random(neuron.size) < 0.5
    other = poisson_samples(rng, 12.0, dur, 0.002)
    few = np.sort(rng.integers(0, int(dur * FS), 8))
    same = np.full(12, 1_234_567, dtype=np.int64)
    parts = [clean, merged, neuron[half], neuron[~half], other, few, same]
    samples = np.concatenate(parts)
    labels = np.concatenate([np.full(p.size, k, np.int32) for k, p in enumerate(parts)])
    order = np.argsort(samples, kind="stable")
    samples, labels = samples[order], labels[order]
    times = samples / FS
    save("trains_times", times)
    save("trains_labels", labels)
    return times, labels


def ccg_fixtures(times, labels):
    pairs = [(0, -1), (1, -1), (2, -1), (4, -1), (2, 3), (0, 4), (3, 2)]
    counts, spans, metrics, checks = [], [], [], []
    for a, b in pairs:
        st1 = times[labels == a]
        st2 = st1.copy() if b < 0 else times[labels == b]
        K, T = CCG.compute_CCG(st1, st2, nbins=500, tbin=1 / 1000)
        R12, Q12, Q00 = CCG.CCG_metrics(st1, st2, K.copy(), T, nbins=500, tbin=1 / 1000)
        is_ref, cross, r12 = CCG.check_CCG(st1, None if b < 0 else st2, acg_threshold=0.2, ccg_threshold=0.25)
        counts.append(K)
        spans.append(T)
        metrics.append((R12, Q12, Q00))
        checks.append((float(is_ref), float(cross), r12))
    save("ccg_pairs", np.array(pairs, np.int32))
    save("ccg_counts", np.array(counts))
    save("ccg_span", np.array(spans))
    save("ccg_metrics", np.array(metrics, np.float64))
    save("ccg_check", np.array(checks, np.float64))
    is_ref, r12 = CCG.refract(labels, times, acg_threshold=0.2, ccg_threshold=0.25)
    save("refract_is_ref", is_ref.astype(np.float64))
    save("refract_r12", r12.astype(np.float64))


def duplicate_fixtures():
    rng = np.random.default_rng(77)
    n = 2000
    gaps = rng.integers(0, 6, n)  # many spikes closer than dt = 7 samples
    t = np.cumsum(gaps).astype(np.int64) + 100
    lab = rng.integers(0, 4, n).astype(np.int32)
    _, _, kept = postprocessing.remove_duplicates(t, lab, np.int32(7))
    save("dup_times", t)
    save("dup_labels", lab)
    save("dup_kept", kept)


def probe_and_templates(rng, n_templates, n_pcs):
    # Two columns of 12 contacts, 16 µm lateral / 20 µm vertical pitch, staggered.
    n_chan = 24
    xc = np.where(np.arange(n_chan) % 2 == 0, 11.0, 27.0).astype(np.float32)
    yc = (20.0 * (np.arange(n_chan) // 2) + 10.0 * (np.arange(n_chan) % 2)).astype(np.float32)
    # U: (T, nPC, Nchan) with each template peaking on a chosen channel.
    peaks = rng.integers(0, n_chan, n_templates)
    d2 = (yc[None, :] - yc[peaks][:, None]) ** 2 + (xc[None, :] - xc[peaks][:, None]) ** 2
    U = np.exp(-d2 / 900.0)[:, None, :] * rng.normal(1.0, 0.1, (n_templates, n_pcs, n_chan))
    U = torch.from_numpy(U.astype(np.float32))
    iCC, iCC_mask, iU, _ = prepare_extract(xc, yc, U, 8, 40.0, device=torch.device("cpu"))
    return xc, yc, iCC, iCC_mask, iU


def position_fixtures():
    rng = np.random.default_rng(5)
    n, n_pcs, n_templates = 400, 6, 9
    xc, yc, iCC, iCC_mask, iU = probe_and_templates(rng, n_templates, n_pcs)
    templates = rng.integers(0, n_templates, n).astype(np.int64)
    tF = torch.from_numpy(rng.normal(0.0, 1.0, (n, iCC.shape[0], n_pcs)).astype(np.float32))
    st = np.zeros((n, 3), np.int64)
    st[:, 1] = templates
    ops = {"iCC": iCC, "iCC_mask": iCC_mask, "iU": iU, "xc": xc, "yc": yc}
    xs, ys = postprocessing.compute_spike_positions(st, tF, ops)
    amplitudes = torch.norm(tF, dim=[-2, -1]).numpy()
    save("pos_xc", xc)
    save("pos_yc", yc)
    save("pos_icc", iCC.numpy().astype(np.int64))
    save("pos_icc_mask", iCC_mask.numpy())
    save("pos_iu", iU.numpy().astype(np.int64))
    save("pos_templates", templates)
    save("pos_tf", tF.numpy())
    save("pos_xy", np.stack([xs, ys], axis=-1).astype(np.float32))
    save("pos_amplitudes", amplitudes.astype(np.float32))
    return ops, templates, tF


def pc_feature_fixtures(ops, templates, tF):
    ops = dict(ops, nearest_chans=ops["iCC"].shape[0], dmin=20.0, dminx=32.0)
    # a: templates {0,1}->0, {2}->1, {3,4,5}->2, {6}->3, {7,8}->4: never shared.
    to_cluster = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4], np.int32)
    clusters_a = to_cluster[templates]
    features, ind = postprocessing.make_pc_features(ops, templates, clusters_a, tF.clone())
    save("pcf_clusters_a", clusters_a)
    save("pcf_features_a", features.numpy().astype(np.float32))
    save("pcf_ind_a", ind)
    # b: the spikes of templates 0, 3 and 7 are split between two clusters each.
    rng = np.random.default_rng(9)
    clusters_b = clusters_a.copy()
    for t, other in [(0, 1), (3, 4), (7, 0)]:
        sel = np.nonzero(templates == t)[0]
        clusters_b[sel[rng.random(sel.size) < 0.4]] = other
    n_clusters = clusters_b.max() + 1
    features_b = np.zeros((templates.size, tF.shape[2], tF.shape[1]), np.float32)
    ind_b = np.zeros((n_clusters, tF.shape[1]), np.uint32)
    for k in range(n_clusters):
        sel = np.nonzero(clusters_b == k)[0]
        f, i = postprocessing.make_pc_features(ops, templates[sel], np.zeros(sel.size, np.int32), tF[sel].clone())
        features_b[sel] = f.numpy()
        ind_b[k] = i[0]
    save("pcf_clusters_b", clusters_b)
    save("pcf_features_b", features_b)
    save("pcf_ind_b", ind_b)


def main():
    times, labels = make_trains()
    ccg_fixtures(times, labels)
    duplicate_fixtures()
    ops, templates, tF = position_fixtures()
    pc_feature_fixtures(ops, templates, tF)
    for p in sorted(OUT.glob("*.npy")):
        print(f"{p.name:28s} {p.stat().st_size:8d} bytes")


if __name__ == "__main__":
    main()
