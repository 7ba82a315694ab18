#!/usr/bin/env python
"""Reference arrays for drift estimation and correction (spec §5) made by Kilosort4 4.1.7 itself.

Run from the repository root with the benchmark venv (kilosort 4.1.7, torch CPU, numpy, scipy):

    ~/ks-bench/.venv/bin/python tests/data/drift/make_drift_fixtures.py

Deterministic: the spike table comes from numpy's seeded generator and is saved (float32 depths
and amplitudes, exactly what both sides read), Kilosort4 runs on the CPU.

Spike table (the `st0` columns drift estimation uses)
----------------------------------------------------
Probe: Neuropixels 1.0 (Kilosort's NeuroPix1_default): 384 sites, x cycles [43, 11, 59, 27],
y = 20*(i//2 + 1), site 191 disconnected -> 383 contacts.
40 units at uniform random depths in [100, 3760] um, log-normal amplitudes (median 25, clipped to
10..60), rates uniform in 5..20 spikes per batch; 40 batches.  Drift of a unit at depth y in
batch t: a random walk (SD 1.5 um per batch) with a +15 um jump at batch 25, plus a depth
gradient 15*sin(2*pi*t/40) * (y - 1930)/3820.  Each spike: depth = y + drift + N(0, 3) um,
amplitude = max(9, unit amplitude * exp(N(0, 0.12))) (Th_universal = 9).

Kilosort4 calls (as `datashift.run` makes them, with the ops keys they read):
  F, ysamp = bin_spikes(ops, st);  imin, yblk, _, _ = align_block2(F, ysamp, ops, cpu)
  dshift = imin * binning_depth   for nblocks = 1 and 5.

Kriging (spec §5.5-5.6) on a 64-contact section (the first 64 contacts above): iKxx as `run`
computes it and M = get_drift_matrix(ops, dshift_row) for a rigid shift (nblocks = 1) and a
non-rigid one (nblocks = 3, block centres and shifts given by hand, so the contacts below the
first and above the last centre are extrapolated).  Kilosort4 does this in float32 (its probe
arrays are float32); the same calls with float64 positions give the float64 reference.

Files written next to this script:
  xc.npy, yc.npy                 (383,) float32   contact positions
  spike_batch.npy                (N,) uint16      batch index of each spike
  spike_depth.npy, spike_amplitude.npy (N,) float32
  F_batch7.npy                   (766, 20) float32  bin_spikes' F[7]
  ysamp.npy                      (766,) float64
  dshift_nblocks1.npy, yblk_nblocks1.npy   (40, 1), (1,) float64
  dshift_nblocks5.npy, yblk_nblocks5.npy   (40, 9), (9,) float64
  M_rigid_f32.npy, M_nonrigid_f32.npy      (64, 64) float32  Kilosort4 as it runs
  M_rigid_f64.npy, M_nonrigid_f64.npy      (64, 64) float64  same calls, float64 positions
  kriging_case.npy               (2,) + (3,) + (3,) float64: rigid shift, block centres, shifts
"""
from pathlib import Path

import numpy as np
import torch

from kilosort.datashift import align_block2, bin_spikes, kernel2D
from kilosort.preprocessing import get_drift_matrix

OUT = Path(__file__).resolve().parent
CPU = torch.device("cpu")
N_BATCHES = 40
TH_UNIVERSAL = 9.0
BINNING_DEPTH = 5


