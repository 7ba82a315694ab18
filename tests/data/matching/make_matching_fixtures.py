#!/usr/bin/env python
"""Reference arrays for learned templates, template cross-correlations, matching pursuit and
template merging, made by Kilosort4 (4.1.7) itself on small fixed inputs.

Run from the repository root with the benchmark venv (kilosort 4.1.7, torch CPU, numpy):

    ~/ks-bench/.venv/bin/python tests/data/matching/make_matching_fixtures.py

The inputs are drawn here with numpy's PCG64 (seed 20240607) and saved beside the outputs, so the
Rust tests read exactly what Kilosort4 was given. Everything runs on the CPU.

Common inputs
-------------
  wPCA.npy, wTEMP.npy   (6, 61) float32: the universal PCs and temporal templates shipped with
                        kilosort (kilosort/wTEMP.npz)
  probe_x.npy, probe_y.npy (8,) float32: 8 contacts in two columns, jittered so that no two
                        distances from a contact tie (Kilosort4's argsort is not stable)

Matching pursuit (`template_matching.prepare_matching`, `extract` -> `run_matching`)
---------------------------------------------------------------------------------------
  U.npy        (3, 6, 8) float32: three spatially overlapping templates in Kilosort4's layout
               (K, n_pcs, n_chan), norm 20 each
  batch0.npy, batch1.npy (8, 1122) float32: whitened padded batches (NT = 1000, nt = 61) of unit
               white noise plus planted spikes (some overlapping in time and channels; one in
               batch 0 whose trough would precede the recording, dropped by `extract`)
  ctc.npy      (3, 3, 123) float32: prepare_matching(ops, U)
  extract_st.npy (n, 3) float64: extract(...)'s st over both batches: time (samples), template, th
  extract_tF.npy (n, 8, 6) float32: extract(...)'s tF
  Settings: Th_learned 8, max_peels 100, nearest_chans 10 (-> 8), position_limit 100,
            batch_size 1000, nt 61, nt0min 20, batch_downsampling 1.

Merging (`template_matching.merging_function`, mode 'mu', r_thresh 0.5, check_dt=True)
-----------------------------------------------------------------------------------------
  merge_W.npy (4, 8, 6) float32 (K, n_chan, n_pcs): 0 = A; 1 = A moved 3 samples later and
              scaled 0.95 (merges into 0 with a time shift); 2 = a different template; 3 = 0.5 A
              (same shape, but the norm rule rejects it)
  merge_clu.npy (75,) int64 labels (30, 20, 15, 10 spikes), merge_st.npy (75, 3) float64
              (times in col 0), merge_tF.npy (75, 8, 6) float32
  merged_W.npy, merged_clu.npy, merged_st.npy, merged_tF.npy: the outputs
  similarity.npy (4, 4) float32: CCG.similarity(merge_W, wPCA, nt)

Learned templates (`template_matching.align_U` per cluster, then merging_function 'mu', 0.9,
check_dt=False, i.e. `postprocess_templates` without the concatenation of clusters)
---------------------------------------------------------------------------------------------
  learn_W.npy (4, 8, 6) float32, learn_counts.npy (4,) int64
  learn_imax.npy (4,) int64: align_U's best lag of each cluster, aligned alone
  learn_aligned.npy (4, 8, 6) float32: align_U's output, transposed to (K, n_chan, n_pcs)
  learned.npy (K', 8, 6) float32: after the duplicate merge
"""
import json
from pathlib import Path

import numpy as np
import torch

import kilosort
from kilosort import CCG, template_matching

HERE = Path(__file__).resolve().parent
DEVICE = torch.device("cpu")
RNG = np.random.default_rng(20240607)

NT, NT0MIN, NPC, NCHAN, BATCH = 61, 20, 6, 8, 1000


def save(name, array):
    np.save(HERE / name, array)


