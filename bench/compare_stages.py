#!/usr/bin/env python
"""Compare kilosort-rs with Kilosort4 stage by stage on one recording (issue 18).

  ~/ks-bench/.venv/bin/python bench/compare_stages.py KS4_DIR KSRS_DIR

KS4_DIR  the output of bench/ks4_stages.py (its stages/ folder is read)
KSRS_DIR a kilosort-rs results folder sorted with --save-extra-vars

Prints, for each stage, the counts of both and how far they agree:
  universal detections  matched one to one within ±2 samples and the same grid position
  first clustering      clusters, and how the matched detections' labels correspond
  learned templates     count; for each Kilosort4 template, the best normalised waveform
                        correlation with ours
  matching              spikes, per-batch ratio, and per learned template (paired by waveform)
  final                 units
"""
import sys
from pathlib import Path

import numpy as np


def match_times(a, b, tol):
    """Greedy one-to-one pairs (i, j) of sorted sample times within tol."""
    pairs, j = [], 0
    used = np.zeros(len(b), bool)
    for i, t in enumerate(a):
        while j < len(b) and b[j] < t - tol:
            j += 1
        k = j
        while k < len(b) and b[k] <= t + tol:
            if not used[k]:
                used[k] = True
                pairs.append((i, k))
                break
            k += 1
    return np.array(pairs, int).reshape(-1, 2)


def waveforms(W, wPCA, layout):
    """(K, Nchan·nt) unit-norm waveforms from PC templates in the given axis layout."""
    if layout == "k_pc_ch":
        W = np.transpose(W, (0, 2, 1))
    full = np.einsum("kcp,pt->kct", W, wPCA).reshape(len(W), -1)
    return full / (np.linalg.norm(full, axis=1, keepdims=True) + 1e-12)


def main(ks4_dir, ours_dir):
    k4, rs = Path(ks4_dir) / "stages", Path(ours_dir)
    fs = 30000.0
    wPCA = np.load(k4 / "wPCA.npy")
    ours_wpca = np.load(rs / "wPCA.npy") if (rs / "wPCA.npy").exists() else None
    if ours_wpca is not None:
        overlap = np.abs(wPCA @ ours_wpca.T)
        print(f"wPCA |cos| diagonal: {np.round(np.diag(overlap), 4)}")

    st0_k = np.load(k4 / "st0.npy")
    st0_r = np.load(rs / "st0.npy")
    tk = np.round(st0_k[:, 0] * fs).astype(np.int64)
    tr = st0_r[:, 0].astype(np.int64)
    order_k, order_r = np.argsort(tk, kind="stable"), np.argsort(tr, kind="stable")
    pairs = match_times(tk[order_k], tr[order_r], 2)
    pk, pr = order_k[pairs[:, 0]], order_r[pairs[:, 1]]
    same_pos = np.mean(st0_k[pk, 5].astype(int) == st0_r[pr, 1].astype(int)) if len(pairs) else 0
    print(f"universal detections: KS4 {len(tk)}, ours {len(tr)}; matched ±2 samples {len(pairs)} "
          f"({len(pairs) / max(len(tk), 1):.1%} of KS4's), same grid position {same_pos:.1%}")

    clu0_k, clu0_r = np.load(k4 / "clu0.npy"), np.load(rs / "clu0.npy")
    nk, nr = clu0_k.max() + 1, clu0_r.max() + 1
    table = np.zeros((nk, nr), int)
    np.add.at(table, (clu0_k[pk], clu0_r[pr]), 1)
    best = table.max(1) / np.maximum(table.sum(1), 1)
    print(f"first clusters: KS4 {nk}, ours {nr}; KS4 clusters whose matched spikes go ≥ 90 % to one of ours: "
          f"{np.sum(best >= 0.9)} of {nk}")
    sizes_k = np.bincount(clu0_k, minlength=nk)
    sizes_r = np.bincount(clu0_r, minlength=nr)
    print(f"  KS4 sizes (desc): {sorted(sizes_k, reverse=True)[:60]}")
    print(f"  ours sizes (desc): {sorted(sizes_r, reverse=True)[:60]}")

    W3k = np.load(k4 / "Wall3.npy")  # (K, nPC, Nchan)
    W3r = np.load(rs / "Wall3.npy")  # written in the same layout
    wk, wr = waveforms(W3k, wPCA, "k_pc_ch"), waveforms(W3r, ours_wpca if ours_wpca is not None else wPCA, "k_pc_ch")
    cc = wk @ wr.T
    print(f"learned templates: KS4 {len(W3k)}, ours {len(W3r)}; KS4 templates with a ≥ 0.95 twin in ours: "
          f"{np.sum(cc.max(1) >= 0.95)}, ≥ 0.8: {np.sum(cc.max(1) >= 0.8)}")

    stm_k = np.load(k4 / "st_match.npy")
    print(f"matched spikes: KS4 {len(stm_k)}", end="")
    kept_r = np.load(rs / "kept_spikes.npy")
    print(f", ours {len(kept_r)}; after duplicate removal KS4 {len(np.load(Path(ks4_dir) / 'spike_times.npy'))}, "
          f"ours {kept_r.sum()}")
    per_k = np.bincount(stm_k[:, 1].astype(int), minlength=len(W3k))
    per_r = np.bincount(np.load(rs / "spike_detection_templates.npy").astype(int), minlength=len(W3r))
    twin = cc.argmax(1)
    print("  per KS4 learned template (before duplicate removal) vs its twin of ours (after): count, cos")
    for k in np.argsort(-per_k)[:60]:
        print(f"    {k:3d}: {per_k[k]:6d}  twin {twin[k]:3d}: {per_r[twin[k]]:6d} ({cc[k, twin[k]]:.3f})")
    orphans = sorted(set(range(len(W3r))) - set(twin))
    print(f"  our templates no KS4 template is closest to: {[(j, int(per_r[j]), round(float(cc[:, j].max()), 3)) for j in orphans]}")
    clu_k = np.load(k4 / "clu_final.npy")
    print(f"final clusters before merging: KS4 {clu_k.max() + 1}; final units KS4 "
          f"{len(np.unique(np.load(Path(ks4_dir) / 'spike_clusters.npy')))}, ours "
          f"{len(np.unique(np.load(rs / 'spike_clusters.npy')))}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
