#!/usr/bin/env python
"""Reference values for clustering (spec §7) made by Kilosort4 4.1.7 itself.

Run from the repository root with the benchmark venv (kilosort 4.1.7, torch CPU):

    ~/ks-bench/.venv/bin/python tests/data/cluster/make_cluster_fixtures.py

The inputs are generated here with a seeded NumPy generator and saved, so the Rust tests read
them rather than regenerate them. Every Kilosort4 function called on them is deterministic:
landmark removal (`subsample_idx`), the kNN graph (`neigh_mat`, exact faiss search), label
propagation from given initial labels (`cluster(..., iclust=...)`, which skips k-means++), the
merge tree (`hierarchical.maketree`), the split pass (`swarmsplitter.split`, `new_clusters`,
`check_split`, `bimod_score`). Only `kmeans_plusplus` uses torch's RNG: its labels are saved for
a statistical comparison.

Files (next to this script):
  subsample_cases.npy  (k, 2) int64      (n1, n2) pairs given to subsample_idx
  subsample_removed.npy (sum,) int64     positions each case removes (not in rev_idx), concatenated
  xd.npy               (1500, 12) f32     features: a stretched and a compact blob in 12 dimensions
  init.npy             (1500,) int64      initial labels given to `cluster` (i*37 mod 200)
  landmarks.npy        (n_landmarks,) int64  rows of xd that are landmarks (nskip 4, max_sub 300)
  kn.npy               (1500, 10) int32   neigh_mat's neighbours (indices into the landmarks)
  iclust.npy, isub.npy (int64)            cluster() output: spike and landmark labels
  xtree.npy (nc-1, 3) int32, tstat.npy (nc-1, 3) f32   maketree output
  split_xtree.npy      (int32)            the merges split() keeps
  final_labels.npy     (1500,) int64      new_clusters output
  check_split_scores.npy (nc-1,) f64      bimodality score of check_split at every merge
  root_projection.npy  (1500 or fewer,) f64  check_split's projection at the root merge
  bimod_inputs.npy     (4, 2000) f64      projections for bimod_score
  bimod_scores.npy     (4,) f64
  kmeanspp_labels.npy  (1500,) int64      kmeans_plusplus(xd, niter=200, seed=5) on the CPU
"""
from pathlib import Path

import numpy as np
import torch

from kilosort import clustering_qr, hierarchical, swarmsplitter

OUT = Path(__file__).resolve().parent
DEVICE = torch.device('cpu')


def save(name, array):
    np.save(OUT / name, array)


def subsample_cases():
    cases = np.array([[6, 3], [25001, 1], [1000, 999], [37, 20], [200, 50], [7, 7]], dtype=np.int64)
    removed = [np.flatnonzero(~clustering_qr.subsample_idx(int(n1), int(n2))[0]) for n1, n2 in cases]
    save('subsample_cases.npy', cases)
    save('subsample_removed.npy', np.concatenate(removed).astype(np.int64))


def blobs(rng):
    """Two groups in 12 dimensions: 1000 spikes of one Gaussian stretched along two axes (the
    graph cuts it into pieces that the split pass must join again) and 500 of a compact one."""
    n, d = 1500, 12
    x = rng.standard_normal((n, d))
    x[:1000, 0] *= 6.0
    x[:1000, 1] *= 4.0
    x[1000:, 2] += 10.0
    return x[rng.permutation(n)].astype(np.float32)


def main():
    rng = np.random.default_rng(1)
    subsample_cases()
    xd = blobs(rng)
    n = xd.shape[0]
    save('xd.npy', xd)
    nskip, n_neigh, max_sub = 4, 10, 300
    kn, M = clustering_qr.neigh_mat(torch.from_numpy(xd), nskip=nskip, n_neigh=n_neigh, max_sub=max_sub)
    n1 = len(range(0, n, nskip))
    _, rev = clustering_qr.subsample_idx(n1, n1 - max_sub)
    save('landmarks.npy', np.arange(0, n, nskip)[rev].astype(np.int64))
    save('kn.npy', kn.astype(np.int32))

    init = torch.from_numpy((np.arange(n) * 37) % 200).long()
    save('init.npy', init.numpy().astype(np.int64))
    iclust, isub, M, _ = clustering_qr.cluster(
        torch.from_numpy(xd), iclust=init, nskip=nskip, n_neigh=n_neigh, max_sub=max_sub,
        lam=1, device=DEVICE)
    save('iclust.npy', np.asarray(iclust).astype(np.int64))
    save('isub.npy', np.asarray(isub).astype(np.int64))

    xtree, tstat, my_clus = hierarchical.maketree(M, iclust, isub)
    save('xtree.npy', xtree.astype(np.int32))
    save('tstat.npy', tstat.astype(np.float32))
    scores = []
    for kk in range(xtree.shape[0]):
        xproj, score = swarmsplitter.check_split(xd, kk, xtree, iclust, my_clus)
        scores.append(score)
        if kk == xtree.shape[0] - 1:
            save('root_projection.npy', np.asarray(xproj, dtype=np.float64))
    save('check_split_scores.npy', np.array(scores, dtype=np.float64))
    kept_xtree, kept_tstat = swarmsplitter.split(xd, xtree, tstat, iclust, my_clus, meta=None)
    save('split_xtree.npy', np.asarray(kept_xtree).astype(np.int32))
    final = swarmsplitter.new_clusters(iclust, my_clus, kept_xtree, kept_tstat)
    save('final_labels.npy', np.asarray(final).astype(np.int64))
    print(f'{len(np.unique(iclust))} propagated clusters, {len(np.unique(final))} after splits')

    z = np.random.default_rng(2).standard_normal(2000)
    inputs = np.stack([
        np.where(np.arange(2000) % 2 == 0, 1.0, -1.0) + 0.3 * z,   # two modes
        0.5 * z,                                                  # one mode
        np.where(np.arange(2000) % 4 == 0, 0.8, -0.6) + 0.35 * z,  # unequal modes
        1.5 + 0.01 * z,                                           # nothing left of the dip: NaN
    ])
    save('bimod_inputs.npy', inputs)
    save('bimod_scores.npy', np.array([swarmsplitter.bimod_score(v) for v in inputs], dtype=np.float64))

    labels = clustering_qr.kmeans_plusplus(torch.from_numpy(xd), niter=200, seed=5, device=DEVICE)
    save('kmeanspp_labels.npy', labels.numpy().astype(np.int64))


if __name__ == '__main__':
    main()