def basis():
    d = np.load(Path(kilosort.__file__).parent / "wTEMP.npz")
    return d["wPCA"].astype(np.float32), d["wTEMP"].astype(np.float32)


def probe():
    i = np.arange(NCHAN)
    x = np.array([0.0, 32.0])[i % 2] + 0.9 * i
    y = 20.0 * (i // 2) + 0.31 * i
    return x.astype(np.float32), y.astype(np.float32)


def local_template(x, y, y0, norm):
    """(n_chan, n_pcs) PC coefficients: Gaussian spatial profile around depth y0, zero beyond 45 um."""
    d = np.sqrt((x - 16.0) ** 2 + (y - y0) ** 2)
    g = np.where(d > 45.0, 0.0, np.exp(-d ** 2 / (2 * 20.0 ** 2)))
    shape = RNG.standard_normal(NPC) / (1.0 + np.arange(NPC))
    w = g[:, None] * (shape[None, :] + 0.2 * RNG.standard_normal((NCHAN, NPC)))
    return (w * norm / np.linalg.norm(w)).astype(np.float32)


def shifted(w, wpca, by):
    """Template moved `by` samples later (edge sample repeated), in PC space."""
    wave = w @ wpca
    idx = np.clip(np.arange(NT) - by, 0, NT - 1)
    return (wave[:, idx] @ wpca.T).astype(np.float32)


def padded_batch(U, wpca, spikes):
    """Unit white noise plus spikes (trough sample, template, amplitude), padded by nt."""
    x = RNG.standard_normal((NCHAN, BATCH + 2 * NT)).astype(np.float32)
    for t, k, a in spikes:
        wave = U[k].T @ wpca  # (n_chan, nt)
        start = t - NT0MIN + NT
        x[:, start:start + NT] += a * wave
    return x


class Batches:
    """The two things `extract` asks of a BinaryFiltered file."""

    def __init__(self, xs):
        self.xs = xs
        self.n_batches = len(xs)
        self.batch_downsampling = 1

    def padded_batch_to_torch(self, ibatch, ops=None):
        return torch.from_numpy(self.xs[ibatch].copy())


def matching_ops(wpca, wtemp, x, y):
    return {
        "nt": NT, "nt0min": NT0MIN, "batch_size": BATCH, "Nchan": NCHAN, "fs": 30000.0,
        "Th_learned": 8.0, "max_peels": 100, "xc": x, "yc": y,
        "wPCA": torch.from_numpy(wpca), "wTEMP": torch.from_numpy(wtemp),
        "settings": {"nearest_chans": min(10, NCHAN), "position_limit": 100.0, "n_pcs": NPC,
                     "acg_threshold": 0.2, "ccg_threshold": 0.25},
    }


def matching_fixtures(ops, wpca, x, y):
    W = np.stack([local_template(x, y, y0, 20.0) for y0 in (5.0, 30.0, 55.0)])
    U = np.ascontiguousarray(W.transpose(0, 2, 1))
    save("U.npy", U)
    Ut = torch.from_numpy(U)
    save("ctc.npy", template_matching.prepare_matching(ops, Ut).numpy())
    spikes0 = [(-6, 0, 1.0), (100, 0, 1.0), (160, 1, 0.8), (172, 2, 1.2), (400, 1, 1.1), (415, 0, 0.9),
               (640, 2, 0.7), (700, 1, 1.3), (900, 0, 0.75), (985, 2, 1.0)]
    spikes1 = [(30, 1, 1.0), (45, 2, 0.9), (300, 0, 1.1), (305, 1, 1.0), (600, 2, 1.25), (800, 0, 0.85)]
    xs = [padded_batch(U, wpca, spikes0), padded_batch(U, wpca, spikes1)]
    save("batch0.npy", xs[0])
    save("batch1.npy", xs[1])
    st, tF, _ = template_matching.extract(ops, Batches(xs), Ut, device=DEVICE)
    save("extract_st.npy", st)
    save("extract_tF.npy", tF.numpy().astype(np.float32))
    return len(st)


def merge_fixtures(ops, wpca, x, y):
    a = local_template(x, y, 20.0, 20.0)
    b = local_template(x, y, 50.0, 20.0)
    W = np.stack([a, 0.95 * shifted(a, wpca, 3), b, 0.5 * a]).astype(np.float32)
    counts = [30, 20, 15, 10]
    clu = np.repeat(np.arange(4), counts)
    perm = RNG.permutation(len(clu))
    clu = clu[perm]
    st = np.zeros((len(clu), 3))
    st[:, 0] = np.sort(RNG.choice(100000, len(clu), replace=False)).astype(np.float64)
    st[:, 1] = clu
    st[:, 2] = 10.0
    tF = RNG.standard_normal((len(clu), NCHAN, NPC)).astype(np.float32)
    for name, v in [("merge_W", W), ("merge_clu", clu), ("merge_st", st), ("merge_tF", tF)]:
        save(f"{name}.npy", v)
    Wm, clu2, _, st2, tF2 = template_matching.merging_function(
        ops, torch.from_numpy(W.copy()), clu.copy(), st.copy(), torch.from_numpy(tF.copy()),
        r_thresh=0.5, mode="mu", check_dt=True, device=DEVICE)
    save("merged_W.npy", Wm.numpy().astype(np.float32))
    save("merged_clu.npy", clu2.astype(np.int64))
    save("merged_st.npy", st2)
    save("merged_tF.npy", tF2.numpy().astype(np.float32))
    save("similarity.npy", CCG.similarity(torch.from_numpy(W), ops["wPCA"], nt=NT).astype(np.float32))
    return len(Wm)


def learned_fixtures(ops, wpca, x, y):
    a = local_template(x, y, 15.0, 20.0)
    b = local_template(x, y, 55.0, 15.0)
    # 1 is a seen 4 samples late and 10 % larger; 3 is b seen 5 samples early.
    W = np.stack([a, 1.1 * shifted(a, wpca, 4), b, shifted(b, wpca, -5)]).astype(np.float32)
    counts = np.array([40, 25, 30, 12])
    save("learn_W.npy", W)
    save("learn_counts.npy", counts)
    aligned, imax = [], []
    for k in range(len(W)):
        u, i = template_matching.align_U(torch.from_numpy(W[k:k + 1].copy()), ops, device=DEVICE)
        aligned.append(u[0].numpy().T)
        imax.append(int(i[0]))
    aligned = np.stack(aligned).astype(np.float32)
    save("learn_aligned.npy", aligned)
    save("learn_imax.npy", np.array(imax, dtype=np.int64))
    clu = np.repeat(np.arange(len(W)), counts)
    st = np.zeros((len(clu), 6))
    tF = torch.zeros((len(clu), 1, 1))
    learned, _, _, _, _ = template_matching.merging_function(
        ops, torch.from_numpy(aligned.copy()), clu, st, tF, 0.9, "mu", check_dt=False, device=DEVICE)
    save("learned.npy", learned.numpy().astype(np.float32))
    return imax, len(learned)


def main():
    torch.set_num_threads(1)
    wpca, wtemp = basis()
    x, y = probe()
    save("wPCA.npy", wpca)
    save("wTEMP.npy", wtemp)
    save("probe_x.npy", x)
    save("probe_y.npy", y)
    ops = matching_ops(wpca, wtemp, x, y)
    n_spikes = matching_fixtures(ops, wpca, x, y)
    n_merged = merge_fixtures(ops, wpca, x, y)
    imax, n_learned = learned_fixtures(ops, wpca, x, y)
    info = {
        "kilosort": kilosort.__version__, "torch": torch.__version__, "numpy": np.__version__,
        "extract_spikes": n_spikes, "merged_templates": n_merged, "learn_imax": imax,
        "learned_templates": n_learned,
    }
    (HERE / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
