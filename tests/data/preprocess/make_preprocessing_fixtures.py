#!/usr/bin/env python
"""Reference arrays for the preprocessing stages (high-pass, CAR, whitening) made by Kilosort4 itself.

Run from the repository root with the benchmark venv (kilosort 4.1.7, torch CPU, numpy, scipy):

    ~/ks-bench/.venv/bin/python tests/data/preprocess/make_preprocessing_fixtures.py

Deterministic: the recording is generated with integer arithmetic only, and Kilosort4 runs on the CPU.

Synthetic recording  (`synthetic_recording(n_chan, n_samples, seed)`)
---------------------------------------------------------------------
Implemented twice, bit-identically: here and in `crates/kilosort/tests/common/synthetic.rs`.
Output: int16, row-major `n_samples x n_chan` (sample t, channel c at index t*n_chan + c).
No floating point anywhere.  `>>` on signed values is an arithmetic (floor) shift, which is what
both Python and Rust do; every `/` below has a non-negative numerator, so floor = truncation.

1. Random numbers: 64-bit LCG, `state` starts at `seed` (u64).  One draw:
       state = (state * 6364136223846793005 + 1442695040888963407) mod 2^64
       r     = (state >> 33) & 0xFFFF               # bits 33..48, 0..65535
       u     = r - 32768                            # -32768..32767
   Draw order: for t in 0..n_samples: first the common-mode draw u_g(t), then one draw u_c(t) for
   each channel c = 0..n_chan-1 (so 1 + n_chan draws per sample).
2. White noise e(t,c) = u_c(t) >> 7 (-256..255); common mode g(t) = u_g(t) >> 8 (-128..127).
3. Spatially mixed noise (neighbours by channel index, missing neighbours count as 0):
       m(t,c) = (4*e(t,c) + 2*(e(t,c-1) + e(t,c+1)) + e(t,c-2) + e(t,c+2)) >> 3
4. DC offset: dc(c) = (c*37 mod 200) - 100.
5. Slow triangle wave (period 2000 samples = 15 Hz at 30 kHz), same shape on every channel, with a
   per-channel gain so that CAR (a median across channels) does not remove all of it:
       p = t mod 2000;  tri(t) = (|p - 1000| * 3) / 5 - 300          # -300..300
       slow(t,c) = (tri(t) * (6 + c mod 5)) >> 3                     # gain 0.75..1.25
6. Spikes, k = 0, 1, 2, ... while t_k + 30 <= n_samples:
       t_k = 700 + 1500*k + (k*389 mod 241)     # start sample
       c_k = (k*7) mod n_chan                    # centre channel, moves with k
       a_k = 400 + (k*137 mod 401)               # amplitude 400..800
   For j in 0..30 and d in -2..=2 with 0 <= c_k+d < n_chan, add to sample (t_k + j, c_k + d):
       (WAVE[j] * a_k * SPATIAL[|d|]) >> 9,  SPATIAL = [4, 2, 1] (i.e. 1, 1/2, 1/4), and
       WAVE (units of 1/128; trough -128 at j=8, then a positive lobe):
       0 -2 -6 -14 -28 -50 -80 -110 -128 -120 -95 -60 -25 5 28 44 54 58 57 52 45 37 29 22 16 11 7 4 2 0
   Spikes never overlap (30 samples every >= 1260 samples).
7. x(t,c) = dc(c) + slow(t,c) + g(t) + m(t,c) + spike(t,c); |x| <= 100+375+128+320+800 < 2000.

Fixture: n_chan 32, fs 30000, n_samples 120000 (4 s), seed 12345.
Probe: 32 sites in 2 columns, x = [0, 32][i mod 2], y = 20*(i div 2), chanMap 0..31, kcoords 0.

Files written next to this script (all arrays float32 .npy, Kilosort4's own output cast with .numpy()):
  recording_sha256.txt   hex sha256 of the recording as int16 little-endian bytes
  recording_checksum.txt integer checksum (see `checksum` below), easy to recompute in Rust
  probe.json             the probe, written by kilosort.io.save_probe
  hp_filter.npy          (30122,)  ops['preprocessing']['hp_filter']
  whitening_mat.npy      (32, 32)  ops['preprocessing']['whiten_mat'] (Wrot)
  batch3_whitened.npy    (32, 6122) BinaryFiltered(..., hp_filter, whiten_mat).padded_batch_to_torch(3)
  batch3_filtered.npy    (6, 6122) same batch, whiten_mat=None (mean removal + CAR + high-pass only),
                         rows = channels 0..5 only (size budget; the filter is per channel after CAR)
  batch0_whitened.npy    (6, 6122) padded batch 0, fully preprocessed, channels 0..5
  batchlast_whitened.npy (6, 6122) padded last batch (19), fully preprocessed, channels 0..5
  settings.json          every setting used, n_batches, versions, and the checks below
"""
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import kilosort
from kilosort import io, preprocessing
from kilosort.parameters import DEFAULT_SETTINGS
from kilosort.run_kilosort import compute_preprocessing, get_run_parameters, initialize_ops, set_files