def np1_probe():
    i = np.arange(384)
    xc = np.array([43.0, 11.0, 59.0, 27.0])[i % 4]
    yc = 20.0 * (i // 2 + 1)
    keep = i != 191
    return xc[keep].astype(np.float32), yc[keep].astype(np.float32)


def spike_table(rng):
    n_units = 40
    depth = rng.uniform(100.0, 3760.0, n_units)
    amplitude = np.clip(np.exp(np.log(25.0) + 0.45 * rng.standard_normal(n_units)), 10.0, 60.0)
    rate = rng.uniform(5.0, 20.0, n_units)
    walk = np.concatenate([[0.0], np.cumsum(1.5 * rng.standard_normal(N_BATCHES - 1))])
    walk[25:] += 15.0
    batches, depths, amps = [], [], []
    for t in range(N_BATCHES):
        gradient = 15.0 * np.sin(2 * np.pi * t / N_BATCHES)
        for u in range(n_units):
            count = max(0, int(np.round(rate[u] + np.sqrt(rate[u]) * rng.standard_normal())))
            centre = depth[u] + walk[t] + gradient * (depth[u] - 1930.0) / 3820.0
            batches.append(np.full(count, t))
            depths.append(centre + 3.0 * rng.standard_normal(count))
            # Detected spikes reach the threshold; Kilosort4's binning fails on smaller ones.
            amps.append(np.maximum(TH_UNIVERSAL, amplitude[u] * np.exp(0.12 * rng.standard_normal(count))))
    return (np.concatenate(batches).astype(np.uint16), np.concatenate(depths).astype(np.float32),
            np.concatenate(amps).astype(np.float32))


def estimate(xc, yc, batch, depth, amp, nblocks):
    st = np.zeros((len(batch), 6))
    st[:, 1] = depth
    st[:, 2] = amp
    st[:, 4] = batch
    ops = {"xc": xc, "yc": yc, "binning_depth": BINNING_DEPTH, "Nbatches": N_BATCHES,
           "Th_universal": TH_UNIVERSAL, "nblocks": nblocks, "drift_smoothing": [0.5, 0.5, 0.5]}
    F, ysamp = bin_spikes(ops, st)
    imin, yblk, _, _ = align_block2(F, ysamp, ops, device=CPU)
    return F, ysamp, imin * ops["binning_depth"], yblk


def drift_matrix(xc, yc, nblocks, yblk, dshift_row, sig_interp=20.0):
    """iKxx as datashift.run builds it, then get_drift_matrix; dtype follows xc/yc."""
    xp = np.vstack((xc, yc)).T
    kxx = torch.from_numpy(kernel2D(xp, xp, sig_interp))
    ikxx = torch.linalg.inv(kxx + 0.01 * torch.eye(kxx.shape[0], dtype=kxx.dtype))
    ops = {"nblocks": nblocks, "yblk": yblk, "iKxx": ikxx, "probe": {"xc": xc, "yc": yc},
           "settings": {"sig_interp": sig_interp}}
    return get_drift_matrix(ops, dshift_row, device=CPU).numpy()


def main():
    rng = np.random.default_rng(20240611)
    xc, yc = np1_probe()
    batch, depth, amp = spike_table(rng)
    np.save(OUT / "xc.npy", xc)
    np.save(OUT / "yc.npy", yc)
    np.save(OUT / "spike_batch.npy", batch)
    np.save(OUT / "spike_depth.npy", depth)
    np.save(OUT / "spike_amplitude.npy", amp)
    for nblocks in (1, 5):
        F, ysamp, dshift, yblk = estimate(xc, yc, batch, depth, amp, nblocks)
        np.save(OUT / f"dshift_nblocks{nblocks}.npy", dshift)
        np.save(OUT / f"yblk_nblocks{nblocks}.npy", yblk)
        print(f"nblocks {nblocks}: dshift {dshift.shape}, yblk {np.round(yblk, 2)}")
    np.save(OUT / "F_batch7.npy", F[7].astype(np.float32))
    np.save(OUT / "ysamp.npy", ysamp)
    print(f"{len(batch)} spikes, F {F.shape}")

    rigid_shift = 6.3
    centres = np.array([150.0, 330.0, 510.0])
    shifts = np.array([-4.0, 2.5, 9.0])
    np.save(OUT / "kriging_case.npy", np.concatenate([[rigid_shift, 0.0], centres, shifts]))
    sx, sy = xc[:64], yc[:64]
    for dtype, suffix in ((np.float32, "f32"), (np.float64, "f64")):
        x, y = sx.astype(dtype), sy.astype(dtype)
        m_rigid = drift_matrix(x, y, 1, np.array([300.0]), np.array([rigid_shift]))
        m_nonrigid = drift_matrix(x, y, 3, centres, shifts)
        np.save(OUT / f"M_rigid_{suffix}.npy", m_rigid)
        np.save(OUT / f"M_nonrigid_{suffix}.npy", m_nonrigid)
    f32 = np.load(OUT / "M_nonrigid_f32.npy").astype(np.float64)
    f64 = np.load(OUT / "M_nonrigid_f64.npy")
    print(f"M float32 vs float64: largest difference {np.abs(f32 - f64).max():.2e}")


if __name__ == "__main__":
    main()
