#!/usr/bin/env python
"""Reference arrays for spike detection with universal templates (spec §6) made by Kilosort4 itself.

Run from the repository root with the benchmark venv (kilosort 4.1.7, torch CPU):

    ~/ks-bench/.venv/bin/python tests/data/detect/make_detect_fixtures.py

Input: the integer-only synthetic recording of tests/data/preprocess/make_preprocessing_fixtures.py
(32 channels, 120000 samples, seed 12345, probe tests/data/preprocess/probe.json, nskip 1), but with
batch_size 60000 (Kilosort4's default), so 2 batches.

Why not batch_size 6000 as in the preprocessing fixtures: Kilosort4 learns wPCA/wTEMP from every 25th
batch only, i.e. from batch 0 alone when there are 20 batches, and 6000 samples of this recording hold
4 spikes, giving 3 isolated peaks above Th_single_ch = 6: KMeans then fails ("n_samples=3 should be
>= n_clusters=6"). With 60000-sample batches, batch 0 gives 32 isolated peaks.

Kilosort4 preprocesses it (compute_preprocessing), then
kilosort.spikedetect.run runs on the whitened batches WITHOUT drift correction (no dshift), with
templates learned from the data (templates_from_data True, the default).

KMeans (wTEMP) is seeded through numpy's global generator (np.random.seed(SEED_KMEANS)), which
sklearn uses when random_state is None, so the fixture is reproducible.

Files written next to this script:
  wPCA.npy         (6, 61)  float32  ops['wPCA']  (TruncatedSVD components of unit-norm snippets)
  wTEMP.npy        (6, 61)  float32  ops['wTEMP'] (KMeans centroids, unit norm)
  xcup.npy, ycup.npy (n_grid,) float64 the grid positions kept (igood), in Kilosort4's order
  n_spikes.npy     ()       int64    number of detections over all batches
  st_time.npy      (n,)     float64  st[:, 0], seconds
  st_y.npy         (n,)     float32  st[:, 1], weighted depth (µm)
  st_amp.npy       (n,)     float32  st[:, 2], best |projection|
  st_template.npy  (n,)     int32    st[:, 5], grid index
  match_xy.npy     (m, 2)   int64    template_match(batch BATCH): [grid index, padded column]
  match_amp.npy    (m,)     float32  its amp
  match_imax.npy   (m,)     int64    its imax (size*n_templates + template, after abs()-1)
  detect_settings.json     the settings, batch index and a few summary numbers
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import kilosort
from kilosort import io, spikedetect
from kilosort.parameters import DEFAULT_SETTINGS
from kilosort.run_kilosort import compute_preprocessing, get_run_parameters, initialize_ops, set_files

HERE = Path(__file__).resolve().parent
PRE = HERE.parent / "preprocess"
sys.path.insert(0, str(PRE))
from make_preprocessing_fixtures import synthetic_recording  # noqa: E402

N_CHAN = 32
FS = 30000
N_SAMPLES = 120000
SEED = 12345
SEED_KMEANS = 0
BATCH = 0  # the batch whose template_match output is saved


def main():
    torch.manual_seed(0)
    np.random.seed(SEED_KMEANS)
    rec = synthetic_recording(N_CHAN, N_SAMPLES, SEED)
    raw = rec.astype("<i2").tobytes()
    probe = io.load_probe(PRE / "probe.json")
    device = torch.device("cpu")
    user_settings = {
        "n_chan_bin": N_CHAN, "fs": FS, "batch_size": 60000, "nt": 61, "nskip": 1,
        "whitening_range": 32, "highpass_cutoff": 300,
    }
    with tempfile.TemporaryDirectory() as tmp:
        binpath = Path(tmp) / "recording.bin"
        binpath.write_bytes(raw)
        settings = {**DEFAULT_SETTINGS, **user_settings}
        filename, _d, _r, probe = set_files(settings, binpath, probe, None, None, Path(tmp) / "ks4", None, None)
        ops, settings = initialize_ops(settings, probe, "int16", True, False, device, False)
        ops = compute_preprocessing(ops, device)

        (n_chan_bin, fs, NT, nt, twav_min, chan_map, dtype, do_CAR, invert, xc, yc, tmin, tmax, artifact,
         shift, scale, batch_downsampling) = get_run_parameters(ops)
        bfile = io.BinaryFiltered(
            ops["filename"], n_chan_bin, fs, NT, nt, twav_min, chan_map,
            hp_filter=ops["preprocessing"]["hp_filter"], whiten_mat=ops["preprocessing"]["whiten_mat"],
            device=device, do_CAR=do_CAR, invert_sign=invert, dtype=dtype, tmin=tmin, tmax=tmax,
            artifact_threshold=artifact, shift=shift, scale=scale, batch_downsampling=batch_downsampling)
        assert bfile.n_batches == 2 == ops["Nbatches"]
        # What datashift.run leaves in ops when nblocks = 0 (no drift correction).
        ops["dshift"] = None
        st, tF, ops = spikedetect.run(ops, bfile, device=device)

        X = bfile.padded_batch_to_torch(BATCH, ops)
        xy, imax, amp, _adist = spikedetect.template_match(X, ops, ops["iC"], ops["iC2"], ops["weigh"], device=device)

    n = st.shape[0]
    np.save(HERE / "wPCA.npy", ops["wPCA"].numpy().astype(np.float32))
    np.save(HERE / "wTEMP.npy", ops["wTEMP"].numpy().astype(np.float32))
    np.save(HERE / "xcup.npy", np.asarray(ops["xcup"], dtype=np.float64))
    np.save(HERE / "ycup.npy", np.asarray(ops["ycup"], dtype=np.float64))
    np.save(HERE / "n_spikes.npy", np.array(n, dtype=np.int64))
    np.save(HERE / "st_time.npy", st[:, 0].astype(np.float64))
    np.save(HERE / "st_y.npy", st[:, 1].astype(np.float32))
    np.save(HERE / "st_amp.npy", st[:, 2].astype(np.float32))
    np.save(HERE / "st_template.npy", st[:, 5].astype(np.int32))
    np.save(HERE / "match_xy.npy", xy.numpy().astype(np.int64))
    np.save(HERE / "match_amp.npy", amp.numpy().astype(np.float32))
    np.save(HERE / "match_imax.npy", imax.numpy().astype(np.int64))

    in_batch = st[:, 4] == BATCH
    summary = {
        "n_spikes": int(n),
        "n_grid": int(len(ops["xcup"])),
        "dmin": float(ops["dmin"]), "dminx": float(ops["dminx"]),
        "batch": BATCH,
        "n_match_in_batch": int(len(xy)),
        "n_st_in_batch": int(in_batch.sum()),
        "st_amp_min_max": [float(st[:, 2].min()), float(st[:, 2].max())],
        "spikes_per_batch": np.bincount(st[:, 4].astype(int), minlength=2).tolist(),
        "template_match_equals_run_for_batch": bool(
            np.array_equal(np.sort(xy[:, 0].numpy()), np.sort(st[in_batch, 5].astype(np.int64)))),
    }
    used = {k: (v if not isinstance(v, float) or np.isfinite(v) else str(v)) for k, v in settings.items()
            if k not in ("filename", "data_dir", "results_dir")}
    out = {
        "input": "tests/data/preprocess synthetic recording (32 ch, 120000 samples, seed 12345)",
        "user_settings": user_settings, "settings": used, "kmeans_numpy_seed": SEED_KMEANS,
        "drift_correction": "none (dshift None)",
        "versions": {"kilosort": kilosort.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "summary": summary,
    }
    (HERE / "detect_settings.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