HERE = Path(__file__).resolve().parent

MASK64 = (1 << 64) - 1
LCG_MUL = 6364136223846793005
LCG_ADD = 1442695040888963407
WAVE = [0, -2, -6, -14, -28, -50, -80, -110, -128, -120, -95, -60, -25, 5, 28, 44, 54, 58, 57, 52, 45, 37, 29,
        22, 16, 11, 7, 4, 2, 0]
SPATIAL = [4, 2, 1]

N_CHAN = 32
FS = 30000
N_SAMPLES = 120000
SEED = 12345
SAVED_ROWS = 6  # channels 0..SAVED_ROWS-1 for the partial arrays


def lcg_draws(n, seed):
    """n centred 16-bit draws u = ((state >> 33) & 0xFFFF) - 32768, state advanced before each draw."""
    out = np.empty(n, dtype=np.int64)
    state = seed & MASK64
    for i in range(n):
        state = (state * LCG_MUL + LCG_ADD) & MASK64
        out[i] = ((state >> 33) & 0xFFFF) - 32768
    return out


def synthetic_recording(n_chan, n_samples, seed):
    """The recording described in the module docstring, int16 (n_samples, n_chan)."""
    u = lcg_draws(n_samples * (n_chan + 1), seed).reshape(n_samples, n_chan + 1)
    g = u[:, 0] >> 8                      # (T,)
    e = u[:, 1:] >> 7                     # (T, C)

    ep = np.zeros((n_samples, n_chan + 4), dtype=np.int64)
    ep[:, 2:-2] = e
    m = (4 * ep[:, 2:-2] + 2 * (ep[:, 1:-3] + ep[:, 3:-1]) + ep[:, 0:-4] + ep[:, 4:]) >> 3

    c = np.arange(n_chan, dtype=np.int64)
    dc = (c * 37) % 200 - 100
    t = np.arange(n_samples, dtype=np.int64)
    p = t % 2000
    tri = (np.abs(p - 1000) * 3) // 5 - 300
    slow = (tri[:, None] * (6 + c % 5)[None, :]) >> 3

    x = dc[None, :] + slow + g[:, None] + m
    k = 0
    while True:
        tk = 700 + 1500 * k + (k * 389) % 241
        if tk + 30 > n_samples:
            break
        ck = (k * 7) % n_chan
        ak = 400 + (k * 137) % 401
        for d in range(-2, 3):
            ch = ck + d
            if 0 <= ch < n_chan:
                for j in range(30):
                    x[tk + j, ch] += (WAVE[j] * ak * SPATIAL[abs(d)]) >> 9
        k += 1
    assert np.abs(x).max() < 2000
    return x.astype(np.int16)


def checksum(rec):
    """sum over flat row-major index i of (i+1) * value, wrapping u64 (value as signed, sign-extended)."""
    v = rec.reshape(-1).astype(np.int64)
    idx = np.arange(1, v.size + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        s = (idx * v.astype(np.uint64)).sum(dtype=np.uint64)  # numpy uint64 wraps mod 2^64
    return int(s)


def main():
    rec = synthetic_recording(N_CHAN, N_SAMPLES, SEED)
    raw = rec.astype("<i2").tobytes()
    sha = hashlib.sha256(raw).hexdigest()
    flat = rec.reshape(-1)
    (HERE / "recording_sha256.txt").write_text(sha + "\n")
    (HERE / "recording_checksum.txt").write_text(
        f"n_chan {N_CHAN}\nn_samples {N_SAMPLES}\nseed {SEED}\nchecksum {checksum(rec)}\n"
        f"first8 {' '.join(str(int(a)) for a in flat[:8])}\n"
        f"last8 {' '.join(str(int(a)) for a in flat[-8:])}\n"
    )

    probe = {
        "chanMap": np.arange(N_CHAN, dtype=np.int32),
        "xc": np.array([[0.0, 32.0][i % 2] for i in range(N_CHAN)], dtype=np.float32),
        "yc": np.array([20.0 * (i // 2) for i in range(N_CHAN)], dtype=np.float32),
        "kcoords": np.zeros(N_CHAN, dtype=np.float32),
        "n_chan": N_CHAN,
    }
    io.save_probe(probe, HERE / "probe.json")
    probe = io.load_probe(HERE / "probe.json")

    device = torch.device("cpu")
    user_settings = {
        "n_chan_bin": N_CHAN, "fs": FS, "batch_size": 6000, "nt": 61, "nskip": 1,
        "whitening_range": 32, "highpass_cutoff": 300,
    }
    notes = {}
    with tempfile.TemporaryDirectory() as tmp:
        binpath = Path(tmp) / "recording.bin"
        binpath.write_bytes(raw)

        # Wired as run_kilosort / _sort do it.
        settings = {**DEFAULT_SETTINGS, **user_settings}
        filename, _data_dir, _results_dir, probe = set_files(
            settings, binpath, probe, None, None, Path(tmp) / "kilosort4", None, None)
        ops, settings = initialize_ops(settings, probe, "int16", True, False, device, False)
        ops = compute_preprocessing(ops, device)

        hp_filter = ops["preprocessing"]["hp_filter"]
        wrot = ops["preprocessing"]["whiten_mat"]
        n_batches = int(ops["Nbatches"])
        notes["hp_filter_dtype_device"] = f"{hp_filter.dtype} {hp_filter.device}"
        notes["whiten_mat_dtype_device"] = f"{wrot.dtype} {wrot.device}"

        (n_chan_bin, fs, NT, nt, twav_min, chan_map, dtype, do_CAR, invert, xc, yc, tmin, tmax, artifact,
         shift, scale, batch_downsampling) = get_run_parameters(ops)

        def bfile(whiten_mat):
            # As compute_drift_correction builds it (no dshift is set yet there).
            return io.BinaryFiltered(
                ops["filename"], n_chan_bin, fs, NT, nt, twav_min, chan_map, hp_filter=hp_filter,
                whiten_mat=whiten_mat, device=device, do_CAR=do_CAR, invert_sign=invert, dtype=dtype,
                tmin=tmin, tmax=tmax, artifact_threshold=artifact, shift=shift, scale=scale,
                batch_downsampling=batch_downsampling)

        bw = bfile(wrot)
        bf = bfile(None)
        assert bw.n_batches == n_batches
        last = n_batches - 1
        b3w = bw.padded_batch_to_torch(3)
        b3f = bf.padded_batch_to_torch(3)
        b0w = bw.padded_batch_to_torch(0)
        blw = bw.padded_batch_to_torch(last)
        for name, a in [("b3w", b3w), ("b3f", b3f)]:
            notes[f"{name}_dtype_device"] = f"{a.dtype} {a.device}"

        # ---- independent re-derivations (float64 numpy), to document what Kilosort4 does ----
        L = NT + 2 * nt
        h = hp_filter.numpy().astype(np.float64)
        ft = h.size

        def padded_raw(i):
            X = np.zeros((N_CHAN, L))
            if i == 0:
                d = rec[0:NT + nt].T
                X[:, nt:nt + d.shape[1]] = d
                X[:, :nt] = X[:, nt:nt + 1]
            else:
                a = i * NT - nt
                d = rec[a:min(N_SAMPLES, a + L)].T
                X[:, :d.shape[1]] = d
                if i == last:
                    X[:, d.shape[1]:] = X[:, d.shape[1] - 1:d.shape[1]]
            return X

        def car(X):
            X = X - X.mean(1, keepdims=True)
            lower_median = np.sort(X, axis=0)[(N_CHAN - 1) // 2]  # torch.median: lower median
            return X - lower_median[None, :]

        def circular_hp(X):
            # y[n] = sum_lag h[ft//2 + lag] * x[(n + lag) mod L], lag over the L-sample crop of h
            crop = (ft - L) // 2
            centre = ft // 2 - crop  # = L // 2 here
            k = np.zeros(L)
            for m in range(L):
                k[(m - centre) % L] += h[crop + m]
            return np.real(np.fft.ifft(np.fft.fft(X) * np.conj(np.fft.fft(k))[None, :]))

        def linear_hp(X):
            from scipy.signal import fftconvolve
            c = ft // 2
            return np.stack([fftconvolve(x, h, mode="full")[c:c + L] for x in X])

        notes["fft_length"] = L
        notes["hp_filter_length"] = ft
        notes["hp_filter_crop_start"] = (ft - L) // 2
        notes["hp_filter_centre_index"] = int(np.argmax(h))
        notes["hp_filter_symmetric_maxabs"] = float(np.abs(h[1:] - h[1:][::-1]).max())

        x3 = car(padded_raw(3))
        f3_circ = circular_hp(x3)
        f3_lin = linear_hp(x3)
        ref = b3f.numpy()
        notes["batch3_filtered_vs_circular_maxabs"] = float(np.abs(ref - f3_circ).max())
        notes["batch3_filtered_vs_linear_maxabs_edges"] = float(
            max(np.abs(ref - f3_lin)[:, :nt].max(), np.abs(ref - f3_lin)[:, -nt:].max()))
        notes["batch3_filtered_vs_linear_maxabs_centre"] = float(np.abs(ref - f3_lin)[:, nt:-nt].max())
        notes["batch3_filtered_absmax"] = float(np.abs(ref).max())
        notes["batch3_filtered_data_std"] = float(ref[:, nt:-nt].std())
        wrap = np.abs(ref - f3_lin).max(0)
        notes["batch3_circular_minus_linear_by_column"] = {
            str(c): float(wrap[c]) for c in [0, 30, nt, 100, 200, 400, L // 2, L - 200, L - 100, L - nt - 1, L - 1]}
        notes["batch3_whitened_vs_wrot_at_filtered_maxabs"] = float(np.abs(b3w.numpy() - wrot.numpy().astype(
            np.float64) @ ref.astype(np.float64)).max())
        for name, i, got in [("batch0", 0, b0w), ("batchlast", last, blw)]:
            mine = wrot.numpy().astype(np.float64) @ circular_hp(car(padded_raw(i)))
            notes[f"{name}_whitened_vs_numpy_maxabs"] = float(np.abs(got.numpy() - mine).max())

        # Whitening: which batches feed the covariance, and the constants.
        def cov(batches):
            CC = np.zeros((N_CHAN, N_CHAN))
            for i in batches:
                X = circular_hp(car(padded_raw(i)))[:, nt:-nt]
                CC += X @ X.T / X.shape[1]
            return CC / len(batches)

        def zca_local(CC, nrange):
            W = np.zeros_like(CC)
            for j in range(N_CHAN):
                ds = (xc[j] - xc) ** 2 + (yc[j] - yc) ** 2
                ix = np.argsort(ds)[:nrange]
                E, D, _ = np.linalg.svd(CC[np.ix_(ix, ix)])
                W[j, ix] = ((E / np.sqrt(D + 1e-6)) @ E.T)[0]
            return W

        wr = wrot.numpy()
        skip_last = zca_local(cov(range(0, n_batches - 1, 1)), 32)
        all_batches = zca_local(cov(range(0, n_batches)), 32)
        notes["wrot_vs_numpy_batches_0_to_nbatches_minus_2_rel"] = float(
            np.abs(wr - skip_last).max() / np.abs(wr).max())
        notes["wrot_vs_numpy_all_batches_rel"] = float(np.abs(wr - all_batches).max() / np.abs(wr).max())
        notes["wrot_asymmetry_maxabs"] = float(np.abs(wr - wr.T).max())
        notes["wrot_absmax"] = float(np.abs(wr).max())
        global_zca = preprocessing.whitening_from_covariance(torch.from_numpy(cov(range(n_batches - 1))).float())
        notes["wrot_vs_global_zca_rel"] = float(np.abs(wr - global_zca.numpy()).max() / np.abs(wr).max())
        wcov = np.cov(b3w.numpy()[:, nt:-nt], bias=True)
        notes["batch3_whitened_cov_diag_mean"] = float(np.diag(wcov).mean())
        notes["batch3_whitened_cov_offdiag_absmax"] = float(np.abs(wcov - np.diag(np.diag(wcov))).max())

    np.save(HERE / "hp_filter.npy", hp_filter.numpy().astype(np.float32))
    np.save(HERE / "whitening_mat.npy", wrot.numpy().astype(np.float32))
    np.save(HERE / "batch3_whitened.npy", b3w.numpy().astype(np.float32))
    np.save(HERE / "batch3_filtered.npy", b3f.numpy()[:SAVED_ROWS].astype(np.float32))
    np.save(HERE / "batch0_whitened.npy", b0w.numpy()[:SAVED_ROWS].astype(np.float32))
    np.save(HERE / "batchlast_whitened.npy", blw.numpy()[:SAVED_ROWS].astype(np.float32))

    used = {k: (v if not isinstance(v, float) or np.isfinite(v) else str(v)) for k, v in settings.items()
            if k not in ("filename", "data_dir", "results_dir")}
    out = {
        "generator": {"n_chan": N_CHAN, "n_samples": N_SAMPLES, "fs": FS, "seed": SEED, "sha256": sha},
        "settings": used,
        "user_settings": user_settings,
        "data_dtype": "int16", "do_CAR": True, "invert_sign": False, "device": "cpu",
        "n_batches": n_batches, "NT": int(NT), "nt": int(nt), "NTbuff": int(NT + 2 * nt), "nt0min": int(twav_min),
        "last_batch_index": last,
        "whitening_covariance_batches": list(range(0, n_batches - 1, settings["nskip"])),
        "saved_rows": {"batch3_whitened.npy": "all 32", "batch3_filtered.npy": f"0..{SAVED_ROWS}",
                       "batch0_whitened.npy": f"0..{SAVED_ROWS}", "batchlast_whitened.npy": f"0..{SAVED_ROWS}"},
        "versions": {"kilosort": kilosort.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "checks": notes,
        "notes": [
            "Whitening covariance loops j in range(0, n_batches-1, nskip): the last batch (19) is never used "
            "(wrot_vs_numpy_* checks: matches the skip-last re-derivation, not the all-batches one).",
            "Covariance per batch: X = padded batch[:, nt:-nt] (NT columns, filtered+CAR, no extra centring), "
            "CC += X X^T / NT, then CC /= count.",
            "whitening_local: per channel j, nrange nearest sites by squared distance (np.argsort, j first), "
            "SVD of the sub-covariance, W = E diag(1/sqrt(D + 1e-6)) E^T, Wrot[j, ix] = W[0]. No other scaling. "
            "With whitening_range 32 = n_chan every neighbourhood is the whole probe, so Wrot is the global ZCA "
            "up to float32 rounding (nearly symmetric).",
            "Per-batch filter: chanMap rows, mean over all L = NT+2nt padded columns removed, CAR = lower median "
            "across channels (torch.median), then high-pass (CAR happens BEFORE the high-pass).",
            "High-pass: hp_filter (len 30122, peak at 15061) cropped to L = 6122 from index 12000 (peak at L/2), "
            "y = fftshift(real(ifft(fft(x) * conj(fft(h_L))))): a CIRCULAR zero-phase convolution over the "
            "padded buffer, kernel centred at lag 0 (batch3_filtered_vs_circular_maxabs ~ float32 rounding; "
            "vs a linear zero-padded convolution the wrap-around reaches into the data region: ~4 at column nt, "
            "~0.8 at column 100, ~0.01 at column 200, against a filtered-data std of ~88; see "
            "batch3_circular_minus_linear_by_column).",
            "Everything float32 on cpu (torch.float32, complex64 FFT); hp_filter is built in float64 by "
            "scipy filtfilt then cast to float32.",
            "Batch 0: columns 0..nt replicate column nt; last batch: columns after the data (nsamp = 6061) "
            "replicate the last sample. Mean removal and circular filtering then see these padded copies.",
        ],
    }
    (HERE / "settings.json").write_text(json.dumps(out, indent=1, default=lambda o: o.tolist()
                                                   if isinstance(o, np.ndarray) else str(o)) + "\n")
    print(json.dumps(notes, indent=1))
    print("sha256", sha)


if __name__ == "__main__":
    main()
